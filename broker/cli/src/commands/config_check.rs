//! `alliance config check [FILE]`: validate a config; errors name the key and the line.

use std::path::PathBuf;
use std::process::ExitCode;

use alliance_service::config::Config;

/// `config check` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file; the bundled demo federation when absent.
    file: Option<PathBuf>,
}

/// Exit 0 when valid, 1 with every problem on stderr otherwise.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match Config::load(args.file.as_deref()) {
        Ok(config) => {
            let origin = args.file.as_ref().map_or_else(
                || "the bundled demo config".to_owned(),
                |p| p.display().to_string(),
            );
            println!(
                "{origin} is valid: {} members, {} tenants, {} data classes",
                config.members.len(),
                config.tenants.len(),
                config.data_classes.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{error}");
            Ok(ExitCode::from(1))
        }
    }
}
