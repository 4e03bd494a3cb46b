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
    let sql = "UPDATE audit_events SET outcome = 'rejected' WHERE seq = $1";
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", broker.data_dir.join("alliance.db").display());
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect(&url)
                .await
                .unwrap();
            sqlx::query(sql).bind(seq).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect(broker.options.database_url.as_ref().unwrap())
                .await
                .unwrap();
            sqlx::query(sql).bind(seq).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
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
