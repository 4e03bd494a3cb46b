//! The reconciliation report: discrepancies, totals, and their CSV rendering.
//!
//! Owns the [`Outcome`] of reconciling one statement with one ledger, as plain
//! serialisable values, and [`discrepancies_csv`].
//!
//! **Invariant:** the report is data only (no reference to the files it came from);
//! `discrepancies_csv` writes one header line and one line per discrepancy, in the
//! outcome's order.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// One discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Discrepancy {
    /// The class (see the [`reconcile`](super) module documentation).
    pub class: String,
    /// The broker's resource id.
    pub resource_id: String,
    /// SKU.
    pub sku: String,
    /// Charge period start (RFC 3339).
    pub charge_period_start: String,
    /// The ledger's cost.
    pub expected_cost: Option<Decimal>,
    /// The statement's cost.
    pub stated_cost: Option<Decimal>,
    /// The ledger's quantity.
    pub expected_quantity: Option<Decimal>,
    /// The statement's quantity.
    pub stated_quantity: Option<Decimal>,
    /// A human explanation.
    pub detail: String,
}

/// Expected and stated totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// Ledger.
    pub expected: Decimal,
    /// Statement.
    pub stated: Decimal,
    /// Stated minus expected.
    pub difference: Decimal,
}

/// The reconciliation of one statement with one ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `clean` or `discrepancies`.
    pub status: String,
    /// The ledger's currency.
    pub currency: Option<String>,
    /// Rows read.
    pub ledger_rows: u64,
    /// Rows read.
    pub statement_rows: u64,
    /// Totals, overall and per tenant.
    pub totals: Total,
    /// Per tenant.
    pub totals_by_tenant: BTreeMap<String, Total>,
    /// Sorted by class and key.
    pub discrepancies: Vec<Discrepancy>,
    /// Statement rows that name no resource (taxes, credits, adjustments, purchases…),
    /// by ChargeCategory; their cost is in the stated totals.
    #[serde(default)]
    pub unattributed: BTreeMap<String, super::CategoryTotal>,
}

/// The columns of a discrepancy in CSV, in order (also the fields of its JSON).
pub const DISCREPANCY_COLUMNS: [&str; 9] = [
    "class",
    "resource_id",
    "sku",
    "charge_period_start",
    "expected_cost",
    "stated_cost",
    "expected_quantity",
    "stated_quantity",
    "detail",
];

/// The discrepancies as CSV.
pub fn discrepancies_csv<W: std::io::Write>(out: W, outcome: &Outcome) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(DISCREPANCY_COLUMNS)?;
    let opt = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
    for d in &outcome.discrepancies {
        writer.write_record([
            d.class.clone(),
            d.resource_id.clone(),
            d.sku.clone(),
            d.charge_period_start.clone(),
            opt(d.expected_cost),
            opt(d.stated_cost),
            opt(d.expected_quantity),
            opt(d.stated_quantity),
            d.detail.clone(),
        ])?;
    }
    writer.flush()?;
    Ok(())
}
