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

use super::classify::{compact, key_of, row_key, Classifier, Compact, Key};
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
            None => classifier.missing(key_of(&key), &row),
            Some(s) => classifier.matched(key_of(&key), &row, s.stated()),
        }
    }
    classifier.ledger_rows = ledger_rows;
    let mut leftovers: Vec<(Key, Compact)> = stated.into_iter().collect();
    leftovers.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, s) in leftovers {
        classifier.unexpected(key_of(&key), s.stated());
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
    fn take_group(&mut self) -> Result<FocusRow, MergeError> {
        let mut first = self.take()?;
        while let Some(Ok(next)) = self.rows.peek() {
            if row_key(next) != row_key(&first) {
                break;
            }
            let more = self.take()?;
            first.add(&more);
        }
        // The last key is updated in place: its texts are cloned only when they change
        // (a resource's rows follow each other).
        match &mut self.last {
            Some(last) if key_of(last) >= row_key(&first) => {
                return Err(MergeError::NotSorted(self.name, self.count))
            }
            Some(last) => {
                if !std::sync::Arc::ptr_eq(&last.0, &first.resource_id) {
                    last.0 = first.resource_id.clone();
                }
                if !std::sync::Arc::ptr_eq(&last.1, &first.sku) {
                    last.1 = first.sku.clone();
                }
                last.2 = first.charge_start;
            }
            None => {
                self.last = Some((
                    first.resource_id.clone(),
                    first.sku.clone(),
                    first.charge_start,
                ));
            }
        }
        Ok(first)
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
        (Some(Ok(a)), Some(Ok(b))) => match row_key(a).cmp(&row_key(b)) {
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
            Side::Ledger => classifier.key(Some(&l.take_group()?), None),
            Side::Statement => classifier.key(None, Some(&s.take_group()?)),
            Side::Both => classifier.key(Some(&l.take_group()?), Some(&s.take_group()?)),
        }
    }
    classifier.statement_rows = s.count;
    classifier.ledger_rows = l.count;
    let mut outcome = classifier.finish();
    side.borrow().apply(&mut outcome);
    Ok(outcome)
}

/// The rows of one key from `at` in `order`: the row itself when alone (nothing copied), or
/// a copy with the others summed in; and where the next key starts.
fn group<'a>(
    rows: &'a [FocusRow],
    order: &[usize],
    at: usize,
) -> (std::borrow::Cow<'a, FocusRow>, usize) {
    let first = &rows[order[at]];
    let mut end = at + 1;
    while end < order.len() && row_key(&rows[order[end]]) == row_key(first) {
        end += 1;
    }
    if end == at + 1 {
        return (std::borrow::Cow::Borrowed(first), end);
    }
    let mut sum = first.clone();
    for &i in &order[at + 1..end] {
        sum.add(&rows[i]);
    }
    (std::borrow::Cow::Owned(sum), end)
}

/// The merge join of [`reconcile_sorted`] over rows held in memory, each side read in
/// `order` (positions sorted by key; every statement row names a resource): rows are
/// borrowed, never moved, and no key is copied. Gives the same [`Outcome`] as
/// `reconcile_sorted` on the rows in that order.
pub(super) fn reconcile_in_order(
    ledger: &[FocusRow],
    ledger_order: &[usize],
    statement: &[FocusRow],
    statement_order: &[usize],
    tolerance: Tolerance,
    allowed: &HashMap<String, BTreeSet<String>>,
) -> Outcome {
    let mut classifier = Classifier::new(tolerance, allowed);
    let (mut l, mut s) = (0, 0);
    while l < ledger_order.len() || s < statement_order.len() {
        let side = match (ledger_order.get(l), statement_order.get(s)) {
            (Some(&a), Some(&b)) => row_key(&ledger[a]).cmp(&row_key(&statement[b])),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let ledger_row = side.is_le().then(|| group(ledger, ledger_order, l));
        let statement_row = side.is_ge().then(|| group(statement, statement_order, s));
        classifier.key(
            ledger_row.as_ref().map(|(row, _)| &**row),
            statement_row.as_ref().map(|(row, _)| &**row),
        );
        l = ledger_row.map_or(l, |(_, next)| next);
        s = statement_row.map_or(s, |(_, next)| next);
    }
    classifier.ledger_rows = ledger.len() as u64;
    classifier.statement_rows = statement.len() as u64;
    classifier.finish()
}
