//! Configuration: TOML in, a typed and validated `Config` out.
//!
//! Parsing is strict (`deny_unknown_fields`, identifiers parsed into their types), so a
//! misspelt key or a bad value fails with the key and its line. Cross-field rules (a
//! tenant's home must be allowed, ids unique, data classes defined) are checked afterwards
//! and every problem is reported at once. Environment overrides are passed in as a map so
//! that tests never touch the process environment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use alliance_adapter_sim::SimConfig;
use alliance_core::{
    Certification, DataClassName, DataClassPolicy, DataClasses, ImageName, Jurisdiction, MemberId,
    ResourceType, SizeName, TenantId, TenantPolicy,
};
use serde::Deserialize;
use toml::Spanned;

/// The bundled demo federation, used when no config file is given.
pub const DEMO_CONFIG: &str = include_str!("../../../config/alliance.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    #[serde(default)]
    pub server: ServerConfig,
    /// The store.
    #[serde(default)]
    pub database: DatabaseConfig,
    /// Token verification.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Outbound connection rules.
    #[serde(default)]
    pub security: SecurityConfig,
    /// The asynchronous operations engine.
    #[serde(default)]
    pub operations: OperationsConfig,
    /// Data classes and what they require; the SPEC's four when absent.
    #[serde(default = "default_data_classes")]
    pub data_classes: DataClasses,
    /// Tenants seeded at start when absent.
    #[serde(default)]
    pub tenants: Vec<TenantSeed>,
    /// Member clouds.
    #[serde(default)]
    pub members: Vec<MemberConfig>,
}

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            request_timeout_ms: default_request_timeout(),
            body_limit_bytes: default_body_limit(),
            statement_limit_bytes: default_statement_limit(),
            rate_limit_per_second: default_rate_limit(),
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

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The `aud` every token must carry.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The development issuer.
    #[serde(default)]
    pub dev_issuer: DevIssuerConfig,
    /// External issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            audience: default_audience(),
            dev_issuer: DevIssuerConfig::default(),
            issuers: Vec::new(),
        }
    }
}

fn default_audience() -> String {
    "alliance".to_owned()
}

/// `[auth.dev_issuer]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIssuerConfig {
    /// Whether the development issuer signs and is trusted.
    #[serde(default)]
    pub enabled: bool,
}

/// `[[auth.issuers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// Where its keys are published.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find `jwks_uri` through OIDC discovery instead.
    #[serde(default)]
    pub discovery: bool,
    /// Accepted algorithms.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
}

/// Algorithms an external issuer may use: asymmetric only (no HMAC, no `none`).
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

fn default_algorithms() -> Vec<String> {
    vec!["RS256".to_owned(), "ES256".to_owned()]
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
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            allowed_member_networks: default_networks(),
            credentials_key_env: None,
            credentials_key_file: None,
        }
    }
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

fn default_data_classes() -> DataClasses {
    let hds = Certification::parse("hds")
        .map(|c| BTreeSet::from([c]))
        .unwrap_or_default();
    let snc = Certification::parse("secnumcloud")
        .map(|c| BTreeSet::from([c]))
        .unwrap_or_default();
    [
        ("standard", DataClassPolicy::default()),
        (
            "personal",
            DataClassPolicy {
                certifications: BTreeSet::new(),
                eu_eea_only: true,
            },
        ),
        (
            "health",
            DataClassPolicy {
                certifications: hds,
                eu_eea_only: false,
            },
        ),
        (
            "public-sector",
            DataClassPolicy {
                certifications: snc,
                eu_eea_only: false,
            },
        ),
    ]
    .into_iter()
    .filter_map(|(name, policy)| DataClassName::parse(name).ok().map(|n| (n, policy)))
    .collect()
}

/// `[[tenants]]`: a tenant seeded at start when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSeed {
    /// The tenant id.
    pub id: Spanned<TenantId>,
    /// Display name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Where requests without a jurisdiction go.
    pub home_jurisdiction: Jurisdiction,
    /// Where the tenant's data may live.
    pub allowed_jurisdictions: BTreeSet<Jurisdiction>,
    /// Data class of requests that name none.
    #[serde(default = "default_class")]
    pub default_data_class: DataClassName,
}

fn default_class() -> DataClassName {
    DataClassName::parse("standard").unwrap_or_else(|_| unreachable_class())
}

#[expect(
    clippy::panic,
    reason = "the literal `standard` is a valid data class name"
)]
fn unreachable_class() -> DataClassName {
    panic!("`standard` is a valid data class name")
}

impl TenantSeed {
    /// The tenant's placement policy.
    pub fn policy(&self) -> TenantPolicy {
        TenantPolicy {
            id: self.id.get_ref().clone(),
            home_jurisdiction: self.home_jurisdiction,
            allowed_jurisdictions: self.allowed_jurisdictions.clone(),
            default_data_class: self.default_data_class.clone(),
        }
    }
}

/// `[[members]]`: a member cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The member id.
    pub id: Spanned<MemberId>,
    /// Legal or display name.
    pub name: String,
    /// Jurisdictions it serves.
    pub jurisdictions: BTreeSet<Jurisdiction>,
    /// Certifications it holds.
    #[serde(default)]
    pub certifications: BTreeSet<Certification>,
    /// Services it offers.
    pub services: BTreeSet<ResourceType>,
    /// Broker size → member flavour.
    #[serde(default)]
    pub sizes: BTreeMap<SizeName, String>,
    /// Broker image → member image id.
    #[serde(default)]
    pub images: BTreeMap<ImageName, String>,
    /// How the broker talks to it.
    pub adapter: AdapterConfig,
    /// Its price catalogue (exact decimals as strings, one currency).
    #[serde(default)]
    pub prices: Vec<alliance_core::billing::Price>,
}

/// How the broker talks to a member.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum AdapterConfig {
    /// The in-process simulated member.
    Sim(SimConfig),
    /// A member speaking the federation protocol over HTTP.
    Federation(alliance_adapter_federation::FederationConfig),
    /// An EC2- and S3-compatible cloud.
    Ec2(alliance_adapter_ec2::Ec2Config),
    /// An OpenStack cloud (Keystone v3, Nova, Cinder, Swift).
    Openstack(alliance_adapter_openstack::OpenStackConfig),
}

impl AdapterConfig {
    /// The adapter kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sim(_) => "sim",
            Self::Federation(_) => "federation",
            Self::Ec2(_) => "ec2",
            Self::Openstack(_) => "openstack",
        }
    }
}

/// One configuration problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key, as a dotted path (`members[1].jurisdictions`).
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a config, reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, or `<bundled demo config>`.
    pub origin: String,
    /// The problems, in file order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}:", self.origin)?;
        for p in &self.problems {
            match p.line {
                Some(line) => write!(f, "\n  line {line}: `{}`: {}", p.key, p.message)?,
                None => write!(f, "\n  `{}`: {}", p.key, p.message)?,
            }
        }
        Ok(())
    }
}

/// A URL with its password replaced, safe to show.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |t| t.bytes().filter(|&b| b == b'\n').count())
        + 1
}

/// The key a toml error is about: the word in backticks after "unknown field", else the
/// line's own key.
fn key_of_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            return rest[..end].to_owned();
        }
    }
    if let Some(span) = err.span() {
        let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[start..];
        let line = line.split('\n').next().unwrap_or("");
        if let Some((key, _)) = line.split_once('=') {
            return key.trim().to_owned();
        }
        return line
            .trim()
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
    }
    "<file>".to_owned()
}

impl Config {
    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError {
            origin: origin.to_owned(),
            problems: vec![ConfigProblem {
                key: key_of_toml_error(text, &err),
                line: err.span().map(|s| line_of(text, s.start)),
                message: err.message().trim().to_owned(),
            }],
        })?;
        let problems = config.problems(Some(text));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                origin: origin.to_owned(),
                problems,
            })
        }
    }

    /// Reads a file, or the bundled demo when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::parse(DEMO_CONFIG, "<bundled demo config>"),
            Some(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                    origin: origin.clone(),
                    problems: vec![ConfigProblem {
                        key: "<file>".into(),
                        line: None,
                        message: format!("cannot read: {e}"),
                    }],
                })?;
                Self::parse(&text, &origin)
            }
        }
    }

    /// Applies `ALLIANCE_*` overrides from `env`; unknown `ALLIANCE_*` names are left to
    /// the CLI. Supported: `ALLIANCE_LISTEN`, `ALLIANCE_DATABASE_URL`,
    /// `ALLIANCE_DEV_ISSUER_ENABLED`, `ALLIANCE_AUTH_AUDIENCE`,
    /// `ALLIANCE_RATE_LIMIT_PER_SECOND`.
    pub fn apply_env(&mut self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                line: None,
                message,
            });
        };
        if let Some(v) = env.get("ALLIANCE_LISTEN") {
            match v.parse() {
                Ok(addr) => self.server.listen = addr,
                Err(e) => bad("ALLIANCE_LISTEN", format!("`{v}` is not an address: {e}")),
            }
        }
        if let Some(v) = env.get("ALLIANCE_DATABASE_URL") {
            self.database.url = v.clone();
        }
        if let Some(v) = env.get("ALLIANCE_DEV_ISSUER_ENABLED") {
            match v.as_str() {
                "true" | "1" => self.auth.dev_issuer.enabled = true,
                "false" | "0" => self.auth.dev_issuer.enabled = false,
                _ => bad(
                    "ALLIANCE_DEV_ISSUER_ENABLED",
                    format!("`{v}` is not true or false"),
                ),
            }
        }
        if let Some(v) = env.get("ALLIANCE_AUTH_AUDIENCE") {
            self.auth.audience = v.clone();
        }
        if let Some(v) = env.get("ALLIANCE_RATE_LIMIT_PER_SECOND") {
            match v.parse() {
                Ok(n) => self.server.rate_limit_per_second = n,
                Err(e) => bad("ALLIANCE_RATE_LIMIT_PER_SECOND", format!("`{v}`: {e}")),
            }
        }
        problems.extend(self.problems(None));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                origin: "environment".to_owned(),
                problems,
            })
        }
    }

    /// Cross-field checks; `text` gives line numbers.
    fn problems(&self, text: Option<&str>) -> Vec<ConfigProblem> {
        let line = |span: std::ops::Range<usize>| text.map(|t| line_of(t, span.start));
        let mut out = Vec::new();
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            out.push(ConfigProblem {
                key: "database.url".into(),
                line: None,
                message: format!(
                    "`{}` is neither sqlite://FILE nor postgres://…",
                    redact_url(db)
                ),
            });
        }
        if self.auth.audience.is_empty() {
            out.push(ConfigProblem {
                key: "auth.audience".into(),
                line: None,
                message: "must not be empty".into(),
            });
        }
        for (i, network) in self.security.allowed_member_networks.iter().enumerate() {
            let is_net = network.parse::<ipnet::IpNet>().is_ok()
                || network.parse::<std::net::IpAddr>().is_ok();
            let is_host = !network.is_empty()
                && network.len() <= 253
                && network
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !is_net && !is_host {
                out.push(ConfigProblem {
                    key: format!("security.allowed_member_networks[{i}]"),
                    line: None,
                    message: format!(
                        "`{network}` is neither a CIDR network, an address nor a host name"
                    ),
                });
            }
        }
        for (i, issuer) in self.auth.issuers.iter().enumerate() {
            for algorithm in &issuer.algorithms {
                if !ASYMMETRIC_ALGORITHMS.contains(&algorithm.as_str()) {
                    out.push(ConfigProblem {
                        key: format!("auth.issuers[{i}].algorithms"),
                        line: None,
                        message: format!(
                            "`{algorithm}` is not allowed: use {}",
                            ASYMMETRIC_ALGORITHMS.join(", ")
                        ),
                    });
                }
            }
            if issuer.jwks_url.is_none() && !issuer.discovery {
                out.push(ConfigProblem {
                    key: format!("auth.issuers[{i}]"),
                    line: None,
                    message: "needs jwks_url or discovery = true".into(),
                });
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let at = line(t.id.span());
            if !seen.insert(t.id.get_ref().clone()) {
                out.push(ConfigProblem {
                    key: format!("tenants[{i}].id"),
                    line: at,
                    message: format!("tenant `{}` is defined twice", t.id.get_ref()),
                });
            }
            if !t.allowed_jurisdictions.contains(&t.home_jurisdiction) {
                out.push(ConfigProblem {
                    key: format!("tenants[{i}].home_jurisdiction"),
                    line: at,
                    message: format!("{} is not among allowed_jurisdictions", t.home_jurisdiction),
                });
            }
            if !self.data_classes.contains_key(&t.default_data_class) {
                out.push(ConfigProblem {
                    key: format!("tenants[{i}].default_data_class"),
                    line: at,
                    message: format!(
                        "data class `{}` is not defined in [data_classes]",
                        t.default_data_class
                    ),
                });
            }
        }
        let mut seen = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let at = line(m.id.span());
            if !seen.insert(m.id.get_ref().clone()) {
                out.push(ConfigProblem {
                    key: format!("members[{i}].id"),
                    line: at,
                    message: format!("member `{}` is defined twice", m.id.get_ref()),
                });
            }
            if let Err(e) = alliance_core::billing::PriceCatalogue::new(&m.prices) {
                out.push(ConfigProblem {
                    key: format!("members[{i}].prices"),
                    line: at,
                    message: e,
                });
            }
            if m.jurisdictions.is_empty() {
                out.push(ConfigProblem {
                    key: format!("members[{i}].jurisdictions"),
                    line: at,
                    message: "a member serves at least one jurisdiction".into(),
                });
            }
            match &m.adapter {
                AdapterConfig::Sim(sim) if !(0.0..=1.0).contains(&sim.failure_rate) => {
                    out.push(ConfigProblem {
                        key: format!("members[{i}].adapter.failure_rate"),
                        line: at,
                        message: "must be between 0 and 1".into(),
                    });
                }
                AdapterConfig::Sim(_) => {}
                AdapterConfig::Federation(f)
                    if !(f.endpoint.starts_with("http://")
                        || f.endpoint.starts_with("https://")) =>
                {
                    out.push(ConfigProblem {
                        key: format!("members[{i}].adapter.endpoint"),
                        line: at,
                        message: format!("`{}` is not an http(s) URL", f.endpoint),
                    });
                }
                AdapterConfig::Federation(_) => {}
                AdapterConfig::Ec2(c) => {
                    for (key, message) in c.problems() {
                        out.push(ConfigProblem {
                            key: format!("members[{i}].adapter.{key}"),
                            line: at,
                            message,
                        });
                    }
                }
                AdapterConfig::Openstack(c) => {
                    for (key, message) in c.problems() {
                        out.push(ConfigProblem {
                            key: format!("members[{i}].adapter.{key}"),
                            line: at,
                            message,
                        });
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_is_valid() {
        let config = Config::load(None).expect("demo config");
        assert_eq!(config.members.len(), 3);
        assert_eq!(config.tenants.len(), 2);
        assert!(config.auth.dev_issuer.enabled);
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8700");
    }

    #[test]
    fn a_misspelt_key_names_the_key_and_the_line() {
        let text = "[server]\nlisten = \"127.0.0.1:1\"\n\n[database]\nulr = \"sqlite://x.db\"\n";
        let err = Config::parse(text, "f.toml").expect_err("misspelt");
        assert_eq!(err.problems[0].key, "ulr");
        assert_eq!(err.problems[0].line, Some(5));
        let shown = err.to_string();
        assert!(
            shown.contains("f.toml") && shown.contains("line 5") && shown.contains("ulr"),
            "{shown}"
        );
    }

    #[test]
    fn bad_values_and_cross_field_rules_are_reported_with_lines() {
        let text = "[[tenants]]\nid = \"t\"\nhome_jurisdiction = \"IT\"\nallowed_jurisdictions = [\"FR\"]\n";
        let err = Config::parse(text, "f.toml").expect_err("home not allowed");
        assert_eq!(err.problems[0].key, "tenants[0].home_jurisdiction");
        assert_eq!(err.problems[0].line, Some(2));

        let text = "[[tenants]]\nid = \"t\"\nhome_jurisdiction = \"XX\"\nallowed_jurisdictions = [\"FR\"]\n";
        let err = Config::parse(text, "f.toml").expect_err("bad code");
        assert_eq!(err.problems[0].line, Some(3));
        assert!(err.to_string().contains("ISO 3166-1"), "{err}");

        let text = "[[members]]\nid = \"m\"\nname = \"M\"\njurisdictions = [\"FR\"]\nservices = [\"instance\"]\nadapter = { kind = \"sim\", delay = 3 }\n";
        let err = Config::parse(text, "f.toml").expect_err("unknown adapter key");
        assert_eq!(err.problems[0].line, Some(6));
        assert!(err.to_string().contains("delay"), "{err}");
    }

    #[test]
    fn issuer_algorithms_and_member_networks_are_checked() {
        let text = "[auth]\n[[auth.issuers]]\nissuer = \"https://idp\"\njwks_url = \"https://idp/jwks\"\nalgorithms = [\"HS256\"]\n[security]\nallowed_member_networks = [\"10.0.0.0/33\"]\n";
        let err = Config::parse(text, "f.toml").expect_err("bad algorithm and network");
        let shown = err.to_string();
        assert!(
            shown.contains("HS256") && shown.contains("10.0.0.0/33"),
            "{shown}"
        );
    }

    #[test]
    fn database_passwords_never_show_in_errors() {
        assert_eq!(redact_url("mysql://u:s3cret@h/db"), "mysql://u:***@h/db");
        let mut config = Config::load(None).expect("demo");
        let env = BTreeMap::from([(
            "ALLIANCE_DATABASE_URL".to_owned(),
            "mysql://u:s3cret@h/db".to_owned(),
        )]);
        let err = config.apply_env(&env).expect_err("unsupported scheme");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn env_overrides_apply_and_are_checked() {
        let mut config = Config::load(None).expect("demo");
        let env = BTreeMap::from([
            ("ALLIANCE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "ALLIANCE_DATABASE_URL".to_owned(),
                "postgres://u@h/db".to_owned(),
            ),
        ]);
        config.apply_env(&env).expect("overrides");
        assert_eq!(config.server.listen.port(), 0);
        assert_eq!(config.database.url, "postgres://u@h/db");
        let env = BTreeMap::from([("ALLIANCE_LISTEN".to_owned(), "nowhere".to_owned())]);
        let err = config.apply_env(&env).expect_err("bad listen");
        assert_eq!(err.problems[0].key, "ALLIANCE_LISTEN");
    }
}
