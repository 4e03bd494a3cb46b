//! `alliance migrate`: apply the database migrations (serve applies them too).

use std::process::ExitCode;

use alliance_service::store::Store;

use crate::Common;

/// `migrate` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
}

/// Migrates and reports the backend.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_, url) = super::config_and_database(&args.common)?;
    std::fs::create_dir_all(&args.common.data_dir)?;
    super::runtime()?.block_on(async {
        let store = Store::connect(&url, 2).await?;
        store.migrate().await?;
        println!("migrations applied ({})", store.backend().as_str());
        store.close().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
