//! `alliance usage export`: metered usage of a period as FOCUS CSV (or JSON) on stdout.

use std::io::Write;
use std::process::ExitCode;

use alliance_core::billing::Period;
use alliance_service::store::Store;

use crate::Common;

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// FOCUS 1.2 CSV.
    Focus,
    /// JSON lines and totals.
    Json,
}

/// `usage export` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// The UTC month, `YYYY-MM`.
    #[arg(long)]
    period: String,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this member.
    #[arg(long)]
    member: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "focus")]
    format: Format,
}

/// Writes the export; exit 2 on bad input.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let period = Period::parse(&args.period).map_err(|e| anyhow::anyhow!("--period: {e}"))?;
    let (config, url) = super::config_and_database(&args.common)?;
    let usage = super::runtime()?.block_on(async {
        let store = Store::connect(&url, 2).await?;
        store.migrate().await?;
        let books = alliance_service::billing::Books::from_config(&config, &store).await?;
        let usage = alliance_service::billing::usage(
            &store,
            period,
            args.tenant.as_deref(),
            args.member.as_deref(),
            &books.catalogues,
            alliance_service::time::now_ms(),
        )
        .await?;
        store.close().await;
        Ok::<_, anyhow::Error>((usage, books.names))
    })?;
    let (usage, names) = usage;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Focus => alliance_core::focus::write(&mut out, period, &usage.lines, &names)?,
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&usage)?)?,
    }
    Ok(ExitCode::SUCCESS)
}
