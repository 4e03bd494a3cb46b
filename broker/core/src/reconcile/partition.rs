//! The partitioned hash join: files in any order, at any size, in bounded memory on every
//! core.
//!
//! Owns reconciling two unsorted files too large to hold: each file (or each chunk of it)
//! is read on its own thread and its rows put, by the hash of their resource, into one of
//! `partitions`: held in memory while the source's rows fit its share of `memory_budget`;
//! past it, the largest partition held goes to its spill file (a compact binary form, in a
//! directory the caller owns), and so do its later rows (a hybrid hash join). Then the
//! partitions are reconciled one by one, on as many threads as the machine has cores, each
//! put in key order (its positions sorted) and merged in place
//! ([`super::join::reconcile_in_order`]), and their outcomes summed; a spill file is
//! removed once read.
//!
//! **Invariant:** a key's rows all land in one partition on each side, so every partition
//! is reconciled exactly as the whole would be; the summed outcome equals the hash join's
//! ([`super::reconcile`]) on the same files (tested), with memory bounded by the budget and
//! the largest partition.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasher;
use std::io::{BufWriter, Write};
use std::path::Path;

use rust_decimal::Decimal;

use super::unattributed::{divert, Unattributed};
use super::{FocusError, FocusRow, Outcome, Text, Tolerance};

/// Why a partitioned join failed: a bad file (which, and where), or the spill directory.
#[derive(Debug)]
pub enum PartitionError {
    /// A file is bad.
    Bad(&'static str, FocusError),
    /// The spill files could not be written or read.
    Io(std::io::Error),
}

impl From<std::io::Error> for PartitionError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reconciles `ledger` and `statement`, in any order, in `partitions` per side: a side is
/// kept in memory while its rows take at most `memory_budget` bytes (an estimate), else
/// spilled to files under `dir` (which must exist; the files are left for the caller to
/// remove). A budget of 0 always spills. Each side may come in several sources (the
/// chunks of a split file, [`super::split`]), each read on its own thread with its share
/// of the budget.
pub fn reconcile_partitioned<L, S>(
    ledger: Vec<L>,
    statement: Vec<S>,
    tolerance: Tolerance,
    allowed: &HashMap<String, BTreeSet<String>>,
    dir: &Path,
    partitions: usize,
    memory_budget: usize,
) -> Result<Outcome, PartitionError>
where
    L: Iterator<Item = Result<FocusRow, FocusError>> + Send,
    S: Iterator<Item = Result<FocusRow, FocusError>> + Send,
{
    let partitions = partitions.max(1);
    // One hasher for both sides, so that a key goes to the same partition on each.
    let hasher = std::collections::hash_map::RandomState::new();
    let (ledger_sources, statement_sources) = (ledger.len().max(1), statement.len().max(1));
    let (ledger_written, statement_written) = std::thread::scope(|scope| {
        let hasher = &hasher;
        let to = |prefix: String, sources: usize| Target {
            dir,
            prefix,
            partitions,
            hasher,
            budget: memory_budget / sources,
        };
        let l: Vec<_> = (ledger.into_iter().enumerate())
            .map(|(i, rows)| {
                let to = to(format!("l{i}"), ledger_sources);
                scope.spawn(move || spill(rows, &to, false))
            })
            .collect();
        let s: Vec<_> = (statement.into_iter().enumerate())
            .map(|(i, rows)| {
                let to = to(format!("s{i}"), statement_sources);
                scope.spawn(move || spill(rows, &to, true))
            })
            .collect();
        (
            l.into_iter().map(join).collect::<Vec<_>>(),
            s.into_iter().map(join).collect::<Vec<_>>(),
        )
    });
    let mut ledger_held = Vec::new();
    for written in ledger_written {
        ledger_held.push(written.map_err(|e| e.named("ledger"))?.1);
    }
    let (mut side, mut statement_held) = (Unattributed::default(), Vec::new());
    for written in statement_written {
        let (diverted, held) = written.map_err(|e| e.named("statement"))?;
        side.merge(diverted);
        statement_held.push(held);
    }
    // The partitions, on every core: each worker takes the next one not yet taken.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let outcomes: Vec<Result<Vec<Outcome>, PartitionError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.min(partitions))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    // One read buffer per worker, reused for every spill file.
                    let mut buffer = Vec::new();
                    loop {
                        let p = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if p >= partitions {
                            return Ok(done);
                        }
                        // Sorted in memory, then merged: cheaper than hashing every key.
                        let l = take_all(&ledger_held, p, dir, &mut buffer)?;
                        let s = take_all(&statement_held, p, dir, &mut buffer)?;
                        let (l_order, s_order) = (in_order(&l), in_order(&s));
                        let outcome = super::join::reconcile_in_order(
                            &l, &l_order, &s, &s_order, tolerance, allowed,
                        );
                        done.push(outcome);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a worker panicked").into()))
            })
            .collect()
    });
    let mut total: Option<Outcome> = None;
    for outcome in outcomes {
        for o in outcome? {
            total = Some(match total {
                None => o,
                Some(t) => sum(t, o),
            });
        }
    }
    let mut outcome = total
        .ok_or_else(|| PartitionError::Io(std::io::Error::other("no partition was reconciled")))?;
    outcome.discrepancies.sort();
    outcome.status = if outcome.discrepancies.is_empty() {
        "clean".into()
    } else {
        "discrepancies".into()
    };
    side.apply(&mut outcome);
    Ok(outcome)
}

/// A spill thread's failure, named by its side once joined.
enum SpillError {
    Bad(FocusError),
    Io(std::io::Error),
}

impl SpillError {
    fn named(self, side: &'static str) -> PartitionError {
        match self {
            Self::Bad(e) => PartitionError::Bad(side, e),
            Self::Io(e) => PartitionError::Io(e),
        }
    }
}

fn join<T>(
    handle: std::thread::ScopedJoinHandle<'_, Result<T, SpillError>>,
) -> Result<T, SpillError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(SpillError::Io(std::io::Error::other("a reader panicked"))))
}

/// Where one side's rows go: `partitions` partitions, in memory up to `budget` bytes, else
/// in `<prefix>-<p>.bin` files under `dir`.
struct Target<'a> {
    dir: &'a Path,
    prefix: String,
    partitions: usize,
    hasher: &'a std::collections::hash_map::RandomState,
    budget: usize,
}

/// One source's partitions once read: each held in memory, or in its spill file (named by
/// the prefix).
struct Held {
    memory: Vec<std::sync::Mutex<Vec<FocusRow>>>,
    spilled: Vec<bool>,
    /// Rows per partition, held or spilled.
    counts: Vec<usize>,
    prefix: String,
}

impl Held {
    /// Appends partition `p`'s rows (each taken once) to `rows`: from memory, or read back
    /// from its file under `dir` through `buffer`.
    fn take_into(
        &self,
        p: usize,
        dir: &Path,
        rows: &mut Vec<FocusRow>,
        buffer: &mut Vec<u8>,
    ) -> Result<(), PartitionError> {
        if self.spilled.get(p).copied().unwrap_or(false) {
            // Removed once read: the work is spread over the workers, and the disk space is
            // given back as the join goes.
            let file = dir.join(format!("{}-{p}.bin", self.prefix));
            read_back(&file, rows, buffer)?;
            std::fs::remove_file(&file)?;
            return Ok(());
        }
        if let Some(part) = self.memory.get(p) {
            // Taken, so that its memory is given back once appended.
            let mut part = std::mem::take(&mut *part.lock().unwrap_or_else(|e| e.into_inner()));
            rows.append(&mut part);
        }
        Ok(())
    }
}

/// The positions of `rows` in (resource, SKU, charge start) order, stably. The positions
/// are sorted, not the rows (a row is twenty times a position's size), and the join reads
/// the rows in place: a partition is runs of one resource's rows, ascending or descending
/// as members write them, and the stable sort merges the runs.
fn in_order(rows: &[FocusRow]) -> Vec<usize> {
    // A shared text is equal without reading it (a run's rows share their resource).
    fn text(a: &Text, b: &Text) -> std::cmp::Ordering {
        if std::sync::Arc::ptr_eq(a, b) {
            std::cmp::Ordering::Equal
        } else {
            a.cmp(b)
        }
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&rows[a], &rows[b]);
        text(&a.resource_id, &b.resource_id)
            .then_with(|| text(&a.sku, &b.sku))
            .then(a.charge_start.cmp(&b.charge_start))
    });
    order
}

/// Partition `p`'s rows from every source of one side, in one allocation of the right size.
fn take_all(
    held: &[Held],
    p: usize,
    dir: &Path,
    buffer: &mut Vec<u8>,
) -> Result<Vec<FocusRow>, PartitionError> {
    let total = held
        .iter()
        .map(|h| h.counts.get(p).copied().unwrap_or(0))
        .sum();
    let mut rows = Vec::with_capacity(total);
    for source in held {
        source.take_into(p, dir, &mut rows, buffer)?;
    }
    Ok(rows)
}

/// What a row costs in memory, about: the row, and its texts when not shared.
fn row_bytes(row: &FocusRow) -> usize {
    std::mem::size_of::<FocusRow>() + row.resource_id.len() + 64
}

/// Puts each row into its key's partition; with `keep_aside`, rows that name no resource
/// are kept aside instead (statements). Rows stay in memory while they fit the budget; when
/// they do not, the largest partition held goes to its file, as do its later rows (a hybrid
/// hash join: what fits stays in memory, whatever the file's size).
fn spill<I: Iterator<Item = Result<FocusRow, FocusError>>>(
    rows: I,
    to: &Target<'_>,
    keep_aside: bool,
) -> Result<(Unattributed, Held), SpillError> {
    let side = RefCell::new(Unattributed::default());
    let rows: Box<dyn Iterator<Item = Result<FocusRow, FocusError>>> = if keep_aside {
        Box::new(divert(rows, &side))
    } else {
        Box::new(rows)
    };
    let mut memory: Vec<Vec<FocusRow>> = (0..to.partitions).map(|_| Vec::new()).collect();
    let mut sizes = vec![0usize; to.partitions];
    let mut counts = vec![0usize; to.partitions];
    let mut held = 0usize;
    let mut files: Vec<Option<SpillFile>> = (0..to.partitions).map(|_| None).collect();
    // The last resource's partition: a resource's rows usually follow each other, and
    // share one text.
    let mut last: Option<(Text, usize)> = None;
    for row in rows {
        let row = row.map_err(SpillError::Bad)?;
        // By resource: a key's rows land together, and a resource's rows stay next to each
        // other in its partition (so their texts are shared again when read back).
        let p = match &last {
            Some((resource, p)) if std::sync::Arc::ptr_eq(resource, &row.resource_id) => *p,
            _ => {
                let p =
                    usize::try_from(to.hasher.hash_one(&row.resource_id) % to.partitions as u64)
                        .unwrap_or(0);
                last = Some((row.resource_id.clone(), p));
                p
            }
        };
        counts[p] += 1;
        if let Some(file) = files[p].as_mut() {
            file.encode(&row).map_err(SpillError::Io)?;
            continue;
        }
        let bytes = row_bytes(&row);
        memory[p].push(row);
        sizes[p] += bytes;
        held += bytes;
        while held > to.budget {
            // The largest partition still held goes to its file.
            let Some(q) = (0..to.partitions)
                .filter(|q| files[*q].is_none())
                .max_by_key(|q| sizes[*q])
            else {
                break;
            };
            let mut file = SpillFile::create(&to.dir.join(format!("{}-{q}.bin", to.prefix)))
                .map_err(SpillError::Io)?;
            for held_row in std::mem::take(&mut memory[q]) {
                file.encode(&held_row).map_err(SpillError::Io)?;
            }
            held -= sizes[q];
            sizes[q] = 0;
            files[q] = Some(file);
        }
    }
    let mut spilled = Vec::with_capacity(to.partitions);
    for file in files {
        spilled.push(file.is_some());
        if let Some(file) = file {
            file.finish().map_err(SpillError::Io)?;
        }
    }
    let held = Held {
        memory: memory.into_iter().map(std::sync::Mutex::new).collect(),
        spilled,
        counts,
        prefix: to.prefix.clone(),
    };
    Ok((side.into_inner(), held))
}

/// One partition's spill file: rows in a compact binary form, each text written only when
/// it differs from the row before's (a resource's rows follow each other).
struct SpillFile {
    out: BufWriter<std::fs::File>,
    last: [Option<Text>; 6],
}

impl SpillFile {
    fn create(path: &Path) -> std::io::Result<Self> {
        #[cfg(test)]
        SPILL_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Self {
            out: BufWriter::with_capacity(64 * 1024, std::fs::File::create(path)?),
            last: Default::default(),
        })
    }

    fn encode(&mut self, row: &FocusRow) -> std::io::Result<()> {
        let texts = [
            &row.resource_id,
            &row.sku,
            &row.region,
            &row.currency,
            &row.tenant,
            &row.category,
        ];
        // Bit i: text i is the row before's.
        let mut same = 0u8;
        for (i, (text, last)) in texts.iter().zip(&self.last).enumerate() {
            if last.as_ref().is_some_and(|l| l == *text) {
                same |= 1 << i;
            }
        }
        self.out.write_all(&[same])?;
        for (i, text) in texts.into_iter().enumerate() {
            if same & (1 << i) == 0 {
                put_text(&mut self.out, text)?;
                self.last[i] = Some(text.clone());
            }
        }
        self.out.write_all(&row.charge_start.to_le_bytes())?;
        self.out.write_all(&row.cost.serialize())?;
        self.out.write_all(&row.quantity.serialize())?;
        match row.consumed {
            Some(c) => {
                self.out.write_all(&[1])?;
                self.out.write_all(&c.serialize())
            }
            None => self.out.write_all(&[0]),
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Spill files created, for the tests.
#[cfg(test)]
pub(super) static SPILL_FILES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

fn put_text<W: Write>(out: &mut W, text: &str) -> std::io::Result<()> {
    let len = u32::try_from(text.len()).map_err(std::io::Error::other)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(text.as_bytes())
}

/// A read position in a spill file held in memory.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PartitionError> {
        let bytes = self.data.get(self.at..self.at + n).ok_or_else(|| {
            PartitionError::Io(std::io::Error::other("a spill file is truncated"))
        })?;
        self.at += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PartitionError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

/// Appends the rows of one spill file to `rows`, the file read whole into `buffer` (a
/// partition is a few MB).
fn read_back(
    path: &Path,
    rows: &mut Vec<FocusRow>,
    buffer: &mut Vec<u8>,
) -> Result<(), PartitionError> {
    buffer.clear();
    std::io::Read::read_to_end(&mut std::fs::File::open(path)?, buffer)?;
    let mut input = Cursor {
        data: buffer,
        at: 0,
    };
    // Each text is shared with the row before when equal (a resource's rows are adjacent).
    let mut last: [Option<Text>; 6] = Default::default();
    while !input.done() {
        let same = input.take(1)?[0];
        // Each text straight into its field: a placeholder text would be one shared
        // count that every worker bumps for every row.
        let mut text = |i: usize| -> Result<Text, PartitionError> {
            let slot = &mut last[i];
            if same & (1 << i) != 0 {
                return slot.clone().ok_or_else(|| {
                    PartitionError::Io(std::io::Error::other("a spill file is corrupt"))
                });
            }
            let len = u32::from_le_bytes(input.array()?) as usize;
            let bytes = input.take(len)?;
            Ok(match slot {
                Some(previous) if previous.as_bytes() == bytes => previous.clone(),
                _ => {
                    let text = std::str::from_utf8(bytes).map_err(std::io::Error::other)?;
                    let t = Text::from(text);
                    *slot = Some(t.clone());
                    t
                }
            })
        };
        let (resource_id, sku, region) = (text(0)?, text(1)?, text(2)?);
        let (currency, tenant, category) = (text(3)?, text(4)?, text(5)?);
        let charge_start = i64::from_le_bytes(input.array()?);
        let cost = Decimal::deserialize(input.array()?);
        let quantity = Decimal::deserialize(input.array()?);
        let consumed = match input.take(1)?[0] {
            1 => Some(Decimal::deserialize(input.array()?)),
            _ => None,
        };
        rows.push(FocusRow {
            resource_id,
            sku,
            charge_start,
            region,
            currency,
            cost,
            quantity,
            tenant,
            consumed,
            category,
        });
    }
    Ok(())
}

/// Two partitions' outcomes as one (discrepancies sorted and status set by the caller).
fn sum(mut a: Outcome, b: Outcome) -> Outcome {
    a.currency = a.currency.or(b.currency);
    a.ledger_rows += b.ledger_rows;
    a.statement_rows += b.statement_rows;
    a.totals.expected += b.totals.expected;
    a.totals.stated += b.totals.stated;
    a.totals.difference = a.totals.stated - a.totals.expected;
    for (tenant, t) in b.totals_by_tenant {
        let total = a.totals_by_tenant.entry(tenant).or_default();
        total.expected += t.expected;
        total.stated += t.stated;
        total.difference = total.stated - total.expected;
    }
    a.discrepancies.extend(b.discrepancies);
    a
}
