//! `alliance reconcile`: reconcile a member's statement with the broker's ledger.
//!
//! Online: `--period P --member M [--statement FILE]` reads the ledger from the database and
//! the statement from FILE, an uploaded one, or the member. Offline: `--ledger FILE
//! --statement FILE` reconciles two FOCUS files. Exit 0 clean, 1 discrepancies beyond the
//! tolerance, 2 error (a bad or missing file names the row and column). Sorted files (as the
//! broker and members write them) are merged in one pass; files in any other order are
//! reconciled by partitions spilled under `--spill-dir` (bounded memory, every core).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alliance_core::billing::Period;
use alliance_core::reconcile::{
    discrepancies_csv, reconcile_partitioned, reconcile_sorted, split, FocusReader, MergeError,
    Outcome, PartitionError, Tolerance,
};
use alliance_service::store::Store;
use rust_decimal::Decimal;

use crate::Common;

/// Report format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// One JSON document.
    Json,
    /// The discrepancies as CSV.
    Csv,
}

/// `reconcile` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// The UTC month, `YYYY-MM` (online form).
    #[arg(long, requires = "member", conflicts_with = "ledger")]
    period: Option<String>,
    /// The member (online form).
    #[arg(long, requires = "period")]
    member: Option<String>,
    /// The broker's ledger as FOCUS CSV (offline form).
    #[arg(long, requires = "statement")]
    ledger: Option<PathBuf>,
    /// The member's statement as FOCUS CSV.
    #[arg(long)]
    statement: Option<PathBuf>,
    /// Tolerated absolute difference.
    #[arg(long, default_value = "0.000001")]
    tolerance_absolute: Decimal,
    /// Tolerated relative difference (a fraction of the expected value).
    #[arg(long, default_value = "0")]
    tolerance_relative: Decimal,
    /// Seconds the two clocks may be apart at each end of a span (quantities and costs
    /// differ by what runs in twice that).
    #[arg(long, default_value_t = alliance_core::reconcile::DEFAULT_CLOCK_SKEW_SECONDS)]
    clock_skew_seconds: u32,
    /// Report format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Where unsorted files are spilled while they are reconciled, for the part of a file's
    /// rows that does not fit in 128 MiB of memory (about as much disk as that part takes
    /// as CSV; removed as it is read). The system's temporary directory by default.
    #[arg(long)]
    spill_dir: Option<PathBuf>,
}

/// A file, unbuffered: the FOCUS reader has its own buffer, so each byte is copied once.
fn open(path: &PathBuf) -> anyhow::Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Rows of each file held in memory (an estimate); the partitions past it are spilled to
/// disk. Chosen by measurement: at 10M rows per file, 128 MiB peaks at about 560 MB and
/// runs as fast as 256 MiB (830 MB); at 1M rows it is faster (less memory to fault in).
const MEMORY_BUDGET: usize = 128 << 20;

/// Reconciles two files in any order: partitioned by key, in memory while a file's rows fit
/// [`MEMORY_BUDGET`], the partitions past it spilled under a temporary directory (removed
/// on return), each partition reconciled in memory, on every core.
fn partitioned(
    ledger: &PathBuf,
    statement: &PathBuf,
    tolerance: Tolerance,
    spill_dir: Option<&std::path::Path>,
    names: &(String, String),
) -> anyhow::Result<Outcome> {
    // About 32 MiB of CSV per partition and side: some 100,000 rows, a few tens of MB in
    // memory while one is reconciled.
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let partitions =
        usize::try_from((size(ledger).max(size(statement)) >> 25).clamp(4, 1024)).unwrap_or(1024);
    let base = spill_dir.map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
    let dir = tempfile::Builder::new()
        .prefix("alliance-reconcile-")
        .tempdir_in(&base)
        .map_err(|e| anyhow::anyhow!("--spill-dir {}: {e}", base.display()))?;
    // Each file in as many chunks as there are cores, each parsed on its own thread. Should
    // a chunk prove not to start at a record (a line end inside a quoted field), or any
    // row be bad, the files are read whole again: that names a bad row by its true number.
    let pieces = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut l = split(ledger, pieces).map_err(|e| anyhow::anyhow!("{}: {e}", names.0))?;
    let mut s = split(statement, pieces).map_err(|e| anyhow::anyhow!("{}: {e}", names.1))?;
    let chunked = l.chunks.len() + s.chunks.len() > 2;
    let (l_chunks, s_chunks) = (std::mem::take(&mut l.chunks), std::mem::take(&mut s.chunks));
    let run = |l, s| {
        reconcile_partitioned(
            l,
            s,
            tolerance,
            &HashMap::new(),
            dir.path(),
            partitions,
            MEMORY_BUDGET,
        )
    };
    let mut outcome = run(l_chunks, s_chunks);
    if chunked && (outcome.is_err() || !l.sound() || !s.sound()) {
        let l = FocusReader::new(open(ledger)?).map_err(|e| anyhow::anyhow!("{}: {e}", names.0))?;
        let s =
            FocusReader::new(open(statement)?).map_err(|e| anyhow::anyhow!("{}: {e}", names.1))?;
        outcome = run(vec![l], vec![s]);
    }
    outcome.map_err(|e| match e {
        PartitionError::Bad(which, e) => {
            let name = if which == "ledger" {
                &names.0
            } else {
                &names.1
            };
            anyhow::anyhow!("{name}: {e}")
        }
        PartitionError::Io(e) => anyhow::anyhow!("spilling under {}: {e}", base.display()),
    })
}

/// Rows parsed so far in each file, shown on a terminal while a large reconciliation runs.
struct Progress {
    rows: Arc<[AtomicU64; 2]>,
    done: Option<std::sync::mpsc::Sender<()>>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Counts rows; when `show`, prints them to stderr twice a second (one line, rewritten).
    fn start(show: bool) -> Self {
        let rows: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (done, stopped) = std::sync::mpsc::channel::<()>();
        let ticker = show.then(|| {
            let rows = rows.clone();
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                // Wakes every half second until told to stop (or the sender is gone).
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_millis(500))
                {
                    let (l, s) = (
                        rows[0].load(Ordering::Relaxed),
                        rows[1].load(Ordering::Relaxed),
                    );
                    let per_second = (l + s) / started.elapsed().as_secs().max(1);
                    eprint!("\r  ledger {l} rows, statement {s} rows ({per_second} rows/s)   ");
                }
                eprintln!();
            })
        });
        Self {
            rows,
            done: Some(done),
            ticker,
        }
    }

    fn counters(&self) -> Arc<[AtomicU64; 2]> {
        self.rows.clone()
    }

    fn stop(mut self) {
        drop(self.done.take());
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Parses a FOCUS file on its own thread, handing rows over in batches and counting them
/// in `rows[which]`.
fn in_background<R: std::io::Read + Send + 'static>(
    reader: FocusReader<R>,
    rows: Arc<[AtomicU64; 2]>,
    which: usize,
) -> impl Iterator<Item = Result<alliance_core::reconcile::FocusRow, alliance_core::reconcile::FocusError>>
{
    const BATCH: usize = 4096;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<_>>(8);
    std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        for row in reader {
            let failed = row.is_err();
            batch.push(row);
            let full = batch.len() == BATCH || failed;
            if full {
                rows[which].fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            // Stop when the reader gave up (the receiver was dropped) or after an error.
            if full
                && (tx
                    .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                    .is_err()
                    || failed)
            {
                return;
            }
        }
        rows[which].fetch_add(batch.len() as u64, Ordering::Relaxed);
        let _ = tx.send(batch);
    });
    rx.into_iter().flatten()
}

/// Prints the report; the exit code says clean (0), discrepancies (1) or error (2).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tolerance = Tolerance {
        absolute: args.tolerance_absolute,
        relative: args.tolerance_relative,
        clock_skew_seconds: args.clock_skew_seconds,
    };
    if tolerance.absolute.is_sign_negative() || tolerance.relative.is_sign_negative() {
        anyhow::bail!("tolerances must not be negative");
    }
    let interactive = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
    let outcome = match (&args.ledger, &args.statement, &args.period, &args.member) {
        (Some(ledger), Some(statement), None, None) => {
            if interactive {
                eprintln!(
                    "reconciling {} with {} …",
                    statement.display(),
                    ledger.display()
                );
            }
            let names = (
                ledger.display().to_string(),
                statement.display().to_string(),
            );
            // Sorted files (as the broker and members write them) stream in one pass with
            // bounded memory; otherwise the statement is held in memory.
            let l =
                FocusReader::new(open(ledger)?).map_err(|e| anyhow::anyhow!("{}: {e}", names.0))?;
            let s = FocusReader::new(open(statement)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", names.1))?;
            // Each file is parsed on its own thread (one per core); this one only merges.
            let progress = Progress::start(std::io::stderr().is_terminal());
            let merged = reconcile_sorted(
                in_background(l, progress.counters(), 0),
                in_background(s, progress.counters(), 1),
                tolerance,
                &HashMap::new(),
            );
            progress.stop();
            match merged {
                Ok(outcome) => outcome,
                Err(MergeError::Bad(which, e)) => {
                    anyhow::bail!(
                        "{}: {e}",
                        if which == "ledger" {
                            &names.0
                        } else {
                            &names.1
                        }
                    )
                }
                Err(MergeError::NotSorted(which, row)) => {
                    if interactive {
                        eprintln!("{which} is not sorted at row {row}; reconciling by partitions");
                    }
                    partitioned(
                        ledger,
                        statement,
                        tolerance,
                        args.spill_dir.as_deref(),
                        &names,
                    )?
                }
            }
        }
        (None, statement, Some(period), Some(member)) => {
            let period = Period::parse(period).map_err(|e| anyhow::anyhow!("--period: {e}"))?;
            let (config, url) = super::config_and_database(&args.common)?;
            let member_config = config
                .members
                .iter()
                .find(|m| m.id.get_ref().as_str() == member);
            super::runtime()?.block_on(async {
                let store = Store::connect(&url, 2).await?;
                store.migrate().await?;
                let books = alliance_service::billing::Books::from_config(&config, &store).await?;
                if !books.catalogues.contains_key(member.as_str()) {
                    anyhow::bail!("--member: `{member}` is not a member of this alliance");
                }
                let statement_text = match statement {
                    Some(path) => std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    None => match store.statement(member, &period.to_string()).await? {
                        Some(uploaded) => uploaded.into_bytes(),
                        None => {
                            let m = member_config.ok_or_else(|| anyhow::anyhow!("no uploaded statement for {member} {period}; pass --statement"))?;
                            let adapter = alliance_service::members::build_adapter(m, &args.common.data_dir, &super::env_map(), std::time::Duration::from_secs(60)).map_err(anyhow::Error::msg)?;
                            let ctx = alliance_adapter_api::CallContext::new(None, "reconcile", std::time::Duration::from_secs(60));
                            adapter.statement(&ctx, &period.to_string()).await?.ok_or_else(|| anyhow::anyhow!("{member} publishes no statement for {period}; pass --statement"))?.into_bytes()
                        }
                    },
                };
                // The same use case as POST /v1/reconciliations.
                let reconciled = alliance_service::reconciliation::reconcile_member(
                    &store,
                    &books,
                    member,
                    period,
                    &statement_text,
                    tolerance,
                    alliance_service::time::now_ms(),
                )
                .await;
                store.close().await;
                reconciled.map(|r| r.outcome).map_err(|e| match statement {
                    Some(path) => anyhow::anyhow!("{}: {e}", path.display()),
                    None => anyhow::anyhow!("{e}"),
                })
            })?
        }
        _ => anyhow::bail!(
            "use either --period P --member M [--statement FILE] or --ledger FILE --statement FILE"
        ),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&outcome)?)?,
        Format::Csv => discrepancies_csv(&mut out, &outcome)?,
    }
    Ok(if outcome.status == "clean" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
