//! Partners through the API: applications (validation, the SSRF guard, conformance in the
//! background, approval and rejection) and the lifecycle of members.

use std::time::Duration;

use axum::http::Method;
use serde_json::json;

use crate::support::{Actor, TestApp};

fn application(member: &str, endpoint: &str) -> serde_json::Value {
    json!({
        "member_id": member, "name": "LuxCloud S.A.", "country": "LU",
        "jurisdictions": ["LU"], "certifications": ["gaia-x-1"],
        "evidence": [{"certification": "gaia-x-1", "reference": "GX-1-42"}],
        "services": ["instance", "bucket"],
        "adapter": {"kind": "federation", "endpoint": endpoint},
        "credentials": {"token": "s3cret-partner-token"},
    })
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn an_application_that_fails_conformance_can_be_rejected_not_approved() {
    let app = TestApp::start().await;
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let submitted = app
        .call(
            Actor::Operator,
            Method::POST,
            "/v1/partner-applications",
            Some(application("luxcloud-lu", &endpoint)),
        )
        .await;
    let row = submitted.ok(202);
    assert_eq!(row["status"], "conformance_running");
    assert_eq!(row["has_credentials"], true);
    assert!(
        !submitted.text.contains("s3cret-partner-token"),
        "credentials are write-only"
    );
    let id = row["id"].as_str().expect("id");
    let mut status = String::new();
    for _ in 0..200 {
        let read = app
            .call(
                Actor::Operator,
                Method::GET,
                &format!("/v1/partner-applications/{id}"),
                None,
            )
            .await
            .ok(200);
        status = read["status"].as_str().expect("status").to_owned();
        if status != "conformance_running" {
            assert_eq!(read["conformance"]["ok"], false, "{read}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "conformance_failed");
    app.call(
        Actor::Operator,
        Method::POST,
        &format!("/v1/partner-applications/{id}/approve"),
        None,
    )
    .await
    .problem(409, "partner_application.not_approvable");
    let rejected = app
        .call(
            Actor::Operator,
            Method::POST,
            &format!("/v1/partner-applications/{id}/reject"),
            Some(json!({"reason": "endpoint down"})),
        )
        .await
        .ok(200);
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "endpoint down");
    app.call(
        Actor::Operator,
        Method::POST,
        &format!("/v1/partner-applications/{id}/reject"),
        None,
    )
    .await
    .problem(409, "partner_application.not_rejectable");
    // Nobody else reads it.
    app.call(
        Actor::Partner,
        Method::GET,
        &format!("/v1/partner-applications/{id}"),
        None,
    )
    .await
    .problem(404, "resource.not_found");
}

#[tokio::test]
async fn applications_are_checked_before_anything_is_stored_or_dialled() {
    let app = TestApp::start().await;
    // A partner applies for its own member id only.
    app.call(
        Actor::Partner,
        Method::POST,
        "/v1/partner-applications",
        Some(application("luxcloud-lu", "http://127.0.0.1:8710")),
    )
    .await
    .problem(403, "auth.forbidden");
    // Outside allowed_member_networks: refused without a connection.
    for endpoint in [
        "http://10.1.2.3:8710",
        "http://169.254.169.254/latest",
        "file:///etc/passwd",
    ] {
        let problem = app
            .call(
                Actor::Operator,
                Method::POST,
                "/v1/partner-applications",
                Some(application("luxcloud-lu", endpoint)),
            )
            .await;
        assert_eq!(problem.status, 422, "{endpoint}: {}", problem.text);
    }
    app.call(
        Actor::Operator,
        Method::POST,
        "/v1/partner-applications",
        Some(application("numergy-fr", "http://127.0.0.1:8710")),
    )
    .await
    .problem(409, "resource.conflict");
    let mut bad = application("luxcloud-lu", "http://127.0.0.1:8710");
    bad["evidence"] = json!([{"certification": "hds", "reference": "x"}]);
    app.call(
        Actor::Operator,
        Method::POST,
        "/v1/partner-applications",
        Some(bad),
    )
    .await
    .problem(422, "validation.invalid_field");
    // Free text follows the one text rule: what every member list will show.
    for (field, value) in [
        ("name", json!("Lux\u{0}Cloud")),
        ("name", json!("\u{1b}[2J")),
        ("name", json!("   ")),
        ("name", json!("x".repeat(500_000))),
        ("name", json!("Lux\u{202E}duolC")),
        (
            "evidence",
            json!([{"certification": "gaia-x-1", "reference": "ok\u{200B}"}]),
        ),
    ] {
        let mut bad = application("luxcloud-lu", "http://127.0.0.1:8710");
        bad[field] = value;
        let problem = app
            .call(
                Actor::Operator,
                Method::POST,
                "/v1/partner-applications",
                Some(bad),
            )
            .await
            .problem(422, "validation.invalid_field");
        assert!(
            problem["detail"].as_str().expect("detail").contains(field),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn each_kind_of_member_gives_its_own_fields_and_credentials() {
    let app = TestApp::start().await;
    let with = |adapter: serde_json::Value, credentials: serde_json::Value| {
        let mut body = application("luxcloud-lu", "http://127.0.0.1:8710");
        body["adapter"] = adapter;
        body["credentials"] = credentials;
        body["sizes"] = json!({"small": "m1.small"});
        body["images"] = json!({"debian-12": "img-1"});
        body
    };
    let openstack =
        json!({"kind": "openstack", "auth_url": "http://127.0.0.1:5000/v3", "region": "RegionOne"});
    let password = json!({"username": "u", "password": "pw-never-shown", "project_name": "p"});
    let ec2 = json!({"kind": "ec2", "endpoint": "http://127.0.0.1:5001", "region": "eu-west-3"});
    let keys = json!({"access_key_id": "AKIA1", "secret_access_key": "never-shown"});
    let refused = [
        // (body, the field the problem names)
        (
            with(
                json!({"kind": "vmware", "endpoint": "http://127.0.0.1:1"}),
                json!({}),
            ),
            "adapter.kind",
        ),
        (
            with(
                json!({"kind": "openstack", "region": "RegionOne"}),
                password.clone(),
            ),
            "adapter.auth_url",
        ),
        (
            with(
                json!({"kind": "openstack", "auth_url": "http://127.0.0.1:5000/v3"}),
                password.clone(),
            ),
            "adapter.region",
        ),
        (
            with(
                json!({"kind": "openstack", "auth_url": "http://127.0.0.1:5000/v3", "region": "r", "interface": "private"}),
                password.clone(),
            ),
            "adapter.interface",
        ),
        (
            with(
                json!({"kind": "openstack", "auth_url": "http://127.0.0.1:5000/v3", "region": "r", "endpoint": "http://127.0.0.1:1"}),
                password.clone(),
            ),
            "adapter.endpoint",
        ),
        (
            with(openstack.clone(), json!({"token": "t"})),
            "credentials.token",
        ),
        (
            with(openstack.clone(), json!({"username": "u"})),
            "credentials",
        ),
        (
            with(openstack.clone(), json!({"username": "u", "password": "p"})),
            "credentials",
        ),
        (
            with(openstack.clone(), json!({"application_credential_id": "i"})),
            "credentials",
        ),
        (
            with(
                openstack.clone(),
                json!({"username": "u", "password": "p\u{0}", "project_id": "x"}),
            ),
            "credentials.password",
        ),
        (
            with(ec2.clone(), json!({"access_key_id": "AKIA1"})),
            "credentials",
        ),
        (
            with(
                ec2.clone(),
                json!({"access_key_id": "AKIA1", "secret_access_key": "s", "password": "p"}),
            ),
            "credentials.password",
        ),
        (
            with(
                json!({"kind": "ec2", "endpoint": "http://127.0.0.1:5001"}),
                keys.clone(),
            ),
            "adapter.region",
        ),
        (
            with(
                json!({"kind": "ec2", "region": "r", "auth_url": "http://127.0.0.1:1"}),
                keys.clone(),
            ),
            "adapter.auth_url",
        ),
        (
            with(
                json!({"kind": "federation", "endpoint": "http://127.0.0.1:1"}),
                json!({"access_key_id": "AKIA1"}),
            ),
            "credentials.access_key_id",
        ),
        (
            with(json!({"kind": "federation"}), json!({})),
            "adapter.endpoint",
        ),
    ];
    for (body, field) in refused {
        let problem = app
            .call(
                Actor::Operator,
                Method::POST,
                "/v1/partner-applications",
                Some(body.clone()),
            )
            .await
            .problem(422, "validation.invalid_field");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(
            detail.contains(&format!("`{field}")),
            "{field}: {problem} for {body}"
        );
    }
    // Instances at an OpenStack or EC2 member need the broker's names mapped to its ids.
    let mut unmapped = with(openstack.clone(), password.clone());
    unmapped.as_object_mut().expect("object").remove("sizes");
    app.call(
        Actor::Operator,
        Method::POST,
        "/v1/partner-applications",
        Some(unmapped),
    )
    .await
    .problem(422, "validation.invalid_field");
    // Every URL goes through the SSRF guard, and the problem names the field.
    for (adapter, credentials, field) in [
        (
            json!({"kind": "openstack", "auth_url": "http://10.9.8.7:5000/v3", "region": "r"}),
            password.clone(),
            "adapter.auth_url",
        ),
        (
            json!({"kind": "ec2", "endpoint": "http://169.254.169.254", "region": "r"}),
            keys.clone(),
            "adapter.endpoint",
        ),
        (
            json!({"kind": "ec2", "endpoint": "http://127.0.0.1:5001", "s3_endpoint": "http://[fd00::1]:80", "region": "r"}),
            keys.clone(),
            "adapter.s3_endpoint",
        ),
    ] {
        let problem = app
            .call(
                Actor::Operator,
                Method::POST,
                "/v1/partner-applications",
                Some(with(adapter, credentials)),
            )
            .await
            .problem(422, "security.endpoint_not_allowed");
        assert!(
            problem["detail"].as_str().expect("detail").contains(field),
            "{problem}"
        );
    }
    // Accepted: the credentials are never shown again, whatever the kind.
    for (adapter, credentials, secret) in [
        (openstack, password, "pw-never-shown"),
        (ec2, keys, "never-shown"),
    ] {
        let mut body = with(adapter, credentials);
        body["member_id"] = json!(format!(
            "lux-{}",
            body["adapter"]["kind"].as_str().expect("kind")
        ));
        let answer = app
            .call(
                Actor::Operator,
                Method::POST,
                "/v1/partner-applications",
                Some(body),
            )
            .await;
        let row = answer.ok(202);
        assert_eq!(row["has_credentials"], true);
        assert!(!answer.text.contains(secret), "{}", answer.text);
        let read = app
            .call(
                Actor::Operator,
                Method::GET,
                &format!(
                    "/v1/partner-applications/{}",
                    row["id"].as_str().expect("id")
                ),
                None,
            )
            .await;
        assert!(!read.text.contains(secret), "{}", read.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_applications_for_one_member_id_give_one_application() {
    let app = std::sync::Arc::new(TestApp::start().await);
    // An endpoint that accepts connections and never answers: each application's
    // conformance run stays running (live) while the others arrive (a closed port would
    // fail it at once, and a failed application may be submitted again).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("addr"));
    let mut calls = Vec::new();
    for _ in 0..10 {
        let app = app.clone();
        let body = application("luxcloud-lu", &endpoint);
        calls.push(tokio::spawn(async move {
            app.call(
                Actor::Operator,
                Method::POST,
                "/v1/partner-applications",
                Some(body),
            )
            .await
        }));
    }
    let mut accepted = 0;
    for call in calls {
        let answer = call.await.expect("task");
        match answer.status.as_u16() {
            202 => accepted += 1,
            409 => {
                answer.problem(409, "resource.conflict");
            }
            other => panic!("{other}: {}", answer.text),
        }
    }
    assert_eq!(accepted, 1, "exactly one application wins");
    drop(silent);
}

#[tokio::test]
async fn member_lifecycle_steers_placement_at_once() {
    let app = TestApp::start().await;
    let bucket_in_be = || json!({"name": "b", "jurisdiction": "BE"});
    let suspended = app
        .call(
            Actor::Operator,
            Method::POST,
            "/v1/members/belgacom-be/suspend",
            None,
        )
        .await
        .ok(200);
    assert_eq!(suspended["status"], "suspended");
    app.call(
        Actor::TenantA,
        Method::POST,
        "/v1/buckets",
        Some(bucket_in_be()),
    )
    .await
    .problem(422, "placement.no_eligible_member");
    app.call(
        Actor::Operator,
        Method::POST,
        "/v1/members/belgacom-be/resume",
        None,
    )
    .await
    .ok(200);
    app.call(
        Actor::TenantA,
        Method::POST,
        "/v1/buckets",
        Some(bucket_in_be()),
    )
    .await
    .ok(202);
    app.call(
        Actor::Partner,
        Method::POST,
        "/v1/members/belgacom-be/suspend",
        None,
    )
    .await
    .problem(403, "auth.forbidden");
    // A member holding resources cannot retire; an empty one can, once.
    app.call(
        Actor::Operator,
        Method::POST,
        "/v1/members/belgacom-be/retire",
        None,
    )
    .await
    .problem(409, "member.has_resources");
    let retired = app
        .call(
            Actor::Operator,
            Method::POST,
            "/v1/members/telekom-de/retire",
            None,
        )
        .await
        .ok(200);
    assert_eq!(retired["status"], "retired");
    app.call(
        Actor::Operator,
        Method::POST,
        "/v1/members/telekom-de/resume",
        None,
    )
    .await
    .problem(409, "member.invalid_transition");
}

#[tokio::test]
async fn a_partner_sees_its_own_member_and_nothing_else() {
    let app = TestApp::start().await;
    let members = app
        .call(Actor::Partner, Method::GET, "/v1/members", None)
        .await
        .ok(200);
    let ids: Vec<&str> = members["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["numergy-fr"]);
    app.call(Actor::Partner, Method::GET, "/v1/members/belgacom-be", None)
        .await
        .problem(404, "resource.not_found");
    app.call(
        Actor::Partner,
        Method::GET,
        "/v1/members/belgacom-be/resources",
        None,
    )
    .await
    .problem(404, "resource.not_found");
    let all = app
        .call(Actor::TenantA, Method::GET, "/v1/members", None)
        .await
        .ok(200);
    assert_eq!(all["items"].as_array().expect("items").len(), 4);
}
