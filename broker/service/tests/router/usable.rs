//! Resources a tenant can use: an instance with a key, user data, ingress and addresses,
//! its actions; volumes attached at their instance's member; objects stored and read
//! through signed URLs straight at the (simulated) member, with real HTTP.

use axum::http::Method;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::support::{Actor, TestApp};

const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@ed25519";
const CLOUD_INIT: &str = "#cloud-config\nruncmd:\n  - echo hello > /tmp/hello\n";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Accepts, settles, and returns (operation, resource id).
async fn done(
    app: &TestApp,
    actor: Actor,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (Value, String) {
    let op = app.call(actor, method, path, body).await.ok(202);
    let id = op["id"].as_str().expect("operation id").to_owned();
    let settled = app.settle(actor, &id).await;
    let resource = settled["resource_id"]
        .as_str()
        .expect("resource")
        .to_owned();
    (settled, resource)
}

async fn get(app: &TestApp, actor: Actor, path: &str) -> Value {
    app.call(actor, Method::GET, path, None).await.ok(200)
}

async fn key(app: &TestApp, actor: Actor) {
    app.call(
        actor,
        Method::POST,
        "/v1/ssh-keys",
        Some(json!({"name": "laptop", "public_key": ED25519})),
    )
    .await
    .ok(201);
}

fn instance_body(jurisdiction: &str) -> Value {
    json!({
        "name": "web", "jurisdiction": jurisdiction, "size": "small", "image": "debian-12",
        "ssh_key": "laptop", "user_data": b64(CLOUD_INIT),
        "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.0/24"}],
        "public_ip": true,
    })
}

async fn instance(app: &TestApp, jurisdiction: &str) -> String {
    let (op, id) = done(
        app,
        Actor::TenantA,
        Method::POST,
        "/v1/instances",
        Some(instance_body(jurisdiction)),
    )
    .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    id
}

#[tokio::test]
async fn an_instance_gets_its_key_user_data_rules_and_addresses_and_obeys_actions() {
    let app = TestApp::start().await;
    key(&app, Actor::TenantA).await;
    let id = instance(&app, "FR").await;
    let view = get(&app, Actor::TenantA, &format!("/v1/instances/{id}")).await;
    assert_eq!(view["status"], "active");
    assert_eq!(view["power_state"], "running");
    assert_eq!(view["ssh_key"], "laptop");
    assert!(
        view["member_resource_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("sim-")),
        "{view}"
    );
    assert_eq!(
        view["user_data_sha256"],
        hex::encode(sha2::Sha256::digest(CLOUD_INIT.as_bytes()))
    );
    assert!(
        !view.to_string().contains(&b64(CLOUD_INIT)),
        "user data is never returned"
    );
    assert_eq!(
        view["ingress"],
        json!([{"protocol": "tcp", "port": 22, "cidr": "203.0.113.0/24"}])
    );
    let private = view["addresses"]["private"].as_array().expect("private");
    assert_eq!(private.len(), 1);
    assert!(
        private[0].as_str().expect("ip").starts_with("10."),
        "{view}"
    );
    assert_eq!(
        view["addresses"]["public"].as_array().map(Vec::len),
        Some(1)
    );

    let path = format!("/v1/instances/{id}/actions");
    for (action, power) in [
        ("stop", "stopped"),
        ("start", "running"),
        ("reboot", "running"),
    ] {
        let (op, _) = done(
            &app,
            Actor::TenantA,
            Method::POST,
            &path,
            Some(json!({"action": action})),
        )
        .await;
        assert_eq!(op["kind"], action);
        assert_eq!(op["status"], "succeeded", "{op}");
        let view = get(&app, Actor::TenantA, &format!("/v1/instances/{id}")).await;
        assert_eq!(view["power_state"], power, "after {action}");
        assert_eq!(view["status"], "active");
    }
    // Usage counts whole seconds: each size runs past a second's boundary.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (op, _) = done(
        &app,
        Actor::TenantA,
        Method::POST,
        &path,
        Some(json!({"action": "resize", "size": "medium"})),
    )
    .await;
    assert_eq!(op["kind"], "resize");
    assert_eq!(op["status"], "succeeded", "{op}");
    let view = get(&app, Actor::TenantA, &format!("/v1/instances/{id}")).await;
    assert_eq!(view["size"], "medium");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Usage is rated at the new size from the resize on: two SKUs for one instance.
    let period = alliance_service::time::rfc3339(app.state.clock.now_ms())[..7].to_owned();
    let usage = get(&app, Actor::TenantA, &format!("/v1/usage?period={period}")).await;
    let skus: std::collections::BTreeSet<String> = usage["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter(|l| l["resource_id"] == id.as_str())
        .map(|l| l["sku"].as_str().expect("sku").to_owned())
        .collect();
    assert_eq!(
        skus,
        ["instance.medium".to_owned(), "instance.small".to_owned()].into(),
        "{usage}"
    );

    // The audit log records each action, never the user data.
    let audit = app
        .call(Actor::Operator, Method::GET, "/v1/audit?limit=500", None)
        .await
        .ok(200);
    let text = audit.to_string();
    for action in [
        "instance.stop",
        "instance.start",
        "instance.reboot",
        "instance.resize",
    ] {
        assert!(text.contains(action), "{action} is audited");
    }
    assert!(!text.contains(&b64(CLOUD_INIT)));
}

#[tokio::test]
async fn actions_honour_idempotency_keys_and_refuse_bad_input_and_other_tenants() {
    let app = TestApp::start().await;
    key(&app, Actor::TenantA).await;
    let id = instance(&app, "BE").await;
    let path = format!("/v1/instances/{id}/actions");
    let stop = json!({"action": "stop"});
    let first = app
        .send(
            Actor::TenantA,
            Method::POST,
            &path,
            Some(stop.clone()),
            &[("idempotency-key", b"stop-1")],
        )
        .await
        .ok(202);
    let again = app
        .send(
            Actor::TenantA,
            Method::POST,
            &path,
            Some(stop.clone()),
            &[("idempotency-key", b"stop-1")],
        )
        .await
        .ok(202);
    assert_eq!(
        first["id"], again["id"],
        "a retried action is the same operation"
    );
    app.settle(Actor::TenantA, first["id"].as_str().expect("id"))
        .await;

    for (body, field) in [
        (json!({"action": "explode"}), "action"),
        (json!({"action": "resize"}), "size"),
        (json!({"action": "resize", "size": "galactic"}), "size"),
        (json!({"action": "start", "size": "small"}), "size"),
    ] {
        let problem = app
            .call(Actor::TenantA, Method::POST, &path, Some(body))
            .await
            .problem(422, "validation.invalid_field");
        assert!(
            problem["detail"].as_str().expect("detail").contains(field),
            "{problem}"
        );
    }
    // Another tenant cannot act on it, or learn that it exists.
    app.call(
        Actor::TenantB,
        Method::POST,
        &path,
        Some(json!({"action": "start"})),
    )
    .await
    .problem(404, "resource.not_found");
    // A key of another tenant is unknown.
    let mut body = instance_body("FR");
    body["ssh_key"] = json!("laptop");
    app.call(Actor::TenantB, Method::POST, "/v1/instances", Some(body))
        .await
        .problem(404, "resource.not_found");
}

#[tokio::test]
async fn bad_instance_input_names_its_field_and_creates_nothing() {
    let app = TestApp::start().await;
    key(&app, Actor::TenantA).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"user_data": "%%%not base64"}), "user_data"),
        (
            json!({"user_data": b64(&"a".repeat(16 * 1024 + 1))}),
            "user_data",
        ),
        (
            json!({"ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.9/24"}]}),
            "ingress[0].cidr",
        ),
        (
            json!({"ingress": [{"protocol": "tcp", "port": 22, "cidr": "not-a-network"}]}),
            "ingress[0].cidr",
        ),
        (
            json!({"ingress": [{"protocol": "tcp", "port": 70000, "cidr": "0.0.0.0/0"}]}),
            "ingress[0].port",
        ),
        (
            json!({"ingress": [{"protocol": "tcp", "cidr": "0.0.0.0/0"}]}),
            "ingress[0].port",
        ),
        (
            json!({"ingress": [{"protocol": "sctp", "port": 1, "cidr": "0.0.0.0/0"}]}),
            "ingress[0].protocol",
        ),
        (json!({"ssh_key": "../etc"}), "ssh_key"),
    ];
    for (change, field) in cases {
        let mut body = instance_body("FR");
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let reply = app
            .call(Actor::TenantA, Method::POST, "/v1/instances", Some(body))
            .await;
        let problem = reply.problem(422, "validation.invalid_field");
        assert!(
            problem["detail"].as_str().expect("detail").contains(field),
            "{field}: {problem}"
        );
    }
    let listed = get(&app, Actor::TenantA, "/v1/instances").await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "nothing was created"
    );
}

#[tokio::test]
async fn volumes_attach_at_their_instance_member_and_stay_until_detached() {
    let app = TestApp::start().await;
    key(&app, Actor::TenantA).await;
    let fr = instance(&app, "FR").await;
    let de = instance(&app, "DE").await;
    let (op, vol) = done(
        &app,
        Actor::TenantA,
        Method::POST,
        "/v1/volumes",
        Some(json!({"name": "data", "jurisdiction": "FR", "size_gb": 10})),
    )
    .await;
    assert_eq!(op["status"], "succeeded");
    let view = get(&app, Actor::TenantA, &format!("/v1/volumes/{vol}")).await;
    assert_eq!(view["attached_to"], Value::Null);

    // Across members: refused at once, nothing changes.
    app.call(
        Actor::TenantA,
        Method::POST,
        &format!("/v1/volumes/{vol}/attach"),
        Some(json!({"instance": de})),
    )
    .await
    .problem(422, "placement.not_colocated");
    let (op, _) = done(
        &app,
        Actor::TenantA,
        Method::POST,
        &format!("/v1/volumes/{vol}/attach"),
        Some(json!({"instance": fr})),
    )
    .await;
    assert_eq!(op["kind"], "attach");
    assert_eq!(op["status"], "succeeded", "{op}");
    let view = get(&app, Actor::TenantA, &format!("/v1/volumes/{vol}")).await;
    assert_eq!(view["attached_to"], fr.as_str());
    assert_eq!(view["device"], "/dev/vdb");

    // Neither the attached volume nor its instance can be deleted meanwhile.
    app.call(
        Actor::TenantA,
        Method::DELETE,
        &format!("/v1/volumes/{vol}"),
        None,
    )
    .await
    .problem(409, "resource.conflict");
    app.call(
        Actor::TenantA,
        Method::DELETE,
        &format!("/v1/instances/{fr}"),
        None,
    )
    .await
    .problem(409, "resource.conflict");
    // Another tenant cannot attach, detach or see it.
    app.call(
        Actor::TenantB,
        Method::POST,
        &format!("/v1/volumes/{vol}/detach"),
        None,
    )
    .await
    .problem(404, "resource.not_found");
    app.call(
        Actor::TenantB,
        Method::POST,
        &format!("/v1/volumes/{vol}/attach"),
        Some(json!({"instance": fr})),
    )
    .await
    .problem(404, "resource.not_found");

    let (op, _) = done(
        &app,
        Actor::TenantA,
        Method::POST,
        &format!("/v1/volumes/{vol}/detach"),
        None,
    )
    .await;
    assert_eq!(op["kind"], "detach");
    assert_eq!(op["status"], "succeeded", "{op}");
    let view = get(&app, Actor::TenantA, &format!("/v1/volumes/{vol}")).await;
    assert_eq!(view["attached_to"], Value::Null);
    let (op, _) = done(
        &app,
        Actor::TenantA,
        Method::DELETE,
        &format!("/v1/volumes/{vol}"),
        None,
    )
    .await;
    assert_eq!(op["status"], "succeeded");

    // Created for an instance: placed at its member (whatever the tenant's home), attached.
    let evaluation = app
        .call(
            Actor::TenantA,
            Method::POST,
            "/v1/placement/evaluate",
            Some(json!({"resource_type": "volume", "attach_to": de})),
        )
        .await
        .ok(200);
    assert_eq!(evaluation["chosen"], "telekom-de");
    assert!(
        evaluation["constraints"][0]
            .as_str()
            .expect("constraint")
            .contains("co-located"),
        "{evaluation}"
    );
    let (op, vol) = done(
        &app,
        Actor::TenantA,
        Method::POST,
        "/v1/volumes",
        Some(json!({"name": "logs", "size_gb": 5, "attach_to": de})),
    )
    .await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let view = get(&app, Actor::TenantA, &format!("/v1/volumes/{vol}")).await;
    assert_eq!(view["member"], "telekom-de");
    assert_eq!(view["attached_to"], de.as_str());
    app.call(
        Actor::TenantA,
        Method::POST,
        "/v1/volumes",
        Some(json!({"name": "x", "size_gb": 5, "jurisdiction": "FR", "attach_to": de})),
    )
    .await
    .problem(422, "placement.not_colocated");
}

#[tokio::test]
async fn signed_urls_store_and_return_bytes_at_the_member_and_are_audited() {
    let app = TestApp::start().await;
    let (op, bucket) = done(
        &app,
        Actor::TenantA,
        Method::POST,
        "/v1/buckets",
        Some(json!({"name": "reports", "jurisdiction": "BE"})),
    )
    .await;
    assert_eq!(op["status"], "succeeded");
    let view = get(&app, Actor::TenantA, &format!("/v1/buckets/{bucket}")).await;
    let endpoint = view["endpoint"].as_str().expect("endpoint");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{view}");

    let path = format!("/v1/buckets/{bucket}/urls");
    // A tenant-user reads objects (GET URLs) but writes and deletes none.
    for method in ["PUT", "DELETE"] {
        app.call(
            Actor::UserA,
            Method::POST,
            &path,
            Some(json!({"method": method, "object": "q4/report.csv"})),
        )
        .await
        .problem(403, "auth.forbidden");
    }
    let read = app
        .call(
            Actor::UserA,
            Method::POST,
            &path,
            Some(json!({"method": "GET", "object": "q4/report.csv"})),
        )
        .await
        .ok(200);
    assert_eq!(read["method"], "GET");
    let put = app
        .call(
            Actor::TenantA,
            Method::POST,
            &path,
            Some(json!({"method": "PUT", "object": "q4/report.csv", "expires_in": 600})),
        )
        .await
        .ok(200);
    assert_eq!(put["method"], "PUT");
    let put_url = put["url"].as_str().expect("url");
    assert!(put_url.starts_with(endpoint), "{put_url}");
    let http = reqwest::Client::new();
    let bytes = b"tenant,amount\nacme,12.50\n".to_vec();
    let stored = http
        .put(put_url)
        .body(bytes.clone())
        .send()
        .await
        .expect("put");
    assert!(stored.status().is_success(), "{}", stored.status());
    // The PUT URL does not read; a GET URL does, and returns the same bytes.
    assert_eq!(http.get(put_url).send().await.expect("get").status(), 403);
    let get_url = app
        .call(
            Actor::TenantA,
            Method::POST,
            &path,
            Some(json!({"method": "GET", "object": "q4/report.csv"})),
        )
        .await
        .ok(200);
    let got = http
        .get(get_url["url"].as_str().expect("url"))
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), bytes);
    // A tampered URL is refused.
    let tampered = get_url["url"]
        .as_str()
        .expect("url")
        .replace("q4/report.csv", "q4/other.csv");
    assert_eq!(http.get(&tampered).send().await.expect("get").status(), 403);

    // Every URL issued is audited (who, object, method, until when), never the URL.
    let audit = app
        .call(Actor::Operator, Method::GET, "/v1/audit?limit=500", None)
        .await
        .ok(200);
    let urls: Vec<&Value> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "bucket.url")
        .collect();
    // (The tenant-user's GET, the PUT and the GET: the refused ones issued nothing.)
    assert_eq!(urls.len(), 3, "{audit}");
    assert_eq!(
        urls.iter().filter(|e| e["actor"] == "carol@acme").count(),
        1
    );
    assert_eq!(
        urls.iter()
            .filter(|e| e["details"]["method"] == "PUT")
            .count(),
        1
    );
    assert!(urls
        .iter()
        .all(|e| e["details"]["object"] == "q4/report.csv"));
    assert!(
        !audit.to_string().contains("signature="),
        "the URL never reaches the audit log"
    );

    for (body, field) in [
        (
            json!({"method": "GET", "object": "../../etc/passwd"}),
            "object",
        ),
        (json!({"method": "GET", "object": "a\u{1}b"}), "object"),
        (
            json!({"method": "GET", "object": "a", "expires_in": 0}),
            "expires_in",
        ),
        (
            json!({"method": "GET", "object": "a", "expires_in": 43_201}),
            "expires_in",
        ),
        (json!({"method": "POST", "object": "a"}), "method"),
    ] {
        let problem = app
            .call(Actor::TenantA, Method::POST, &path, Some(body))
            .await
            .problem(422, "validation.invalid_field");
        assert!(
            problem["detail"].as_str().expect("detail").contains(field),
            "{problem}"
        );
    }
    app.call(
        Actor::TenantB,
        Method::POST,
        &path,
        Some(json!({"method": "GET", "object": "q4/report.csv"})),
    )
    .await
    .problem(404, "resource.not_found");
}
