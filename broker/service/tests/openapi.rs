//! The OpenAPI document is a checked contract: the document the router serves at
//! `/openapi.json` (built in process, no socket) must equal the committed snapshot
//! `docs/openapi.json`, and its shape is asserted here (3.1, path parameters that exist in
//! their route, paging parameters in the query, bearer security on every `/v1` operation).
//!
//! After an intended change to the API, review the difference and rewrite the snapshot with
//! `ALLIANCE_UPDATE_SNAPSHOTS=1 cargo test -p alliance-service --test openapi`.
#![expect(clippy::panic, reason = "tests fail by panicking, with the reason")]

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use alliance_service::config::{Config, DEMO_CONFIG};
use alliance_service::startup::{build_state, Settings};

const SNAPSHOT_VAR: &str = "ALLIANCE_UPDATE_SNAPSHOTS";

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

/// `GET /openapi.json` from the demo broker's router, in process.
async fn served_document() -> Value {
    let data_dir = tempfile::tempdir().expect("a temp data dir");
    let config = Config::parse(DEMO_CONFIG, "demo").expect("the demo config parses");
    let state = build_state(Settings::new(config, data_dir.path().to_path_buf()))
        .await
        .expect("the demo broker's state builds");
    let response = alliance_service::api::router(state)
        .oneshot(
            Request::builder()
                .uri("/openapi.json")
                .body(Body::empty())
                .expect("a request"),
        )
        .await
        .expect("the router answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body reads");
    serde_json::from_slice(&bytes).expect("/openapi.json is JSON")
}

fn pretty(document: &Value) -> String {
    let mut text = serde_json::to_string_pretty(document).expect("JSON serialises");
    text.push('\n');
    text
}

#[tokio::test]
async fn the_served_document_matches_the_committed_snapshot() {
    let served = pretty(&served_document().await);
    let path = snapshot_path();
    let update = std::env::var(SNAPSHOT_VAR).is_ok_and(|v| v == "1");
    if update {
        std::fs::write(&path, &served)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("{SNAPSHOT_VAR}=1: rewrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the snapshot {} ({e}): create it with {SNAPSHOT_VAR}=1 cargo test -p alliance-service --test openapi",
            path.display()
        )
    });
    if committed != served {
        let first = committed
            .lines()
            .zip(served.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(served.lines().count()));
        let line = |text: &str| {
            text.lines()
                .nth(first)
                .unwrap_or("<end of file>")
                .to_owned()
        };
        panic!(
            "the served OpenAPI document differs from docs/openapi.json, first at line {}:\n  snapshot: {}\n  served:   {}\n\
             If the API change is intended, re-run with {SNAPSHOT_VAR}=1 cargo test -p alliance-service --test openapi, \
             which rewrites docs/openapi.json, then review the diff (git diff docs/openapi.json) and commit it with the change.",
            first + 1,
            line(&committed),
            line(&served),
        );
    }
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every (route, method, operation) of the document.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let paths = document["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (route, item) in paths {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                out.push((route.clone(), (*method).to_owned(), op.clone()));
            }
        }
    }
    out
}

/// The parameters of an operation and of its path item, `$ref`s resolved.
fn parameters(document: &Value, route: &str, operation: &Value) -> Vec<Value> {
    let own = operation["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let shared = document["paths"][route]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    own.into_iter()
        .chain(shared)
        .map(|p| match p.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference
                    .strip_prefix("#/components/parameters/")
                    .unwrap_or_else(|| panic!("unexpected parameter $ref {reference}"));
                document["components"]["parameters"][name].clone()
            }
            None => p,
        })
        .collect()
}

/// The `{name}` segments of a route.
fn template_names(route: &str) -> Vec<String> {
    route
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

fn is_integer(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "integer",
        // 3.1 writes an optional integer as `["integer", "null"]`.
        Value::Array(types) => types.iter().any(|t| t == "integer"),
        _ => false,
    }
}

#[tokio::test]
async fn the_document_has_the_contract_shape() {
    let document = served_document().await;
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(
        version.starts_with("3.1."),
        "openapi is {version}, not 3.1.x"
    );
    let operations = operations(&document);
    assert!(
        operations.len() > 30,
        "only {} operations",
        operations.len()
    );

    // Unique operation ids: validators reject duplicates, and client generators name
    // their functions after them.
    let mut ids = std::collections::BTreeMap::new();
    for (route, method, op) in &operations {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {route} has no operationId"));
        if let Some(other) = ids.insert(id.to_owned(), format!("{method} {route}")) {
            panic!("operationId `{id}` is used by {other} and by {method} {route}");
        }
    }

    // Path parameters exist in their route, and every templated name is a path parameter.
    for (route, method, op) in &operations {
        let names = template_names(route);
        let params = parameters(&document, route, op);
        for p in &params {
            if p["in"] == "path" {
                let name = p["name"].as_str().unwrap_or_default();
                assert!(
                    names.iter().any(|n| n == name),
                    "{method} {route}: path parameter `{name}` is not `{{{name}}}` in the route"
                );
                assert_eq!(
                    p["required"], true,
                    "{method} {route}: path parameter `{name}` must be required"
                );
            }
        }
        for name in &names {
            assert!(
                params
                    .iter()
                    .any(|p| p["in"] == "path" && p["name"] == name.as_str()),
                "{method} {route}: `{{{name}}}` has no path parameter"
            );
        }
    }

    // Paging of GET /v1/instances: optional query parameters, limit an integer.
    let list = &document["paths"]["/v1/instances"]["get"];
    let params = parameters(&document, "/v1/instances", list);
    for name in ["limit", "page_token"] {
        let p = params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("GET /v1/instances has no `{name}` parameter"));
        assert_eq!(p["in"], "query", "`{name}` of GET /v1/instances: {p}");
        assert_ne!(p["required"], true, "`{name}` of GET /v1/instances: {p}");
        if name == "limit" {
            assert!(is_integer(&p["schema"]), "`limit` is not an integer: {p}");
        }
    }

    // Bearer security: the scheme, and a requirement on every /v1 operation.
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for (route, method, op) in operations.iter().filter(|(r, _, _)| r.starts_with("/v1/")) {
        let requirements = op["security"]
            .as_array()
            .or_else(|| document["security"].as_array())
            .unwrap_or_else(|| panic!("{method} {route} has no security requirement"));
        // The requirements are alternatives: each must name bearer (no `{}` = anonymous).
        assert!(
            !requirements.is_empty()
                && requirements
                    .iter()
                    .all(|r| r.as_object().is_some_and(|o| o.contains_key("bearer"))),
            "{method} {route} does not require the bearer scheme: {requirements:?}"
        );
    }
}
