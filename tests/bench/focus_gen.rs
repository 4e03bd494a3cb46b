//! `alliance-focus-gen ROWS DIR [sorted|unsorted|wide]`: writes DIR/ledger.csv and
//! DIR/statement.csv, realistic FOCUS files of about ROWS rows each (buckets, instances and
//! volumes billed per day over a month). The ledger is sorted by (ResourceId, SkuId,
//! ChargePeriodStart) as the broker writes it. The statement is, by shape:
//!
//! - `sorted` (the default): in the same order, as the broker's members write theirs;
//! - `unsorted`: as a member's own system writes one: resources in no lexical order, the
//!   days of each newest first, the unknown resources and a tax row (no ResourceId) at the
//!   end;
//! - `wide`: unsorted, with 24 vendor `x_` columns (55 in all), the columns in another
//!   order, every field quoted, Windows line endings and a UTF-8 byte-order mark.
//!
//! The statement differs on purpose: one cost in 1,000 changed, one row in 1,500 missing,
//! one unknown resource in 2,000. For `scripts/bench` (not a test).
#![expect(
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout,
    reason = "a benchmark generator"
)]

use std::io::{BufWriter, Write};

/// The columns the generator writes: the broker's, without the three recommended ones it
/// added later (a member's file need not have them).
const HEADER: &[&str] = alliance_core::focus::COLUMNS.split_at(31).0;

/// Vendor columns of the wide shape.
const VENDOR: usize = 24;

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Sorted,
    Unsorted,
    Wide,
}

/// One row's values, in `HEADER` order.
fn values(id: &str, i: u64, day: u32, cost: &str, category: &str) -> Vec<String> {
    let (kind, sku, price, service, service_category) = match i % 3 {
        0 => (
            "instance",
            "instance.small",
            "0.0150",
            "Virtual Machines",
            "Compute",
        ),
        1 => (
            "volume",
            "volume.gb",
            "0.000150",
            "Block Storage",
            "Storage",
        ),
        _ => ("bucket", "bucket", "0.0020", "Object Storage", "Storage"),
    };
    let tenant = ["acme", "globex", "initech", "umbrella"][(i % 4) as usize];
    let tax = category == "Tax";
    let text = |v: &str| if tax { String::new() } else { v.to_owned() };
    vec![
        cost.into(),
        cost.into(),
        cost.into(),
        cost.into(),
        tenant.into(),
        tenant.into(),
        "EUR".into(),
        "2026-11-01T00:00:00Z".into(),
        "2026-12-01T00:00:00Z".into(),
        format!("2026-11-{day:02}T00:00:00Z"),
        format!("2026-11-{:02}T00:00:00Z", day + 1),
        category.into(),
        String::new(),
        format!("{sku} in FR"),
        "24".into(),
        "Hours".into(),
        "Numergy".into(),
        "Numergy".into(),
        "Numergy".into(),
        service.into(),
        service_category.into(),
        text(id),
        text(&format!("res-{i}")),
        text(kind),
        "FR".into(),
        text(sku),
        tenant.into(),
        "24".into(),
        "Hours".into(),
        price.into(),
        format!("{{\"alliance/tenant\":\"{tenant}\",\"alliance/jurisdiction\":\"FR\"}}"),
    ]
}

/// A CSV field: quoted when `always` or when it must be.
fn field(value: &str, always: bool) -> String {
    if always || value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// The wide shape's columns: the standard ones reversed, a vendor column after every
/// second one (then the rest), as (name, index into `HEADER` or a vendor number).
fn wide_columns() -> Vec<(String, Option<usize>)> {
    let mut out = Vec::new();
    let mut vendor = 0;
    for (n, i) in (0..HEADER.len()).rev().enumerate() {
        out.push((HEADER[i].to_owned(), Some(i)));
        if n % 2 == 1 && vendor < VENDOR {
            out.push((format!("x_Vendor{vendor:02}"), None));
            vendor += 1;
        }
    }
    while vendor < VENDOR {
        out.push((format!("x_Vendor{vendor:02}"), None));
        vendor += 1;
    }
    out
}

struct Writer {
    out: BufWriter<std::fs::File>,
    shape: Shape,
    columns: Vec<(String, Option<usize>)>,
}

impl Writer {
    fn create(path: std::path::PathBuf, shape: Shape) -> Self {
        let mut w = Self {
            out: BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap()),
            shape,
            columns: wide_columns(),
        };
        if shape == Shape::Wide {
            w.out.write_all("\u{feff}".as_bytes()).unwrap();
            let names: Vec<String> = w.columns.iter().map(|(n, _)| field(n, true)).collect();
            write!(w.out, "{}\r\n", names.join(",")).unwrap();
        } else {
            writeln!(w.out, "{}", HEADER.join(",")).unwrap();
        }
        w
    }

    fn row(&mut self, values: &[String]) {
        if self.shape == Shape::Wide {
            let fields: Vec<String> = self
                .columns
                .iter()
                .enumerate()
                .map(|(n, (_, i))| match i {
                    Some(i) => field(&values[*i], true),
                    None => field(&format!("vendor value {n}, with \"quotes\""), true),
                })
                .collect();
            write!(self.out, "{}\r\n", fields.join(",")).unwrap();
        } else {
            let fields: Vec<String> = values.iter().map(|v| field(v, false)).collect();
            writeln!(self.out, "{}", fields.join(",")).unwrap();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(args.get(2).cloned().unwrap_or_else(|| ".".into()));
    let shape = match args.get(3).map(String::as_str) {
        None | Some("sorted") => Shape::Sorted,
        Some("unsorted") => Shape::Unsorted,
        Some("wide") => Shape::Wide,
        Some(other) => panic!("unknown shape {other}: sorted, unsorted or wide"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    let mut ledger = Writer::create(dir.join("ledger.csv"), Shape::Sorted);
    let mut statement = Writer::create(dir.join("statement.csv"), shape);
    let days = 29u32;
    let resources = rows / u64::from(days);
    let mut n = 0u64;
    let mut rogues = Vec::new();
    // The statement's resources in another order: a permutation of 0..resources (an odd
    // multiplier coprime with the count), unless sorted.
    let step = (0..)
        .map(|k| 7_919 + 2 * k)
        .find(|s| gcd(*s, resources.max(1)) == 1)
        .unwrap();
    for i in 0..resources {
        let id = format!("res-{i:010}");
        for day in 1..=days {
            let cost = format!("{}.{:06}", i % 7, (i * 31 + u64::from(day)) % 1_000_000);
            ledger.row(&values(&id, i, day, &cost, "Usage"));
        }
        let s = if shape == Shape::Sorted {
            i
        } else {
            (i * step) % resources
        };
        let sid = format!("res-{s:010}");
        let order: Vec<u32> = if shape == Shape::Sorted {
            (1..=days).collect()
        } else {
            (1..=days).rev().collect()
        };
        for day in order {
            n += 1;
            if n.is_multiple_of(1500) {
                continue; // missing at the member
            }
            let cost = format!("{}.{:06}", s % 7, (s * 31 + u64::from(day)) % 1_000_000);
            let stated = if n.is_multiple_of(1000) {
                format!("{}.5", s % 7 + 1)
            } else {
                cost
            };
            statement.row(&values(&sid, s, day, &stated, "Usage"));
        }
        if s.is_multiple_of((2000 / u64::from(days)).max(1)) {
            // A resource the broker never placed: right after this one when sorted, at
            // the end otherwise.
            let rogue = values(&format!("{sid}~rogue"), s, 1, "1.000000", "Usage");
            if shape == Shape::Sorted {
                statement.row(&rogue);
            } else {
                rogues.push(rogue);
            }
        }
    }
    for rogue in rogues {
        statement.row(&rogue);
    }
    if shape != Shape::Sorted {
        statement.row(&values("", 0, 1, "12.340000", "Tax"));
    }
    ledger.out.flush().unwrap();
    statement.out.flush().unwrap();
    println!("{n} ledger rows in {}", dir.display());
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
