//! Reconciliation: classes, tolerance, aliases, and bad files.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;

use super::*;
use crate::billing::{meter, Period, Price, PriceCatalogue, UsageSpan};

fn ledger_csv() -> Vec<u8> {
    let period = Period::parse("2026-11").expect("period");
    let span = |id: &str, region: &str, hours: i64| UsageSpan {
        resource_id: id.into(),
        resource_name: id.into(),
        resource_type: crate::ResourceType::Bucket,
        tenant: crate::TenantId::parse("acme").expect("tenant"),
        member: crate::MemberId::parse("m").expect("member"),
        jurisdiction: crate::Jurisdiction::parse(region).expect("jurisdiction"),
        sku: "bucket".into(),
        units: Decimal::ONE,
        start_ms: period.start_ms(),
        end_ms: Some(period.start_ms() + hours * 3_600_000),
    };
    let prices = PriceCatalogue::new(&[Price {
        sku: "bucket".into(),
        unit: "hour".into(),
        price: "0.01".parse().expect("d"),
        currency: "EUR".into(),
    }])
    .expect("prices");
    let lines = meter(
        &[
            span("bkt-a", "FR", 10),
            span("bkt-b", "FR", 30),
            span("bkt-c", "FR", 5),
        ],
        period,
        &prices,
        i64::MAX,
    );
    let mut out = Vec::new();
    crate::focus::write(&mut out, period, &lines, &BTreeMap::new()).expect("write");
    out
}

fn run(statement: &[u8], tolerance: Tolerance) -> Outcome {
    let ledger = ledger_csv();
    reconcile(
        FocusReader::new(ledger.as_slice()).expect("ledger"),
        FocusReader::new(statement).expect("statement"),
        tolerance,
        &HashMap::from([("m-own-c".to_owned(), "bkt-c".to_owned())]),
        &HashMap::from([(
            "acme".to_owned(),
            BTreeSet::from(["FR".to_owned(), "BE".to_owned()]),
        )]),
    )
    .expect("reconcile")
}

#[test]
fn equal_files_are_clean() {
    let outcome = run(&ledger_csv(), Tolerance::default());
    assert_eq!(outcome.status, "clean", "{outcome:?}");
    assert_eq!(outcome.ledger_rows, 4);
    assert_eq!(outcome.totals.difference, Decimal::ZERO);
}

#[test]
fn changed_removed_and_unknown_rows_are_named() {
    let text = String::from_utf8(ledger_csv()).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // bkt-a's only row: cost changed; bkt-c named by the member's id; first bkt-b row removed;
    // an unknown resource billed in IT.
    lines[1] = lines[1].replacen("0.1,0.1,0.1,0.1", "0.2,0.2,0.2,0.2", 1);
    let removed = lines.remove(2);
    assert!(removed.contains("bkt-b"));
    let c = lines.iter().position(|l| l.contains("bkt-c")).expect("c");
    lines[c] = lines[c].replace(",bkt-c,", ",m-own-c,");
    lines.push(lines[1].replace("bkt-a", "bkt-zz").replace(",FR,", ",IT,"));
    let outcome = run(lines.join("\n").as_bytes(), Tolerance::default());
    let classes: Vec<(&str, &str)> = outcome
        .discrepancies
        .iter()
        .map(|d| (d.class.as_str(), d.resource_id.as_str()))
        .collect();
    assert_eq!(
        classes,
        vec![
            ("amount_mismatch", "bkt-a"),
            ("missing_at_member", "bkt-b"),
            ("out_of_jurisdiction", "bkt-zz"),
            ("unexpected_at_member", "bkt-zz")
        ]
    );
    assert_eq!(outcome.status, "discrepancies");
}

#[test]
fn tolerance_absorbs_small_differences() {
    let text = String::from_utf8(ledger_csv()).expect("utf8").replacen(
        "0.1,0.1,0.1,0.1",
        "0.1004,0.1,0.1,0.1",
        1,
    );
    assert_eq!(
        run(text.as_bytes(), Tolerance::default()).status,
        "discrepancies"
    );
    let loose = Tolerance {
        absolute: "0.001".parse().expect("d"),
        relative: Decimal::ZERO,
        ..Tolerance::default()
    };
    assert_eq!(run(text.as_bytes(), loose).status, "clean");
    let relative = Tolerance {
        absolute: Decimal::ZERO,
        relative: "0.01".parse().expect("d"),
        ..Tolerance::default()
    };
    assert_eq!(run(text.as_bytes(), relative).status, "clean");
}

#[test]
fn bad_files_are_clear_errors() {
    let header = String::from_utf8(ledger_csv())
        .expect("utf8")
        .lines()
        .next()
        .expect("h")
        .to_owned();
    let good = String::from_utf8(ledger_csv()).expect("utf8");
    let second = good.lines().nth(1).expect("row").to_owned();
    let cases: Vec<(String, &str)> = vec![
        ("BilledCost,Nothing\n1,2\n".into(), "BillingCurrency"),
        (
            format!("{header}\n{}\n", second.replacen("0.1,", "abc,", 1)),
            "BilledCost",
        ),
        (
            format!("{header}\n{}\n", second.replace(",EUR,", ",XYZ,")),
            "BillingCurrency",
        ),
        (
            format!(
                "{header}\n{}\n{}\n",
                second,
                second.replace(",EUR,", ",USD,")
            ),
            "BillingCurrency",
        ),
        (
            format!(
                "{header}\n{}\n",
                second.replace("2026-11-01T00:00:00Z,2026-11-02", "yesterday,2026-11-02")
            ),
            "ChargePeriodStart",
        ),
        (format!("{header}\n1,2,3\n"), "-"),
    ];
    for (text, column) in cases {
        let result =
            FocusReader::new(text.as_bytes()).and_then(|r| r.collect::<Result<Vec<_>, _>>());
        let err = result.expect_err("bad file");
        assert_eq!(err.column, column, "{err}");
    }
    let latin1: &[u8] = b"BilledCost\n\xe9\n";
    assert!(FocusReader::new(latin1).is_err());
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    fn drain(bytes: &[u8]) {
        if let Ok(reader) = FocusReader::new(bytes) {
            for row in reader {
                let _ = row;
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Arbitrary bytes: an error or rows, never a panic.
        #[test]
        fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            drain(&bytes);
        }

        /// A valid file with bytes flipped, cut or repeated: an error or rows, never a panic.
        #[test]
        fn on_mutated_files(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16), cut in any::<usize>()) {
            let mut bytes = ledger_csv();
            for (at, value) in flips {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            let keep = cut % (bytes.len() + 1);
            bytes.truncate(keep);
            drain(&bytes);
            let ledger = ledger_csv();
            if let (Ok(l), Ok(s)) = (FocusReader::new(ledger.as_slice()), FocusReader::new(bytes.as_slice())) {
                let _ = reconcile(l, s, Tolerance::default(), &HashMap::new(), &HashMap::new());
            }
        }
    }
}

/// The hash join of two files, with the default tolerance and no aliases.
fn hash_join(
    ledger: &[u8],
    statement: &[u8],
    allowed: &HashMap<String, BTreeSet<String>>,
) -> Outcome {
    reconcile(
        FocusReader::new(ledger).expect("l"),
        FocusReader::new(statement).expect("s"),
        Tolerance::default(),
        &HashMap::new(),
        allowed,
    )
    .expect("hash")
}

#[test]
fn the_merge_join_agrees_with_the_hash_join() {
    let text = String::from_utf8(ledger_csv()).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen("0.1,0.1,0.1,0.1", "0.2,0.2,0.2,0.2", 1);
    lines.remove(2);
    let statement = lines.join("\n");
    let ledger = ledger_csv();
    let allowed = HashMap::new();
    let hashed = hash_join(ledger.as_slice(), statement.as_bytes(), &allowed);
    let merged = reconcile_sorted(
        FocusReader::new(ledger.as_slice()).expect("l"),
        FocusReader::new(statement.as_bytes()).expect("s"),
        Tolerance::default(),
        &allowed,
    )
    .expect("merge");
    assert_eq!(hashed, merged);
    assert_eq!(merged.discrepancies.len(), 2);
    // An unsorted file is refused, not misread.
    let mut unsorted: Vec<&str> = statement.lines().collect();
    unsorted.swap(1, 3);
    let err = reconcile_sorted(
        FocusReader::new(ledger.as_slice()).expect("l"),
        FocusReader::new(unsorted.join("\n").as_bytes()).expect("s"),
        Tolerance::default(),
        &allowed,
    )
    .expect_err("unsorted");
    assert!(
        matches!(err, MergeError::NotSorted("statement", _)),
        "{err:?}"
    );
}

#[test]
fn every_join_sums_a_key_given_twice() {
    let text = String::from_utf8(ledger_csv()).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    // The ledger gives its first row twice; the statement gives it once, doubled.
    let mut ledger: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    ledger.insert(2, lines[1].to_owned());
    let ledger = ledger.join("\n");
    let mut statement: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    statement[1] = statement[1].replacen("0.1,0.1,0.1,0.1", "0.2,0.2,0.2,0.2", 1);
    let statement = statement.join("\n");
    let allowed = HashMap::new();
    let hashed = hash_join(ledger.as_bytes(), statement.as_bytes(), &allowed);
    let merged = reconcile_sorted(
        FocusReader::new(ledger.as_bytes()).expect("l"),
        FocusReader::new(statement.as_bytes()).expect("s"),
        Tolerance::default(),
        &allowed,
    )
    .expect("merge");
    assert_eq!(hashed, merged);
    // The partitioned join, its rows held (read in place) or spilled, and the statement's
    // key given twice too (in halves).
    let split_statement = {
        let mut lines: Vec<String> = statement.lines().map(str::to_owned).collect();
        lines[1] = lines[1].replacen("0.2,0.2,0.2,0.2", "0.1,0.1,0.1,0.1", 1);
        lines.push(lines[1].clone());
        lines.join("\n")
    };
    for statement in [&statement, &split_statement] {
        let hashed = hash_join(ledger.as_bytes(), statement.as_bytes(), &allowed);
        if statement == &split_statement {
            // Both sides' halves summed: the key matches in full.
            assert_eq!(hashed.status, "clean", "{hashed:?}");
        }
        for budget in [0, usize::MAX] {
            let dir = tempfile::tempdir().expect("dir");
            let partitioned = reconcile_partitioned(
                vec![FocusReader::new(ledger.as_bytes()).expect("l")],
                vec![FocusReader::new(statement.as_bytes()).expect("s")],
                Tolerance::default(),
                &allowed,
                dir.path(),
                2,
                budget,
            )
            .expect("partitioned");
            assert_eq!(partitioned, hashed, "budget {budget}");
        }
    }
    assert_eq!(
        hashed.ledger_rows,
        u64::try_from(lines.len()).expect("rows")
    );
    assert!(
        hashed
            .discrepancies
            .iter()
            .all(|d| d.class != "missing_at_member"),
        "{:?}",
        hashed.discrepancies
    );
}

/// A statement with a tax, a credit and usage rows that name no resource (and no SKU), as
/// FOCUS allows.
fn with_unattributed(kinds: &[(&str, &str)]) -> String {
    let text = String::from_utf8(ledger_csv()).expect("utf8");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let first = reader.records().next().expect("row").expect("row");
    let mut out = text.clone();
    for (category, cost) in kinds {
        let row: Vec<String> = headers
            .iter()
            .zip(first.iter())
            .map(|(h, v)| match h {
                "ResourceId" | "SkuId" | "ResourceName" | "ResourceType" => String::new(),
                "ChargeCategory" => (*category).to_owned(),
                "BilledCost" => (*cost).to_owned(),
                _ => v.to_owned(),
            })
            .map(|v| {
                if v.contains([',', '"']) {
                    format!("\"{}\"", v.replace('"', "\"\""))
                } else {
                    v
                }
            })
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

#[test]
fn rows_without_a_resource_are_totalled_by_category_not_refused() {
    let statement = with_unattributed(&[("Tax", "0.09"), ("Tax", "0.01"), ("Credit", "-0.05")]);
    let outcome = run(statement.as_bytes(), Tolerance::default());
    assert_eq!(outcome.status, "clean", "{outcome:?}");
    assert_eq!(outcome.statement_rows, 7);
    assert_eq!(
        outcome.unattributed["Tax"],
        CategoryTotal {
            rows: 2,
            cost: "0.10".parse().expect("d")
        }
    );
    assert_eq!(
        outcome.unattributed["Credit"].cost,
        "-0.05".parse::<Decimal>().expect("d")
    );
    // Included in what the member states, so the totals show them.
    assert_eq!(
        outcome.totals.difference,
        "0.05".parse::<Decimal>().expect("d")
    );
    assert_eq!(
        outcome.totals_by_tenant["acme"].difference,
        "0.05".parse::<Decimal>().expect("d")
    );
    // The merge join (the files are sorted: rows without a resource come first there,
    // here last, and a row of no key is never out of order) gives the same report.
    let sorted = reconcile_sorted(
        FocusReader::new(ledger_csv().as_slice()).expect("ledger"),
        FocusReader::new(statement.as_bytes()).expect("statement"),
        Tolerance::default(),
        &HashMap::from([(
            "acme".to_owned(),
            BTreeSet::from(["FR".to_owned(), "BE".to_owned()]),
        )]),
    )
    .expect("merge");
    assert_eq!(sorted, outcome);
}

#[test]
fn usage_without_a_resource_is_a_discrepancy() {
    let statement = with_unattributed(&[("Usage", "1.00")]);
    let outcome = run(statement.as_bytes(), Tolerance::default());
    assert_eq!(outcome.status, "discrepancies");
    assert_eq!(outcome.discrepancies[0].class, "unattributed_usage");
    assert_eq!(outcome.unattributed["Usage"].rows, 1);
}

#[test]
fn the_partitioned_join_agrees_with_the_hash_join_on_files_in_any_order() {
    let text = String::from_utf8(ledger_csv()).expect("utf8");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[1] = lines[1].replacen("0.1,0.1,0.1,0.1", "0.2,0.2,0.2,0.2", 1);
    lines.remove(2);
    lines.push(lines[1].replace("bkt-a", "bkt-zz"));
    // Rows reversed (a member's own order), and a tax that names no resource.
    let header = lines.remove(0);
    lines.reverse();
    lines.insert(0, header);
    let statement =
        with_unattributed(&[("Tax", "0.02")]).replace(&text, &(lines.join("\n") + "\n"));
    let ledger = ledger_csv();
    let allowed = HashMap::from([("acme".to_owned(), BTreeSet::from(["FR".to_owned()]))]);
    let hashed = hash_join(ledger.as_slice(), statement.as_bytes(), &allowed);
    let partitioned_within = |statement: &str, partitions: usize, budget: usize| {
        let dir = tempfile::tempdir().expect("dir");
        let before = super::partition::SPILL_FILES.load(std::sync::atomic::Ordering::Relaxed);
        let outcome = reconcile_partitioned(
            vec![FocusReader::new(ledger.as_slice()).expect("l")],
            vec![FocusReader::new(statement.as_bytes()).expect("s")],
            Tolerance::default(),
            &allowed,
            dir.path(),
            partitions,
            budget,
        );
        let spilled =
            super::partition::SPILL_FILES.load(std::sync::atomic::Ordering::Relaxed) - before;
        // Every spill file is removed once read (after an error the caller removes them).
        if outcome.is_ok() {
            assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
        }
        (outcome, spilled)
    };
    let partitioned =
        |statement: &str, partitions: usize| partitioned_within(statement, partitions, 0).0;
    // Spilled from the first row (budget 0), from a row in the middle, or held in memory.
    let middle = 3 * (std::mem::size_of::<FocusRow>() + 64 + "bkt-a".len());
    for partitions in [1, 3, 64] {
        for (budget, spills) in [(0, true), (middle, true), (usize::MAX, false)] {
            let (outcome, files) = partitioned_within(&statement, partitions, budget);
            assert_eq!(
                outcome.expect("partitioned"),
                hashed,
                "{partitions} partitions, budget {budget}"
            );
            assert_eq!(
                files > 0,
                spills,
                "{partitions} partitions, budget {budget}: {files} files"
            );
        }
    }
    assert_eq!(hashed.discrepancies.len(), 3, "{hashed:?}");
    assert_eq!(hashed.unattributed["Tax"].rows, 1);
    // Each side in several sources (a split file's chunks), held or spilled: the same.
    let halves = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        let middle = lines.len() / 2;
        [&lines[1..middle], &lines[middle..]]
            .map(|part| format!("{}\n{}\n", lines[0], part.join("\n")))
    };
    let ledger_text = String::from_utf8(ledger.clone()).expect("utf8");
    let (ledger_halves, statement_halves) = (halves(&ledger_text), halves(&statement));
    for budget in [0, usize::MAX] {
        let dir = tempfile::tempdir().expect("dir");
        fn sources(halves: &[String; 2]) -> Vec<FocusReader<&[u8]>> {
            halves
                .iter()
                .map(|h| FocusReader::new(h.as_bytes()).expect("half"))
                .collect()
        }
        let outcome = reconcile_partitioned(
            sources(&ledger_halves),
            sources(&statement_halves),
            Tolerance::default(),
            &allowed,
            dir.path(),
            3,
            budget,
        )
        .expect("in sources");
        assert_eq!(outcome, hashed, "budget {budget}");
    }
    // A bad row is named, as by the other joins.
    let err = partitioned(&statement.replacen(",EUR,", ",XYZ,", 1), 4).expect_err("bad");
    assert!(
        matches!(&err, PartitionError::Bad("statement", e) if e.column == "BillingCurrency"),
        "{err:?}"
    );
}

#[test]
fn files_in_other_encodings_are_named_as_such() {
    let utf8 = ledger_csv();
    let text = String::from_utf8(utf8.clone()).expect("utf-8");
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let refused = |bytes: Vec<u8>| {
        FocusReader::new(bytes.as_slice())
            .err()
            .map(|e| e.message)
            .unwrap_or_default()
    };
    for (bytes, expected) in [
        ([vec![0xFF, 0xFE], le.clone()].concat(), "UTF-16LE"),
        ([vec![0xFE, 0xFF], be.clone()].concat(), "UTF-16BE"),
        (le, "UTF-16LE"),
        (be, "UTF-16BE"),
    ] {
        let message = refused(bytes);
        assert!(
            message.contains(expected) && message.contains("iconv"),
            "{message}"
        );
    }
    // Latin-1 in a field: refused at its row, saying what to do.
    let latin1: Vec<u8> = utf8
        .iter()
        .copied()
        .map(|b| if b == b'a' { 0xE9 } else { b })
        .collect();
    let error = FocusReader::new(latin1.as_slice())
        .and_then(|r| r.collect::<Result<Vec<_>, _>>())
        .err()
        .map(|e| e.message)
        .unwrap_or_default();
    assert!(
        error.contains("not UTF-8") && error.contains("LATIN1"),
        "{error}"
    );
    // A UTF-8 file with a byte-order mark is read.
    let with_bom = [vec![0xEF, 0xBB, 0xBF], utf8].concat();
    assert!(FocusReader::new(with_bom.as_slice()).is_ok());
}
