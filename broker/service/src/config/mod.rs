//! Configuration: TOML in, a typed and validated `Config` out.
//!
//! Parsing is strict (`deny_unknown_fields`, identifiers parsed into their types), so a
//! misspelt key or a bad value fails with the key and its line. Cross-field rules (a
//! tenant's home must be allowed, ids unique, data classes defined) are checked afterwards
//! and every problem is reported at once. Environment overrides are passed in as a map so
//! that tests never touch the process environment.
//!
//! The module is split by concept, and every public item is re-exported here:
//!
//! - `runtime`: `[server]`, `[database]`, `[security]`, `[operations]` and their defaults;
//! - `auth`: `[auth]`, the development issuer and external issuers;
//! - `tenants`: `[[tenants]]` seeds and the default data classes;
//! - `members`: `[[members]]` and their adapters;
//! - `billing`: `[billing]`, the reference exchange rates and their file;
//! - `error`: problems with key and line, and the error that reports them together;
//! - `validate`: the cross-field rules;
//! - `env`: `ALLIANCE_*` overrides.
//!
//! **Invariant:** a `Config` returned by [`Config::parse`] or [`Config::load`] has passed
//! every check, and [`Config::apply_env`] returns `Ok` only if the overridden one does too;
//! otherwise the caller gets a [`ConfigError`] listing every problem.

use std::path::Path;

use alliance_core::DataClasses;
use serde::Deserialize;

mod auth;
mod billing;
mod env;
mod error;
mod members;
mod runtime;
mod tenants;
mod validate;

pub use auth::{AuthConfig, DevIssuerConfig, IssuerConfig, ASYMMETRIC_ALGORITHMS};
pub use billing::{BillingConfig, DEMO_RATES, DEMO_RATES_NAME};
pub use error::{redact_url, ConfigError, ConfigProblem};
pub use members::{AdapterConfig, MemberConfig};
pub use runtime::{DatabaseConfig, OperationsConfig, SecurityConfig, ServerConfig};
pub use tenants::TenantSeed;

use error::{key_of_toml_error, line_of};
use tenants::default_data_classes;

/// The bundled demo federation, used when no config file is given.
pub const DEMO_CONFIG: &str = include_str!("../../../../config/alliance.toml");

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
    /// Invoicing.
    #[serde(default)]
    pub billing: BillingConfig,
}

impl Config {
    /// Parses and validates TOML text; `origin` names it in errors. A relative
    /// `[billing] reference_rates` is the bundled demo's file when named as the demo names
    /// it, else relative to the working directory (see [`Self::load`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::parse_at(text, origin, None)
    }

    /// As [`Self::parse`], files named in it relative to `base` (the config file's
    /// directory) when given.
    fn parse_at(text: &str, origin: &str, base: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|err| ConfigError {
            origin: origin.to_owned(),
            problems: vec![ConfigProblem {
                key: key_of_toml_error(text, &err),
                line: err.span().map(|s| line_of(text, s.start)),
                message: err.message().trim().to_owned(),
            }],
        })?;
        let mut problems = config.problems(Some(text));
        if let Err(problem) = config.billing.load_rates(base) {
            problems.push(problem);
        }
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
                let base = path
                    .parent()
                    .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
                Self::parse_at(&text, &origin, Some(&base))
            }
        }
    }
}

#[cfg(test)]
mod tests;
