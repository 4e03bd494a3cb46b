//! `alliance conformance`: run the adapter conformance suite against a member cloud.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use alliance_adapter_api::CallContext;
use alliance_adapter_federation::FederationAdapter;
use alliance_conformance::{Check, Options, Outcome};
use alliance_core::{ImageName, Jurisdiction, SizeName, TenantId};

/// Which protocol the member speaks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AdapterKind {
    /// The federation protocol (`/federation/v1`).
    Federation,
}

/// Report format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Readable lines.
    Text,
    /// One JSON document.
    Json,
}

/// `conformance` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The member's base URL, e.g. http://127.0.0.1:8701.
    #[arg(long)]
    member_endpoint: String,
    /// The adapter to drive it with.
    #[arg(long, value_enum, default_value = "federation")]
    adapter: AdapterKind,
    /// Environment variable holding the member's bearer token.
    #[arg(long)]
    token_env: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// How long a resource may take to become active or gone, in seconds.
    #[arg(long, default_value_t = 60)]
    settle_timeout: u64,
}

fn progress_line(check: &Check) -> String {
    let service = check.service.map(|s| format!("[{s}] ")).unwrap_or_default();
    match &check.outcome {
        Outcome::Passed => format!("  ok    {service}{}", check.name),
        Outcome::Failed(why) => format!("  FAIL  {service}{}: {why}", check.name),
        Outcome::Skipped(why) => format!("  skip  {service}{}: {why}", check.name),
    }
}

/// Exit 0 when every check passes, 1 when one fails, 2 when the member cannot be described.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let AdapterKind::Federation = args.adapter;
    let token = match &args.token_env {
        Some(name) => Some(
            std::env::var(name)
                .map_err(|_| anyhow::anyhow!("--token-env: the variable {name} is not set"))?,
        ),
        None => None,
    };
    let adapter = FederationAdapter::new("candidate", &args.member_endpoint, token.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    let bad = match token {
        Some(_) => Some(
            FederationAdapter::new(
                "candidate",
                &args.member_endpoint,
                Some("alliance-conformance-wrong-token".into()),
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        ),
        None => None,
    };
    let interactive = std::io::stdout().is_terminal();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let ctx = CallContext::new(None, "conformance-capabilities", Duration::from_secs(10));
        let capabilities = adapter.capabilities(&ctx).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot read the member's capabilities at {}: {e}",
                args.member_endpoint
            )
        })?;
        let jurisdiction = capabilities
            .jurisdictions
            .iter()
            .find_map(|j| Jurisdiction::parse(j).ok())
            .ok_or_else(|| anyhow::anyhow!("the member declares no valid jurisdiction"))?;
        let options = Options {
            tenant: TenantId::parse("conformance-sandbox").map_err(|e| anyhow::anyhow!(e))?,
            jurisdiction,
            services: capabilities.services.clone(),
            size: capabilities
                .sizes
                .keys()
                .find_map(|s| SizeName::parse(s).ok()),
            image: capabilities
                .images
                .keys()
                .find_map(|i| ImageName::parse(i).ok()),
            settle_timeout: Duration::from_secs(args.settle_timeout),
            call_timeout: Duration::from_secs(10),
        };
        if interactive {
            eprintln!(
                "conformance of {} ({}, {}):",
                capabilities.member_id, args.member_endpoint, jurisdiction
            );
        }
        let mut progress = |check: &Check| {
            if interactive {
                eprintln!("{}", progress_line(check));
            }
        };
        let report = alliance_conformance::run(
            &adapter,
            bad.as_ref()
                .map(|b| b as &dyn alliance_adapter_api::MemberAdapter),
            &options,
            &mut progress,
        )
        .await;
        Ok::<_, anyhow::Error>(report)
    })?;
    match args.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
