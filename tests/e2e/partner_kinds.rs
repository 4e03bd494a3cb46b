//! Partners of every kind join through the API: an OpenStack cloud (the real Keystone, Nova,
//! Cinder and Glance of `scripts/peers start-openstack-real`) and an EC2-compatible one
//! (moto) apply, pass conformance against their real services, are approved, and take a
//! tenant's instances on two replicas, with no restart. A Keystone catalogue that points a
//! service outside `allowed_member_networks` fails conformance, naming the endpoint.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use alliance_e2e::{
    application_settled, eventually, openstack_env, osreal, Answer, Backend, Broker, Client, Moto,
    Options, DEMO_CONFIG, REAL_OPERATIONS,
};
use serde_json::{json, Value};

fn application(
    member: &str,
    adapter: Value,
    credentials: Value,
    sizes: Value,
    images: Value,
) -> Value {
    json!({
        "member_id": member, "name": "LuxCloud S.A.", "country": "LU", "jurisdictions": ["LU"],
        "services": ["instance", "volume"], "adapter": adapter, "credentials": credentials,
        "sizes": sizes, "images": images,
        "prices": [{ "sku": "instance.small", "unit": "hour", "price": "0.012", "currency": "EUR" }],
    })
}

/// Waits (long: the suite runs against real services) until the conformance run ends.
async fn settled(client: &Client, id: &str) -> Value {
    application_settled(client, id, Duration::from_secs(600)).await
}

/// Two replicas on one PostgreSQL, acme allowed in LU.
async fn replicas() -> (Broker, Broker) {
    let mut options = Options::demo_on(Backend::Postgres).await;
    // Replicas of one database share the key that seals partners' credentials.
    assert!(
        DEMO_CONFIG.contains("\n[security]\n"),
        "the demo config changed"
    );
    let config = DEMO_CONFIG.replacen(
        "\n[security]\n",
        "\n[security]\ncredentials_key_env = \"PARTNER_CREDENTIALS_KEY\"\n",
        1,
    );
    options.config = format!("{config}{REAL_OPERATIONS}");
    options.env.push((
        "PARTNER_CREDENTIALS_KEY".into(),
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
    ));
    let a = Broker::start(options.clone()).await;
    let b = Broker::start(options).await;
    let operator = a.client(&a.token_with(&["--role", "operator"]));
    operator
        .patch(
            "/v1/tenants/acme",
            &json!({ "allowed_jurisdictions": ["FR", "BE", "DE", "LU"] }),
        )
        .await
        .assert_status(200);
    (a, b)
}

/// Applies as the partner of `member` on `a`, waits for conformance, approves; the
/// application as approved.
async fn join(a: &Broker, member: &str, body: &Value, secrets: &[&str]) -> Value {
    let partner = a.client(&a.token_with(&["--role", "partner", "--member", member]));
    let submitted: Answer = partner.post("/v1/partner-applications", body).await;
    submitted.assert_status(202);
    let id = submitted.json()["id"].as_str().unwrap().to_owned();
    let app = settled(&partner, &id).await;
    assert_eq!(app["status"], "awaiting_approval", "{app:#}");
    assert_eq!(app["conformance"]["report"]["failed"], 0, "{app:#}");
    for secret in secrets {
        assert!(
            !app.to_string().contains(secret),
            "a credential is shown: {app}"
        );
    }
    let operator = a.client(&a.token_with(&["--role", "operator"]));
    let approved = operator
        .post(
            &format!("/v1/partner-applications/{id}/approve"),
            &json!({}),
        )
        .await;
    approved.assert_status(200);
    approved.json()
}

/// An instance of acme in LU through each replica: both land on `member`. Returns the
/// broker's and the member's ids of the two.
async fn lands_on_both(a: &Broker, b: &Broker, member: &str) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for (n, broker) in [a, b].into_iter().enumerate() {
        let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
        let body = json!({ "name": format!("lux-{n}"), "jurisdiction": "LU", "size": "small", "image": "debian-12" });
        // The other replica loads the new member within about a second.
        let instance = eventually(
            Duration::from_secs(30),
            Duration::from_millis(300),
            || async {
                let answer = acme.post("/v1/instances", &body).await;
                if answer.status == 202 {
                    Ok(answer.json())
                } else {
                    Err(format!(
                        "replica {n} does not place in LU yet: {}",
                        answer.text()
                    ))
                }
            },
        )
        .await;
        let instance = acme.created("/v1/instances", &instance).await;
        assert_eq!(instance["status"], "active", "{instance}");
        assert_eq!(instance["member"], member, "{instance}");
        ids.push((
            instance["id"].as_str().unwrap().to_owned(),
            instance["member_resource_id"].as_str().unwrap().to_owned(),
        ));
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openstack_partner_applies_passes_conformance_at_real_nova_and_takes_instances_on_two_replicas(
) {
    let (a, b) = replicas().await;
    let password = osreal("PASSWORD");
    let body = application(
        "osreal-lu",
        json!({ "kind": "openstack", "auth_url": osreal("AUTH_URL"), "region": osreal("REGION_NAME"), "network": "none",
                "tenant_project_domain": osreal("TENANT_PROJECT_DOMAIN") }),
        json!({ "username": osreal("USERNAME"), "password": password, "project_name": osreal("PROJECT_NAME"),
                "user_domain_name": osreal("USER_DOMAIN_NAME"), "project_domain_name": osreal("PROJECT_DOMAIN_NAME") }),
        json!({ "small": osreal("FLAVOR_SMALL"), "medium": osreal("FLAVOR_MEDIUM") }),
        json!({ "debian-12": osreal("IMAGE") }),
    );
    join(&a, "osreal-lu", &body, &[&password]).await;
    let servers = lands_on_both(&a, &b, "osreal-lu").await;

    // Nova itself (the admin's token, plain HTTP) shows both servers in acme's own project
    // of the tenant projects' domain, tagged.
    let admin = token(
        &osreal("ADMIN_USERNAME"),
        &osreal("ADMIN_PASSWORD"),
        &osreal("ADMIN_PROJECT_NAME"),
        "Default",
    )
    .await;
    let catalogue = token_catalogue(&admin).await;
    let nova = catalogue["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "compute")
        .and_then(|s| {
            s["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["interface"] == "public")
        })
        .map(|e| e["url"].as_str().unwrap().trim_end_matches('/').to_owned())
        .unwrap();
    let mut projects = Vec::new();
    for (_, server) in servers {
        let found: Value = reqwest::Client::new()
            .get(format!("{nova}/servers/{server}"))
            .header("x-auth-token", &admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(found["server"]["status"], "ACTIVE", "{found}");
        assert_eq!(
            found["server"]["metadata"]["alliance_tenant"], "acme",
            "{found}"
        );
        projects.push(found["server"]["tenant_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        projects[0], projects[1],
        "both replicas use acme's one project"
    );
    assert_ne!(
        projects[0],
        osreal("PROJECT_ID"),
        "not the broker's own project"
    );
    // The password is in neither replica's log.
    assert!(!a.log_text().contains(&password) && !b.log_text().contains(&password));
}

/// A project-scoped token of `user`.
async fn token(user: &str, password: &str, project: &str, domain: &str) -> String {
    let answer = reqwest::Client::new()
        .post(format!("{}/auth/tokens", osreal("AUTH_URL")))
        .json(
            &json!({ "auth": { "identity": { "methods": ["password"], "password": { "user": {
            "name": user, "domain": { "name": domain }, "password": password } } },
            "scope": { "project": { "name": project, "domain": { "name": domain } } } } }),
        )
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The catalogue of a token (GET /auth/tokens with itself as the subject).
async fn token_catalogue(token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}/auth/tokens", osreal("AUTH_URL")))
        .header("x-auth-token", token)
        .header("x-subject-token", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ec2_partner_applies_passes_conformance_at_moto_and_takes_instances_on_two_replicas() {
    let mut moto = Moto::start();
    let image = moto.ask("image").as_str().unwrap().to_owned();
    let (a, b) = replicas().await;
    let body = application(
        "moto-lu",
        json!({ "kind": "ec2", "endpoint": moto.endpoint, "region": "eu-west-3" }),
        json!({ "access_key_id": moto.access_key_id, "secret_access_key": moto.secret_access_key }),
        json!({ "small": "t3.micro", "medium": "t3.small" }),
        json!({ "debian-12": image }),
    );
    join(&a, "moto-lu", &body, &[&moto.secret_access_key]).await;
    for (id, member_id) in lands_on_both(&a, &b, "moto-lu").await {
        let found = moto.ask(&format!("instances {id}"));
        assert_eq!(found[0]["id"], member_id.as_str(), "{found}");
        assert_eq!(found[0]["state"], "running", "{found}");
        assert_eq!(found[0]["type"], "t3.micro", "{found}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_catalogue_pointing_outside_the_allowed_networks_fails_conformance_naming_the_endpoint() {
    let broker = Broker::start(Options::demo()).await;
    let partner = broker.client(&broker.token_with(&["--role", "partner", "--member", "ssrf-lu"]));
    // Keystone itself is on loopback (allowed); region lu-ssrf-1's object-store is not.
    let body = application(
        "ssrf-lu",
        json!({ "kind": "openstack", "auth_url": openstack_env("ALLIANCE_TEST_OS_AUTH_URL"), "region": "lu-ssrf-1" }),
        json!({ "username": openstack_env("ALLIANCE_TEST_OS_USERNAME"), "password": openstack_env("ALLIANCE_TEST_OS_PASSWORD"),
                "project_name": openstack_env("ALLIANCE_TEST_OS_PROJECT_NAME") }),
        json!({ "small": "1" }),
        json!({ "debian-12": "img" }),
    );
    let submitted = partner.post("/v1/partner-applications", &body).await;
    submitted.assert_status(202);
    let id = submitted.json()["id"].as_str().unwrap().to_owned();
    let app = settled(&partner, &id).await;
    assert_eq!(app["status"], "conformance_failed", "{app:#}");
    let why = app["conformance"]["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("object-store") && why.contains("10.255.0.1"),
        "the reason names the service and its endpoint: {app:#}"
    );
}
