//! SSH keys through the API: per tenant, validated once, fingerprinted as ssh-keygen does,
//! a name taken once even under a race.

use std::sync::Arc;

use axum::http::Method;
use serde_json::json;

use crate::support::{Actor, TestApp};

/// Made with `ssh-keygen -t ed25519`; the fingerprint is what `ssh-keygen -l` printed.
const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@ed25519";
const ED25519_FINGERPRINT: &str = "SHA256:3CC1+AlNyoyebwSd2YPq8QEwSPWA20l5znP8umpOHyg";
/// Made with `ssh-keygen -t ecdsa -b 256`.
const ECDSA256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBJf4m/EkKX/8VAv0PU9a1LKetyNig/OvpTv7komH5h9waMp0UkdJEFlmNLEdNVdFLpBNoRnXDzqmeopjSDvzGE= alice@ecdsa256";
const ECDSA256_FINGERPRINT: &str = "SHA256:pNLGds9ScuLbqvU+7shWdQAYPS4tA7pM9WIIoD0lcAc";
/// Made with `ssh-keygen -t rsa -b 1024`: too short.
const RSA1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDB4M9bLeirKq0mfvAyRknSvAreDsNIBYvp2iZEUNSsK7OqQBd9yyuXA2jipFHfHsezWIvfpe9+FtAP3TFVMT+ITvhr9QboUr1UTu9cFnuhslEjDss8nJTwLBnnsAHhdieHFxKZKW1pcDIeFZAoZ0uhZ26+CV2qGZfym39YC5i2ZQ== alice@rsa1024";

#[tokio::test]
async fn a_tenant_adds_lists_reads_and_deletes_its_keys() {
    let app = TestApp::start().await;
    let created = app
        .call(
            Actor::TenantA,
            Method::POST,
            "/v1/ssh-keys",
            Some(json!({"name": "laptop", "public_key": ED25519})),
        )
        .await
        .ok(201);
    assert_eq!(created["fingerprint"], ED25519_FINGERPRINT);
    assert_eq!(created["algorithm"], "ssh-ed25519");
    assert!(created["created_at"].is_string());
    app.call(
        Actor::TenantA,
        Method::POST,
        "/v1/ssh-keys",
        Some(json!({"name": "ci", "public_key": ECDSA256})),
    )
    .await
    .ok(201);
    let first = app
        .call(Actor::TenantA, Method::GET, "/v1/ssh-keys?limit=1", None)
        .await
        .ok(200);
    assert_eq!(first["items"][0]["name"], "ci");
    assert_eq!(first["items"][0]["fingerprint"], ECDSA256_FINGERPRINT);
    let token = first["next_page_token"].as_str().expect("more");
    let second = app
        .call(
            Actor::TenantA,
            Method::GET,
            &format!("/v1/ssh-keys?limit=1&page_token={token}"),
            None,
        )
        .await
        .ok(200);
    assert_eq!(second["items"][0]["name"], "laptop");
    // Another tenant neither sees nor touches them, and may use the same name.
    let theirs = app
        .call(Actor::TenantB, Method::GET, "/v1/ssh-keys", None)
        .await
        .ok(200);
    assert_eq!(theirs["items"], json!([]));
    for method in [Method::GET, Method::DELETE] {
        app.call(Actor::TenantB, method, "/v1/ssh-keys/laptop", None)
            .await
            .problem(404, "resource.not_found");
    }
    app.call(
        Actor::TenantB,
        Method::POST,
        "/v1/ssh-keys",
        Some(json!({"name": "laptop", "public_key": ED25519})),
    )
    .await
    .ok(201);
    // A name is taken once.
    app.call(
        Actor::TenantA,
        Method::POST,
        "/v1/ssh-keys",
        Some(json!({"name": "laptop", "public_key": ECDSA256})),
    )
    .await
    .problem(409, "resource.conflict");
    let deleted = app
        .call(Actor::TenantA, Method::DELETE, "/v1/ssh-keys/laptop", None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.call(Actor::TenantA, Method::GET, "/v1/ssh-keys/laptop", None)
        .await
        .problem(404, "resource.not_found");
    let audit = app
        .call(Actor::Operator, Method::GET, "/v1/audit?tenant=acme", None)
        .await
        .ok(200);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("ssh_key."))
        .collect();
    assert_eq!(
        actions,
        ["ssh_key.create", "ssh_key.create", "ssh_key.delete"]
    );
}

#[tokio::test]
async fn weak_or_malformed_keys_and_names_are_refused_and_store_nothing() {
    let app = TestApp::start().await;
    for (body, detail) in [
        (json!({"name": "old", "public_key": RSA1024}), "1024 bits"),
        (
            json!({"name": "x", "public_key": "ssh-ed25519 AAAA"}),
            "`public_key`",
        ),
        (
            json!({"name": "x", "public_key": "-----BEGIN OPENSSH PRIVATE KEY-----"}),
            "private key",
        ),
        (json!({"name": "a/b", "public_key": ED25519}), "`name`"),
        (json!({"name": "", "public_key": ED25519}), "`name`"),
        (json!({"name": "x"}), "`public_key` is required"),
    ] {
        let problem = app
            .call(
                Actor::TenantA,
                Method::POST,
                "/v1/ssh-keys",
                Some(body.clone()),
            )
            .await
            .problem(422, "validation.invalid_field");
        let text = problem["detail"].as_str().expect("detail");
        assert!(text.contains(detail), "{body}: {text}");
    }
    let keys = app
        .call(Actor::TenantA, Method::GET, "/v1/ssh-keys", None)
        .await
        .ok(200);
    assert_eq!(keys["items"], json!([]));
    // Only tenant admins add keys; tenant roles only.
    for actor in [Actor::Partner, Actor::Billing, Actor::Operator] {
        app.call(
            actor,
            Method::POST,
            "/v1/ssh-keys",
            Some(json!({"name": "k", "public_key": ED25519})),
        )
        .await
        .problem(403, "auth.forbidden");
    }
}

#[tokio::test]
async fn racing_creations_of_one_name_leave_one_key_and_409s() {
    let app = Arc::new(TestApp::start().await);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let app = app.clone();
        let key = if i % 2 == 0 { ED25519 } else { ECDSA256 };
        tasks.push(tokio::spawn(async move {
            app.call(
                Actor::TenantA,
                Method::POST,
                "/v1/ssh-keys",
                Some(json!({"name": "shared", "public_key": key})),
            )
            .await
            .status
            .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("task"));
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let keys = app
        .call(Actor::TenantA, Method::GET, "/v1/ssh-keys", None)
        .await
        .ok(200);
    assert_eq!(keys["items"].as_array().expect("items").len(), 1);
}
