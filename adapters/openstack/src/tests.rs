//! In-process doubles of Keystone and Nova driving the adapter through [`MemberAdapter`]:
//! a refused token renewed once and the new one cached (`transport.rs`), and Nova's pages
//! followed to the end.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use alliance_adapter_api::{CallContext, MemberAdapter};
use alliance_core::ResourceType;
use serde_json::{json, Value};

use crate::{Credentials, Mapping, OpenStackAdapter, OpenStackConfig};

/// A Keystone double that counts authentications and a compute service that refuses
/// the first token (as after a revocation), to check renewal and caching.
async fn keystone_double() -> (String, Arc<AtomicUsize>) {
    use axum::http::{HeaderMap, StatusCode as S};
    let issued = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (count, catalog_url) = (issued.clone(), base.clone());
    let app = axum::Router::new()
        .route(
            "/v3/auth/tokens",
            axum::routing::post(move || {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                let body = json!({ "token": {
                    "expires_at": "2999-01-01T00:00:00.000000Z",
                    "project": { "id": "p1" },
                    "catalog": [{ "type": "compute", "endpoints": [
                        { "interface": "public", "region_id": "r1", "url": format!("{catalog_url}/compute") }] }] } });
                async move { (S::CREATED, [("x-subject-token", format!("tok-{n}"))], axum::Json(body)) }
            }),
        )
        .route(
            "/compute/servers/detail",
            axum::routing::get(|headers: HeaderMap| async move {
                if headers.get("x-auth-token").and_then(|v| v.to_str().ok()) == Some("tok-1") {
                    (S::UNAUTHORIZED, axum::Json(json!({})))
                } else {
                    (S::OK, axum::Json(json!({ "servers": [] })))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, issued)
}

/// An adapter for the Keystone double at `base` (region `r1`, an application credential).
fn adapter_for(base: &str) -> OpenStackAdapter {
    let config = OpenStackConfig {
        auth_url: format!("{base}/v3"),
        region: "r1".into(),
        interface: "public".into(),
        env_prefix: "OS_".into(),
        network: None,
        tenant_project_domain: None,
        floating_network: None,
    };
    let credentials = Credentials::ApplicationCredential {
        id: "i".into(),
        secret: "s".into(),
    };
    OpenStackAdapter::new("m", config, credentials, Mapping::default()).unwrap()
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_the_new_one_is_cached() {
    let (base, issued) = keystone_double().await;
    let adapter = adapter_for(&base);
    let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
    assert!(adapter
        .list(&ctx, ResourceType::Instance, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "the refused token is renewed once"
    );
    adapter
        .list(&ctx, ResourceType::Instance, None)
        .await
        .unwrap();
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "the renewed token is cached"
    );
}

/// A Keystone double whose catalogue names its own `/compute`, where
/// `/compute/servers/detail` answers what `servers` makes of the query.
async fn nova_double(
    servers: impl Fn(std::collections::HashMap<String, String>) -> (axum::http::StatusCode, Value)
        + Clone
        + Send
        + Sync
        + 'static,
) -> String {
    use axum::extract::Query;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let catalog_url = base.clone();
    let app = axum::Router::new()
        .route(
            "/v3/auth/tokens",
            axum::routing::post(move || {
                let body = json!({ "token": { "expires_at": "2999-01-01T00:00:00Z", "catalog": [{ "type": "compute", "endpoints": [
                    { "interface": "public", "region_id": "r1", "url": format!("{catalog_url}/compute") }] }] } });
                async move { (axum::http::StatusCode::CREATED, [("x-subject-token", "t")], axum::Json(body)) }
            }),
        )
        .route(
            "/compute/servers/detail",
            axum::routing::get(move |Query(q): Query<std::collections::HashMap<String, String>>| {
                let (status, body) = servers(q);
                async move { (status, axum::Json(body)) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn lists_follow_the_members_pages() {
    let pages = Arc::new(AtomicUsize::new(0));
    let count = pages.clone();
    let base = nova_double(move |q| {
        count.fetch_add(1, Ordering::SeqCst);
        let all: Vec<Value> = (1..=5)
            .map(|i| json!({ "id": format!("s{i}"), "status": "ACTIVE", "metadata": { "alliance_broker_id": format!("ins-{i}") } }))
            .collect();
        let start = q.get("marker").map_or(0, |m| all.iter().position(|s| s["id"] == m.as_str()).map_or(99, |p| p + 1));
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
        let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
        (axum::http::StatusCode::OK, json!({ "servers": page }))
    })
    .await;
    let mut adapter = adapter_for(&base);
    adapter.page_size = 2;
    let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
    let listed = adapter
        .list(&ctx, ResourceType::Instance, None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert_eq!(
        pages.load(Ordering::SeqCst),
        4,
        "pages of 2, 2, 1 and an empty one"
    );
}

#[tokio::test]
async fn a_marker_deleted_between_pages_does_not_end_the_listing() {
    // Cinder's answer for a marker it no longer has, and Nova's.
    listing_survives_a_deleted_marker(
        axum::http::StatusCode::NOT_FOUND,
        json!({ "itemNotFound": { "code": 404, "message": "Instance could not be found." } }),
    )
    .await;
    listing_survives_a_deleted_marker(
        axum::http::StatusCode::BAD_REQUEST,
        json!({ "badRequest": { "code": 400, "message": "marker [s2] not found" } }),
    )
    .await;
}

async fn listing_survives_a_deleted_marker(status: axum::http::StatusCode, refusal: Value) {
    use std::sync::atomic::AtomicBool;
    let deleted = Arc::new(AtomicBool::new(false));
    let base = nova_double(move |q| {
        // s2 is deleted right after the first page named it: the member then refuses it
        // as a marker.
        let all: Vec<Value> = (1..=5)
            .filter(|i| *i != 2 || !deleted.load(Ordering::SeqCst))
            .map(|i| json!({ "id": format!("s{i}"), "status": "ACTIVE", "metadata": { "alliance_broker_id": format!("ins-{i}") } }))
            .collect();
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000);
        let start = match q.get("marker") {
            None => Some(0),
            Some(m) => all.iter().position(|s| s["id"] == m.as_str()).map(|p| p + 1),
        };
        match start {
            Some(start) => {
                let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
                if page.iter().any(|s| s["id"] == "s2") {
                    deleted.store(true, Ordering::SeqCst);
                }
                (axum::http::StatusCode::OK, json!({ "servers": page }))
            }
            None => (status, refusal.clone()),
        }
    })
    .await;
    let mut adapter = adapter_for(&base);
    adapter.page_size = 2;
    let ctx = CallContext::new(None, "k", std::time::Duration::from_secs(5));
    let listed = adapter
        .list(&ctx, ResourceType::Instance, None)
        .await
        .unwrap();
    let ids: Vec<&str> = listed
        .iter()
        .map(|r| r.member_resource_id.as_str())
        .collect();
    assert_eq!(ids, ["s1", "s3", "s4", "s5"]);
}
