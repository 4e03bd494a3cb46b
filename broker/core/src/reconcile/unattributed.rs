//! Statement rows that name no resource: FOCUS allows them for taxes, credits,
//! adjustments and purchases (and a member may bill usage that way). They cannot be matched
//! with the ledger, so they are read, counted and totalled by ChargeCategory in their own
//! section of the report, and included in the member's stated total.
//!
//! **Invariant:** every statement row is either joined by key or counted here, never both
//! and never dropped; a `Usage` row without a resource is also a discrepancy
//! (`unattributed_usage`), since usage the broker cannot tie to a resource is usage it
//! cannot check.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Discrepancy, FocusError, FocusRow, Outcome};

/// The rows of one ChargeCategory that name no resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryTotal {
    /// How many.
    pub rows: u64,
    /// Their BilledCost, summed.
    pub cost: Decimal,
}

/// What was diverted from one statement.
#[derive(Debug, Default)]
pub(super) struct Unattributed {
    by_category: BTreeMap<String, CategoryTotal>,
    by_tenant: BTreeMap<String, Decimal>,
    usage: Vec<Discrepancy>,
}

impl Unattributed {
    fn add(&mut self, row: &FocusRow) {
        let total = self
            .by_category
            .entry(row.category.to_string())
            .or_default();
        total.rows += 1;
        total.cost += row.cost;
        if !row.tenant.is_empty() {
            *self.by_tenant.entry(row.tenant.to_string()).or_default() += row.cost;
        }
        if &*row.category == "Usage" {
            self.usage.push(Discrepancy {
                class: "unattributed_usage".into(),
                resource_id: String::new(),
                sku: row.sku.to_string(),
                charge_period_start: crate::billing::iso(row.charge_start),
                expected_cost: None,
                stated_cost: Some(row.cost),
                expected_quantity: None,
                stated_quantity: Some(row.quantity),
                detail: "usage billed without a ResourceId: it cannot be checked".into(),
            });
        }
    }

    /// Adds what was diverted from another part of the same statement.
    pub(super) fn merge(&mut self, other: Self) {
        for (category, total) in other.by_category {
            let mine = self.by_category.entry(category).or_default();
            mine.rows += total.rows;
            mine.cost += total.cost;
        }
        for (tenant, cost) in other.by_tenant {
            *self.by_tenant.entry(tenant).or_default() += cost;
        }
        self.usage.extend(other.usage);
    }

    /// Adds the diverted rows to `outcome`: their own section, the stated totals, the row
    /// count, and the usage among them as discrepancies.
    pub(super) fn apply(&self, outcome: &mut Outcome) {
        for (category, total) in &self.by_category {
            outcome.statement_rows += total.rows;
            outcome.totals.stated += total.cost;
            outcome.unattributed.insert(category.clone(), total.clone());
        }
        outcome.totals.difference = outcome.totals.stated - outcome.totals.expected;
        for (tenant, cost) in &self.by_tenant {
            let total = outcome.totals_by_tenant.entry(tenant.clone()).or_default();
            total.stated += *cost;
            total.difference = total.stated - total.expected;
        }
        if !self.usage.is_empty() {
            outcome.discrepancies.extend(self.usage.iter().cloned());
            outcome.discrepancies.sort();
            outcome.status = "discrepancies".into();
        }
    }
}

/// The statement's rows that name a resource; the others go to `side`.
pub(super) fn divert<'a>(
    rows: impl Iterator<Item = Result<FocusRow, FocusError>> + 'a,
    side: &'a RefCell<Unattributed>,
) -> impl Iterator<Item = Result<FocusRow, FocusError>> + 'a {
    rows.filter(move |row| match row {
        Ok(row) if row.resource_id.is_empty() => {
            side.borrow_mut().add(row);
            false
        }
        _ => true,
    })
}
