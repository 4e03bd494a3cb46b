//! Tenancy through the API: operators manage tenants; a tenant sees where its own data
//! lives and nobody else's.

use axum::http::Method;
use serde_json::json;

use crate::support::{Actor, TestApp};

fn luxbank() -> serde_json::Value {
    json!({"id": "luxbank", "name": "Lux Bank", "home_jurisdiction": "DE", "allowed_jurisdictions": ["DE", "FR"]})
}

#[tokio::test]
async fn operators_create_change_and_list_tenants() {
    let app = TestApp::start().await;
    let created = app
        .call(
            Actor::Operator,
            Method::POST,
            "/v1/tenants",
            Some(luxbank()),
        )
        .await
        .ok(201);
    assert_eq!(created["default_data_class"], "standard");
    app.call(
        Actor::Operator,
        Method::POST,
        "/v1/tenants",
        Some(luxbank()),
    )
    .await
    .problem(409, "resource.conflict");
    let changed = app
        .call(
            Actor::Operator,
            Method::PATCH,
            "/v1/tenants/luxbank",
            Some(json!({"allowed_jurisdictions": ["DE", "FR", "BE"], "name": "Lux Bank SA"})),
        )
        .await
        .ok(200);
    assert_eq!(changed["allowed_jurisdictions"], json!(["BE", "DE", "FR"]));
    assert_eq!(changed["name"], "Lux Bank SA");
    // A policy whose home is not allowed is refused and changes nothing.
    app.call(
        Actor::Operator,
        Method::PATCH,
        "/v1/tenants/luxbank",
        Some(json!({"home_jurisdiction": "LU"})),
    )
    .await
    .problem(422, "validation.invalid_field");
    app.call(
        Actor::Operator,
        Method::PATCH,
        "/v1/tenants/luxbank",
        Some(json!({"default_data_class": "secret"})),
    )
    .await
    .problem(422, "validation.invalid_field");
    let read = app
        .call(Actor::Operator, Method::GET, "/v1/tenants/luxbank", None)
        .await
        .ok(200);
    assert_eq!(read["home_jurisdiction"], "DE");
    let page = app
        .call(Actor::Operator, Method::GET, "/v1/tenants?limit=2", None)
        .await
        .ok(200);
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    assert!(page["next_page_token"].is_string());
    // Changes are audited with who made them.
    let audit = app
        .call(
            Actor::Operator,
            Method::GET,
            "/v1/audit?resource=luxbank",
            None,
        )
        .await
        .ok(200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["tenant.create", "tenant.update"]);
}

#[tokio::test]
async fn only_operators_manage_tenants() {
    let app = TestApp::start().await;
    for actor in [Actor::TenantA, Actor::Partner, Actor::Billing] {
        app.call(actor, Method::POST, "/v1/tenants", Some(luxbank()))
            .await
            .problem(403, "auth.forbidden");
        app.call(actor, Method::GET, "/v1/tenants/acme", None)
            .await
            .problem(403, "auth.forbidden");
    }
    app.call(Actor::Operator, Method::GET, "/v1/tenants/nobody", None)
        .await
        .problem(404, "resource.not_found");
}

#[tokio::test]
async fn residency_is_the_tenants_own_and_an_operators() {
    let app = TestApp::start().await;
    app.call(
        Actor::TenantA,
        Method::POST,
        "/v1/buckets",
        Some(json!({"name": "archive", "jurisdiction": "DE"})),
    )
    .await
    .ok(202);
    for actor in [Actor::TenantA, Actor::Operator] {
        let residency = app
            .call(actor, Method::GET, "/v1/tenants/acme/residency", None)
            .await
            .ok(200);
        assert_eq!(residency["by_jurisdiction"]["DE"]["bucket"], 1);
        assert_eq!(
            residency["by_jurisdiction"]["DE"]["members"],
            json!(["telekom-de"])
        );
    }
    app.call(
        Actor::TenantB,
        Method::GET,
        "/v1/tenants/acme/residency",
        None,
    )
    .await
    .problem(404, "resource.not_found");
}

#[tokio::test]
async fn narrowing_a_policy_under_live_resources_is_refused_and_changes_nothing() {
    let app = TestApp::start().await;
    let op = app
        .call(
            Actor::TenantA,
            Method::POST,
            "/v1/volumes",
            Some(json!({"name": "v", "jurisdiction": "BE", "size_gb": 5})),
        )
        .await
        .ok(202);
    let volume = op["resource_id"].as_str().expect("id").to_owned();
    let problem = app
        .call(
            Actor::Operator,
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"allowed_jurisdictions": ["FR", "DE"]})),
        )
        .await
        .problem(409, "tenant.resources_outside_policy");
    let listed = problem["resources"].as_array().expect("resources");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], volume.as_str());
    assert_eq!(listed[0]["jurisdiction"], "BE");
    let tenant = app
        .call(Actor::Operator, Method::GET, "/v1/tenants/acme", None)
        .await
        .ok(200);
    assert_eq!(
        tenant["allowed_jurisdictions"],
        json!(["BE", "CH", "DE", "FR"])
    );
    // Widening, or narrowing away from where nothing lives, is fine.
    app.call(
        Actor::Operator,
        Method::PATCH,
        "/v1/tenants/acme",
        Some(json!({"allowed_jurisdictions": ["FR", "BE"]})),
    )
    .await
    .ok(200);
}
