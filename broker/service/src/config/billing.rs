//! `[billing]`: the reference exchange rates invoices convert with.
//!
//! Owns [`BillingConfig`] and loading its rates file: `reference_rates` names an ECB
//! `eurofxref` CSV, relative to the config file's directory. The bundled demo config names
//! `reference-rates.csv`, the small file the binary carries (`config/reference-rates.csv`).
//!
//! **Invariant:** a loaded config holds its rates parsed (or none configured); a file that
//! is missing or malformed is a config problem naming `billing.reference_rates` and the
//! file's line, never rates of zero.

use std::path::Path;
use std::sync::Arc;

use alliance_core::rates::ReferenceRates;
use serde::Deserialize;

use super::ConfigProblem;

/// The demo's rates file, carried by the binary.
pub const DEMO_RATES: &str = include_str!("../../../../config/reference-rates.csv");
/// The name the bundled demo config gives it.
pub const DEMO_RATES_NAME: &str = "reference-rates.csv";

/// `[billing]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// The ECB `eurofxref` CSV invoices convert with, relative to the config file.
    #[serde(default)]
    pub reference_rates: Option<String>,
    /// The rates, once loaded.
    #[serde(skip)]
    pub rates: Option<Arc<ReferenceRates>>,
}

impl BillingConfig {
    /// Loads the rates file: relative to `base` (the config file's directory), or, for the
    /// bundled config (`base` is `None`), the bundled file under its bundled name.
    pub(super) fn load_rates(&mut self, base: Option<&Path>) -> Result<(), ConfigProblem> {
        let Some(name) = &self.reference_rates else {
            return Ok(());
        };
        let problem = |line: Option<usize>, message: String| ConfigProblem {
            key: "billing.reference_rates".into(),
            line,
            message,
        };
        let (text, source) = match base {
            None if name == DEMO_RATES_NAME => (DEMO_RATES.to_owned(), name.clone()),
            _ => {
                let path = match base {
                    Some(base) if Path::new(name).is_relative() => base.join(name),
                    _ => Path::new(name).to_path_buf(),
                };
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| problem(None, format!("cannot read {}: {e}", path.display())))?;
                (text, path.display().to_string())
            }
        };
        let rates =
            ReferenceRates::parse(&text, &source).map_err(|e| problem(None, e.to_string()))?;
        self.rates = Some(Arc::new(rates));
        Ok(())
    }
}
