//! The two reconciliation joins: a hash join in memory and a merge join over sorted files.
//!
//! Owns how ledger and statement rows are paired by key (resource, SKU, charge period
//! start). [`reconcile`] holds both files in memory and resolves the member's own resource
//! ids through `aliases`; [`reconcile_sorted`] makes one pass over two sorted files with
//! memory bounded by the discrepancies.
//!
//! **Invariant:** both joins sum the rows of one key on each side before classifying it and
//! report through the same classifier, so whenever the merge join accepts two files it gives
//! the same [`Outcome`] as the hash join; a file out of order is refused
//! ([`MergeError::NotSorted`]), never misread.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use super::classify::{compact, Classifier, Compact, Key};
use super::unattributed::{divert, Unattributed};
use super::{FocusError, FocusRow, Outcome, Text, Tolerance};

/// Reconciles; `aliases` maps member ids to broker ids; `allowed` maps tenants to the
/// jurisdictions they allow (when known). Both files are held in memory (a hash join, for
/// unsorted files and member ids); see [`reconcile_sorted`] for bounded memory.
pub fn reconcile(
    ledger: impl Iterator<Item = Result<FocusRow, FocusError>>,
    statement: impl Iterator<Item = Result<FocusRow, FocusError>>,
    tolerance: Tolerance,
    aliases: &HashMap<String, String>,
    allowed: &HashMap<String, BTreeSet<String>>,
) -> Result<Outcome, (&'static str, FocusError)> {
    let mut classifier = Classifier::new(tolerance, allowed);
    let mut stated: HashMap<Key, Compact> = HashMap::new();
    let side = RefCell::new(Unattributed::default());
    for row in divert(statement, &side) {
        let row = row.map_err(|e| ("statement", e))?;
        classifier.statement_rows += 1;
        let id = aliases
            .get(&*row.resource_id)
            .map(|alias| Text::from(alias.as_str()))
            .unwrap_or_else(|| row.resource_id.clone());
        let key = (id, row.sku.clone(), row.charge_start);
        match stated.get_mut(&key) {
            Some(entry) => {
                entry.cost += row.cost;
                entry.quantity += row.quantity;
            }
            None => {
                stated.insert(key, compact(row));
            }
        }
    }
    // Ledger rows of one key are summed too, as the merge join sums them, so that both
    // joins give the same report for any pair of files.
    let mut expected: HashMap<Key, FocusRow> = HashMap::new();
    let mut ledger_rows = 0;
    for row in ledger {
        let row = row.map_err(|e| ("ledger", e))?;
        ledger_rows += 1;
        let key: Key = (row.resource_id.clone(), row.sku.clone(), row.charge_start);
        match expected.get_mut(&key) {
            Some(entry) => entry.add(&row),
            None => {
                expected.insert(key, row);
            }
        }
    }
    let mut expected: Vec<(Key, FocusRow)> = expected.into_iter().collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, row) in expected {
        classifier.ledger_row(&row);
        match stated.remove(&key) {
            None => classifier.missing(&key, &row),
            Some(s) => classifier.matched(&key, &row, &s),
        }
    }
    classifier.ledger_rows = ledger_rows;
    let mut leftovers: Vec<(Key, Compact)> = stated.into_iter().collect();
    leftovers.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, s) in leftovers {
        classifier.unexpected(&key, &s);
    }
    let mut outcome = classifier.finish();
    side.borrow().apply(&mut outcome);
    Ok(outcome)
}

/// Why a merge join could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// A file is not sorted by (ResourceId, SkuId, ChargePeriodStart): use [`reconcile`].
    NotSorted(&'static str, u64),
    /// A file is bad.
    Bad(&'static str, FocusError),
}

struct Sorted<I: Iterator<Item = Result<FocusRow, FocusError>>> {
    rows: std::iter::Peekable<I>,
    name: &'static str,
    last: Option<Key>,
    count: u64,
}

fn key_ref(row: &FocusRow) -> (&str, &str, i64) {
    (&row.resource_id, &row.sku, row.charge_start)
}

impl<I: Iterator<Item = Result<FocusRow, FocusError>>> Sorted<I> {
    fn take(&mut self) -> Result<FocusRow, MergeError> {
        match self.rows.next() {
            Some(Ok(row)) => {
                self.count += 1;
                Ok(row)
            }
            Some(Err(e)) => Err(MergeError::Bad(self.name, e)),
            None => Err(MergeError::NotSorted(self.name, self.count)),
        }
    }

    /// Takes every row of the next key, summed, checking the order.
    fn take_group(&mut self) -> Result<(Key, FocusRow), MergeError> {
        let mut first = self.take()?;
        while let Some(Ok(next)) = self.rows.peek() {
            if key_ref(next) != key_ref(&first) {
                break;
            }
            let more = self.take()?;
            first.add(&more);
        }
        let key = (
            first.resource_id.clone(),
            first.sku.clone(),
            first.charge_start,
        );
        if self.last.as_ref().is_some_and(|last| *last >= key) {
            return Err(MergeError::NotSorted(self.name, self.count));
        }
        self.last = Some(key.clone());
        Ok((key, first))
    }
}

enum Side {
    Ledger,
    Statement,
    Both,
    Done,
}

fn next_side<L, S>(l: &mut Sorted<L>, s: &mut Sorted<S>) -> Result<Side, MergeError>
where
    L: Iterator<Item = Result<FocusRow, FocusError>>,
    S: Iterator<Item = Result<FocusRow, FocusError>>,
{
    Ok(match (l.rows.peek(), s.rows.peek()) {
        (Some(Err(e)), _) => return Err(MergeError::Bad("ledger", e.clone())),
        (_, Some(Err(e))) => return Err(MergeError::Bad("statement", e.clone())),
        (None, None) => Side::Done,
        (Some(Ok(_)), None) => Side::Ledger,
        (None, Some(Ok(_))) => Side::Statement,
        (Some(Ok(a)), Some(Ok(b))) => match key_ref(a).cmp(&key_ref(b)) {
            std::cmp::Ordering::Less => Side::Ledger,
            std::cmp::Ordering::Greater => Side::Statement,
            std::cmp::Ordering::Equal => Side::Both,
        },
    })
}

/// Reconciles two files sorted by (ResourceId, SkuId, ChargePeriodStart) — as the broker's
/// export and the members' statements are written — in one pass with memory bounded by
/// the discrepancies, not by the files. Members naming resources by their own ids, or an
/// unsorted file, need [`reconcile`] (`NotSorted` says so).
pub fn reconcile_sorted(
    ledger: impl Iterator<Item = Result<FocusRow, FocusError>>,
    statement: impl Iterator<Item = Result<FocusRow, FocusError>>,
    tolerance: Tolerance,
    allowed: &HashMap<String, BTreeSet<String>>,
) -> Result<Outcome, MergeError> {
    let mut classifier = Classifier::new(tolerance, allowed);
    let side = RefCell::new(Unattributed::default());
    let mut l = Sorted {
        rows: ledger.peekable(),
        name: "ledger",
        last: None,
        count: 0,
    };
    let mut s = Sorted {
        rows: divert(statement, &side).peekable(),
        name: "statement",
        last: None,
        count: 0,
    };
    loop {
        match next_side(&mut l, &mut s)? {
            Side::Done => break,
            Side::Ledger => {
                let (key, row) = l.take_group()?;
                classifier.ledger_row(&row);
                classifier.missing(&key, &row);
            }
            Side::Statement => {
                let (key, row) = s.take_group()?;
                classifier.unexpected(&key, &compact(row));
            }
            Side::Both => {
                let (key, row) = l.take_group()?;
                classifier.ledger_row(&row);
                let (_, stated) = s.take_group()?;
                classifier.matched(&key, &row, &compact(stated));
            }
        }
    }
    classifier.statement_rows = s.count;
    classifier.ledger_rows = l.count;
    let mut outcome = classifier.finish();
    side.borrow().apply(&mut outcome);
    Ok(outcome)
}
