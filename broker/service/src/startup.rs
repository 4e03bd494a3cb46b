//! Building and running the broker: `Application::build` wires config, store, verifier,
//! members and engine and binds the listener (port 0 allowed); `run_until_stopped` serves
//! until the shutdown future resolves, then drains in-flight requests and operation steps.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::auth::{DevIssuer, TokenVerifier};
use crate::config::Config;
use crate::members::{build_adapter, MemberEntry, MemberRegistry};
use crate::provisioning::engine::Engine;
use crate::ratelimit::RateLimiter;
use crate::state::AppState;
use crate::store::{resolve_url, Store};
use crate::time::{SharedClock, SystemClock};

/// What `serve` needs besides the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The validated config (env overrides applied).
    pub config: Config,
    /// The data dir (SQLite file, dev issuer key, simulated members' journals).
    pub data_dir: PathBuf,
    /// Allow the dev issuer on a non-loopback address.
    pub allow_dev_issuer_on_network: bool,
    /// The environment, for secrets the config names by variable.
    pub env: std::collections::BTreeMap<String, String>,
    /// The clock of the books ([`SystemClock`] in production).
    pub clock: SharedClock,
}

impl Settings {
    /// Settings for a config and data dir, with the system clock and no environment.
    pub fn new(config: Config, data_dir: PathBuf) -> Self {
        Self {
            config,
            data_dir,
            allow_dev_issuer_on_network: false,
            env: std::collections::BTreeMap::new(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// A built broker, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    local_addr: SocketAddr,
}

impl Application {
    /// Builds everything and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listen = settings.config.server.listen;
        let state = build_state(settings).await?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            state,
            local_addr,
        })
    }
}

/// Builds the broker's state (store migrated, tenants seeded, members and verifier ready)
/// without binding: what `Application::build` serves, and what in-process tests drive.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    let config = settings.config;
    let listen = config.server.listen;
    if config.auth.dev_issuer.enabled
        && !listen.ip().is_loopback()
        && !settings.allow_dev_issuer_on_network
    {
        anyhow::bail!(
                "refusing to listen on {listen} with the development token issuer enabled: anyone who can read the data dir could mint tokens. \
                 Listen on a loopback address, disable [auth.dev_issuer], or pass --allow-dev-issuer-on-network"
            );
    }
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create the data dir {}", settings.data_dir.display()))?;
    let url = resolve_url(&config.database.url, &settings.data_dir);
    let store = Store::connect(&url, config.database.max_connections)
        .await
        .context("cannot open the database")?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    let now = settings.clock.now_ms();
    for tenant in &config.tenants {
        let name = tenant
            .name
            .clone()
            .unwrap_or_else(|| tenant.id.get_ref().to_string());
        store
            .insert_tenant(&tenant.policy(), &name, &tenant.billing_currency, now, None)
            .await?;
    }
    let mut entries = Vec::new();
    for member in &config.members {
        store.seed_member(member.id.get_ref(), now).await?;
        let call_timeout = Duration::from_millis(config.operations.call_timeout_ms);
        let adapter = build_adapter(member, &settings.data_dir, &settings.env, call_timeout)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot start the adapter of member {}: {e}",
                    member.id.get_ref()
                )
            })?;
        entries.push(MemberEntry {
            config: member.clone(),
            adapter,
        });
    }
    let security = &config.security;
    if security.credentials_key_env.is_none()
        && security.credentials_key_file.is_none()
        && !url.starts_with("sqlite")
    {
        tracing::warn!("no [security] credentials_key_env or credentials_key_file: this replica seals partner credentials with a key of its own data dir; replicas sharing a database must share one key");
    }
    let key_from_env = match &security.credentials_key_env {
        Some(name) => Some(settings.env.get(name).cloned().ok_or_else(|| {
            anyhow::anyhow!("[security] credentials_key_env names {name}, which is not set")
        })?),
        None => None,
    };
    let sealer = Arc::new(
        crate::secrets::Sealer::load(
            key_from_env.as_deref(),
            security.credentials_key_file.as_deref(),
            &settings.data_dir,
        )
        .map_err(|e| anyhow::anyhow!("credentials key: {e}"))?,
    );
    let members = Arc::new(MemberRegistry::new(
        entries,
        Some(sealer.clone()),
        Duration::from_millis(config.operations.call_timeout_ms),
        crate::members::AllowedDestinations::from_entries(&config.security.allowed_member_networks),
    ));
    members.refresh(&store, true).await?;
    let dev = if config.auth.dev_issuer.enabled {
        Some(Arc::new(DevIssuer::load_or_create(&settings.data_dir)?))
    } else {
        None
    };
    let verifier =
        TokenVerifier::new(&config.auth, dev).map_err(|e| anyhow::anyhow!("auth config: {e}"))?;
    if security.audit_key_file.is_none() && !url.starts_with("sqlite") {
        tracing::warn!("no [security] audit_key_file: this replica signs audit checkpoints with a key of its own data dir; replicas sharing a database must share one key");
    }
    let audit_key = Arc::new(
        crate::checkpoints::AuditKey::load_or_create(&crate::checkpoints::AuditKey::path(
            security,
            &settings.data_dir,
        ))
        .map_err(|e| anyhow::anyhow!("audit key: {e}"))?,
    );
    let console_key = Arc::new(
        crate::console::session::SessionKey::load_or_create(&settings.data_dir)
            .context("cannot read or create the console's session key")?,
    );
    Ok(AppState::new(crate::state::Services {
        console_key,
        audit_key,
        rate_limiter: Arc::new(RateLimiter::new(config.server.rate_limit_per_second)),
        sealer,
        config: Arc::new(config),
        store,
        verifier: Arc::new(verifier),
        members,
        wake: Arc::new(Notify::new()),
        metrics: crate::telemetry::metrics_handle(),
        clock: settings.clock,
    }))
}

impl Application {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The shared state (for in-process tests).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then drains requests and operation steps.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = self.state.clone();
        crate::partners::resume_conformance(&state).await?;
        match crate::compliance::record_changes(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(changes = n, "resources changed compliance with their tenants' policies since the last start; see resource.compliance in the audit log"),
            Err(e) => tracing::warn!(error = %e, "cannot check resources against their tenants' policies"),
        }
        let engine = Engine::for_state(&state);
        let engine_task = tokio::spawn(engine.run(stop_rx.clone()));
        let refresh_task = tokio::spawn(refresh_loop(state.clone(), stop_rx.clone()));
        let drift_task = tokio::spawn(drift_loop(state.clone(), stop_rx.clone()));
        let checkpoint_task = tokio::spawn(checkpoint_loop(state.clone(), stop_rx.clone()));
        let router = crate::api::router(state.clone());
        let limits = crate::api::server::ConnectionLimits::from_config(&state.config.server);
        let server = crate::api::server::serve(self.listener, router, limits, stop_rx.clone());
        let trigger = tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests and operation steps");
            let _ = stop_tx.send(true);
        });
        server.await;
        trigger.abort();
        let _ = engine_task.await;
        let _ = refresh_task.await;
        let _ = drift_task.await;
        let _ = checkpoint_task.await;
        // The last events of this run (the engine's, the drained requests') are signed too.
        sign_checkpoint(&state).await;
        state.store.close().await;
        Ok(())
    }
}

async fn refresh_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    // Statuses and new members every second (replicas agree within about a second);
    // health probes every `health_interval_ms`; housekeeping every five minutes.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut housekeeping = 0u32;
    let probe_every = u32::try_from(state.config.operations.health_interval_ms / 1000)
        .unwrap_or(5)
        .max(1);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        housekeeping += 1;
        if let Err(e) = state
            .members
            .refresh(&state.store, housekeeping.is_multiple_of(probe_every))
            .await
        {
            tracing::warn!(error = %e, "cannot refresh the member routing table");
        }
        if housekeeping.is_multiple_of(300) {
            match state
                .store
                .expire_idempotency_keys(state.clock.now_ms())
                .await
            {
                Ok(n) if n > 0 => tracing::info!(expired = n, "expired idempotency keys"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot expire idempotency keys"),
            }
        }
    }
}

async fn checkpoint_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_millis(state.config.security.audit_checkpoint_interval_ms.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        sign_checkpoint(&state).await;
    }
}

async fn sign_checkpoint(state: &AppState) {
    if let Err(e) =
        crate::checkpoints::checkpoint_now(&state.store, &state.audit_key, state.clock.now_ms())
            .await
    {
        tracing::warn!(error = %e, "cannot sign an audit checkpoint");
    }
}

async fn drift_loop(state: AppState, mut stop: watch::Receiver<bool>) {
    let every = state.config.operations.drift_interval_ms;
    if every == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(every));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if let Err(e) = crate::drift::run_once(&state).await {
            tracing::warn!(error = %e, "drift round failed");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
