//! The error vocabulary: every code is documented, and the router's own refusals use it.

use alliance_service::error::ErrorCode;
use axum::http::Method;

use crate::support::{Actor, TestApp};

#[test]
fn docs_api_md_lists_every_error_code_with_its_status() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
        .expect("docs/api.md");
    let mut missing = Vec::new();
    for code in ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status());
        if !docs.contains(&row) {
            missing.push(row);
        }
    }
    assert!(
        missing.is_empty(),
        "docs/api.md must list every ErrorCode as a table row `| `code` | status | … |`; missing:\n{}",
        missing.join("\n")
    );
}

#[tokio::test]
async fn unknown_routes_methods_and_bodies_are_problems() {
    let app = TestApp::start().await;
    app.call(Actor::TenantA, Method::GET, "/v1/nowhere", None)
        .await
        .problem(404, "route.not_found");
    app.call(Actor::TenantA, Method::PUT, "/v1/instances", None)
        .await
        .problem(405, "route.method_not_allowed");
    let not_json = app
        .send(
            Actor::TenantA,
            Method::POST,
            "/v1/buckets",
            None,
            &[("content-type", b"text/plain")],
        )
        .await;
    not_json.problem(415, "validation.unsupported_media_type");
    let request = app
        .request(Actor::TenantA, Method::POST, "/v1/buckets")
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{\"name\": "))
        .expect("request");
    app.raw(request)
        .await
        .problem(400, "validation.invalid_json");
    let big = serde_json::json!({ "name": "x".repeat(2 << 20) });
    app.call(Actor::TenantA, Method::POST, "/v1/buckets", Some(big))
        .await
        .problem(413, "request.too_large");
}

#[tokio::test]
async fn query_errors_name_the_parameter_not_the_parser() {
    let app = TestApp::start().await;
    let problem = app
        .call(
            Actor::TenantA,
            Method::GET,
            "/v1/instances?colour=red",
            None,
        )
        .await
        .problem(400, "validation.invalid_query");
    let detail = problem["detail"].as_str().expect("detail");
    assert_eq!(detail, "query: `colour` is not a field of this request");
    let problem = app
        .call(Actor::Billing, Method::GET, "/v1/usage", None)
        .await
        .problem(400, "validation.invalid_query");
    assert_eq!(problem["detail"], "query: `period` is required");
}

#[tokio::test]
async fn a_401_names_its_scheme() {
    let app = TestApp::start().await;
    let reply = app
        .call(Actor::Anonymous, Method::GET, "/v1/instances", None)
        .await;
    reply.problem(401, "auth.invalid_token");
    assert_eq!(
        reply.headers["www-authenticate"].to_str().expect("ascii"),
        "Bearer realm=\"alliance\""
    );
}

#[tokio::test]
async fn client_request_ids_are_kept_only_when_safe() {
    let app = TestApp::start().await;
    let kept = app
        .send(
            Actor::TenantA,
            Method::GET,
            "/v1/instances",
            None,
            &[("x-request-id", b"trace-42.a:b")],
        )
        .await;
    assert_eq!(kept.headers["x-request-id"], "trace-42.a:b");
    for forged in [
        &b"x\" tenant.id=\"santeplus\"} operation finished"[..],
        &[b'a'; 65][..],
        b"\xe9t\xe9",
        b"two words",
    ] {
        let reply = app
            .send(
                Actor::TenantA,
                Method::GET,
                "/v1/instances",
                None,
                &[("x-request-id", forged)],
            )
            .await;
        let id = reply.headers["x-request-id"]
            .to_str()
            .expect("generated id is ascii");
        assert_ne!(id.as_bytes(), forged);
        assert!(
            id.len() <= 64 && id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'),
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_forged_audit_page_token_is_refused_not_restarted() {
    use base64::Engine;
    let app = TestApp::start().await;
    let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"l":"audit","a":"not-a-seq"}"#);
    app.call(
        Actor::Operator,
        Method::GET,
        &format!("/v1/audit?page_token={forged}"),
        None,
    )
    .await
    .problem(400, "validation.invalid_query");
    let duplicate = app
        .request(Actor::TenantA, Method::POST, "/v1/buckets")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"name": "a", "name": "b"}"#))
        .expect("request");
    app.raw(duplicate)
        .await
        .problem(400, "validation.invalid_json");
}

#[tokio::test]
async fn a_body_declared_over_the_limit_is_413_before_it_is_read() {
    let app = TestApp::start().await;
    for (method, path) in [
        (Method::POST, "/v1/buckets"),
        (Method::PUT, "/v1/members/numergy-fr/statements/2026-11"),
    ] {
        let request = app
            .request(Actor::Billing, method, path)
            .header("content-type", "application/json")
            .header("content-length", "1000000000000")
            .body(axum::body::Body::from("{\"a\":1}"))
            .expect("request");
        // Read, these seven bytes would be a 422 (unknown field, not FOCUS): the 413 comes
        // from the declared length alone.
        app.raw(request).await.problem(413, "request.too_large");
    }
}

#[tokio::test]
async fn an_encoded_body_is_refused_not_misread() {
    let app = TestApp::start().await;
    for encoding in [&b"gzip"[..], b"br", b"x-unknown"] {
        app.send(
            Actor::TenantA,
            Method::POST,
            "/v1/buckets",
            Some(serde_json::json!({"name": "b"})),
            &[("content-encoding", encoding)],
        )
        .await
        .problem(415, "validation.unsupported_media_type");
    }
    let buckets = app
        .call(Actor::TenantA, Method::GET, "/v1/buckets", None)
        .await
        .ok(200);
    assert_eq!(buckets["items"], serde_json::json!([]));
}
