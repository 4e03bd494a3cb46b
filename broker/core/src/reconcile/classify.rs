//! Classification: what counts as a discrepancy, and the totals.
//!
//! Owns [`Tolerance`] and the `Classifier` shared by both joins: it is fed summed rows per
//! key (matched, missing at the member, unexpected at the member) and keeps the
//! discrepancies, the totals overall and per tenant, and the row counts.
//!
//! **Invariant:** the hash join and the merge join report through this one classifier, so
//! the same keys with the same sums give the same [`Outcome`]; `finish` sorts the
//! discrepancies, so the order in which keys were fed does not show in the report.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Discrepancy, FocusRow, Outcome, Text, Total};

/// The clock skew tolerated by default between the broker and a member, in seconds at
/// each end of a span (see [`Tolerance::clock_skew_seconds`]).
pub const DEFAULT_CLOCK_SKEW_SECONDS: u32 = 5;

/// How much difference is tolerated.
///
/// A row's quantity may differ by the largest of `absolute`, `relative` × the expected
/// quantity, and the skew allowance: what the resource consumes in `2 ×
/// clock_skew_seconds` (a start and an end each seen up to that much apart by the two
/// clocks), at the row's own rate (PricingQuantity per ConsumedQuantity hour; 1 when the
/// ledger has no ConsumedQuantity). Its cost may differ by the largest of `absolute`,
/// `relative` × the expected cost, and the skew allowance at the row's unit price plus
/// `absolute` (rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tolerance {
    /// In currency units (costs) or units (quantities).
    pub absolute: Decimal,
    /// As a fraction of the expected value.
    pub relative: Decimal,
    /// Seconds either clock may be off at each end of a span.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u32,
}

fn default_skew() -> u32 {
    DEFAULT_CLOCK_SKEW_SECONDS
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            absolute: Decimal::new(1, 6),
            relative: Decimal::ZERO,
            clock_skew_seconds: DEFAULT_CLOCK_SKEW_SECONDS,
        }
    }
}

impl Tolerance {
    /// Whether `stated` is within the tolerance of `expected`, or within `allowance`
    /// (computed only when needed: most rows match exactly).
    fn within(
        &self,
        expected: Decimal,
        stated: Decimal,
        allowance: impl FnOnce() -> Decimal,
    ) -> bool {
        let difference = (stated - expected).abs();
        difference <= self.absolute
            || (!self.relative.is_zero() && difference <= self.relative * expected.abs())
            || difference <= allowance()
    }

    /// The quantity the skew allowance covers for `row` (a ledger row).
    fn skew_quantity(&self, row: &FocusRow) -> Decimal {
        let rate = match row.consumed {
            Some(hours) if hours > Decimal::ZERO => row.quantity / hours,
            _ => Decimal::ONE,
        };
        Decimal::from(2 * u64::from(self.clock_skew_seconds)) / Decimal::from(3600) * rate
    }

    /// Whether `stated` is close enough to `row`'s quantity.
    fn allows_quantity(&self, row: &FocusRow, stated: Decimal) -> bool {
        self.within(row.quantity, stated, || self.skew_quantity(row))
    }

    /// Whether `stated` is close enough to `row`'s cost.
    fn allows_cost(&self, row: &FocusRow, stated: Decimal) -> bool {
        self.within(row.cost, stated, || {
            if row.quantity > Decimal::ZERO {
                self.skew_quantity(row) * row.cost / row.quantity + self.absolute
            } else {
                Decimal::ZERO
            }
        })
    }
}

/// The join key: resource, SKU, charge period start (ms).
pub(super) type Key = (Text, Text, i64);

/// A key borrowed from a row or a [`Key`]: what classification reads.
pub(super) type KeyRef<'a> = (&'a str, &'a str, i64);

/// `key` borrowed.
pub(super) fn key_of(key: &Key) -> KeyRef<'_> {
    (&key.0, &key.1, key.2)
}

/// A row's key borrowed.
pub(super) fn row_key(row: &FocusRow) -> KeyRef<'_> {
    (&row.resource_id, &row.sku, row.charge_start)
}

/// What classification reads of a statement row, borrowed from a [`Compact`] or a row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stated<'a> {
    pub(super) region: &'a str,
    pub(super) currency: &'a str,
    pub(super) cost: Decimal,
    pub(super) quantity: Decimal,
    pub(super) tenant: &'a Text,
}

/// A statement row's part that classification reads.
fn stated(row: &FocusRow) -> Stated<'_> {
    Stated {
        region: &row.region,
        currency: &row.currency,
        cost: row.cost,
        quantity: row.quantity,
        tenant: &row.tenant,
    }
}

/// A statement row without its key: what classification compares with the ledger.
#[derive(Debug, Clone)]
pub(super) struct Compact {
    pub(super) region: Text,
    pub(super) currency: Text,
    pub(super) cost: Decimal,
    pub(super) quantity: Decimal,
    pub(super) tenant: Text,
}

impl Compact {
    pub(super) fn stated(&self) -> Stated<'_> {
        Stated {
            region: &self.region,
            currency: &self.currency,
            cost: self.cost,
            quantity: self.quantity,
            tenant: &self.tenant,
        }
    }
}

/// Classifies matched, missing and unexpected rows and keeps the totals; shared by the
/// hash join and the merge join so that both give the same report.
pub(super) struct Classifier<'a> {
    tolerance: Tolerance,
    allowed: &'a HashMap<String, BTreeSet<String>>,
    discrepancies: Vec<Discrepancy>,
    totals: Total,
    by_tenant: BTreeMap<Text, Total>,
    currency: Option<Text>,
    pub(super) ledger_rows: u64,
    pub(super) statement_rows: u64,
}

impl<'a> Classifier<'a> {
    pub(super) fn new(
        tolerance: Tolerance,
        allowed: &'a HashMap<String, BTreeSet<String>>,
    ) -> Self {
        Self {
            tolerance,
            allowed,
            discrepancies: Vec::new(),
            totals: Total::default(),
            by_tenant: BTreeMap::new(),
            currency: None,
            ledger_rows: 0,
            statement_rows: 0,
        }
    }

    fn push(
        &mut self,
        class: &str,
        key: KeyRef<'_>,
        e: Option<&FocusRow>,
        s: Option<Stated<'_>>,
        detail: String,
    ) {
        self.discrepancies.push(Discrepancy {
            class: class.to_owned(),
            resource_id: key.0.to_string(),
            sku: key.1.to_string(),
            charge_period_start: crate::billing::iso(key.2),
            expected_cost: e.map(|e| e.cost),
            stated_cost: s.map(|s| s.cost),
            expected_quantity: e.map(|e| e.quantity),
            stated_quantity: s.map(|s| s.quantity),
            detail,
        });
    }

    /// Applies `change` to `tenant`'s totals; its text is cloned only the first time
    /// (every row asks).
    fn tenant(&mut self, tenant: &Text, change: impl FnOnce(&mut Total)) {
        match self.by_tenant.get_mut(tenant) {
            Some(total) => change(total),
            None => {
                let mut total = Total::default();
                change(&mut total);
                self.by_tenant.insert(tenant.clone(), total);
            }
        }
    }

    pub(super) fn ledger_row(&mut self, row: &FocusRow) {
        self.ledger_rows += 1;
        self.currency.get_or_insert_with(|| row.currency.clone());
        self.totals.expected += row.cost;
        self.tenant(&row.tenant, |t| t.expected += row.cost);
    }

    /// One key of the merge joins, summed on each side where it is present: in the ledger
    /// only (missing at the member), in the statement only (unexpected), or in both.
    pub(super) fn key(&mut self, ledger: Option<&FocusRow>, statement: Option<&FocusRow>) {
        match (ledger, statement) {
            (Some(row), None) => {
                self.ledger_row(row);
                self.missing(row_key(row), row);
            }
            (None, Some(row)) => self.unexpected(row_key(row), stated(row)),
            (Some(row), Some(statement_row)) => {
                self.ledger_row(row);
                self.matched(row_key(row), row, stated(statement_row));
            }
            (None, None) => {}
        }
    }

    pub(super) fn matched(&mut self, key: KeyRef<'_>, row: &FocusRow, s: Stated<'_>) {
        self.totals.stated += s.cost;
        self.tenant(&row.tenant, |t| t.stated += s.cost);
        if s.currency != &*row.currency {
            self.push(
                "currency_mismatch",
                key,
                Some(row),
                Some(s),
                format!("billed in {}, metered in {}", s.currency, row.currency),
            );
            return;
        }
        if !s.region.is_empty() && s.region != &*row.region {
            self.push(
                "out_of_jurisdiction",
                key,
                Some(row),
                Some(s),
                format!("billed in {}, placed in {}", s.region, row.region),
            );
        }
        if !self.tolerance.allows_quantity(row, s.quantity) {
            self.push(
                "quantity_mismatch",
                key,
                Some(row),
                Some(s),
                format!("quantity {} stated, {} metered", s.quantity, row.quantity),
            );
        }
        if !self.tolerance.allows_cost(row, s.cost) {
            self.push(
                "amount_mismatch",
                key,
                Some(row),
                Some(s),
                format!("cost {} stated, {} expected", s.cost, row.cost),
            );
        }
    }

    pub(super) fn missing(&mut self, key: KeyRef<'_>, row: &FocusRow) {
        self.push(
            "missing_at_member",
            key,
            Some(row),
            None,
            "in the broker's ledger, not in the member's statement".into(),
        );
    }

    pub(super) fn unexpected(&mut self, key: KeyRef<'_>, s: Stated<'_>) {
        self.totals.stated += s.cost;
        self.tenant(s.tenant, |t| t.stated += s.cost);
        self.push(
            "unexpected_at_member",
            key,
            None,
            Some(s),
            "in the member's statement, unknown to the broker's ledger".into(),
        );
        if self
            .allowed
            .get(&**s.tenant)
            .is_some_and(|set| !set.contains(s.region))
        {
            self.push(
                "out_of_jurisdiction",
                key,
                None,
                Some(s),
                format!(
                    "billed in {}, outside the tenant's allowed jurisdictions",
                    s.region
                ),
            );
        }
    }

    pub(super) fn finish(mut self) -> Outcome {
        self.totals.difference = self.totals.stated - self.totals.expected;
        for total in self.by_tenant.values_mut() {
            total.difference = total.stated - total.expected;
        }
        self.discrepancies.sort();
        Outcome {
            status: if self.discrepancies.is_empty() {
                "clean".into()
            } else {
                "discrepancies".into()
            },
            currency: self.currency.map(|c| c.to_string()),
            ledger_rows: self.ledger_rows,
            statement_rows: self.statement_rows,
            totals: self.totals,
            totals_by_tenant: self
                .by_tenant
                .into_iter()
                .map(|(tenant, total)| (tenant.to_string(), total))
                .collect(),
            discrepancies: self.discrepancies,
            unattributed: BTreeMap::new(),
        }
    }
}

/// Drops the key from a statement row.
pub(super) fn compact(row: FocusRow) -> Compact {
    Compact {
        region: row.region,
        currency: row.currency,
        cost: row.cost,
        quantity: row.quantity,
        tenant: row.tenant,
    }
}
