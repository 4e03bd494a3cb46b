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

fn creations(members: &[alliance_e2e::MemberSim]) -> std::collections::BTreeMap<String, usize> {
    let mut all = std::collections::BTreeMap::new();
    for m in members {
        for (id, n) in m.creations() {
            *all.entry(id).or_insert(0) += n;
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_postgres_run_each_operation_once() {
    let (members, options) =
        alliance_e2e::demo_federation(Backend::Postgres, 300, "s3cret-fr").await;
    let a = Broker::start(options.clone()).await;
    let b = Broker::start(options).await;
    assert_ne!(a.data_dir, b.data_dir);
    let on_a = a.client(&a.token("tenant-admin", Some("acme")));
    let on_b = b.client(&b.token("tenant-admin", Some("acme")));
    let mut ops = Vec::new();
    for i in 0..40 {
        let client = if i % 2 == 0 { &on_a } else { &on_b };
        let country = ["FR", "BE", "DE"][i % 3];
        let op = client
            .post(
                "/v1/buckets",
                &json!({ "name": format!("r{i}"), "jurisdiction": country }),
            )
            .await
            .json();
        ops.push((
            op["id"].as_str().unwrap().to_owned(),
            op["resource_id"].as_str().unwrap().to_owned(),
        ));
    }
    for (op, _) in &ops {
        // Either replica answers for any operation: they share the store.
        assert_eq!(on_b.wait_operation(op).await["status"], "succeeded");
    }
    let created = creations(&members);
    for (_, resource) in &ops {
        assert_eq!(
            created.get(resource),
            Some(&1),
            "resource {resource} created {:?} times",
            created.get(resource)
        );
    }
    assert_eq!(created.len(), ops.len());
    // Both replicas did engine work (the lease spreads it), and the audit chain holds.
    let operator = a.client(&a.token("operator", None));
    let audit = operator.get("/v1/audit?limit=500").await.json();
    let actors: std::collections::BTreeSet<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(actors.contains("bucket.create"), "{actors:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_with_an_out_of_process_member_creates_nothing_twice() {
    let (members, options) = alliance_e2e::demo_federation(Backend::Sqlite, 300, "s3cret-fr").await;
    let mut broker = Broker::start(options).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let accepted = create_many(&acme, 30).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    broker.kill9();
    let restarted = broker.restart().await;
    let acme = restarted.client(&restarted.token("tenant-admin", Some("acme")));
    for (op, _) in &accepted {
        assert_eq!(acme.wait_operation(op).await["status"], "succeeded");
    }
    let created = creations(&members);
    for (_, resource) in &accepted {
        assert_eq!(
            created.get(resource),
            Some(&1),
            "resource {resource} created {:?} times",
            created.get(resource)
        );
    }
    assert_eq!(created.len(), accepted.len());
}
