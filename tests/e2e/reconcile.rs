//! Reconciliation end to end: a member's own statement reconciles clean; a statement with a
//! cost changed, a row removed and an unknown resource added yields the three classes
//! naming the resources; tenants cannot reconcile; the CLI's exit codes.
//! The export and a member's statement pass the FinOps Foundation's FOCUS validator
//! (`scripts/peers install-focus`, named by `ALLIANCE_TEST_FOCUS_VALIDATOR`; without it the
//! test fails loudly).
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::process::Command;

use alliance_e2e::{bin, scratch, this_month, Broker, Options};
use serde_json::json;

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_reconcile_and_discrepancies_are_named() {
    let broker = Broker::start(Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let a = acme.create_bucket("a", "FR").await;
    let b = acme.create_bucket("b", "FR").await;
    let c = acme
        .create_and_wait(
            "/v1/instances",
            &json!({ "name": "c", "jurisdiction": "FR", "size": "small", "image": "debian-12" }),
        )
        .await;
    // Usage counts whole seconds: every resource lives past a second's boundary first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let period = this_month();
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));

    // The member's own statement (its clock, its prices) reconciles clean with the default
    // tolerance: both sides meter by the shared rule, on the member's own start times.
    let request = json!({ "period": period, "member": "numergy-fr" });
    let clean = billing.post("/v1/reconciliations", &request).await;
    clean.assert_status(201);
    let clean = clean.json();
    assert_eq!(clean["status"], "clean", "{clean}");
    assert_eq!(clean["tolerance"]["clock_skew_seconds"], 5, "{clean}");
    assert_eq!(clean["statement_source"], "member");
    assert_eq!(
        billing
            .get(&format!(
                "/v1/reconciliations/{}",
                clean["id"].as_str().unwrap()
            ))
            .await
            .json(),
        clean
    );

    // A statement with a cost changed, a row removed and an unknown resource added.
    let statement = String::from_utf8(
        billing
            .get(&format!("/v1/members/numergy-fr/statements/{period}"))
            .await
            .bytes,
    )
    .unwrap();
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let mut lines: Vec<String> = Vec::new();
    for line in statement.lines() {
        if line.contains(b_id) {
            continue;
        }
        if line.contains(c["id"].as_str().unwrap()) {
            // 36 s more than the broker metered: beyond twice the 5 s the clocks may differ.
            let mut fields: Vec<String> = line.split(',').map(str::to_owned).collect();
            let more = fields[14].parse::<rust_decimal::Decimal>().unwrap()
                + rust_decimal::Decimal::new(1, 2);
            fields[14] = more.to_string();
            lines.push(fields.join(","));
            continue;
        }
        if line.contains(a_id) {
            // One cent more.
            let fields: Vec<&str> = line.splitn(5, ',').collect();
            let cost = fields[0].parse::<rust_decimal::Decimal>().unwrap()
                + rust_decimal::Decimal::new(1, 2);
            lines.push(format!("{cost},{cost},{cost},{cost},{}", fields[4]));
            lines.push(line.replace(a_id, "bkt-nobody-knows"));
            continue;
        }
        lines.push(line.to_owned());
    }
    let tampered = lines.join("\n") + "\n";
    let partner =
        broker.client(&broker.token_with(&["--role", "partner", "--member", "numergy-fr"]));
    let upload = partner
        .send(
            reqwest::Method::PUT,
            &format!("/v1/members/numergy-fr/statements/{period}"),
            None,
            &[("content-type", "text/csv")],
        )
        .await;
    assert_eq!(upload.status, 422, "an empty body is not a statement");
    let stored = reqwest::Client::new()
        .put(format!(
            "{}/v1/members/numergy-fr/statements/{period}",
            broker.url
        ))
        .bearer_auth(broker.token_with(&["--role", "partner", "--member", "numergy-fr"]))
        .header("content-type", "text/csv")
        .body(tampered.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), 204);
    let report = billing.post("/v1/reconciliations", &request).await.json();
    assert_eq!(report["status"], "discrepancies");
    assert_eq!(report["statement_source"], "uploaded");
    let found: Vec<(String, String)> = report["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["class"].as_str().unwrap().to_owned(),
                d["resource_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        found.contains(&("amount_mismatch".into(), a_id.into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("missing_at_member".into(), b_id.into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("quantity_mismatch".into(), c["id"].as_str().unwrap().into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("unexpected_at_member".into(), "bkt-nobody-knows".into())),
        "{found:?}"
    );

    // Bad uploads name the row and column and change nothing; tenants cannot reconcile.
    let garbage = tampered.replacen(",EUR,", ",XYZ,", 1);
    let refused = reqwest::Client::new()
        .put(format!(
            "{}/v1/members/numergy-fr/statements/{period}",
            broker.url
        ))
        .bearer_auth(broker.token_with(&["--role", "billing"]))
        .header("content-type", "text/csv")
        .body(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "statement.invalid");
    assert_eq!(problem["column"], "BillingCurrency");
    acme.post_problem("/v1/reconciliations", &request, 403, "auth.forbidden")
        .await;
    partner
        .send(
            reqwest::Method::PUT,
            &format!("/v1/members/belgacom-be/statements/{period}"),
            None,
            &[],
        )
        .await
        .assert_problem(404, "resource.not_found");

    // The CLI, offline: equal files exit 0, discrepancies 1, missing or garbage files 2.
    let dir = scratch("reconcile");
    let ledger = dir.join("ledger.csv");
    std::fs::write(
        &ledger,
        billing
            .get(&format!(
                "/v1/usage/export?period={period}&member=numergy-fr"
            ))
            .await
            .bytes,
    )
    .unwrap();
    let tampered_file = dir.join("tampered.csv");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let l = ledger.to_str().unwrap();
    let (code, out, err) = cli(&["reconcile", "--ledger", l, "--statement", l]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"clean\""));
    let (code, out, _) = cli(&[
        "reconcile",
        "--ledger",
        l,
        "--statement",
        tampered_file.to_str().unwrap(),
        "--tolerance-absolute",
        "0.01",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 1);
    assert!(out.starts_with("class,resource_id"), "{out}");
    assert!(
        out.contains("unexpected_at_member,bkt-nobody-knows"),
        "{out}"
    );
    let (code, _, err) = cli(&[
        "reconcile",
        "--ledger",
        l,
        "--statement",
        dir.join("missing.csv").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.csv"), "{err}");
    let garbage_file = dir.join("garbage.csv");
    std::fs::write(&garbage_file, b"\x00\xff\xfe not a csv at all").unwrap();
    let (code, _, err) = cli(&[
        "reconcile",
        "--ledger",
        l,
        "--statement",
        garbage_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("garbage.csv"), "{err}");
}

/// Statements are larger than other request bodies: they have their own limit
/// (`server.statement_limit_bytes`), over the general `server.body_limit_bytes`.
#[tokio::test(flavor = "multi_thread")]
async fn statements_larger_than_other_bodies_are_accepted_up_to_their_own_limit() {
    let mut options = Options::demo();
    options.config = options.config.replacen(
        "[server]\n",
        "[server]\nbody_limit_bytes = 65536\nstatement_limit_bytes = 2097152\n",
        1,
    );
    let broker = Broker::start(options).await;
    let period = this_month();
    // A valid statement of about 1 MiB: the member's own header and synthetic rows.
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));
    let own = String::from_utf8(
        billing
            .get(&format!("/v1/members/numergy-fr/statements/{period}"))
            .await
            .bytes,
    )
    .unwrap();
    let header = own.lines().next().unwrap().to_owned();
    let columns: Vec<&str> = header.split(',').collect();
    let row = |i: usize| -> String {
        columns
            .iter()
            .map(|c| match *c {
                "BilledCost" | "EffectiveCost" | "ListCost" | "ContractedCost" => "0.01".to_owned(),
                "PricingQuantity" | "ConsumedQuantity" => "1".to_owned(),
                "BillingCurrency" => "EUR".to_owned(),
                "ChargePeriodStart" => format!("{period}-01T00:00:00Z"),
                "ChargePeriodEnd" => format!("{period}-02T00:00:00Z"),
                "ResourceId" => format!("bkt-synthetic-{i:06}"),
                "SkuId" => "bucket".to_owned(),
                "RegionId" => "FR".to_owned(),
                "SubAccountId" => "acme".to_owned(),
                _ => "x".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let statement = |rows: usize| {
        let mut text = header.clone();
        for i in 0..rows {
            text.push('\n');
            text.push_str(&row(i));
        }
        text.push('\n');
        text
    };
    let put = |body: String| {
        let url = format!("{}/v1/members/numergy-fr/statements/{period}", broker.url);
        let token = broker.token_with(&["--role", "billing"]);
        async move {
            reqwest::Client::new()
                .put(url)
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let one_mib = statement(1024 * 1024 / (row(0).len() + 1));
    assert!(one_mib.len() > 65536 * 8);
    assert_eq!(put(one_mib).await.status(), 204);
    // Over the statement limit: 413 problem, nothing stored.
    let three_mib = statement(3 * 1024 * 1024 / (row(0).len() + 1));
    let refused = put(three_mib).await;
    assert_eq!(refused.status(), 413);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "request.too_large");
    // Other routes keep the general limit.
    let big_json = serde_json::json!({ "name": "x".repeat(70_000), "jurisdiction": "FR" });
    broker
        .client(&broker.token("tenant-admin", Some("acme")))
        .post_problem("/v1/buckets", &big_json, 413, "request.too_large")
        .await;
}

/// The failures the FinOps Foundation's validator reports in `report` (its JUnit XML), each
/// as `rule :: check`, without the allow-listed `InvoiceId-C-004-C`: that rule says every
/// InvoiceId MUST be null while `InvoiceId-C-005-C` says an invoiced charge's MUST NOT be,
/// and it fails on the Foundation's own sample files too.
fn validator_failures(report: &str) -> Vec<String> {
    let mut failures = Vec::new();
    for case in report.split("<testcase ").skip(1) {
        let case = case.split("</testcase>").next().unwrap_or(case);
        if !(case.contains("<failure") || case.contains("<error")) {
            continue;
        }
        let name = case
            .split("name=\"")
            .nth(1)
            .and_then(|n| n.split('"').next())
            .unwrap_or("?")
            .to_owned();
        if !name.starts_with("InvoiceId-C-004-C ") {
            failures.push(name);
        }
    }
    failures
}

/// Runs focus-validator 2.2.1 (installed by `scripts/peers install-focus` in the directory
/// `ALLIANCE_TEST_FOCUS_VALIDATOR` names) on `file`; its JUnit report.
fn focus_validator(file: &std::path::Path) -> String {
    let dir = std::env::var("ALLIANCE_TEST_FOCUS_VALIDATOR").unwrap_or_else(|_| {
        panic!("ALLIANCE_TEST_FOCUS_VALIDATOR is not set: run scripts/test, which installs the FinOps Foundation's validator")
    });
    let dir = std::path::Path::new(&dir);
    let report = file.with_extension("xml");
    let out = Command::new(dir.join("bin/focus-validator"))
        .current_dir(dir.join("work"))
        .args(["--data-file", file.to_str().unwrap()])
        .args(["--validate-version", "1.2", "--block-download"])
        .args(["--output-type", "unittest", "--output-destination"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(&report).unwrap();
    // It exits 0 even when rules fail: the report says how many ran.
    assert!(xml.contains("tests=\"578\""), "{xml:.400}");
    xml
}

#[tokio::test(flavor = "multi_thread")]
async fn the_export_and_a_members_statement_pass_the_finops_foundations_validator() {
    let broker = Broker::start(Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    for (name, jurisdiction, size) in [
        ("web", "FR", "small"),
        ("=HYPERLINK(\"http://x\")", "BE", "medium"),
        ("db", "FR", "large"),
    ] {
        acme.create_and_wait(
            "/v1/instances",
            &json!({ "name": name, "jurisdiction": jurisdiction, "size": size, "image": "debian-12" }),
        )
        .await;
    }
    acme.create_and_wait(
        "/v1/volumes",
        &json!({ "name": "data", "jurisdiction": "FR", "size_gb": 10 }),
    )
    .await;
    acme.create_bucket("logs", "FR").await;
    // A member billing in francs: the export then holds two currencies.
    acme.create_bucket("archive", "CH").await;
    // Usage counts whole seconds: every resource lives past a second's boundary first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let period = this_month();
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));
    let dir = scratch("focus-validator");

    let export = billing
        .get(&format!("/v1/usage/export?period={period}"))
        .await
        .bytes;
    let text = String::from_utf8(export.to_vec()).unwrap();
    assert!(
        text.contains(",\"'=HYPERLINK"),
        "a formula-like name is neutralised: {text}"
    );
    let export_file = dir.join("export.csv");
    std::fs::write(&export_file, &export).unwrap();
    let report = focus_validator(&export_file);
    assert_eq!(validator_failures(&report), Vec::<String>::new(), "export");

    let statement = billing
        .get(&format!("/v1/members/numergy-fr/statements/{period}"))
        .await
        .bytes;
    let statement_file = dir.join("numergy-fr.csv");
    std::fs::write(&statement_file, &statement).unwrap();
    let report = focus_validator(&statement_file);
    // The tenant's invoice, from the CLI and the API alike. While resources run their
    // usage grows by the second between the two reads: delete them first, so that both
    // read the same finished usage.
    for collection in ["/v1/instances", "/v1/volumes", "/v1/buckets"] {
        let listed = acme.get(&format!("{collection}?limit=500")).await.json();
        for resource in listed["items"].as_array().unwrap() {
            acme.delete_and_wait(collection, resource["id"].as_str().unwrap())
                .await;
        }
    }
    let out = alliance_e2e::cli_for(
        &broker,
        &["invoice", "--period", &period, "--tenant", "acme"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_api = acme
        .get(&format!("/v1/invoices?period={period}"))
        .await
        .json();
    assert_eq!(
        from_cli["lines"], from_api["lines"],
        "{from_cli} {from_api}"
    );
    assert_eq!(from_api["currency"], "EUR");
    let out = alliance_e2e::cli_for(
        &broker,
        &[
            "invoice", "--period", &period, "--tenant", "acme", "--format", "csv",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("member,jurisdiction,sku,quantity,unit,amount,currency"));
    assert_eq!(
        validator_failures(&report),
        Vec::<String>::new(),
        "statement"
    );

    // The check itself can fail: a file without the recommended columns does.
    let trimmed: String = text
        .lines()
        .map(|l| {
            let mut fields: Vec<&str> = l.split(',').collect();
            fields.truncate(fields.len().saturating_sub(3));
            fields.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n");
    let trimmed_file = dir.join("trimmed.csv");
    std::fs::write(&trimmed_file, trimmed).unwrap();
    let failures = validator_failures(&focus_validator(&trimmed_file));
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("CostAndUsage-D-027-O")),
        "{failures:?}"
    );
}

/// The CHF rate per euro on `day`, from the demo's reference rates.
fn chf_per_euro(day: &str) -> rust_decimal::Decimal {
    let mut lines = alliance_e2e::REFERENCE_RATES.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').map(str::trim).collect();
    let column = header.iter().position(|c| *c == "CHF").unwrap();
    let row = lines
        .find(|l| l.starts_with(day))
        .unwrap_or_else(|| panic!("no rates on {day}"));
    row.split(',').nth(column).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_billing_in_francs_reconciles_clean_and_is_invoiced_in_euros() {
    use rust_decimal::{Decimal, RoundingStrategy};
    let broker = Broker::start(Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let bucket = acme.create_bucket("zurich", "CH").await;
    assert_eq!(bucket["member"], "infomaniak-ch");
    acme.create_and_wait(
        "/v1/instances",
        &json!({ "name": "bern", "jurisdiction": "CH", "size": "medium", "image": "debian-12" }),
    )
    .await;
    acme.create_bucket("paris", "FR").await;
    // Usage counts whole seconds: every resource lives past a second's boundary first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let period = this_month();
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));

    // The member's own statement, in francs, reconciles clean; the three-way check holds.
    let report = billing
        .post(
            "/v1/reconciliations",
            &json!({ "period": period, "member": "infomaniak-ch" }),
        )
        .await
        .json();
    assert_eq!(report["status"], "clean", "{report}");
    assert_eq!(report["invoices"]["member_currency"], "CHF", "{report}");
    assert_eq!(report["invoices"]["holds"], true, "{report}");
    assert_eq!(report["invoices"]["invoiced"], report["invoices"]["ledger"]);

    // The export keeps each member's currency.
    let export = billing
        .get(&format!("/v1/usage/export?period={period}"))
        .await
        .text();
    let chf_rows = export
        .lines()
        .filter(|l| l.contains("infomaniak-ch"))
        .count();
    assert!(chf_rows >= 2, "{export}");
    assert!(export
        .lines()
        .filter(|l| l.contains("infomaniak-ch"))
        .all(|l| l.contains(",CHF,")));
    assert!(export
        .lines()
        .any(|l| l.contains("numergy-fr") && l.contains(",EUR,")));

    // The tenant's invoice is in euros: franc lines converted on the rate date it names,
    // each rounded half-even to the cent; the euro line as billed.
    let invoice = acme
        .get(&format!("/v1/invoices?period={period}"))
        .await
        .json();
    assert_eq!(invoice["currency"], "EUR", "{invoice}");
    let day = invoice["rates"]["date"].as_str().unwrap().to_owned();
    assert_eq!(day.len(), 10, "{invoice}");
    assert!(
        invoice["rates"]["source"]
            .as_str()
            .unwrap()
            .contains("reference-rates"),
        "{invoice}"
    );
    let rate = chf_per_euro(&day);
    let mut total = Decimal::ZERO;
    let mut francs = 0;
    for line in invoice["lines"].as_array().unwrap() {
        let amount: Decimal = line["amount"].as_str().unwrap().parse().unwrap();
        let member_amount: Decimal = line["member_amount"].as_str().unwrap().parse().unwrap();
        total += amount;
        if line["member"] == "infomaniak-ch" {
            francs += 1;
            assert_eq!(line["member_currency"], "CHF", "{line}");
            assert_eq!(line["jurisdiction"], "CH");
            let expected = (member_amount / rate)
                .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven);
            assert_eq!(amount, expected, "{line} at {rate} CHF per EUR");
        } else {
            assert_eq!(line["member_currency"], "EUR", "{line}");
            assert_eq!(
                amount,
                member_amount.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
            );
        }
    }
    assert_eq!(francs, 2, "{invoice}");
    let stated: Decimal = invoice["total"].as_str().unwrap().parse().unwrap();
    assert_eq!(stated, total);
    assert!(
        invoice["subtotals_by_jurisdiction"]["CH"].is_string(),
        "{invoice}"
    );
}
