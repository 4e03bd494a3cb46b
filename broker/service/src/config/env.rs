//! Environment overrides: `ALLIANCE_*` variables applied over a parsed `Config`.
//!
//! Owns which variables override which keys, and how a bad value is reported.
//!
//! **Invariant:** the environment is passed in as a map, so tests never touch the process
//! environment; the overridden config is validated again, and a bad override and any rule
//! the result breaks are reported together in one `ConfigError`.

use std::collections::BTreeMap;

use super::{Config, ConfigError, ConfigProblem};

impl Config {
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
}
