//! Partner clouds: the reference member passes the conformance suite through the CLI; an
//! unreachable or misbehaving endpoint does not.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use alliance_e2e::{bin, free_port, get_json, MemberSim};

fn conformance(endpoint: &str, extra: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(bin());
    command
        .args([
            "conformance",
            "--member-endpoint",
            endpoint,
            "--adapter",
            "federation",
        ])
        .args(extra);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn member_sim_passes_conformance() {
    let member = MemberSim::start("luxcloud-lu", "LU", 100, Some("lux-token")).await;
    let (code, out, err) = conformance(
        &member.url,
        &["--token-env", "LUX_TOKEN"],
        &[("LUX_TOKEN", "lux-token")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("32 passed, 0 failed, 0 skipped"), "{out}");
    assert!(
        out.contains("PASS  wrong credentials are refused as auth_failed"),
        "{out}"
    );
    let (code, out, _) = conformance(
        &member.url,
        &["--token-env", "LUX_TOKEN", "--format", "json"],
        &[("LUX_TOKEN", "lux-token")],
    );
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["failed"], 0);
    assert_eq!(report["checks"].as_array().unwrap().len(), 32);
    // Conformance created one resource per service.
    assert!(member.creations().len() >= 3);
    // The protocol's own OpenAPI document is served by the reference member.
    let doc = get_json(
        &format!("{}/federation/v1/openapi.json", member.url),
        "lux-token",
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/federation/v1/capabilities",
        "/federation/v1/resources",
        "/federation/v1/resources/{broker_resource_id}",
        "/federation/v1/statements/{period}",
        "/federation/v1/resources/{broker_resource_id}/actions",
        "/federation/v1/resources/{broker_resource_id}/attachment",
        "/federation/v1/resources/{broker_resource_id}/urls",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_and_unauthorised_members_fail() {
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = conformance(&nowhere, &[], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot read the member's capabilities"),
        "{err}"
    );
    let member = MemberSim::start("locked-lu", "LU", 0, Some("right")).await;
    let (code, _, err) = conformance(&member.url, &["--token-env", "T"], &[("T", "wrong")]);
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
}

mod onboarding {
    use std::time::Duration;

    use alliance_e2e::{free_port, Answer, Broker, Client, MemberSim, Options};
    use serde_json::{json, Value};

    fn application(member: &str, endpoint: &str, token: Option<&str>) -> Value {
        let mut body = json!({
            "member_id": member, "name": "LuxCloud S.A.", "country": "LU", "jurisdictions": ["LU"],
            "certifications": ["gaia-x-1"], "evidence": [{ "certification": "gaia-x-1", "reference": "GX-2026-0042" }],
            "services": ["instance", "volume", "bucket"],
            "adapter": { "kind": "federation", "endpoint": endpoint },
            "prices": [{ "sku": "instance.small", "unit": "hour", "price": "0.012", "currency": "EUR" }],
        });
        if let Some(token) = token {
            body["credentials"] = json!({ "token": token });
        }
        body
    }

    /// Submits a partner application (as from [`application`]) with `client`.
    async fn apply(client: &Client, member: &str, endpoint: &str, token: Option<&str>) -> Answer {
        client
            .post(
                "/v1/partner-applications",
                &application(member, endpoint, token),
            )
            .await
    }

    /// Asks, with `client`, to approve application `id`.
    async fn approve(client: &Client, id: &str) -> Answer {
        client
            .post(
                &format!("/v1/partner-applications/{id}/approve"),
                &json!({}),
            )
            .await
    }

    async fn settled(client: &Client, id: &str) -> Value {
        alliance_e2e::application_settled(client, id, Duration::from_secs(60)).await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_partner_applies_passes_conformance_is_approved_and_gets_placements_without_restart()
    {
        let member = MemberSim::start("luxcloud-lu", "LU", 100, Some("lux-secret")).await;
        let broker = Broker::start(Options::demo()).await;
        let partner =
            broker.client(&broker.token_with(&["--role", "partner", "--member", "luxcloud-lu"]));
        let operator = broker.client(&broker.token_with(&["--role", "operator"]));

        // A partner applies for another member's id: refused.
        apply(&partner, "other-lu", &member.url, None)
            .await
            .assert_problem(403, "auth.forbidden");
        // An endpoint outside the allowed networks: refused before any connection.
        apply(&partner, "luxcloud-lu", "http://10.20.30.40:8710", None)
            .await
            .assert_problem(422, "security.endpoint_not_allowed");

        let submitted = apply(&partner, "luxcloud-lu", &member.url, Some("lux-secret")).await;
        submitted.assert_status(202);
        assert!(
            !String::from_utf8_lossy(&submitted.bytes).contains("lux-secret"),
            "credentials are write-only"
        );
        let app = submitted.json();
        assert_eq!(app["status"], "conformance_running");
        assert_eq!(app["has_credentials"], true);
        let id = app["id"].as_str().unwrap().to_owned();
        apply(&partner, "luxcloud-lu", &member.url, None)
            .await
            .assert_problem(409, "resource.conflict");

        let app = settled(&partner, &id).await;
        assert_eq!(app["status"], "awaiting_approval", "{app}");
        assert_eq!(app["conformance"]["ok"], true);
        assert_eq!(app["conformance"]["report"]["failed"], 0);
        assert!(!app.to_string().contains("lux-secret"));

        // A partner cannot approve itself; another partner cannot even see the application.
        approve(&partner, &id)
            .await
            .assert_problem(403, "auth.forbidden");
        let stranger =
            broker.client(&broker.token_with(&["--role", "partner", "--member", "someone-else"]));
        stranger
            .get_problem(
                &format!("/v1/partner-applications/{id}"),
                404,
                "resource.not_found",
            )
            .await;

        let approved = approve(&operator, &id).await;
        approved.assert_status(200);
        assert_eq!(approved.json()["status"], "approved");
        approve(&operator, &id)
            .await
            .assert_problem(409, "partner_application.not_approvable");
        let listed = operator.get("/v1/members/luxcloud-lu").await.json();
        assert_eq!(listed["status"], "active");
        assert_eq!(listed["jurisdictions"], json!(["LU"]));

        // acme may now use LU; its instance lands on the new member, no restart.
        let patched = operator
            .patch(
                "/v1/tenants/acme",
                &json!({ "allowed_jurisdictions": ["FR", "BE", "DE", "LU"] }),
            )
            .await;
        assert_eq!(patched.status, 200);
        let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
        acme.post(
            "/v1/ssh-keys",
            &json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@laptop"}),
        )
        .await
        .assert_status(201);
        // What the new member offers is known from its first request (it advertised it
        // when it was approved), not only after the next health probe.
        let instance = acme
            .create_and_wait(
                "/v1/instances",
                &json!({ "name": "lux", "jurisdiction": "LU", "size": "small", "image": "debian-12",
                         "ssh_key": "laptop", "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.0/24"}] }),
            )
            .await;
        assert_eq!(instance["member"], "luxcloud-lu");
        assert_eq!(instance["ssh_key"], "laptop", "{instance}");
        assert_eq!(
            member.creations().get(instance["id"].as_str().unwrap()),
            Some(&1)
        );

        // The sealed credentials are not in the database file in clear.
        let db = std::fs::read(broker.data_dir.join("alliance.db")).unwrap();
        assert!(
            !db.windows(10).any(|w| w == b"lux-secret"),
            "credentials stored in clear"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_endpoint_fails_conformance_and_never_becomes_a_member() {
        let broker = Broker::start(Options::demo()).await;
        let operator = broker.client(&broker.token_with(&["--role", "operator"]));
        let nowhere = format!("http://127.0.0.1:{}", free_port());
        let app = apply(&operator, "ghost-lu", &nowhere, None).await.json();
        let id = app["id"].as_str().unwrap().to_owned();
        let app = settled(&operator, &id).await;
        assert_eq!(app["status"], "conformance_failed", "{app}");
        assert!(
            app["conformance"]["error"]
                .as_str()
                .unwrap()
                .contains("capabilities"),
            "{app}"
        );
        approve(&operator, &id)
            .await
            .assert_problem(409, "partner_application.not_approvable");
        operator
            .get_problem("/v1/members/ghost-lu", 404, "resource.not_found")
            .await;
        let rejected = operator
            .post(
                &format!("/v1/partner-applications/{id}/reject"),
                &json!({ "reason": "unreachable" }),
            )
            .await
            .json();
        assert_eq!(rejected["status"], "rejected");
        assert_eq!(rejected["reason"], "unreachable");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn suspended_members_get_no_placements_but_keep_their_resources() {
        let broker = Broker::start(Options::demo()).await;
        let operator = broker.client(&broker.token_with(&["--role", "operator"]));
        let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
        let before = acme.create_bucket("kept", "FR").await;
        let id = before["id"].as_str().unwrap();

        let partner =
            broker.client(&broker.token_with(&["--role", "partner", "--member", "numergy-fr"]));
        partner
            .post_problem(
                "/v1/members/numergy-fr/suspend",
                &json!({}),
                403,
                "auth.forbidden",
            )
            .await;
        let suspended = operator
            .post("/v1/members/numergy-fr/suspend", &json!({}))
            .await;
        assert_eq!(suspended.status, 200);
        assert_eq!(suspended.json()["status"], "suspended");
        operator
            .post_problem(
                "/v1/members/numergy-fr/suspend",
                &json!({}),
                409,
                "member.invalid_transition",
            )
            .await;

        let refused = acme
            .post_problem(
                "/v1/buckets",
                &json!({ "name": "new", "jurisdiction": "FR" }),
                422,
                "placement.no_eligible_member",
            )
            .await;
        assert!(
            refused["detail"].as_str().unwrap().contains("suspended"),
            "{refused}"
        );
        assert_eq!(
            acme.get(&format!("/v1/buckets/{id}")).await.json()["status"],
            "active",
            "readable while suspended"
        );

        // Retiring a member that holds resources is refused.
        operator
            .post_problem(
                "/v1/members/numergy-fr/retire",
                &json!({}),
                409,
                "member.has_resources",
            )
            .await;
        // Its resources stay deletable.
        let op = acme.delete(&format!("/v1/buckets/{id}")).await.json();
        assert_eq!(
            acme.wait_operation(op["id"].as_str().unwrap()).await["status"],
            "succeeded"
        );

        assert_eq!(
            operator
                .post("/v1/members/numergy-fr/resume", &json!({}))
                .await
                .json()["status"],
            "active"
        );
        acme.create_bucket("again", "FR").await;
        assert_eq!(
            operator
                .post("/v1/members/belgacom-be/drain", &json!({}))
                .await
                .json()["status"],
            "draining"
        );
        acme.post_problem(
            "/v1/buckets",
            &json!({ "name": "x", "jurisdiction": "BE" }),
            422,
            "placement.no_eligible_member",
        )
        .await;
        assert_eq!(
            operator
                .post("/v1/members/belgacom-be/retire", &json!({}))
                .await
                .json()["status"],
            "retired"
        );
    }
}

/// Replicas on one PostgreSQL agree on a lifecycle change within seconds, with no restart.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_agree_on_a_suspension_within_seconds() {
    use alliance_e2e::{eventually, Backend, Broker, Options};
    use serde_json::json;
    use std::time::Duration;
    let options = Options::demo_on(Backend::Postgres).await;
    let a = Broker::start(options.clone()).await;
    let b = Broker::start(options).await;
    let operator = a.client(&a.token_with(&["--role", "operator"]));
    assert_eq!(
        operator
            .post("/v1/members/telekom-de/suspend", &json!({}))
            .await
            .status,
        200
    );
    let acme_b = b.client(&b.token("tenant-admin", Some("acme")));
    let started = std::time::Instant::now();
    eventually(
        Duration::from_secs(15),
        Duration::from_millis(200),
        || async {
            if acme_b.evaluate_bucket("DE").await["chosen"].is_null() {
                Ok(())
            } else {
                Err("replica b still places on a suspended member".to_owned())
            }
        },
    )
    .await;
    println!("replica b agreed after {:?}", started.elapsed());
    assert_eq!(
        b.client(&b.token_with(&["--role", "operator"]))
            .get("/v1/members/telekom-de")
            .await
            .json()["status"],
        "suspended"
    );
}

/// Drift and orphan detection, and what a partner sees.
#[tokio::test(flavor = "multi_thread")]
async fn drift_reports_orphans_and_missing_resources_and_partners_see_only_their_own() {
    use alliance_e2e::{demo_federation, Backend, Broker};
    use serde_json::json;
    let (members, options) = demo_federation(Backend::Sqlite, 0, "t0k").await;
    let broker = Broker::start(options).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let kept = acme.create_bucket("kept", "FR").await;
    let lost = acme.create_bucket("lost", "FR").await;
    let lost_id = lost["id"].as_str().unwrap();

    // Someone works on the member behind the broker's back.
    let http = reqwest::Client::new();
    let fr = &members[0].url;
    let created = http
        .put(format!("{fr}/federation/v1/resources/bkt-made-at-the-member"))
        .bearer_auth("t0k")
        .json(&json!({ "resource_type": "bucket", "name": "rogue", "tenant": "acme", "jurisdiction": "FR", "data_class": "standard" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let deleted = http
        .delete(format!("{fr}/federation/v1/resources/{lost_id}"))
        .bearer_auth("t0k")
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());

    let operator = broker.client(&broker.token_with(&["--role", "operator"]));
    let report = operator
        .post("/v1/members/numergy-fr/drift", &json!({}))
        .await
        .json();
    assert_eq!(report["complete"], true, "{report}");
    // The resource ids of the report's findings of one kind.
    let findings = |kind: &str| -> Vec<&str> {
        report[kind]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| f["resource_id"].as_str())
            .collect()
    };
    assert_eq!(
        findings("orphans"),
        vec!["bkt-made-at-the-member"],
        "{report}"
    );
    assert_eq!(findings("missing"), vec![lost_id], "{report}");
    assert_eq!(
        operator.get("/v1/members/numergy-fr/drift").await.json()["orphans"],
        report["orphans"]
    );
    let clean = operator
        .post("/v1/members/belgacom-be/drift", &json!({}))
        .await
        .json();
    assert_eq!(clean["orphans"], json!([]));
    let audit = operator.get("/v1/audit?resource=numergy-fr").await.json();
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "member.drift" && e["outcome"] == "drift"),
        "{audit}"
    );

    // A partner sees its own member and what is placed on it, nothing else.
    let partner =
        broker.client(&broker.token_with(&["--role", "partner", "--member", "numergy-fr"]));
    let listed = partner.get("/v1/members").await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], "numergy-fr");
    partner
        .get_problem("/v1/members/belgacom-be", 404, "resource.not_found")
        .await;
    let placed = partner.get("/v1/members/numergy-fr/resources").await.json();
    let ids: Vec<&str> = placed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&kept["id"].as_str().unwrap()), "{placed}");
    assert!(
        placed["items"][0].get("name").is_none(),
        "tenant-chosen names are not shown to partners"
    );
    // The list is paged: one at a time, every resource once, in id order.
    let mut paged = Vec::new();
    let mut path = "/v1/members/numergy-fr/resources?limit=1".to_owned();
    loop {
        let one = partner.get(&path).await.json();
        assert!(one["items"].as_array().unwrap().len() <= 1, "{one}");
        paged.extend(
            one["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned()),
        );
        match one["next_page_token"].as_str() {
            Some(token) => {
                path = format!("/v1/members/numergy-fr/resources?limit=1&page_token={token}")
            }
            None => break,
        }
    }
    assert_eq!(paged, ids, "paging gave another list");
    partner
        .get_problem(
            "/v1/members/numergy-fr/resources?page_token=eyJsIjoiYXVkaXQiLCJhIjoiMSJ9",
            400,
            "validation.invalid_query",
        )
        .await;
    partner
        .get_problem(
            "/v1/members/belgacom-be/resources",
            404,
            "resource.not_found",
        )
        .await;
    partner
        .get_problem("/v1/members/numergy-fr/drift", 403, "auth.forbidden")
        .await;
    acme.get_problem("/v1/members/numergy-fr/resources", 403, "auth.forbidden")
        .await;
}
