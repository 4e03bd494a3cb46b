//! Splitting a FOCUS file into chunks that are parsed on several threads.
//!
//! Owns finding where each chunk starts (the byte after a line end, past a nominal offset)
//! and proving afterwards that the guess was a record boundary: each chunk reader but the
//! last reads on until it reaches the next chunk's start, and is *aligned* only if a record
//! of its own ends exactly there. A line end inside a quoted field is caught that way, never
//! read as a row.
//!
//! **Invariant:** when [`Split::sound`] holds after every chunk was read, the chunks'
//! rows, in chunk order, are exactly the rows of the whole file read by one
//! [`FocusReader`] (tested, CRLF and quoted line ends included), in one currency. When it
//! does not hold, or a chunk yields an error (its row is numbered within its chunk), the
//! caller reads the file whole instead, which names the error's true row.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::reader::{FocusError, FocusReader, Text};

/// Files smaller than this are read whole: a split would not pay for its threads.
const MIN_SPLIT: u64 = 64 << 20;

/// How far past a nominal offset a line end is looked for.
const WINDOW: usize = 1 << 20;

/// Where a chunk reader stops, and what it reports once read.
pub(super) struct Bound {
    /// Offset in the file of the reader's first byte.
    pub base: u64,
    /// Where the next chunk starts (none for the last chunk): the line ends before it from
    /// the first offset, the first record at the second.
    pub until: Option<(u64, u64)>,
    /// Fields per record, checked by the reader (a chunk reader has no header of its own).
    pub width: Option<usize>,
    /// What the reader found.
    pub report: Arc<ChunkReport>,
}

/// What one chunk reader found: whether it ended at the next chunk's start, and its
/// currency.
#[derive(Default)]
pub(super) struct ChunkReport {
    pub aligned: AtomicBool,
    pub currency: Mutex<Option<Text>>,
}

/// A file's chunks, to be read on as many threads.
pub struct Split {
    /// The chunks, in file order: the first reads the header.
    pub chunks: Vec<FocusReader<File>>,
    reports: Vec<Arc<ChunkReport>>,
}

impl Split {
    /// Whether, once every chunk was read to its end, the chunks were one file's rows in one
    /// currency: each ended where the next starts.
    pub fn sound(&self) -> bool {
        let currencies: Vec<Option<Text>> = self
            .reports
            .iter()
            .map(|r| r.currency.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        let first = currencies.iter().flatten().next();
        self.reports
            .iter()
            .all(|r| r.aligned.load(Ordering::Acquire))
            && currencies.iter().flatten().all(|c| Some(c) == first)
    }
}

fn io_error(e: &std::io::Error) -> FocusError {
    FocusError {
        row: 0,
        column: "-".into(),
        message: e.to_string(),
    }
}

/// Splits the FOCUS file at `path` into at most `pieces` chunks (one when it is small),
/// checking its header once.
pub fn split(path: &Path, pieces: usize) -> Result<Split, FocusError> {
    split_above(path, pieces, MIN_SPLIT)
}

/// [`split`], for files of at least `min_split` bytes past the header.
fn split_above(path: &Path, pieces: usize, min_split: u64) -> Result<Split, FocusError> {
    let open = || File::open(path).map_err(|e| io_error(&e));
    let mut first = FocusReader::new(open()?)?;
    let header_end = first.position();
    let len = open()?.metadata().map_err(|e| io_error(&e))?.len();
    let mut starts = Vec::new();
    if pieces > 1 && len.saturating_sub(header_end) >= min_split.max(1) {
        let mut file = open()?;
        for k in 1..pieces as u64 {
            let nominal = header_end + (len - header_end) * k / pieces as u64;
            if let Some(start) = line_start_after(&mut file, nominal).map_err(|e| io_error(&e))? {
                if start.1 < len
                    && starts
                        .last()
                        .is_none_or(|last: &(u64, u64)| start.0 > last.1)
                {
                    starts.push(start);
                }
            }
        }
    }
    let report = || Arc::new(ChunkReport::default());
    let mut reports = vec![report()];
    first.bound(Bound {
        base: 0,
        until: starts.first().copied(),
        width: None,
        report: reports[0].clone(),
    });
    let mut chunks = vec![first];
    for (i, start) in starts.iter().enumerate() {
        let mut file = open()?;
        file.seek(SeekFrom::Start(start.1))
            .map_err(|e| io_error(&e))?;
        let r = report();
        reports.push(r.clone());
        let chunk = chunks[0].sibling(
            file,
            Bound {
                base: start.1,
                until: starts.get(i + 1).copied(),
                width: None,
                report: r,
            },
        );
        chunks.push(chunk);
    }
    Ok(Split { chunks, reports })
}

/// The first run of line ends at or after `nominal`: where it starts, and the offset just
/// past it; none within [`WINDOW`] bytes.
fn line_start_after(file: &mut File, nominal: u64) -> std::io::Result<Option<(u64, u64)>> {
    file.seek(SeekFrom::Start(nominal))?;
    let mut window = Vec::with_capacity(WINDOW);
    file.by_ref().take(WINDOW as u64).read_to_end(&mut window)?;
    let Some(newline) = window.iter().position(|b| *b == b'\n') else {
        return Ok(None);
    };
    let is_end = |b: &u8| *b == b'\n' || *b == b'\r';
    let before = window[..newline]
        .iter()
        .rev()
        .take_while(|b| is_end(b))
        .count();
    let after = window[newline..].iter().position(|b| !is_end(b));
    Ok(after.map(|skip| {
        (
            nominal + (newline - before) as u64,
            nominal + (newline + skip) as u64,
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::FocusRow;

    const HEADER: &str = "SubAccountId,x_Note,ResourceId,SkuId,RegionId,BillingCurrency,\
        ChargePeriodStart,ChargePeriodEnd,BilledCost,PricingQuantity";

    /// A statement as members write them: CRLF, every field quoted, a vendor note that
    /// sometimes holds line ends (and a long one), blank lines.
    fn statement(rows: usize, line_ends_in_fields: bool) -> String {
        let mut text = format!("\u{feff}{HEADER}\r\n");
        for i in 0..rows {
            let note = match i % 7 {
                _ if !line_ends_in_fields => format!("row {i}, \"\"quoted\"\""),
                0 => "plain".to_owned(),
                3 => "two\r\nlines, \"\"quoted\"\"".to_owned(),
                5 if i == 54 => "\n".repeat(3000),
                _ => format!("row {i}"),
            };
            text.push_str(&format!(
                "\"acme\",\"{note}\",\"ins-{:04}\",\"vm\",\"FR\",\"EUR\",\
                 \"2026-11-{:02}T00:00:00Z\",\"2026-11-{:02}T00:00:00Z\",\"0.{i}\",\"24\"\r\n",
                i / 3,
                1 + i % 28,
                2 + i % 28,
            ));
            if i % 50 == 49 {
                text.push_str("\r\n");
            }
        }
        text
    }

    fn rows_of(reader: FocusReader<File>) -> Vec<FocusRow> {
        reader.collect::<Result<_, _>>().expect("rows")
    }

    #[test]
    fn chunks_hold_the_file_s_rows_or_say_they_do_not() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("statement.csv");
        let (mut sound, mut unsound) = (0, 0);
        for (pieces, tricky) in (2..=40)
            .map(|p| (p, true))
            .chain((2..=40).map(|p| (p, false)))
        {
            std::fs::write(&path, statement(400, tricky)).expect("write");
            let whole =
                rows_of(FocusReader::new(File::open(&path).expect("open")).expect("header"));
            assert_eq!(whole.len(), 400);
            let mut split = split_above(&path, pieces, 1).expect("split");
            assert!(split.chunks.len() > 1, "{pieces} pieces");
            // A chunk that starts inside a quoted field may also find a bad row: the caller
            // then reads the file whole, as when the split is unsound.
            let rows: Result<Vec<Vec<FocusRow>>, _> = std::mem::take(&mut split.chunks)
                .into_iter()
                .map(Iterator::collect::<Result<Vec<_>, _>>)
                .collect();
            if let (Ok(rows), true) = (rows, split.sound()) {
                let rows: Vec<FocusRow> = rows.into_iter().flatten().collect();
                sound += 1;
                assert_eq!(rows, whole, "{pieces} pieces");
            } else {
                // Without line ends inside fields, every split is sound.
                assert!(tricky, "{pieces} pieces");
                unsound += 1;
            }
        }
        // Most splits land between records; some land inside a quoted field, and say so.
        assert!(sound > 40 && unsound > 0, "{sound} sound, {unsound} not");
        // Small files are not split; a chunk with another currency makes the split unsound.
        assert_eq!(split(&path, 8).expect("split").chunks.len(), 1);
        let text = statement(400, false);
        let header_end = text.find('\n').expect("header") as u64 + 1;
        let nominal = header_end + (text.len() as u64 - header_end) / 2;
        let mut file = File::open(&path).expect("open");
        let (_, start) = line_start_after(&mut file, nominal)
            .expect("read")
            .expect("a line");
        let (head, tail) = text.split_at(usize::try_from(start).expect("offset"));
        std::fs::write(
            &path,
            format!("{head}{}", tail.replace("\"EUR\"", "\"CHF\"")),
        )
        .expect("write");
        let mut split = split_above(&path, 2, 1).expect("split");
        for chunk in std::mem::take(&mut split.chunks) {
            let _ = rows_of(chunk);
        }
        assert!(!split.sound());
    }
}
