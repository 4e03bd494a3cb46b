//! The broker's own runtime sections: `[server]`, `[database]`, `[security]` and
//! `[operations]`.
//!
//! Owns their typed shape and their defaults: each section may be left out, each key has a
//! default, and the `Default` of a section equals what an empty section parses to.
//!
//! **Invariant:** parsing is strict (`deny_unknown_fields`); the cross-field rules on these
//! values (database URL scheme, member network syntax) live in `validate`.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Requests taking longer are answered 503 `request.timeout`.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Larger request bodies are answered 413.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Larger statement uploads (`PUT /v1/members/{id}/statements/{period}`) are answered
    /// 413; bigger statements are reconciled offline with `alliance reconcile`.
    #[serde(default = "default_statement_limit")]
    pub statement_limit_bytes: usize,
    /// Requests per second allowed per tenant (or per subject without a tenant); 0 disables.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_per_second: u32,
    /// A request's head (request line and headers) must arrive within this, counted from
    /// when the connection is ready for a request: it also closes a keep-alive connection
    /// that sends nothing for this long.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// A connection on which no byte is read or written for this long is closed (a client
    /// that stops reading its response, an idle HTTP/2 connection).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Connections served at once; further clients wait in the listen backlog.
    #[serde(default = "default_max_open_connections")]
    pub max_open_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            request_timeout_ms: default_request_timeout(),
            body_limit_bytes: default_body_limit(),
            statement_limit_bytes: default_statement_limit(),
            rate_limit_per_second: default_rate_limit(),
            header_read_timeout_ms: default_header_read_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_open_connections: default_max_open_connections(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8700))
}
fn default_request_timeout() -> u64 {
    30_000
}
fn default_body_limit() -> usize {
    1024 * 1024
}
fn default_statement_limit() -> usize {
    64 * 1024 * 1024
}
fn default_rate_limit() -> u32 {
    0
}
fn default_header_read_timeout() -> u64 {
    10_000
}
fn default_idle_timeout() -> u64 {
    60_000
}
fn default_max_open_connections() -> usize {
    4096
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://FILE` (relative to the data dir) or `postgres://…`.
    #[serde(default = "default_database_url")]
    pub url: String,
    /// Connections in the pool.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: default_database_url(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_database_url() -> String {
    "sqlite://alliance.db".to_owned()
}
fn default_max_connections() -> u32 {
    8
}

/// `[security]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Networks (CIDR) and host names partner endpoints may point to.
    #[serde(default = "default_networks")]
    pub allowed_member_networks: Vec<String>,
    /// Environment variable holding the credentials key (32 bytes, base64).
    #[serde(default)]
    pub credentials_key_env: Option<String>,
    /// File holding the credentials key; `<data-dir>/credentials.key` when neither is set.
    #[serde(default)]
    pub credentials_key_file: Option<std::path::PathBuf>,
    /// File holding the audit checkpoint key (P-256 PKCS#8 PEM, created on first use);
    /// `<data-dir>/audit-key.pem` when unset. Keep it off the database's machine or backups
    /// to make the checkpoints worth more; replicas sharing a database share one.
    #[serde(default)]
    pub audit_key_file: Option<std::path::PathBuf>,
    /// How often the audit chain's head is signed (when it grew), and always at shutdown.
    #[serde(default = "default_checkpoint_interval")]
    pub audit_checkpoint_interval_ms: u64,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            allowed_member_networks: default_networks(),
            credentials_key_env: None,
            credentials_key_file: None,
            audit_key_file: None,
            audit_checkpoint_interval_ms: default_checkpoint_interval(),
        }
    }
}

fn default_checkpoint_interval() -> u64 {
    60_000
}

fn default_networks() -> Vec<String> {
    vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()]
}

/// `[operations]`: the asynchronous operations engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsConfig {
    /// Operation steps run at once by one broker.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long a claimed operation stays leased to one broker.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Deadline of one call to a member.
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// An operation not finished after this long fails.
    #[serde(default = "default_operation_timeout_ms")]
    pub operation_timeout_ms: u64,
    /// How often an idle engine looks for due work.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// How often members are compared with the books (drift and orphans); 0 disables.
    #[serde(default = "default_drift_ms")]
    pub drift_interval_ms: u64,
    /// How often every member's health is probed.
    #[serde(default = "default_health_ms")]
    pub health_interval_ms: u64,
}

impl Default for OperationsConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            lease_ms: default_lease_ms(),
            call_timeout_ms: default_call_timeout_ms(),
            operation_timeout_ms: default_operation_timeout_ms(),
            poll_interval_ms: default_poll_ms(),
            drift_interval_ms: default_drift_ms(),
            health_interval_ms: default_health_ms(),
        }
    }
}

fn default_concurrency() -> usize {
    64
}
fn default_lease_ms() -> u64 {
    60_000
}
fn default_call_timeout_ms() -> u64 {
    20_000
}
fn default_operation_timeout_ms() -> u64 {
    600_000
}
fn default_poll_ms() -> u64 {
    50
}
fn default_drift_ms() -> u64 {
    300_000
}
fn default_health_ms() -> u64 {
    5_000
}
