//! Third-party peers against the broker: a real OIDC implementation (npm
//! `oauth2-mock-server`) whose token is accepted through discovery, and schemathesis run
//! against `/openapi.json` with authentication (no 5xx, no response violating the schema).
//! `scripts/test` installs both and names them in `ALLIANCE_TEST_OIDC_ISSUER` and
//! `ALLIANCE_TEST_SCHEMATHESIS`; without them these tests fail loudly.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::process::Command;

use alliance_e2e::{json_of, Broker, Options};

fn peer(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run scripts/test, which installs this peer"))
}

/// A token from the peer's own token endpoint (client credentials) with `claims`.
async fn issue(http: &reqwest::Client, port: u16, claims: &[(&str, &str)]) -> serde_json::Value {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(claims);
    json_of(
        http.post(format!("http://127.0.0.1:{port}/token"))
            .basic_auth("broker-e2e", Some("secret"))
            .form(&form),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_oidc_issuer_is_trusted_through_discovery() {
    let oidc = alliance_e2e::OidcPeer::start();
    let port = oidc.port;
    let mut options = Options::demo();
    options.config = oidc.demo_config("");
    let broker = Broker::start(options).await;

    // A token from the peer's own token endpoint (client credentials).
    let http = reqwest::Client::new();
    let token = issue(
        &http,
        port,
        &[
            ("aud", "alliance"),
            ("sub", "oidc-alice"),
            ("roles", "tenant-admin"),
            ("tenant", "acme"),
        ],
    )
    .await;
    let access = token["access_token"].as_str().unwrap();
    let acme = broker.client(access);
    let answer = acme.get("/v1/instances").await;
    answer.assert_status(200);
    let bucket = acme
        .create_and_wait("/v1/buckets", &serde_json::json!({ "name": "from-oidc" }))
        .await;
    assert_eq!(bucket["tenant"], "acme");

    // The same issuer's token for another audience is refused.
    let other = issue(
        &http,
        port,
        &[
            ("aud", "not-alliance"),
            ("roles", "tenant-admin"),
            ("tenant", "acme"),
        ],
    )
    .await;
    broker
        .client(other["access_token"].as_str().unwrap())
        .get_problem("/v1/instances", 401, "auth.invalid_token")
        .await;
}

fn schemathesis(broker: &Broker, token: &str) -> String {
    let out = Command::new(peer("ALLIANCE_TEST_SCHEMATHESIS"))
        .args([
            "run",
            &format!("{}/openapi.json", broker.url),
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            "25",
            "--generation-deterministic",
            "--header",
        ])
        .arg(format!("Authorization: Bearer {token}"))
        .current_dir(&broker.data_dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    let summary = text
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or_else(|| panic!("no summary:\n{text}"))
        .trim()
        .to_owned();
    assert!(!summary.contains("failed"), "{summary}");
    summary
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let broker = Broker::start(Options::demo()).await;
    for (role, tenant) in [("tenant-admin", Some("acme")), ("operator", None)] {
        let summary = schemathesis(&broker, &broker.token(role, tenant));
        println!("schemathesis as {role}: {summary}");
    }
    // The broker is still healthy afterwards.
    assert_eq!(broker.anonymous().get("/readyz").await.status, 200);
}
