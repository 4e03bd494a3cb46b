//! Cross-field validation of a parsed `Config`.
//!
//! Owns the rules that typed parsing cannot express: the database URL scheme, a non-empty
//! audience, member network syntax, issuer algorithms and keys, unique tenant and member
//! ids, a tenant's home among its allowed jurisdictions, defined data classes, price
//! catalogues and adapter settings.
//!
//! **Invariant:** every problem is collected (none stops the others), in a fixed order
//! (database, auth, security, tenants, members), with its key and, given the text, its line.

use std::collections::BTreeSet;

use super::error::line_of;
use super::{redact_url, AdapterConfig, Config, ConfigProblem, ASYMMETRIC_ALGORITHMS};

impl Config {
    /// Cross-field checks; `text` gives line numbers.
    pub(super) fn problems(&self, text: Option<&str>) -> Vec<ConfigProblem> {
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
        let server = &self.server;
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                server.header_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", server.idle_timeout_ms),
            (
                "server.max_open_connections",
                server.max_open_connections as u64,
            ),
            (
                "security.audit_checkpoint_interval_ms",
                self.security.audit_checkpoint_interval_ms,
            ),
        ] {
            if value == 0 {
                out.push(ConfigProblem {
                    key: key.into(),
                    line: None,
                    message: "must be at least 1".into(),
                });
            }
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
