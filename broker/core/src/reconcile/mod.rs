//! Reading FOCUS files and reconciling a member's statement with the broker's ledger.
//!
//! Rows match on (resource, SKU, charge period start); a statement may name a resource by
//! the broker's id or by the member's own id (the `aliases` map). Classes of discrepancy:
//! `missing_at_member` (in the ledger only), `unexpected_at_member` (in the statement
//! only), `amount_mismatch` and `quantity_mismatch` (beyond the tolerance: a difference is
//! tolerated when `|stated - expected| <= max(absolute, relative * |expected|)`),
//! `out_of_jurisdiction` (billed in another region than the ledger, or outside the
//! tenant's allowed jurisdictions), `currency_mismatch`, `unattributed_usage` (usage billed
//! without a ResourceId). The report is deterministic: the
//! same inputs give the same report, discrepancies sorted by key.
//!
//! The module is split by concept, and its public API is re-exported here:
//!
//! - `reader`: [`FocusReader`] streams and checks the rows of a FOCUS CSV ([`FocusRow`],
//!   [`FocusError`], [`REQUIRED`], [`is_currency`]);
//! - `classify`: [`Tolerance`] and the classifier both joins report through;
//! - `join`: the hash join [`reconcile`] and the merge join [`reconcile_sorted`]
//!   ([`MergeError`]);
//! - `partition`: [`reconcile_partitioned`], the hash join for files in any order and of
//!   any size: spilled by key to partition files, reconciled partition by partition on
//!   every core;
//! - `split`: [`split`] cuts a large file into chunks read on several threads, each
//!   proved to start at a record;
//! - `report`: the [`Outcome`] ([`Discrepancy`], [`Total`]) and [`discrepancies_csv`];
//! - `unattributed`: statement rows that name no resource (taxes, credits…), totalled by
//!   ChargeCategory ([`CategoryTotal`]).
//!
//! **Invariant:** the two joins give the same report for any pair of files the merge join
//! accepts; the property is tested in `reconcile/tests.rs` and fuzzed by
//! `fuzz/fuzz_targets/focus_csv.rs`.

mod classify;
mod join;
mod partition;
mod reader;
mod report;
mod split;
mod unattributed;

pub use classify::{Tolerance, DEFAULT_CLOCK_SKEW_SECONDS};
pub use join::{reconcile, reconcile_sorted, MergeError};
pub use partition::{reconcile_partitioned, PartitionError};
pub use reader::{is_currency, FocusError, FocusReader, FocusRow, Text, REQUIRED};
pub use report::{discrepancies_csv, Discrepancy, Outcome, Total, DISCREPANCY_COLUMNS};
pub use split::{split, Split};
pub use unattributed::CategoryTotal;

#[cfg(test)]
mod tests;
