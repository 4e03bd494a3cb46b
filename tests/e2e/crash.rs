//! Crash safety: a broker killed with operations in flight loses none and duplicates none
//! after a restart; two replicas on one PostgreSQL run every operation exactly once.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use alliance_e2e::{sim_creations, Backend, Broker, Options};
use serde_json::json;

async fn create_many(client: &alliance_e2e::Client, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let country = ["FR", "BE", "DE"][i % 3];
        let key = format!("crash-{i}");
        let answer = client
            .send(
                reqwest::Method::POST,
                "/v1/buckets",
                Some(&json!({ "name": format!("c{i}"), "jurisdiction": country })),
                &[("idempotency-key", key.as_str())],
            )
            .await;
        assert_eq!(
            answer.status,
            202,
            "{}",
            String::from_utf8_lossy(&answer.bytes)
        );
        let op = answer.json();
        out.push((
            op["id"].as_str().unwrap().to_owned(),
            op["resource_id"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

async fn kill9_then_restart(backend: Backend) {
    let mut broker = Broker::start(Options::demo_on(backend).await).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let accepted = create_many(&acme, 30).await;
    // Members take 300 ms: most operations are in flight when the broker dies.
    tokio::time::sleep(Duration::from_millis(150)).await;
    broker.kill9();
    let restarted = broker.restart().await;
    let acme = restarted.client(&restarted.token("tenant-admin", Some("acme")));
    for (op, _) in &accepted {
        let done = acme.wait_operation(op).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    // Retried requests after the crash replay, they do not create again.
    let replayed = create_many(&acme, 30).await;
    assert_eq!(replayed, accepted);
    let creations = sim_creations(&[&restarted.data_dir]);
    for (_, resource) in &accepted {
        assert_eq!(
            creations.get(resource),
            Some(&1),
            "resource {resource} was created {:?} times at its member",
            creations.get(resource)
        );
    }
    assert_eq!(
        creations.len(),
        accepted.len(),
        "no other resource was created at any member"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_with_operations_in_flight_on_sqlite() {
    kill9_then_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_with_operations_in_flight_on_postgres() {
    kill9_then_restart(Backend::Postgres).await;
}
