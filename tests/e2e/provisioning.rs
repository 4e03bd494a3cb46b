//! The demo flows of provisioning, end to end on SQLite and on PostgreSQL: placement by
//! jurisdiction, asynchronous operations, idempotency, tenant isolation, residency, paging.
#![expect(clippy::unwrap_used, reason = "tests")]

use alliance_e2e::{Backend, Broker, Client, Options};
use serde_json::{json, Value};

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(alliance_e2e::Backend::Sqlite).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name(alliance_e2e::Backend::Postgres).await } )* }
    };
}

on_both_stores!(
    instances_land_on_the_member_of_their_country,
    refusals_explain_themselves,
    santeplus_defaults_to_health_in_france,
    other_tenants_resources_are_404,
    idempotency_keys_replay_and_refuse_reuse,
    residency_delete_and_paging,
);

async fn start(backend: Backend) -> (Broker, Client) {
    let broker = Broker::start(Options::demo_on(backend).await).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    (broker, acme)
}

fn instance(jurisdiction: &str) -> Value {
    json!({ "name": format!("web-{jurisdiction}"), "jurisdiction": jurisdiction, "size": "small", "image": "debian-12" })
}

async fn instances_land_on_the_member_of_their_country(backend: Backend) {
    let (_broker, acme) = start(backend).await;
    for (country, member) in [
        ("FR", "numergy-fr"),
        ("BE", "belgacom-be"),
        ("DE", "telekom-de"),
    ] {
        let answer = acme
            .post_accepted("/v1/instances", &instance(country), &[])
            .await;
        let op = answer.json();
        assert_eq!(
            answer.header("location"),
            Some(format!("/v1/operations/{}", op["id"].as_str().unwrap()))
        );
        assert_eq!(op["status"], "pending");
        assert_eq!(op["kind"], "create");
        let resource = acme.created("/v1/instances", &op).await;
        assert_eq!(resource["status"], "active");
        assert_eq!(resource["member"], member);
        assert_eq!(resource["jurisdiction"], country);
        assert_eq!(resource["tenant"], "acme");
        let reasons = resource["placement"]["reasons"].as_array().unwrap();
        assert!(
            reasons
                .iter()
                .any(|r| r.as_str().unwrap().contains(&format!("{member}: chosen"))),
            "{reasons:?}"
        );
    }
    let volume = acme
        .create_and_wait(
            "/v1/volumes",
            &json!({ "name": "data", "jurisdiction": "DE", "size_gb": 20 }),
        )
        .await;
    assert_eq!(volume["member"], "telekom-de");
    assert_eq!(volume["size_gb"], 20);
    let bucket = acme
        .create_and_wait("/v1/buckets", &json!({ "name": "logs" }))
        .await;
    assert_eq!(
        bucket["member"], "numergy-fr",
        "no jurisdiction means the tenant's home"
    );
}

async fn refusals_explain_themselves(backend: Backend) {
    let (_broker, acme) = start(backend).await;
    acme.post_problem(
        "/v1/instances",
        &instance("IT"),
        422,
        "placement.jurisdiction_not_allowed",
    )
    .await;
    let mut health = instance("BE");
    health["data_class"] = json!("health");
    let problem = acme
        .post_problem(
            "/v1/instances",
            &health,
            422,
            "placement.no_eligible_member",
        )
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("hds"),
        "{problem}"
    );
    let evaluation = acme
        .post(
            "/v1/placement/evaluate",
            &json!({ "resource_type": "instance", "jurisdiction": "BE", "data_class": "health" }),
        )
        .await;
    assert_eq!(evaluation.status, 200);
    let evaluation = evaluation.json();
    assert_eq!(evaluation["chosen"], Value::Null);
    let be = evaluation["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["member"] == "belgacom-be")
        .unwrap()
        .clone();
    assert_eq!(be["eligible"], false);
    assert!(be["reasons"].to_string().contains("hds"), "{be}");
    let fr = acme.evaluate_bucket("FR").await;
    assert_eq!(fr["chosen"], "numergy-fr");
    acme.post_problem(
        "/v1/instances",
        &json!({ "name": "x", "size": "huge", "image": "debian-12" }),
        422,
        "validation.invalid_field",
    )
    .await;
    acme.post_problem(
        "/v1/volumes",
        &json!({ "name": "x", "size_gb": 0 }),
        422,
        "validation.invalid_field",
    )
    .await;
    // Nothing was created by the refusals.
    assert_eq!(acme.get("/v1/instances").await.json()["items"], json!([]));
}

async fn santeplus_defaults_to_health_in_france(backend: Backend) {
    let (broker, _acme) = start(backend).await;
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    let resource = sante
        .create_and_wait(
            "/v1/instances",
            &json!({ "name": "dossier", "size": "medium", "image": "ubuntu-24.04" }),
        )
        .await;
    assert_eq!(resource["jurisdiction"], "FR");
    assert_eq!(resource["data_class"], "health");
    assert_eq!(resource["member"], "numergy-fr");
    sante
        .post_problem(
            "/v1/buckets",
            &json!({ "name": "b", "jurisdiction": "DE" }),
            422,
            "placement.jurisdiction_not_allowed",
        )
        .await;
}

async fn other_tenants_resources_are_404(backend: Backend) {
    let (broker, acme) = start(backend).await;
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    let created = acme
        .post("/v1/buckets", &json!({ "name": "secret" }))
        .await
        .json();
    let (op, id) = (
        created["id"].as_str().unwrap(),
        created["resource_id"].as_str().unwrap(),
    );
    acme.wait_operation(op).await;
    sante
        .get_problem(&format!("/v1/buckets/{id}"), 404, "resource.not_found")
        .await;
    sante
        .get_problem(&format!("/v1/operations/{op}"), 404, "resource.not_found")
        .await;
    sante
        .delete_problem(&format!("/v1/buckets/{id}"), 404, "resource.not_found")
        .await;
    sante
        .get_problem("/v1/tenants/acme/residency", 404, "resource.not_found")
        .await;
    assert_eq!(sante.get("/v1/buckets").await.json()["items"], json!([]));
    // The wrong type is as unknown as a wrong id.
    acme.get_problem(&format!("/v1/instances/{id}"), 404, "resource.not_found")
        .await;
    // Still there for its owner.
    assert_eq!(
        acme.get(&format!("/v1/buckets/{id}")).await.json()["status"],
        "active"
    );
}

async fn idempotency_keys_replay_and_refuse_reuse(backend: Backend) {
    let (_broker, acme) = start(backend).await;
    let body = json!({ "name": "once", "jurisdiction": "BE" });
    let key = [("idempotency-key", "create-once-1")];
    let first = acme.post_with("/v1/buckets", &body, &key).await;
    assert_eq!(first.status, 202);
    let second = acme.post_with("/v1/buckets", &body, &key).await;
    assert_eq!(second.status, 202);
    assert_eq!(first.bytes, second.bytes, "a replay is byte-identical");
    assert_eq!(first.header("location"), second.header("location"));
    let reordered = json!({ "jurisdiction": "BE", "name": "once" });
    let third = acme.post_with("/v1/buckets", &reordered, &key).await;
    assert_eq!(
        third.bytes, first.bytes,
        "the same JSON in another key order is the same request"
    );
    let other = json!({ "name": "twice", "jurisdiction": "BE" });
    acme.post_with("/v1/buckets", &other, &key)
        .await
        .assert_problem(422, "idempotency.key_reused");
    acme.wait_operation(first.json()["id"].as_str().unwrap())
        .await;
    let items = acme.get("/v1/buckets").await.json()["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(items, 1, "one bucket for three requests with one key");
    // A refusal is the first response too, and is replayed.
    let refused_key = [("idempotency-key", "refused-1")];
    let refused_body = json!({ "name": "x", "jurisdiction": "IT" });
    let refused = acme
        .post_with("/v1/buckets", &refused_body, &refused_key)
        .await;
    refused.assert_problem(422, "placement.jurisdiction_not_allowed");
    let again = acme
        .post_with("/v1/buckets", &refused_body, &refused_key)
        .await;
    assert_eq!(again.bytes, refused.bytes);
}

async fn residency_delete_and_paging(backend: Backend) {
    let (broker, acme) = start(backend).await;
    let mut ids = Vec::new();
    for (i, country) in ["FR", "BE", "DE", "FR", "BE"].iter().enumerate() {
        let bucket = acme.create_bucket(&format!("b{i}"), country).await;
        ids.push(bucket["id"].as_str().unwrap().to_owned());
    }
    let report = acme.get("/v1/tenants/acme/residency").await.json();
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["by_jurisdiction"]["FR"]["bucket"], 2);
    assert_eq!(
        report["by_jurisdiction"]["BE"]["members"],
        json!(["belgacom-be"])
    );
    assert_eq!(report["resources"].as_array().unwrap().len(), 5);
    let operator = broker.client(&broker.token("operator", None));
    assert_eq!(operator.get("/v1/tenants/acme/residency").await.status, 200);

    // Paging with opaque tokens walks every item exactly once.
    let mut seen = Vec::new();
    let mut path = "/v1/buckets?limit=2".to_owned();
    loop {
        let page = acme.get(&path).await.json();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["id"].as_str().unwrap().to_owned()),
        );
        match page["next_page_token"].as_str() {
            Some(token) => path = format!("/v1/buckets?limit=2&page_token={token}"),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);

    // Delete through an operation; a second delete answers the same operation.
    let answer = acme.delete(&format!("/v1/buckets/{}", ids[0])).await;
    assert_eq!(answer.status, 202);
    let op = answer.json();
    assert_eq!(op["kind"], "delete");
    let again = acme.delete(&format!("/v1/buckets/{}", ids[0])).await.json();
    assert_eq!(again["id"], op["id"]);
    acme.wait_succeeded(op["id"].as_str().unwrap()).await;
    assert_eq!(
        acme.get(&format!("/v1/buckets/{}", ids[0])).await.json()["status"],
        "deleted"
    );
    let report = acme.get("/v1/tenants/acme/residency").await.json();
    assert_eq!(report["resources"].as_array().unwrap().len(), 4);
}

/// Over every combination of the demo's jurisdictions and data classes, the dry run and the
/// real creation agree: same member, or both refused with the same code.
#[tokio::test(flavor = "multi_thread")]
async fn evaluate_agrees_with_create() {
    let (_broker, acme) = start(Backend::Sqlite).await;
    for jurisdiction in ["FR", "BE", "DE", "IT", "LU"] {
        for class in ["standard", "personal", "health", "public-sector"] {
            let evaluation = acme
                .post("/v1/placement/evaluate", &json!({ "resource_type": "bucket", "jurisdiction": jurisdiction, "data_class": class }))
                .await;
            assert_eq!(evaluation.status, 200);
            let chosen = evaluation.json()["chosen"].clone();
            let created = acme
                .post(
                    "/v1/buckets",
                    &json!({ "name": "x", "jurisdiction": jurisdiction, "data_class": class }),
                )
                .await;
            match chosen.as_str() {
                Some(member) => {
                    assert_eq!(created.status, 202, "{jurisdiction}/{class}");
                    let id = created.json()["resource_id"].as_str().unwrap().to_owned();
                    assert_eq!(
                        acme.get(&format!("/v1/buckets/{id}")).await.json()["member"],
                        member,
                        "{jurisdiction}/{class}"
                    );
                }
                None => assert_eq!(
                    created.status, 422,
                    "{jurisdiction}/{class}: evaluate refused, create must too"
                ),
            }
        }
    }
}

/// SPEC: `Idempotency-Key` on every POST that creates, not only resources.
#[tokio::test(flavor = "multi_thread")]
async fn every_creating_post_honours_idempotency_keys() {
    let broker = Broker::start(Options::demo()).await;
    let send = |client: &Client, path: &'static str, body: Value, key: &'static str| {
        let client = client.clone();
        async move {
            client
                .post_with(path, &body, &[("idempotency-key", key)])
                .await
        }
    };

    // Tenants (operator): a retry replays the 201, it does not answer 409 "exists".
    let operator = broker.client(&broker.token_with(&["--role", "operator"]));
    let tenant = json!({ "id": "globex", "name": "Globex", "home_jurisdiction": "DE", "allowed_jurisdictions": ["DE", "FR"] });
    let first = send(&operator, "/v1/tenants", tenant.clone(), "tenant-1").await;
    first.assert_status(201);
    let again = send(&operator, "/v1/tenants", tenant.clone(), "tenant-1").await;
    assert_eq!(
        (again.status, &again.bytes),
        (201, &first.bytes),
        "a replay is byte-identical"
    );
    let mut other = tenant.clone();
    other["name"] = json!("Globex Corp");
    send(&operator, "/v1/tenants", other, "tenant-1")
        .await
        .assert_problem(422, "idempotency.key_reused");
    // Without a key, the same request is a conflict as before.
    operator
        .post_problem("/v1/tenants", &tenant, 409, "resource.conflict")
        .await;

    // Partner applications: one application for two submissions with one key.
    let partner =
        broker.client(&broker.token_with(&["--role", "partner", "--member", "luxcloud-lu"]));
    let application = json!({
        "member_id": "luxcloud-lu", "name": "LuxCloud S.A.", "country": "LU", "jurisdictions": ["LU"],
        "services": ["bucket"], "adapter": { "kind": "federation", "endpoint": "http://127.0.0.1:9" },
    });
    let first = send(
        &partner,
        "/v1/partner-applications",
        application.clone(),
        "apply-1",
    )
    .await;
    first.assert_status(202);
    let again = send(&partner, "/v1/partner-applications", application, "apply-1").await;
    assert_eq!(again.bytes, first.bytes);

    // Reconciliations (billing): the stored report is replayed, not computed again.
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));
    let request = json!({ "period": alliance_e2e::this_month(), "member": "numergy-fr" });
    let first = send(&billing, "/v1/reconciliations", request.clone(), "rec-1").await;
    first.assert_status(201);
    let again = send(&billing, "/v1/reconciliations", request, "rec-1").await;
    assert_eq!(again.json()["id"], first.json()["id"]);
}
