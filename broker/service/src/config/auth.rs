//! Token verification settings: `[auth]`, `[auth.dev_issuer]` and `[[auth.issuers]]`.
//!
//! Owns the audience every token must carry, whether the development issuer is on, and the
//! external issuers with where their keys are found and which algorithms they may use.
//!
//! **Invariant:** an external issuer may only use an asymmetric algorithm
//! ([`ASYMMETRIC_ALGORITHMS`]) and must name its keys (`jwks_url` or `discovery`); both
//! rules are checked in `validate`, so a loaded `Config` never trusts HMAC or `none`.

use serde::Deserialize;

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
    /// The console's OAuth client at this issuer: when set, `/console/login` offers sign-in
    /// through it (authorization code with PKCE, endpoints from its discovery document).
    /// Its ID tokens must name `auth.audience` as their audience, so this is usually that.
    #[serde(default)]
    pub console_client_id: Option<String>,
    /// The environment variable holding that client's secret, for a confidential client.
    #[serde(default)]
    pub console_client_secret_env: Option<String>,
}

/// Algorithms an external issuer may use: asymmetric only (no HMAC, no `none`).
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

fn default_algorithms() -> Vec<String> {
    vec!["RS256".to_owned(), "ES256".to_owned()]
}
