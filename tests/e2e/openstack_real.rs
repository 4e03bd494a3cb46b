//! Real OpenStack as a member: Keystone, Placement, Glance, Nova (fake virt driver), Cinder
//! (fake volume driver) and Neutron (API only) started by `scripts/peers
//! start-openstack-real`. The conformance suite from the CLI, and a tenant's instance with
//! a key, user data and rules, its actions and an attached volume, each checked at Nova and
//! Cinder with plain HTTP and a Keystone token (independently of the adapter).
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use alliance_e2e::{
    bin, crash_after_member_answer, osreal, osreal_vars, Broker, Options, DEMO_CONFIG,
    REAL_OPERATIONS,
};
use base64::Engine as _;
use serde_json::{json, Value};

/// A token (and the catalogue's compute and block-storage URLs) as the admin, who may read
/// a server's user data.
async fn admin() -> (String, String, String) {
    let body = json!({ "auth": {
        "identity": { "methods": ["password"], "password": { "user": {
            "name": osreal("ADMIN_USERNAME"), "domain": { "name": "Default" },
            "password": osreal("ADMIN_PASSWORD") } } },
        "scope": { "project": { "name": osreal("ADMIN_PROJECT_NAME"), "domain": { "name": "Default" } } } } });
    let answer = reqwest::Client::new()
        .post(format!("{}/auth/tokens", osreal("AUTH_URL")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let token = answer.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let doc: Value = answer.json().await.unwrap();
    let url = |kind: &str| {
        doc["token"]["catalog"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["type"] == kind)
            .and_then(|s| {
                s["endpoints"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["interface"] == "public")
            })
            .map(|e| e["url"].as_str().unwrap().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| panic!("no {kind} in the catalogue"))
    };
    (token, url("compute"), url("block-storage"))
}

async fn get(url: &str) -> Value {
    let (token, _, _) = admin().await;
    let answer = reqwest::Client::new()
        .get(url)
        .header("x-auth-token", token)
        .header(
            "openstack-api-version",
            if url.contains("/volumes/") {
                "volume 3.0"
            } else {
                "compute 2.52"
            },
        )
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{url}: {}", answer.status());
    answer.json().await.unwrap()
}

/// The demo with belgacom-be replaced by the real OpenStack member (tenant projects in the
/// peers' domain; `large` is a flavour no host can hold).
fn real_member() -> Options {
    let block = "services = [\"instance\", \"volume\", \"bucket\"]\nadapter = { kind = \"sim\", delay_ms = 300 }\nsizes = { small = \"bc.s1\", medium = \"bc.m1\", large = \"bc.l1\" }\nimages = { \"debian-12\" = \"bc-debian-12\", \"ubuntu-24.04\" = \"bc-ubuntu-2404\" }";
    assert!(DEMO_CONFIG.contains(block), "the demo config changed");
    let real = format!(
        "services = [\"instance\", \"volume\"]\nadapter = {{ kind = \"openstack\", auth_url = \"{}\", region = \"{}\", env_prefix = \"ALLIANCE_TEST_OSREAL_\", network = \"none\", tenant_project_domain = \"{}\" }}\nsizes = {{ small = \"{}\", medium = \"{}\", large = \"{}\" }}\nimages = {{ \"debian-12\" = \"{}\" }}",
        osreal("AUTH_URL"), osreal("REGION_NAME"), osreal("TENANT_PROJECT_DOMAIN"), osreal("FLAVOR_SMALL"), osreal("FLAVOR_MEDIUM"), osreal("FLAVOR_IMPOSSIBLE"), osreal("IMAGE")
    );
    let mut options = Options::demo();
    // Real Nova resizes in seconds, more under load: a member call may take that long (the
    // tests' usual 1 s call timeout would cut every resize short).
    options.config = format!("{}{REAL_OPERATIONS}", DEMO_CONFIG.replacen(block, &real, 1));
    options.env = osreal_vars();
    options
}

/// The servers Nova holds for broker resource `id`, in any project.
async fn servers_of(id: &str) -> Vec<Value> {
    let (_, nova, _) = admin().await;
    get(&format!(
        "{nova}/servers/detail?all_tenants=1&tags=alliance:{id}"
    ))
    .await["servers"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn real_nova_and_cinder_refusals_reach_the_tenant_as_problems() {
    let broker = Broker::start(real_member()).await;
    // A tenant of its own (its project is made below, once per run of the peers).
    let capped = format!("capped-{}", std::process::id());
    let operator = broker.client(&broker.token_with(&["--role", "operator"]));
    operator
        .post(
            "/v1/tenants",
            &json!({"id": capped, "name": "Capped SA", "home_jurisdiction": "BE",
                    "allowed_jurisdictions": ["BE"], "default_data_class": "standard"}),
        )
        .await
        .assert_status(201);
    // The member's operator caps the tenant's project (made ahead, tagged, so the broker
    // adopts it): no instance, no gigabyte.
    let domain = osreal("TENANT_PROJECT_DOMAIN");
    let project = openstack(&[
        "project", "create", "--domain", &domain, "--tag", "alliance", &capped,
    ]);
    let project_id = project["id"].as_str().unwrap();
    let out = std::process::Command::new(osreal("OPENSTACK_CLI"))
        .args([
            "quota",
            "set",
            "--instances",
            "0",
            "--gigabytes",
            "0",
            project_id,
        ])
        .envs(admin_cli_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let capped = broker.client(&broker.token("tenant-admin", Some(&capped)));
    // Nova refuses the server (403 "Quota exceeded"), Cinder the volume (413 overLimit).
    let (done, _) = capped
        .submit_and_wait(
            "/v1/instances",
            &json!({"name": "one", "jurisdiction": "BE", "size": "small", "image": "debian-12"}),
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "member.over_quota", "{done}");
    let (done, _) = capped
        .submit_and_wait(
            "/v1/volumes",
            &json!({"name": "d", "jurisdiction": "BE", "size_gb": 1}),
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "member.over_quota", "{done}");
    assert!(
        done["error"]["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("quota"),
        "{done}"
    );

    // A flavour no host can hold: Nova ends the server in ERROR, and the operation fails
    // with Nova's own fault.
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let (done, id) = acme
        .submit_and_wait(
            "/v1/instances",
            &json!({"name": "doomed", "jurisdiction": "BE", "size": "large", "image": "debian-12"}),
        )
        .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "member.resource_failed", "{done}");
    assert!(
        done["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("No valid host"),
        "{done}"
    );
    // The failed resource is deletable, and deleting it removes the ERROR server.
    assert_eq!(servers_of(&id).await.len(), 1);
    acme.delete_and_wait("/v1/instances", &id).await;
    assert!(servers_of(&id).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_killed_between_real_novas_answer_and_its_commit_makes_one_server() {
    let mut options = real_member();
    // A create answers in well under 5 s; a lease of 10 s lets the restarted broker take
    // the dead one's operation over soon.
    options.config = options.config.replace(
        REAL_OPERATIONS,
        "\n[operations]\nlease_ms = 10000\ncall_timeout_ms = 5000\npoll_interval_ms = 20\n",
    );
    let (restarted, id) = crash_after_member_answer(options, "BE").await;
    let acme = restarted.client(&restarted.token("tenant-admin", Some("acme")));
    let id = id.as_str();
    let servers = servers_of(id).await;
    assert_eq!(servers.len(), 1, "duplicate servers at Nova: {servers:#?}");
    assert_eq!(
        acme.get(&format!("/v1/instances/{id}")).await.json()["member_resource_id"],
        servers[0]["id"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn real_openstack_passes_conformance() {
    let out = std::process::Command::new(bin())
        .args([
            "conformance",
            "--adapter",
            "openstack",
            "--env-prefix",
            "ALLIANCE_TEST_OSREAL_",
            "--network",
            "none",
            "--size",
            &osreal("FLAVOR_SMALL"),
            "--image",
            &osreal("IMAGE"),
            "--resize-size",
            &osreal("FLAVOR_MEDIUM"),
            "--format",
            "json",
            "--settle-timeout",
            "120",
        ])
        .envs(osreal_vars())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    for check in [
        "an instance gets its key, user data and rules, and reports addresses",
        "stop, start and reboot settle, each once per key",
        "resize settles at the new size",
        "a volume attaches to an instance and detaches",
    ] {
        let found = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == check);
        assert_eq!(
            found.map(|c| c["outcome"].clone()),
            Some(json!("passed")),
            "{check}: {report:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_uses_an_instance_and_a_volume_at_real_nova_and_cinder() {
    let broker = Broker::start(real_member()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    acme.post(
        "/v1/ssh-keys",
        &json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@laptop"}),
    )
    .await
    .assert_status(201);
    let user_data = base64::engine::general_purpose::STANDARD
        .encode("#cloud-config\nruncmd:\n  - echo hello\n");
    let instance = acme
        .create_and_wait(
            "/v1/instances",
            &json!({"name": "web", "jurisdiction": "BE", "size": "small", "image": "debian-12",
                    "ssh_key": "laptop", "user_data": user_data,
                    "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.0/24"}]}),
        )
        .await;
    assert_eq!(instance["status"], "active", "{instance}");
    assert_eq!(instance["power_state"], "running", "{instance}");
    let server_id = instance["member_resource_id"].as_str().unwrap().to_owned();
    let (_, nova, cinder) = admin().await;
    let server = get(&format!("{nova}/servers/{server_id}")).await["server"].clone();
    assert_eq!(server["key_name"], "alliance-acme-laptop", "{server}");
    assert_eq!(
        server["OS-EXT-SRV-ATTR:user_data"],
        user_data.as_str(),
        "{server}"
    );
    assert_eq!(server["status"], "ACTIVE");

    let id = instance["id"].as_str().unwrap();
    let actions = format!("/v1/instances/{id}/actions");
    acme.change_and_wait(&actions, &json!({"action": "stop"}))
        .await;
    assert_eq!(
        get(&format!("{nova}/servers/{server_id}")).await["server"]["status"],
        "SHUTOFF"
    );
    acme.change_and_wait(&actions, &json!({"action": "start"}))
        .await;
    assert_eq!(
        get(&format!("{nova}/servers/{server_id}")).await["server"]["status"],
        "ACTIVE"
    );
    acme.change_and_wait(&actions, &json!({"action": "resize", "size": "medium"}))
        .await;
    let server = get(&format!("{nova}/servers/{server_id}")).await["server"].clone();
    assert_eq!(server["status"], "ACTIVE", "{server}");
    assert_eq!(server["flavor"]["original_name"], "m1.medium", "{server}");
    assert_eq!(
        acme.get(&format!("/v1/instances/{id}")).await.json()["size"],
        "medium"
    );

    let volume = acme
        .create_and_wait(
            "/v1/volumes",
            &json!({"name": "data", "size_gb": 1, "attach_to": id}),
        )
        .await;
    assert_eq!(volume["attached_to"], id, "{volume}");
    let attachments = get(&format!("{nova}/servers/{server_id}/os-volume_attachments")).await;
    assert_eq!(
        attachments["volumeAttachments"][0]["volumeId"], volume["member_resource_id"],
        "{attachments}"
    );
    let found = get(&format!(
        "{cinder}/volumes/{}",
        volume["member_resource_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(found["volume"]["status"], "in-use", "{found}");
    acme.change_and_wait(
        &format!("/v1/volumes/{}/detach", volume["id"].as_str().unwrap()),
        &json!({}),
    )
    .await;
    let found = get(&format!(
        "{cinder}/volumes/{}",
        volume["member_resource_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(found["volume"]["status"], "available", "{found}");

    // The member's own client (python-openstackclient, as the member's operators use it)
    // finds both in the tenant's own project, with the broker's tags and metadata.
    let project = openstack(&[
        "project",
        "show",
        "acme",
        "--domain",
        &osreal("TENANT_PROJECT_DOMAIN"),
    ]);
    assert!(
        project["tags"].to_string().contains("alliance"),
        "{project}"
    );
    let in_project = [
        "--project",
        "acme",
        "--project-domain",
        &osreal("TENANT_PROJECT_DOMAIN"),
    ];
    // (acme's other tests in this run share the project.)
    let servers = openstack(&[&["server", "list"][..], &in_project[..]].concat());
    assert!(
        servers
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["ID"] == server_id.as_str()),
        "{servers}"
    );
    let server = openstack(&["server", "show", &server_id]);
    assert_eq!(server["project_id"], project["id"], "{server}");
    assert!(
        server["tags"]
            .to_string()
            .contains(&format!("alliance:{id}")),
        "{server}"
    );
    assert!(
        server["properties"].to_string().contains("alliance_tenant"),
        "{server}"
    );
    let volumes = openstack(&[&["volume", "list"][..], &in_project[..]].concat());
    let volume_id = volume["member_resource_id"].as_str().unwrap();
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["ID"] == volume_id),
        "{volumes}"
    );
    let shown = openstack(&["volume", "show", volume_id]);
    assert!(
        shown["properties"]
            .to_string()
            .contains("alliance_broker_id"),
        "{shown}"
    );
    // The broker's own project holds none of them.
    assert!(
        !openstack(&["server", "list", "--project", &osreal("PROJECT_NAME")])
            .to_string()
            .contains(&server_id),
        "the server is in the broker's project too"
    );
}

/// The `OS_*` variables of the cloud's admin, for python-openstackclient.
fn admin_cli_env() -> Vec<(&'static str, String)> {
    vec![
        ("OS_AUTH_URL", osreal("AUTH_URL")),
        ("OS_IDENTITY_API_VERSION", "3".into()),
        ("OS_REGION_NAME", osreal("REGION_NAME")),
        ("OS_USERNAME", osreal("ADMIN_USERNAME")),
        ("OS_PASSWORD", osreal("ADMIN_PASSWORD")),
        ("OS_PROJECT_NAME", osreal("ADMIN_PROJECT_NAME")),
        ("OS_USER_DOMAIN_NAME", "Default".into()),
        ("OS_PROJECT_DOMAIN_NAME", "Default".into()),
    ]
}

/// Runs python-openstackclient as the cloud's admin; its JSON output.
fn openstack(args: &[&str]) -> Value {
    let out = std::process::Command::new(osreal("OPENSTACK_CLI"))
        .args(args)
        .args(["-f", "json"])
        .envs(admin_cli_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openstack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_projects_without_the_grants_fail_naming_the_missing_role() {
    // The broker's user holds no role on the Default domain: it cannot keep tenant
    // projects there, and every create says which role is missing.
    let out = std::process::Command::new(bin())
        .args([
            "conformance",
            "--adapter",
            "openstack",
            "--env-prefix",
            "ALLIANCE_TEST_OSREAL_",
            "--network",
            "none",
            "--size",
            &osreal("FLAVOR_SMALL"),
            "--image",
            &osreal("IMAGE"),
            "--tenant-project-domain",
            "Default",
            "--format",
            "json",
        ])
        .envs(osreal_vars())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_ne!(out.status.code(), Some(0), "{report:#}");
    assert!(
        report
            .to_string()
            .contains("needs the `manager` (or `admin`) role"),
        "{report:#}"
    );
}
