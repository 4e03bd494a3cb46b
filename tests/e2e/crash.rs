//! Crash safety: a broker killed with operations in flight loses none and duplicates none
//! after a restart; two replicas on one PostgreSQL run every operation exactly once.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use alliance_e2e::{
    assert_created_once, member_creations, sim_creations, Backend, Broker, Client, Options,
};
use serde_json::{json, Value};

async fn create_many(client: &Client, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let country = ["FR", "BE", "DE"][i % 3];
        let key = format!("crash-{i}");
        let op = client
            .post_accepted(
                "/v1/buckets",
                &json!({ "name": format!("c{i}"), "jurisdiction": country }),
                &[("idempotency-key", key.as_str())],
            )
            .await
            .json();
        out.push((
            op["id"].as_str().unwrap().to_owned(),
            op["resource_id"].as_str().unwrap().to_owned(),
        ));
    }
    out
}

/// Has acme submit 30 creations, kills the broker (SIGKILL) `after` that, restarts it and
/// waits until every accepted operation succeeded; returns the restarted broker, acme's
/// client on it and the accepted (operation, resource) ids.
async fn kill9_in_flight(
    mut broker: Broker,
    after: Duration,
) -> (Broker, Client, Vec<(String, String)>) {
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let accepted = create_many(&acme, 30).await;
    tokio::time::sleep(after).await;
    broker.kill9();
    let restarted = broker.restart().await;
    let acme = restarted.client(&restarted.token("tenant-admin", Some("acme")));
    for (op, _) in &accepted {
        acme.wait_succeeded(op).await;
    }
    (restarted, acme, accepted)
}

async fn kill9_then_restart(backend: Backend) {
    let broker = Broker::start(Options::demo_on(backend).await).await;
    // Members take 300 ms: most operations are in flight when the broker dies.
    let (restarted, acme, accepted) = kill9_in_flight(broker, Duration::from_millis(150)).await;
    // Retried requests after the crash replay, they do not create again.
    let replayed = create_many(&acme, 30).await;
    assert_eq!(replayed, accepted);
    assert_created_once(&sim_creations(&[&restarted.data_dir]), resources(&accepted));
}

/// The resource ids of accepted (operation, resource) pairs.
fn resources(accepted: &[(String, String)]) -> impl ExactSizeIterator<Item = &str> {
    accepted.iter().map(|(_, resource)| resource.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_with_operations_in_flight_on_sqlite() {
    kill9_then_restart(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_with_operations_in_flight_on_postgres() {
    kill9_then_restart(Backend::Postgres).await;
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
        on_b.wait_succeeded(op).await;
    }
    assert_created_once(&member_creations(&members), resources(&ops));
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
async fn a_policy_changed_on_one_replica_places_at_once_on_the_other() {
    let options = Options::demo_on(Backend::Postgres).await;
    let a = Broker::start(options.clone()).await;
    let b = Broker::start(options).await;
    let operator = a.client(&a.token("operator", None));
    let on_b = b.client(&b.token("tenant-admin", Some("acme")));
    let allow = |jurisdictions: Value| {
        let operator = &operator;
        async move {
            operator
                .patch(
                    "/v1/tenants/acme",
                    &json!({ "allowed_jurisdictions": jurisdictions }),
                )
                .await
                .assert_status(200);
        }
    };
    let create = |name: &str, country: &str| {
        let (on_b, body) = (&on_b, json!({ "name": name, "jurisdiction": country }));
        async move { on_b.post("/v1/buckets", &body).await }
    };
    // b has read acme's policy (BE allowed) to place a creation...
    create("fr-1", "FR").await.assert_status(202);
    // ...a narrows it, and b's very next creation follows the new policy, not the one it read.
    allow(json!(["FR", "DE", "CH"])).await;
    create("be-1", "BE")
        .await
        .assert_problem(422, "placement.jurisdiction_not_allowed");
    // The other way round: a widens it again, and b places there at once.
    allow(json!(["FR", "BE", "DE", "CH"])).await;
    create("be-2", "BE").await.assert_status(202);
    allow(json!(["FR", "BE", "CH"])).await;
    create("de-1", "DE")
        .await
        .assert_problem(422, "placement.jurisdiction_not_allowed");
    // Nothing of the refused creations exists.
    let names: Vec<String> = on_b.get("/v1/buckets").await.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"fr-1".to_owned()) && names.contains(&"be-2".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_with_an_out_of_process_member_creates_nothing_twice() {
    let (members, options) = alliance_e2e::demo_federation(Backend::Sqlite, 300, "s3cret-fr").await;
    let broker = Broker::start(options).await;
    let (_restarted, _acme, accepted) = kill9_in_flight(broker, Duration::from_millis(100)).await;
    assert_created_once(&member_creations(&members), resources(&accepted));
}
