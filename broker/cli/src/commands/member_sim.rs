//! `alliance member-sim`: run the reference member cloud of the federation protocol.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use alliance_adapter_federation::server::{run as serve_member, MemberSimOptions};
use alliance_adapter_sim::SimConfig;
use alliance_core::billing::{Price, PriceCatalogue};
use alliance_core::{Jurisdiction, MemberId};

/// `member-sim` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The member's id, e.g. luxcloud-lu.
    #[arg(long)]
    member_id: String,
    /// A jurisdiction it serves (repeatable), e.g. LU.
    #[arg(long = "jurisdiction", required = true)]
    jurisdictions: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8701")]
    listen: SocketAddr,
    /// Bearer token callers must present; without one, any caller is accepted.
    #[arg(long, env = "ALLIANCE_MEMBER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Provisioning and deletion delay, in milliseconds.
    #[arg(long, default_value_t = 300)]
    delay_ms: u64,
    /// Fraction of calls (0 to 1) answered 503, to exercise the broker's retries.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Journal file that keeps the member's state across restarts.
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// A price of its own statements, `SKU=AMOUNT` (repeatable), e.g. `bucket=0.0020`.
    #[arg(long = "price")]
    prices: Vec<String>,
    /// The currency of its prices.
    #[arg(long, default_value = "EUR")]
    currency: String,
}

/// Serves until SIGINT/SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    MemberId::parse(&args.member_id).map_err(|e| anyhow::anyhow!("--member-id: {e}"))?;
    let jurisdictions = args
        .jurisdictions
        .iter()
        .map(|j| Jurisdiction::parse(j).map_err(|e| anyhow::anyhow!("--jurisdiction: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !(0.0..=1.0).contains(&args.failure_rate) {
        anyhow::bail!("--failure-rate must be between 0 and 1");
    }
    let mut prices = Vec::new();
    for price in &args.prices {
        let (sku, amount) = price
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--price `{price}`: expected SKU=AMOUNT"))?;
        let amount = amount
            .parse()
            .map_err(|e| anyhow::anyhow!("--price `{price}`: {e}"))?;
        let unit = if sku == "volume.gb" {
            "gb-hour"
        } else {
            "hour"
        };
        prices.push(Price {
            sku: sku.to_owned(),
            unit: unit.to_owned(),
            price: amount,
            currency: args.currency.clone(),
        });
    }
    PriceCatalogue::new(&prices).map_err(|e| anyhow::anyhow!("--price: {e}"))?;
    let options = MemberSimOptions {
        member_id: args.member_id,
        jurisdictions,
        listen: args.listen,
        token: args.token.filter(|t| !t.is_empty()),
        sim: SimConfig {
            delay_ms: args.delay_ms,
            failure_rate: args.failure_rate,
            prices,
        },
        state_file: args.state_file,
        public_url: None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve_member(
        options,
        alliance_service::startup::shutdown_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}
