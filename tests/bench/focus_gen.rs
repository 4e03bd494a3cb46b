//! `alliance-focus-gen ROWS DIR`: writes DIR/ledger.csv and DIR/statement.csv, realistic
//! FOCUS files of about ROWS rows each (buckets, instances and volumes billed per day over a
//! month), sorted by (ResourceId, SkuId, ChargePeriodStart) as the broker writes them. The
//! statement differs on purpose: one cost in 1,000 changed, one row in 1,500 missing, one
//! unknown resource in 2,000. For `scripts/bench` (not a test).
#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark generator"
)]

use std::io::{BufWriter, Write};

const HEADER: &str = "BilledCost,EffectiveCost,ListCost,ContractedCost,BillingAccountId,BillingAccountName,BillingCurrency,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeClass,ChargeDescription,PricingQuantity,PricingUnit,ProviderName,PublisherName,InvoiceIssuerName,ServiceName,ServiceCategory,ResourceId,ResourceName,ResourceType,RegionId,SkuId,SubAccountId,ConsumedQuantity,ConsumedUnit,ListUnitPrice,Tags";

fn row(out: &mut impl Write, id: &str, i: u64, day: u32, cost: &str) {
    let (kind, sku, price, service, category) = match i % 3 {
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
    writeln!(
        out,
        "{cost},{cost},{cost},{cost},{tenant},{tenant},EUR,2026-11-01T00:00:00Z,2026-12-01T00:00:00Z,2026-11-{day:02}T00:00:00Z,2026-11-{next:02}T00:00:00Z,Usage,,{sku} in FR,24,Hours,Numergy,Numergy,Numergy,{service},{category},{id},res-{i},{kind},FR,{sku},{tenant},24,Hours,{price},\"{{\"\"alliance/tenant\"\":\"\"{tenant}\"\",\"\"alliance/jurisdiction\"\":\"\"FR\"\"}}\"",
        next = day + 1
    )
    .unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: u64 = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(args.get(2).cloned().unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ledger = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(dir.join("ledger.csv")).unwrap(),
    );
    let mut statement = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(dir.join("statement.csv")).unwrap(),
    );
    writeln!(ledger, "{HEADER}").unwrap();
    writeln!(statement, "{HEADER}").unwrap();
    let days = 29u32;
    let resources = rows / u64::from(days);
    let mut n = 0u64;
    for i in 0..resources {
        let id = format!("res-{i:010}");
        for day in 1..=days {
            n += 1;
            let cost = format!("{}.{:06}", i % 7, (i * 31 + u64::from(day)) % 1_000_000);
            row(&mut ledger, &id, i, day, &cost);
            if n.is_multiple_of(1500) {
                continue; // missing at the member
            }
            let stated = if n.is_multiple_of(1000) {
                format!("{}.5", i % 7 + 1)
            } else {
                cost
            };
            row(&mut statement, &id, i, day, &stated);
        }
        if i.is_multiple_of((2000 / u64::from(days)).max(1)) {
            // A resource the broker never placed, sorting right after this one.
            row(&mut statement, &format!("{id}~rogue"), i, 1, "1.000000");
        }
    }
    ledger.flush().unwrap();
    statement.flush().unwrap();
    println!("{n} ledger rows in {}", dir.display());
}
