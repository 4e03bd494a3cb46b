//! The state shared by every request handler and background job.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use crate::auth::TokenVerifier;
use crate::config::Config;
use crate::members::MemberRegistry;
use crate::ratelimit::RateLimiter;
use crate::store::Store;

/// Everything a handler may need; one pointer, so a clone per request (axum's `State`
/// extractor takes one) is one atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// The state of these services.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind an [`AppState`].
pub struct Services {
    /// The validated config.
    pub config: Arc<Config>,
    /// The store.
    pub store: Store,
    /// Token verification.
    pub verifier: Arc<TokenVerifier>,
    /// The member catalogue, adapters and routing table.
    pub members: Arc<MemberRegistry>,
    /// Wakes the operations engine when work is journaled.
    pub wake: Arc<Notify>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Per-tenant request rate limits.
    pub rate_limiter: Arc<RateLimiter>,
    /// Seals and opens partner credentials.
    pub sealer: Arc<crate::secrets::Sealer>,
    /// The clock of the books.
    pub clock: crate::time::SharedClock,
    /// Signs the audit chain's checkpoints.
    pub audit_key: Arc<crate::checkpoints::AuditKey>,
    /// Signs the console's session cookies.
    pub console_key: Arc<crate::console::session::SessionKey>,
}
