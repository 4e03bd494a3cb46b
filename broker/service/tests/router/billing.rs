//! Billing through the API: usage metered from the ledger, the FOCUS export, statements
//! and reconciliation, each for the roles that may see them.

use axum::body::Body;
use axum::http::{header, Method};
use serde_json::json;

use crate::support::{Actor, TestApp};

fn this_month(app: &TestApp) -> String {
    alliance_service::time::rfc3339(app.state.clock.now_ms())[..7].to_owned()
}

/// Creates and deletes a volume in France, so that its usage span is closed.
async fn a_finished_volume(app: &TestApp) -> String {
    let op = app
        .call(
            Actor::TenantA,
            Method::POST,
            "/v1/volumes",
            Some(json!({"name": "scratch", "jurisdiction": "FR", "size_gb": 20})),
        )
        .await
        .ok(202);
    app.settle(Actor::TenantA, op["id"].as_str().expect("id"))
        .await;
    let id = op["resource_id"].as_str().expect("id").to_owned();
    // Usage counts whole seconds: the volume lives past a second's boundary first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let delete = app
        .call(
            Actor::TenantA,
            Method::DELETE,
            &format!("/v1/volumes/{id}"),
            None,
        )
        .await
        .ok(202);
    app.settle(Actor::TenantA, delete["id"].as_str().expect("id"))
        .await;
    id
}

async fn put_statement(
    app: &TestApp,
    actor: Actor,
    member: &str,
    period: &str,
    csv: String,
) -> crate::support::Reply {
    let request = app
        .request(
            actor,
            Method::PUT,
            &format!("/v1/members/{member}/statements/{period}"),
        )
        .header(header::CONTENT_TYPE, "text/csv");
    app.raw(request.body(Body::from(csv)).expect("request"))
        .await
}

#[tokio::test]
async fn usage_is_metered_per_tenant_and_exported_as_focus() {
    let app = TestApp::start().await;
    let volume = a_finished_volume(&app).await;
    let period = this_month(&app);
    let usage = app
        .call(
            Actor::TenantA,
            Method::GET,
            &format!("/v1/usage?period={period}"),
            None,
        )
        .await
        .ok(200);
    let lines = usage["lines"].as_array().expect("lines");
    assert!(!lines.is_empty());
    assert!(lines
        .iter()
        .all(|l| l["resource_id"] == volume.as_str() && l["member"] == "numergy-fr"));
    // Santé Plus sees none of it, and cannot ask for Acme's.
    let theirs = app
        .call(
            Actor::TenantB,
            Method::GET,
            &format!("/v1/usage?period={period}"),
            None,
        )
        .await
        .ok(200);
    assert_eq!(theirs["lines"], json!([]));
    let asked = app
        .call(
            Actor::TenantB,
            Method::GET,
            &format!("/v1/usage?period={period}&tenant=acme"),
            None,
        )
        .await;
    assert!(asked.status == 404 || asked.status == 403, "{}", asked.text);
    let export = app
        .call(
            Actor::Billing,
            Method::GET,
            &format!("/v1/usage/export?period={period}"),
            None,
        )
        .await;
    assert_eq!(export.status, 200);
    let header_line = export.text.lines().next().expect("header");
    for column in [
        "BilledCost",
        "BillingCurrency",
        "ChargePeriodStart",
        "ResourceId",
        "SubAccountId",
        "Tags",
    ] {
        assert!(header_line.contains(column), "{header_line}");
    }
    assert!(export.text.contains(&volume));
    app.call(
        Actor::Billing,
        Method::GET,
        "/v1/usage?period=2026-13",
        None,
    )
    .await
    .problem(400, "validation.invalid_query");
    app.call(
        Actor::Billing,
        Method::GET,
        &format!("/v1/usage/export?period={period}&format=xml"),
        None,
    )
    .await
    .problem(400, "validation.invalid_query");
}

#[tokio::test]
async fn an_honest_statement_reconciles_clean_and_a_padded_one_does_not() {
    let app = TestApp::start().await;
    a_finished_volume(&app).await;
    let period = this_month(&app);
    let ledger = app
        .call(
            Actor::Billing,
            Method::GET,
            &format!("/v1/usage/export?period={period}&member=numergy-fr"),
            None,
        )
        .await;
    assert_eq!(ledger.status, 200);
    // This month's rows are not a statement for another month: refused, naming the row.
    let problem = put_statement(
        &app,
        Actor::Partner,
        "numergy-fr",
        "2001-01",
        ledger.text.clone(),
    )
    .await
    .problem(422, "statement.invalid");
    assert_eq!(
        (problem["row"].as_u64(), problem["column"].as_str()),
        (Some(1), Some("ChargePeriodStart")),
        "{problem}"
    );
    put_statement(
        &app,
        Actor::Partner,
        "numergy-fr",
        &period,
        ledger.text.clone(),
    )
    .await;
    let request = json!({"period": period, "member": "numergy-fr"});
    let clean = app
        .call(
            Actor::Billing,
            Method::POST,
            "/v1/reconciliations",
            Some(request.clone()),
        )
        .await
        .ok(201);
    assert_eq!(clean["status"], "clean", "{clean}");
    assert_eq!(clean["statement_source"], "uploaded");
    let stored = app
        .call(
            Actor::Operator,
            Method::GET,
            &format!("/v1/reconciliations/{}", clean["id"].as_str().expect("id")),
            None,
        )
        .await
        .ok(200);
    assert_eq!(stored, clean);

    // The member bills one line twice: a discrepancy, named.
    let mut padded = ledger.text.clone();
    let last = ledger.text.lines().last().expect("a line").to_owned();
    padded.push_str(&last);
    padded.push('\n');
    let stored = put_statement(&app, Actor::Billing, "numergy-fr", &period, padded).await;
    assert_eq!(stored.status, 204, "{}", stored.text);
    // (The line is a second or two of usage: within the default clock-skew allowance of
    // 2 × 5 s, twice it would pass; without that allowance it is found.)
    let mut strict = request;
    strict["tolerance_clock_skew_seconds"] = json!(0);
    let report = app
        .call(
            Actor::Billing,
            Method::POST,
            "/v1/reconciliations",
            Some(strict),
        )
        .await
        .ok(201);
    assert_eq!(report["status"], "discrepancies", "{report}");
}

#[tokio::test]
async fn statements_are_checked_and_books_are_for_billing() {
    let app = TestApp::start().await;
    let period = this_month(&app);
    let problem = put_statement(
        &app,
        Actor::Partner,
        "numergy-fr",
        &period,
        "not,a,focus\nfile".into(),
    )
    .await
    .problem(422, "statement.invalid");
    assert!(problem["detail"]
        .as_str()
        .expect("detail")
        .contains("FOCUS"));
    // A partner uploads for its own member only; tenants never.
    put_statement(&app, Actor::Partner, "belgacom-be", &period, String::new())
        .await
        .problem(404, "resource.not_found");
    put_statement(&app, Actor::TenantA, "numergy-fr", &period, String::new())
        .await
        .problem(403, "auth.forbidden");
    app.call(
        Actor::TenantA,
        Method::POST,
        "/v1/reconciliations",
        Some(json!({"period": period, "member": "numergy-fr"})),
    )
    .await
    .problem(403, "auth.forbidden");
    app.call(
        Actor::Billing,
        Method::POST,
        "/v1/reconciliations",
        Some(json!({"period": period, "member": "nobody"})),
    )
    .await
    .problem(422, "validation.invalid_field");
    app.call(
        Actor::Billing,
        Method::POST,
        "/v1/reconciliations",
        Some(json!({"period": period, "member": "numergy-fr", "tolerance_absolute": "-1"})),
    )
    .await
    .problem(422, "validation.invalid_field");
}

#[tokio::test]
async fn invoices_are_in_the_tenants_currency_and_agree_with_the_ledger() {
    let app = TestApp::start().await;
    a_finished_volume(&app).await;
    let period = this_month(&app);
    let path = format!("/v1/invoices?period={period}");
    let eur = app
        .call(Actor::TenantA, Method::GET, &path, None)
        .await
        .ok(200);
    assert_eq!(eur["tenant"], "acme");
    assert_eq!(eur["currency"], "EUR");
    assert_eq!(
        eur["rates"]["date"],
        serde_json::Value::Null,
        "nothing converted: {eur}"
    );
    let line = &eur["lines"][0];
    assert_eq!(
        (line["member"].as_str(), line["member_currency"].as_str()),
        (Some("numergy-fr"), Some("EUR")),
        "{eur}"
    );
    // Others' invoices are not a tenant's to read; billing names the tenant.
    app.call(
        Actor::TenantA,
        Method::GET,
        &format!("{path}&tenant=santeplus"),
        None,
    )
    .await
    .problem(404, "resource.not_found");
    app.call(Actor::Billing, Method::GET, &path, None)
        .await
        .problem(400, "validation.invalid_query");
    app.call(
        Actor::Billing,
        Method::GET,
        &format!("{path}&tenant=acme"),
        None,
    )
    .await
    .ok(200);

    // In francs: converted on the bundled reference rates, the day said.
    app.call(
        Actor::Operator,
        Method::PATCH,
        "/v1/tenants/acme",
        Some(json!({"billing_currency": "CHF"})),
    )
    .await
    .ok(200);
    app.call(
        Actor::Operator,
        Method::PATCH,
        "/v1/tenants/acme",
        Some(json!({"billing_currency": "XYZ"})),
    )
    .await
    .problem(422, "validation.invalid_field");
    let chf = app
        .call(Actor::TenantA, Method::GET, &path, None)
        .await
        .ok(200);
    assert_eq!(chf["currency"], "CHF");
    assert_eq!(chf["rates"]["source"], "reference-rates.csv", "{chf}");
    assert!(chf["rates"]["date"].is_string(), "{chf}");
    assert_eq!(chf["lines"][0]["member_amount"], line["member_amount"]);
    let total: rust_decimal::Decimal = chf["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            l["amount"]
                .as_str()
                .expect("amount")
                .parse::<rust_decimal::Decimal>()
                .expect("decimal")
        })
        .sum();
    assert_eq!(
        chf["total"]
            .as_str()
            .expect("total")
            .parse::<rust_decimal::Decimal>()
            .expect("d"),
        total
    );

    // The reconciliation report checks the invoices against the ledger.
    let report = app
        .call(
            Actor::Billing,
            Method::POST,
            "/v1/reconciliations",
            Some(json!({"period": period, "member": "numergy-fr"})),
        )
        .await
        .ok(201);
    assert_eq!(report["invoices"]["holds"], true, "{report}");
    assert_eq!(report["invoices"]["invoiced"], report["invoices"]["ledger"]);
}
