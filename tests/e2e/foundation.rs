//! The foundation, end to end: the demo broker answers its operational routes, every error
//! is problem+json, the CLI validates configs, and SIGTERM stops it cleanly.
#![expect(clippy::unwrap_used, reason = "tests")]

use alliance_e2e::{run_cli, scratch, Broker, Options, DEMO_CONFIG};
use serde_json::json;

#[tokio::test]
async fn operational_routes_answer() {
    let broker = Broker::start(Options::demo()).await;
    let anon = broker.anonymous();
    assert_eq!(anon.get("/healthz").await.status, 200);
    let ready = anon.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["members"]["numergy-fr"], "up");
    let openapi = anon.get("/openapi.json").await.json();
    assert!(
        openapi["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        openapi["openapi"]
    );
    for path in [
        "/v1/instances",
        "/v1/instances/{id}",
        "/v1/volumes",
        "/v1/buckets",
        "/v1/operations/{id}",
        "/v1/placement/evaluate",
        "/v1/members",
        "/v1/tenants/{id}/residency",
        "/v1/tenants",
        "/v1/audit",
    ] {
        assert!(openapi["paths"][path].is_object(), "openapi lacks {path}");
    }
    let docs = anon.get("/docs").await;
    assert_eq!(docs.status, 200);
    let page = String::from_utf8(docs.bytes).unwrap();
    assert!(
        page.contains("/openapi.json") && !page.contains("https://"),
        "the docs page must load nothing from outside"
    );
    // A request makes metrics appear.
    let metrics = anon.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8(metrics.bytes).unwrap();
    assert!(text.contains("alliance_http_requests_total"), "{text}");
}

#[tokio::test]
async fn every_error_is_problem_json() {
    // A small body limit, so that the oversized body fits in socket buffers and the client
    // reads the 413 instead of a reset connection.
    let mut options = Options::demo();
    options.config =
        options
            .config
            .replacen("[server]\n", "[server]\nbody_limit_bytes = 4096\n", 1);
    let broker = Broker::start(options).await;
    let anon = broker.anonymous();
    anon.get_problem("/v1/instances", 401, "auth.invalid_token")
        .await;
    anon.send(
        reqwest::Method::GET,
        "/v1/instances",
        None,
        &[("authorization", "Bearer not.a.jwt")],
    )
    .await
    .assert_problem(401, "auth.invalid_token");
    anon.get_problem("/no/such/route", 404, "route.not_found")
        .await;
    anon.send(reqwest::Method::PUT, "/healthz", None, &[])
        .await
        .assert_problem(405, "route.method_not_allowed");

    let admin = broker.client(&broker.token("tenant-admin", Some("acme")));
    let raw = reqwest::Client::new()
        .post(format!("{}/v1/buckets", broker.url))
        .bearer_auth(broker.token("tenant-admin", Some("acme")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");
    let big = json!({ "name": "x".repeat(8 * 1024) });
    admin
        .post_problem("/v1/buckets", &big, 413, "request.too_large")
        .await;
    let unknown = admin
        .post_problem(
            "/v1/buckets",
            &json!({ "name": "b", "colour": "blue" }),
            422,
            "validation.invalid_field",
        )
        .await;
    assert!(
        unknown["detail"].as_str().unwrap().contains("colour"),
        "{unknown}"
    );
    admin
        .post_problem(
            "/v1/buckets",
            &json!({ "name": "b", "jurisdiction": "XX" }),
            422,
            "validation.invalid_field",
        )
        .await;
    admin
        .get_problem("/v1/buckets?limit=0", 400, "validation.invalid_query")
        .await;
    admin
        .get_problem(
            "/v1/buckets?page_token=garbage",
            400,
            "validation.invalid_query",
        )
        .await;
    admin
        .get_problem("/v1/buckets?colour=blue", 400, "validation.invalid_query")
        .await;
    admin
        .get_problem("/v1/usage", 400, "validation.invalid_query")
        .await;
    // A tenant-user may read but not create; an operator is not a tenant.
    let user = broker.client(&broker.token("tenant-user", Some("acme")));
    user.post_problem(
        "/v1/buckets",
        &json!({ "name": "b" }),
        403,
        "auth.forbidden",
    )
    .await;
    assert_eq!(user.get("/v1/buckets").await.status, 200);
    // Nothing was created by any of it.
    assert_eq!(admin.get("/v1/buckets").await.json()["items"], json!([]));
}

#[tokio::test]
async fn request_ids_are_generated_or_propagated() {
    let broker = Broker::start(Options::demo()).await;
    let anon = broker.anonymous();
    let generated = anon.get("/healthz").await.header("x-request-id").unwrap();
    assert!(!generated.is_empty());
    let given = anon
        .send(
            reqwest::Method::GET,
            "/healthz",
            None,
            &[("x-request-id", "trace-me-42")],
        )
        .await;
    assert_eq!(given.header("x-request-id").as_deref(), Some("trace-me-42"));
}

#[tokio::test]
async fn sigterm_stops_the_broker_cleanly() {
    let mut broker = Broker::start(Options::demo()).await;
    let status = broker.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        broker.log_text()
    );
    assert!(
        broker.log_text().contains("shutting down"),
        "{}",
        broker.log_text()
    );
}

#[test]
fn config_check_names_the_key_and_the_line() {
    let dir = scratch("config");
    let good = dir.join("good.toml");
    std::fs::write(&good, DEMO_CONFIG).unwrap();
    // The demo names its reference rates beside itself: without the file, the key is named.
    let (code, _, err) = run_cli(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("billing.reference_rates") && err.contains("reference-rates.csv"),
        "{err}"
    );
    std::fs::write(
        dir.join("reference-rates.csv"),
        alliance_e2e::REFERENCE_RATES,
    )
    .unwrap();
    let (code, out, _) = run_cli(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        DEMO_CONFIG.replace("audience = \"alliance\"", "audiense = \"alliance\""),
    )
    .unwrap();
    let line = DEMO_CONFIG
        .lines()
        .position(|l| l.starts_with("audience"))
        .unwrap()
        + 1;
    let (code, _, err) = run_cli(&["config", "check", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("audiense")
            && err.contains(&format!("line {line}"))
            && err.contains("bad.toml"),
        "{err}"
    );
    let (code, _, err) = run_cli(&[
        "config",
        "check",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn token_refuses_bad_arguments_and_prints_only_the_token() {
    let dir = scratch("token");
    let (code, out, _) = run_cli(&[
        "token",
        "--role",
        "operator",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim().split('.').count(),
        3,
        "a JWT alone on stdout: {out}"
    );
    let key = dir.join("dev-issuer-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (code, _, err) = run_cli(&[
        "token",
        "--role",
        "tenant-admin",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--tenant"), "{err}");
    let (code, _, err) = run_cli(&[
        "token",
        "--role",
        "king",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("king"), "{err}");
}

#[tokio::test]
async fn the_dev_issuer_refuses_a_network_address() {
    let dir = scratch("listen");
    let (code, _, err) = run_cli(&[
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("development token issuer"), "{err}");
}
