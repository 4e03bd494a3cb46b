//! `alliance invoice`: a tenant's invoice for a month, in its billing currency, on stdout
//! (the same use case as `GET /v1/invoices`).

use std::io::Write;
use std::process::ExitCode;

use alliance_core::billing::Period;
use alliance_service::store::Store;

use crate::Common;

/// Output format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// The invoice as JSON.
    Json,
    /// Its lines as CSV.
    Csv,
}

/// `invoice` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// The UTC month, `YYYY-MM`.
    #[arg(long)]
    period: String,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
}

/// Writes the invoice; exit 2 on bad input or a missing rate.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let period = Period::parse(&args.period).map_err(|e| anyhow::anyhow!("--period: {e}"))?;
    let tenant = alliance_core::TenantId::parse(&args.tenant)
        .map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let (config, url) = super::config_and_database(&args.common)?;
    let invoice = super::runtime()?.block_on(async {
        let store = Store::connect(&url, 2).await?;
        store.migrate().await?;
        let books = alliance_service::billing::Books::from_config(&config, &store).await?;
        let row = store
            .tenant(&tenant)
            .await?
            .ok_or_else(|| anyhow::anyhow!("--tenant: no tenant `{tenant}`"))?;
        let invoice = alliance_service::invoicing::tenant_invoice(
            &store,
            &books,
            config.billing.rates.as_deref(),
            &row,
            period,
            alliance_service::time::now_ms(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.cause.clone().unwrap_or(e.detail)));
        store.close().await;
        invoice
    })?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&invoice)?)?,
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record([
                "member",
                "jurisdiction",
                "sku",
                "quantity",
                "unit",
                "amount",
                "currency",
                "member_currency",
                "member_amount",
            ])?;
            for l in &invoice.lines {
                csv.write_record([
                    l.member.as_str(),
                    &l.jurisdiction,
                    &l.sku,
                    &l.quantity.to_string(),
                    &l.unit,
                    &l.amount.to_string(),
                    &invoice.currency,
                    &l.member_currency,
                    &l.member_amount.to_string(),
                ])?;
            }
            csv.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
