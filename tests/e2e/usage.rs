//! Metering end to end, on both stores: lifecycle transitions feed the usage ledger; usage
//! lists what lived; the FOCUS export has the columns and one row per resource and charge
//! period; tenants see only their own; the CLI export agrees with the API.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeSet;

use alliance_e2e::{cli_for, this_month, Backend, Broker, Options};
use serde_json::json;

async fn metering(backend: Backend) {
    let broker = Broker::start(Options::demo_on(backend).await).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let web = acme
        .create_and_wait(
            "/v1/instances",
            &json!({ "name": "web", "jurisdiction": "FR", "size": "small", "image": "debian-12" }),
        )
        .await;
    let db = acme
        .create_and_wait(
            "/v1/instances",
            &json!({ "name": "db", "jurisdiction": "DE", "size": "large", "image": "debian-12" }),
        )
        .await;
    let data = acme
        .create_and_wait(
            "/v1/volumes",
            &json!({ "name": "data", "jurisdiction": "BE", "size_gb": 40 }),
        )
        .await;
    // Usage counts whole seconds: each resource lives past a second's boundary first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let op = acme
        .delete(&format!("/v1/instances/{}", web["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(
        acme.wait_operation(op["id"].as_str().unwrap()).await["status"],
        "succeeded"
    );
    let period = this_month();

    let usage = acme.get(&format!("/v1/usage?period={period}")).await.json();
    let ids: BTreeSet<&str> = usage["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["resource_id"].as_str().unwrap())
        .collect();
    for resource in [&web, &db, &data] {
        assert!(ids.contains(resource["id"].as_str().unwrap()), "{usage}");
    }
    let line = |id: &serde_json::Value| {
        usage["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| &l["resource_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(line(&db["id"])["sku"], "instance.large");
    assert_eq!(line(&db["id"])["unit_price"], "0.0640");
    assert_eq!(line(&data["id"])["sku"], "volume.gb");
    assert_eq!(line(&data["id"])["unit"], "GB-Hours");
    let web_hours: f64 = line(&web["id"])["consumed_hours"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        web_hours > 0.0 && web_hours < 0.1,
        "the deleted instance stopped being metered: {web_hours}"
    );
    assert_eq!(usage["totals"].as_array().unwrap().len(), 3);

    let export = acme.get(&format!("/v1/usage/export?period={period}")).await;
    assert_eq!(export.status, 200);
    assert!(export
        .header("content-type")
        .unwrap()
        .starts_with("text/csv"));
    let mut reader = csv_reader(&export.bytes);
    let headers: Vec<String> = reader.0.clone();
    assert_eq!(headers, alliance_core::focus::COLUMNS.to_vec());
    let rows = reader.1.len();
    let keys: BTreeSet<(String, String)> = reader
        .1
        .drain(..)
        .map(|r| (r[21].clone(), r[9].clone()))
        .collect();
    assert_eq!(keys.len(), rows, "one row per resource and charge period");

    // Tenants see only their own; billing sees everyone and may filter.
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    assert_eq!(
        sante
            .get(&format!("/v1/usage?period={period}"))
            .await
            .json()["lines"],
        json!([])
    );
    sante
        .get_problem(
            &format!("/v1/usage?period={period}&tenant=acme"),
            404,
            "resource.not_found",
        )
        .await;
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));
    let all = billing
        .get(&format!("/v1/usage?period={period}&member=telekom-de"))
        .await
        .json();
    assert_eq!(
        all["lines"].as_array().unwrap().len(),
        all["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["member"] == "telekom-de")
            .count()
    );
    acme.get_problem("/v1/usage?period=2026-13", 400, "validation.invalid_query")
        .await;
    let partner =
        broker.client(&broker.token_with(&["--role", "partner", "--member", "numergy-fr"]));
    partner
        .get_problem(&format!("/v1/usage?period={period}"), 403, "auth.forbidden")
        .await;

    // The CLI export lists the same lines.
    let out = cli_for(
        &broker,
        &["usage", "export", "--period", &period, "--tenant", "acme"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli = csv_reader(&out.stdout);
    let cli_keys: BTreeSet<(String, String)> = cli
        .1
        .iter()
        .map(|r| (r[21].clone(), r[9].clone()))
        .collect();
    assert_eq!(cli_keys, keys);
}

fn csv_reader(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut lines = text.lines();
    let headers = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    // Only the leading columns are read by these tests; they never hold quoted commas.
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    (headers, rows)
}

#[tokio::test(flavor = "multi_thread")]
async fn metering_on_sqlite() {
    metering(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metering_on_postgres() {
    metering(Backend::Postgres).await;
}

/// Members keep their own books: the simulated member's statement, metered by its own
/// clock and rated with its prices, lists what the broker placed there; a partner reads
/// its own member's statement only; member-sim serves one over the protocol.
#[tokio::test(flavor = "multi_thread")]
async fn members_publish_their_own_statements() {
    let broker = Broker::start(Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let bucket = acme.create_bucket("stated", "BE").await;
    let period = this_month();
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));
    // Usage counts whole seconds: the bucket lives past a second's boundary first.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let statement = billing
        .get(&format!("/v1/members/belgacom-be/statements/{period}"))
        .await;
    statement.assert_status(200);
    let text = String::from_utf8(statement.bytes).unwrap();
    assert!(text.starts_with("BilledCost,EffectiveCost"), "{text}");
    assert!(text.contains(bucket["id"].as_str().unwrap()), "{text}");
    assert!(
        text.contains(",0.0018,"),
        "rated with the member's bucket price: {text}"
    );
    let partner =
        broker.client(&broker.token_with(&["--role", "partner", "--member", "belgacom-be"]));
    assert_eq!(
        partner
            .get(&format!("/v1/members/belgacom-be/statements/{period}"))
            .await
            .status,
        200
    );
    partner
        .get_problem(
            &format!("/v1/members/numergy-fr/statements/{period}"),
            404,
            "resource.not_found",
        )
        .await;
    acme.get_problem(
        &format!("/v1/members/belgacom-be/statements/{period}"),
        403,
        "auth.forbidden",
    )
    .await;
    // A partner that also holds a tenant role still sees only its own member's statement.
    let mixed = broker.client(&broker.token_with(&[
        "--role",
        "partner",
        "--role",
        "tenant-user",
        "--member",
        "numergy-fr",
        "--tenant",
        "acme",
    ]));
    mixed
        .get_problem(
            &format!("/v1/members/belgacom-be/statements/{period}"),
            404,
            "resource.not_found",
        )
        .await;

    let member = alliance_e2e::MemberSim::start("stmt-lu", "LU", 0, None).await;
    let http = reqwest::Client::new();
    let created = http
        .put(format!("{}/federation/v1/resources/bkt-stmt", member.url))
        .json(&json!({ "resource_type": "bucket", "name": "b", "tenant": "acme", "jurisdiction": "LU", "data_class": "standard" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // A resource is metered in whole seconds from the moment it is active: give it one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let csv = http
        .get(format!("{}/federation/v1/statements/{period}", member.url))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.contains("bkt-stmt"), "{csv}");
}
