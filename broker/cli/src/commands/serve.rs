//! `alliance serve`: run the broker.

use std::net::SocketAddr;
use std::process::ExitCode;

use alliance_service::startup::{shutdown_signal, Application, Settings};

use crate::Common;

/// `serve` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Address to listen on (overrides `[server] listen`).
    #[arg(long, env = "ALLIANCE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Allow the development issuer on a non-loopback address (never in production).
    #[arg(long)]
    allow_dev_issuer_on_network: bool,
}

/// Runs until SIGINT/SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = super::load_config(&args.common)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // The OTLP exporter needs the runtime, so telemetry starts inside it.
        let telemetry = alliance_service::telemetry::init(&super::env_map())?;
        let dev_issuer = config.auth.dev_issuer.enabled;
        let database = if config.database.url.starts_with("sqlite") { "sqlite" } else { "postgres" };
        let members = config.members.len();
        let origin = args.common.config.as_ref().map_or_else(|| "the bundled demo federation".to_owned(), |p| p.display().to_string());
        let app = Application::build(Settings {
            config,
            data_dir: args.common.data_dir.clone(),
            allow_dev_issuer_on_network: args.allow_dev_issuer_on_network,
            env: super::env_map(),
            clock: std::sync::Arc::new(alliance_service::time::SystemClock),
        })
        .await?;
        println!("alliance listening on http://{} ({origin}, {members} members, {database} store, data dir {})", app.local_addr(), args.common.data_dir.display());
        if dev_issuer {
            println!("get a token:  alliance token --role tenant-admin --tenant acme   (or: cargo run --release -- token --role tenant-admin --tenant acme)");
            println!("then:         curl -H \"Authorization: Bearer $TOKEN\" http://{}/v1/members", app.local_addr());
        }
        println!("API docs:     http://{}/docs", app.local_addr());
        tracing::info!(addr = %app.local_addr(), "ready");
        app.run_until_stopped(shutdown_signal()).await?;
        // Flushing spans blocks until the exporter is done: off the async workers.
        tokio::task::spawn_blocking(move || drop(telemetry)).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
