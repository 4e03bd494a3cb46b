//! Provisioning through the API: placement, the journal, the engine, isolation,
//! idempotency and refusals that change nothing.

use axum::http::Method;
use serde_json::json;

use crate::support::{Actor, TestApp};

fn web() -> serde_json::Value {
    json!({"name": "web", "jurisdiction": "BE", "size": "small", "image": "debian-12"})
}

#[tokio::test]
async fn an_instance_is_placed_created_listed_and_deleted() {
    let app = TestApp::start().await;
    let accepted = app
        .call(Actor::TenantA, Method::POST, "/v1/instances", Some(web()))
        .await;
    let op = accepted.ok(202);
    assert_eq!(op["kind"], "create");
    assert_eq!(op["status"], "pending");
    let location = accepted.headers["location"].to_str().expect("location");
    assert_eq!(
        location,
        format!("/v1/operations/{}", op["id"].as_str().expect("id"))
    );
    let done = app
        .settle(Actor::TenantA, op["id"].as_str().expect("id"))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let id = op["resource_id"].as_str().expect("resource id");
    assert!(id.starts_with("ins-"), "{id}");
    let instance = app
        .call(
            Actor::TenantA,
            Method::GET,
            &format!("/v1/instances/{id}"),
            None,
        )
        .await
        .ok(200);
    assert_eq!(instance["status"], "active");
    assert_eq!(instance["member"], "belgacom-be");
    assert_eq!(instance["jurisdiction"], "BE");
    assert!(!instance["placement"]["reasons"]
        .as_array()
        .expect("reasons")
        .is_empty());

    // Another tenant cannot tell it exists, whatever it tries.
    for (method, path) in [
        (Method::GET, format!("/v1/instances/{id}")),
        (Method::DELETE, format!("/v1/instances/{id}")),
        (
            Method::GET,
            format!("/v1/operations/{}", op["id"].as_str().expect("id")),
        ),
    ] {
        app.call(Actor::TenantB, method, &path, None)
            .await
            .problem(404, "resource.not_found");
    }
    let theirs = app
        .call(Actor::TenantB, Method::GET, "/v1/instances", None)
        .await
        .ok(200);
    assert_eq!(theirs["items"], json!([]));

    let deleting = app
        .call(
            Actor::TenantA,
            Method::DELETE,
            &format!("/v1/instances/{id}"),
            None,
        )
        .await
        .ok(202);
    assert_eq!(deleting["kind"], "delete");
    let gone = app
        .settle(Actor::TenantA, deleting["id"].as_str().expect("id"))
        .await;
    assert_eq!(gone["status"], "succeeded");
    let instance = app
        .call(
            Actor::TenantA,
            Method::GET,
            &format!("/v1/instances/{id}"),
            None,
        )
        .await
        .ok(200);
    assert_eq!(instance["status"], "deleted");
}

#[tokio::test]
async fn lists_page_with_limit_and_a_token_only_that_list_accepts() {
    let app = TestApp::start().await;
    for name in ["a", "b", "c"] {
        app.call(
            Actor::TenantA,
            Method::POST,
            "/v1/buckets",
            Some(json!({"name": name, "jurisdiction": "FR"})),
        )
        .await
        .ok(202);
    }
    let first = app
        .call(Actor::TenantA, Method::GET, "/v1/buckets?limit=2", None)
        .await
        .ok(200);
    assert_eq!(first["items"].as_array().expect("items").len(), 2);
    let token = first["next_page_token"].as_str().expect("a next page");
    let second = app
        .call(
            Actor::TenantA,
            Method::GET,
            &format!("/v1/buckets?limit=2&page_token={token}"),
            None,
        )
        .await
        .ok(200);
    assert_eq!(second["items"].as_array().expect("items").len(), 1);
    assert!(second["next_page_token"].is_null());
    app.call(
        Actor::TenantA,
        Method::GET,
        &format!("/v1/volumes?page_token={token}"),
        None,
    )
    .await
    .problem(400, "validation.invalid_query");
    for bad in ["0", "501", "ten", "-1"] {
        app.call(
            Actor::TenantA,
            Method::GET,
            &format!("/v1/buckets?limit={bad}"),
            None,
        )
        .await
        .problem(400, "validation.invalid_query");
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_refuses_another_body_and_must_be_visible_ascii() {
    let app = TestApp::start().await;
    let key: &[(&str, &[u8])] = &[("idempotency-key", b"first-try")];
    let first = app
        .send(
            Actor::TenantA,
            Method::POST,
            "/v1/volumes",
            Some(json!({"name": "v", "size_gb": 10})),
            key,
        )
        .await;
    let again = app
        .send(
            Actor::TenantA,
            Method::POST,
            "/v1/volumes",
            Some(json!({"name": "v", "size_gb": 10})),
            key,
        )
        .await;
    assert_eq!(first.status, 202);
    assert_eq!(again.status, 202);
    assert_eq!(
        first.text, again.text,
        "a replay is the first answer, byte for byte"
    );
    app.send(
        Actor::TenantA,
        Method::POST,
        "/v1/volumes",
        Some(json!({"name": "v", "size_gb": 11})),
        key,
    )
    .await
    .problem(422, "idempotency.key_reused");
    // The same key belongs to each tenant on its own.
    app.send(
        Actor::TenantB,
        Method::POST,
        "/v1/volumes",
        Some(json!({"name": "v", "size_gb": 10})),
        key,
    )
    .await
    .ok(202);

    for bad in [
        "clé-42".as_bytes(),
        b"\xe9t\xe9",
        b"two words",
        &[b'k'; 256][..],
    ] {
        app.send(
            Actor::TenantA,
            Method::POST,
            "/v1/buckets",
            Some(json!({"name": "never"})),
            &[("idempotency-key", bad)],
        )
        .await
        .problem(400, "idempotency.invalid_key");
    }
    let buckets = app
        .call(Actor::TenantA, Method::GET, "/v1/buckets", None)
        .await
        .ok(200);
    assert_eq!(buckets["items"], json!([]), "a refused key creates nothing");
    let volumes = app
        .call(Actor::TenantA, Method::GET, "/v1/volumes", None)
        .await
        .ok(200);
    assert_eq!(volumes["items"].as_array().expect("items").len(), 1);
}

#[tokio::test]
async fn refusals_name_the_field_and_change_nothing() {
    let app = TestApp::start().await;
    let cases = [
        (
            json!({"name": "w", "size": "small", "image": "debian-12", "colour": "red"}),
            "`colour` is not a field",
        ),
        (
            json!({"name": "w", "size": "huge", "image": "debian-12"}),
            "`size`",
        ),
        (json!({"name": "w", "size": "small"}), "`image` is required"),
        (
            json!({"name": "w", "size": "small", "image": "debian-12", "jurisdiction": "XX"}),
            "`jurisdiction`",
        ),
        (
            json!({"name": "", "size": "small", "image": "debian-12"}),
            "`name`",
        ),
    ];
    for (body, detail) in cases {
        let problem = app
            .call(
                Actor::TenantA,
                Method::POST,
                "/v1/instances",
                Some(body.clone()),
            )
            .await
            .problem(422, "validation.invalid_field");
        let text = problem["detail"].as_str().expect("detail");
        assert!(text.contains(detail), "{body}: {text}");
        assert!(!text.contains("line 1"), "{text}");
    }
    // Santé Plus may only place in France.
    let refused = app
        .call(
            Actor::TenantB,
            Method::POST,
            "/v1/volumes",
            Some(json!({"name": "v", "size_gb": 5, "jurisdiction": "BE"})),
        )
        .await
        .problem(422, "placement.jurisdiction_not_allowed");
    assert!(refused["detail"].as_str().expect("detail").contains("FR"));
    let volumes = app
        .call(Actor::TenantB, Method::GET, "/v1/volumes", None)
        .await
        .ok(200);
    assert_eq!(volumes["items"], json!([]));
    // The refused placement is in the audit log.
    let audit = app
        .call(
            Actor::Operator,
            Method::GET,
            "/v1/audit?tenant=santeplus",
            None,
        )
        .await
        .ok(200);
    assert!(audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|e| e["action"] == "placement.decide" && e["outcome"] == "rejected"));
}

#[tokio::test]
async fn only_tenant_roles_provision_and_every_route_wants_a_token() {
    let app = TestApp::start().await;
    for actor in [Actor::Partner, Actor::Billing, Actor::Operator] {
        app.call(actor, Method::POST, "/v1/instances", Some(web()))
            .await
            .problem(403, "auth.forbidden");
    }
    app.call(Actor::Anonymous, Method::GET, "/v1/instances", None)
        .await
        .problem(401, "auth.invalid_token");
    app.send(
        Actor::Anonymous,
        Method::GET,
        "/v1/instances",
        None,
        &[("authorization", b"Bearer not.a.jwt")],
    )
    .await
    .problem(401, "auth.invalid_token");
}

#[tokio::test]
async fn a_dry_run_explains_every_candidate_and_creates_nothing() {
    let app = TestApp::start().await;
    let evaluation = app
        .call(
            Actor::TenantA,
            Method::POST,
            "/v1/placement/evaluate",
            Some(json!({"resource_type": "volume", "jurisdiction": "DE"})),
        )
        .await
        .ok(200);
    assert_eq!(evaluation["chosen"], "telekom-de");
    let candidates = evaluation["candidates"].as_array().expect("candidates");
    assert_eq!(candidates.len(), 4);
    assert!(candidates
        .iter()
        .filter(|c| c["member"] != "telekom-de")
        .all(|c| c["eligible"] == false && !c["reasons"].as_array().expect("reasons").is_empty()));
    let volumes = app
        .call(Actor::TenantA, Method::GET, "/v1/volumes", None)
        .await
        .ok(200);
    assert_eq!(volumes["items"], json!([]));
}
