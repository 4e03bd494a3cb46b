//! The audit log end to end, on both stores: provisioning leaves hash-chained events that
//! `GET /v1/audit` lists and filters, and `alliance audit verify` detects a row changed
//! directly in the database (exit 1, naming the event), and passes an intact log (exit 0).
#![expect(clippy::unwrap_used, reason = "tests")]

use alliance_e2e::{cli_for, Backend, Broker, Options};
use serde_json::json;

fn verify(broker: &Broker) -> (i32, String) {
    let out = cli_for(broker, &["audit", "verify"]);
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn tamper(broker: &Broker, backend: Backend, seq: i64) {
    execute(
        broker,
        backend,
        &format!("UPDATE audit_events SET outcome = 'rejected' WHERE seq = {seq}"),
    )
    .await;
}

async fn audit_trail_and_tamper_detection(backend: Backend) {
    let broker = Broker::start(Options::demo_on(backend).await).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let bucket = acme.create_bucket("audited", "BE").await;
    let id = bucket["id"].as_str().unwrap();
    acme.post_problem(
        "/v1/buckets",
        &json!({ "name": "refused", "jurisdiction": "IT" }),
        422,
        "placement.jurisdiction_not_allowed",
    )
    .await;

    let operator = broker.client(&broker.token("operator", None));
    let events = operator
        .get(&format!("/v1/audit?resource={id}"))
        .await
        .json();
    let actions: Vec<(String, String)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("placement.decide".into(), "placed".into()),
            ("bucket.create".into(), "accepted".into()),
            ("bucket.create".into(), "succeeded".into())
        ]
    );
    let first = &events["items"][0];
    assert_eq!(first["actor"], "dev:tenant-admin@acme");
    assert_eq!(first["tenant"], "acme");
    assert!(first["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(first["details"]["chosen"], "belgacom-be");
    let all = operator.get("/v1/audit?tenant=acme&limit=500").await.json();
    assert!(all["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "placement.decide" && e["outcome"] == "rejected"));

    let (code, out) = verify(&broker);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
    let victim = events["items"][1]["seq"].as_i64().unwrap();
    tamper(&broker, backend, victim).await;
    let (code, out) = verify(&broker);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("event {victim}")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_on_sqlite() {
    audit_trail_and_tamper_detection(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_on_postgres() {
    audit_trail_and_tamper_detection(Backend::Postgres).await;
}

/// Runs `sql` (with no binds) against the broker's database.
async fn execute(broker: &Broker, backend: Backend, sql: &str) {
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", broker.data_dir.join("alliance.db").display());
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect(&url)
                .await
                .unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect(broker.options.database_url.as_ref().unwrap())
                .await
                .unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Truncation: the broker signs the chain's head while it runs and at shutdown; deleting
/// the newest events (or all of them) then fails `audit verify`, naming the checkpoint, and
/// so does a checkpoint kept outside once the database's own checkpoints are gone too.
async fn truncation_is_detected(backend: Backend) {
    let mut options = Options::demo_on(backend).await;
    options.config = options.config.replacen(
        "[security]\n",
        "[security]\naudit_checkpoint_interval_ms = 200\n",
        1,
    );
    let mut broker = Broker::start(options).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let operator = broker.client(&broker.token("operator", None));
    for name in ["one", "two", "three"] {
        acme.create_bucket(name, "FR").await;
    }
    let newest = operator.get("/v1/audit?limit=500").await.json()["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    let checkpoint = alliance_e2e::eventually(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(100),
        || async {
            let c = operator.get("/v1/audit/checkpoint").await;
            if c.status == 200 && c.json()["seq"].as_i64().unwrap() >= newest {
                Ok(c.json())
            } else {
                Err(format!("no checkpoint of event {newest} yet: {}", c.text()))
            }
        },
    )
    .await;
    assert!(checkpoint["signature"].as_str().unwrap().len() > 40);
    // A tenant reads its own view, signed, with its count of events.
    let own = acme.get("/v1/audit/checkpoint").await.json();
    assert_eq!(own["tenant"], "acme");
    assert!(own["tenant_events"].as_u64().unwrap() >= 9, "{own}");
    acme.get_problem(
        "/v1/audit/checkpoint?tenant=santeplus",
        403,
        "auth.forbidden",
    )
    .await;
    let kept = broker.data_dir.join("kept-checkpoint.json");
    std::fs::write(&kept, own.to_string()).unwrap();
    let forged = broker.data_dir.join("forged-checkpoint.json");
    let mut edited = own.clone();
    edited["tenant_events"] = json!(1);
    std::fs::write(&forged, edited.to_string()).unwrap();
    broker.terminate();

    let (code, out) = verify(&broker);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checkpoints match"), "{out}");
    let with_file = |file: &std::path::Path| {
        let out = cli_for(
            &broker,
            &["audit", "verify", "--checkpoint", file.to_str().unwrap()],
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(with_file(&kept).0, 0);
    let (code, out) = with_file(&forged);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signature"), "{out}");

    // The newest two events removed: exit 1, naming the newest checkpoint.
    let last: i64 = newest;
    execute(
        &broker,
        backend,
        &format!("DELETE FROM audit_events WHERE seq > {}", last - 2),
    )
    .await;
    let (code, out) = verify(&broker);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no longer matches"), "{out}");
    assert!(out.contains("removed from its end"), "{out}");
    // The database's own checkpoints removed as well: the copy kept outside still tells.
    execute(
        &broker,
        backend,
        &format!("DELETE FROM audit_checkpoints WHERE seq > {}", last - 2),
    )
    .await;
    let (code, out) = with_file(&kept);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(tenant acme)"), "{out}");
    // Every event removed.
    execute(&broker, backend, "DELETE FROM audit_events").await;
    let (code, out) = verify(&broker);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the log ends at event 0"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn truncation_on_sqlite() {
    truncation_is_detected(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncation_on_postgres() {
    truncation_is_detected(Backend::Postgres).await;
}
