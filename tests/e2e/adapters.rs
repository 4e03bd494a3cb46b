//! The real adapters against real peers: `ec2` against moto (SigV4 checked) and Swift's
//! s3api, `openstack` against real Keystone and Swift plus the project's Nova/Cinder fake
//! registered in Keystone's catalogue. Conformance from the CLI with discovery; a tenant's
//! resources in France (ec2) and Belgium (openstack) created, checked at the member by an
//! independent client (boto3; plain HTTP with a Keystone token) and deleted; and a broker
//! killed between a member's answer and its commit never leaves a duplicate.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use alliance_e2e::{
    bin, crash_after_member_answer, curl, openstack_env, openstack_token, openstack_vars, scratch,
    Broker, Moto, Options, DEMO_CONFIG, FAST_OPERATIONS,
};
use base64::Engine as _;
use serde_json::{json, Value};

/// Fake image and network ids (tests/peers/openstack_fake.py); servers of the second
/// image end in ERROR ("No valid host was found").
const OS_IMAGE: &str = "5b1c6a4e-0000-4000-8000-000000000001";
const OS_ERROR_IMAGE: &str = "5b1c6a4e-0000-4000-8000-000000000002";
const OS_NETWORK: &str = "9f0e7d6c-0000-4000-8000-000000000002";
/// The fake's external network, where floating IPs come from.
const OS_EXTERNAL_NETWORK: &str = "9f0e7d6c-0000-4000-8000-000000000001";

fn conformance(args: &[&str], env: &[(String, String)]) -> (i32, Value, String) {
    let out = std::process::Command::new(bin())
        .arg("conformance")
        .args(args)
        .args(["--format", "json", "--settle-timeout", "30"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (out.status.code().unwrap_or(-1), report, stderr)
}

fn outcomes(report: &Value, service: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["service"] == service)
        .map(|c| c["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_conformance_passes_against_moto_with_signatures_checked() {
    let moto = Moto::start();
    let (code, report, stderr) = conformance(
        &[
            "--adapter",
            "ec2",
            "--member-endpoint",
            &moto.endpoint,
            "--region",
            "eu-west-3",
            "--resize-size",
            "t3.small",
        ],
        &moto.env(),
    );
    assert_eq!(code, 0, "{report:#} {stderr}");
    assert_eq!(
        (
            report["passed"].as_u64(),
            report["failed"].as_u64(),
            report["skipped"].as_u64()
        ),
        (Some(32), Some(0), Some(0)),
        "{report:#}"
    );

    // moto checks SigV4: the same run with a wrong secret cannot even discover the member.
    let mut wrong = moto.env();
    wrong[1].1 = "not-the-secret".into();
    let out = std::process::Command::new(bin())
        .args([
            "conformance",
            "--adapter",
            "ec2",
            "--member-endpoint",
            &moto.endpoint,
        ])
        .envs(wrong.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refuses the credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not-the-secret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_bucket_path_conforms_against_swift_s3api() {
    let env = vec![
        (
            "AWS_ACCESS_KEY_ID".to_owned(),
            openstack_env("ALLIANCE_TEST_SWIFT_S3_ACCESS_KEY"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            openstack_env("ALLIANCE_TEST_SWIFT_S3_SECRET"),
        ),
    ];
    let endpoint = openstack_env("ALLIANCE_TEST_SWIFT_S3");
    let (code, report, stderr) = conformance(
        &[
            "--adapter",
            "ec2",
            "--member-endpoint",
            &endpoint,
            "--region",
            "eu-west-3",
        ],
        &env,
    );
    assert_eq!(code, 0, "{report:#} {stderr}");
    assert!(
        outcomes(&report, "bucket").iter().all(|o| o == "passed"),
        "{report:#}"
    );
    assert_eq!(outcomes(&report, "bucket").len(), 8);
    // Swift offers no EC2 API: the suite says so instead of failing.
    for service in ["instance", "volume"] {
        assert_eq!(outcomes(&report, service), ["skipped"], "{report:#}");
    }
    assert!(
        report.to_string().contains("the EC2 API does not answer"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openstack_conformance_passes_with_password_and_application_credentials() {
    let env = openstack_vars();
    // Password credentials; the region from OS_REGION_NAME, the rest discovered.
    let (code, report, stderr) = conformance(
        &[
            "--adapter",
            "openstack",
            "--env-prefix",
            "ALLIANCE_TEST_OS_",
            "--resize-size",
            "2",
        ],
        &env,
    );
    assert_eq!(code, 0, "{report:#} {stderr}");
    assert_eq!(
        (
            report["passed"].as_u64(),
            report["failed"].as_u64(),
            report["skipped"].as_u64()
        ),
        (Some(32), Some(0), Some(0)),
        "{report:#}"
    );
    // An application credential (no region variable: given on the command line).
    let (code, report, stderr) = conformance(
        &[
            "--adapter",
            "openstack",
            "--env-prefix",
            "ALLIANCE_TEST_OSAPP_",
            "--region",
            "be-bru-1",
        ],
        &env,
    );
    assert_eq!(code, 0, "{report:#} {stderr}");
    assert_eq!(report["failed"].as_u64(), Some(0), "{report:#}");
    // A region whose catalogue offers object storage only: the rest is skipped, saying why.
    let (code, report, stderr) = conformance(
        &[
            "--adapter",
            "openstack",
            "--env-prefix",
            "ALLIANCE_TEST_OS_",
            "--region",
            "be-ant-1",
        ],
        &env,
    );
    assert_eq!(code, 0, "{report:#} {stderr}");
    assert!(
        outcomes(&report, "bucket").iter().all(|o| o == "passed"),
        "{report:#}"
    );
    for service in ["instance", "volume"] {
        assert_eq!(outcomes(&report, service), ["skipped"], "{report:#}");
    }
    assert!(
        report
            .to_string()
            .contains("offers no compute endpoint in region be-ant-1"),
        "{report:#}"
    );
    // The endpoints of the decoy region point at a closed port: they are used only when
    // that region is asked for, and then discovery fails loudly (exit 2, naming the URL).
    let out = std::process::Command::new(bin())
        .args([
            "conformance",
            "--adapter",
            "openstack",
            "--env-prefix",
            "ALLIANCE_TEST_OS_",
            "--region",
            "de-fra-1",
        ])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:9/"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo federation with numergy-fr as an ec2 member on `moto` and belgacom-be as an
/// openstack member on the OpenStack peers.
fn real_federation(moto: &Moto, image: &str) -> Options {
    let ec2 = format!(
        "adapter = {{ kind = \"ec2\", endpoint = \"{}\", region = \"eu-west-3\" }}\nsizes = {{ small = \"t3.micro\", medium = \"t3.small\", large = \"m5.large\" }}\nimages = {{ \"debian-12\" = \"{image}\" }}",
        moto.endpoint
    );
    let openstack = format!(
        "adapter = {{ kind = \"openstack\", auth_url = \"{}\", region = \"be-bru-1\", env_prefix = \"ALLIANCE_TEST_OS_\", network = \"{OS_NETWORK}\", floating_network = \"{OS_EXTERNAL_NETWORK}\" }}\nsizes = {{ small = \"1\", medium = \"2\", large = \"3\" }}\nimages = {{ \"debian-12\" = \"{OS_IMAGE}\", \"ubuntu-24.04\" = \"{OS_ERROR_IMAGE}\" }}",
        openstack_env("ALLIANCE_TEST_OS_AUTH_URL")
    );
    let mut config = DEMO_CONFIG.to_owned();
    for (sizes, replacement) in [
        ("sizes = { small = \"n2.small\", medium = \"n2.medium\", large = \"n2.large\" }\nimages = { \"debian-12\" = \"img-numergy-deb12\", \"ubuntu-24.04\" = \"img-numergy-ubu2404\" }", ec2),
        ("sizes = { small = \"bc.s1\", medium = \"bc.m1\", large = \"bc.l1\" }\nimages = { \"debian-12\" = \"bc-debian-12\", \"ubuntu-24.04\" = \"bc-ubuntu-2404\" }", openstack),
    ] {
        let block = format!("adapter = {{ kind = \"sim\", delay_ms = 300 }}\n{sizes}");
        assert!(config.contains(&block), "the demo config changed: {block}");
        config = config.replacen(&block, &replacement, 1);
    }
    let mut options = Options::demo();
    options.config = format!("{config}{FAST_OPERATIONS}");
    options.env = moto.env();
    options.env.extend(openstack_vars());
    options
}

async fn openstack_get(path: &str) -> (u16, Value) {
    let token = openstack_token().await;
    let answer = reqwest::Client::new()
        .get(format!(
            "{}{path}",
            openstack_env("ALLIANCE_TEST_OPENSTACK_FAKE")
        ))
        .header("x-auth-token", token)
        .header("openstack-api-version", "compute 2.52")
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn servers_tagged(broker_id: &str) -> Vec<Value> {
    let (status, body) = openstack_get(&format!(
        "/compute/v2.1/servers/detail?tags=alliance:{broker_id}"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    body["servers"].as_array().unwrap().clone()
}

async fn volumes_of(broker_id: &str) -> Vec<Value> {
    let project = openstack_env("ALLIANCE_TEST_OS_PROJECT_ID");
    let filter = json!({ "alliance_broker_id": broker_id }).to_string();
    let query = url_encode(&filter);
    let (status, body) = openstack_get(&format!(
        "/volume/v3/{project}/volumes/detail?metadata={query}"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    body["volumes"].as_array().unwrap().clone()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn swift_container(name: &str) -> (u16, reqwest::header::HeaderMap) {
    let token = openstack_token().await;
    let project = openstack_env("ALLIANCE_TEST_OS_PROJECT_ID");
    let answer = reqwest::Client::new()
        .head(format!(
            "{}/v1/AUTH_{project}/{name}",
            openstack_env("ALLIANCE_TEST_SWIFT")
        ))
        .header("x-auth-token", token)
        .send()
        .await
        .unwrap();
    (answer.status().as_u16(), answer.headers().clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_provisions_on_ec2_in_france_and_openstack_in_belgium() {
    let mut moto = Moto::start();
    let image = moto.ask("image").as_str().unwrap().to_owned();
    let broker = Broker::start(real_federation(&moto, &image)).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));

    let mut created = Vec::new();
    for country in ["FR", "BE"] {
        let instance = acme
            .create_and_wait("/v1/instances", &json!({ "name": format!("web-{country}"), "jurisdiction": country, "size": "small", "image": "debian-12" }))
            .await;
        let volume = acme
            .create_and_wait("/v1/volumes", &json!({ "name": format!("data-{country}"), "jurisdiction": country, "size_gb": 10 }))
            .await;
        let bucket = acme
            .create_bucket(&format!("logs-{country}"), country)
            .await;
        for r in [&instance, &volume, &bucket] {
            assert_eq!(r["status"], "active", "{r}");
            let member = if country == "FR" {
                "numergy-fr"
            } else {
                "belgacom-be"
            };
            assert_eq!(r["member"], member, "{r}");
        }
        created.push((country, instance, volume, bucket));
    }

    // France: in moto, with the broker's tags, seen through boto3.
    let (_, instance, volume, bucket) = &created[0];
    let id = instance["id"].as_str().unwrap();
    let found = moto.ask(&format!("instances {id}"));
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["state"], "running");
    assert_eq!(found[0]["tags"]["alliance:tenant"], "acme");
    assert_eq!(found[0]["tags"]["alliance:broker-id"], id);
    let found = moto.ask(&format!("volumes {}", volume["id"].as_str().unwrap()));
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["tags"]["alliance:tenant"], "acme");
    let bucket_name = format!("alliance-{}", bucket["id"].as_str().unwrap());
    let found = moto.ask(&format!("bucket {bucket_name}"));
    assert_eq!(found["exists"], true, "{found}");
    assert_eq!(found["tags"]["alliance:broker-id"], bucket["id"]);

    // Belgium: in the Nova/Cinder fake behind real Keystone, and in real Swift.
    let (_, instance, volume, bucket) = &created[1];
    let servers = servers_tagged(instance["id"].as_str().unwrap()).await;
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(servers[0]["status"], "ACTIVE");
    assert_eq!(servers[0]["metadata"]["alliance_tenant"], "acme");
    let volumes = volumes_of(volume["id"].as_str().unwrap()).await;
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(volumes[0]["size"], 10);
    let container = format!("alliance-{}", bucket["id"].as_str().unwrap());
    let (status, headers) = swift_container(&container).await;
    assert_eq!(status, 204);
    assert_eq!(headers["x-container-meta-alliance-tenant"], "acme");
    assert_eq!(
        headers["x-container-meta-alliance-broker-id"],
        bucket["id"].as_str().unwrap()
    );

    // One pooled client per member, its connections counted. moto's development server
    // closes every connection (HTTP/1.0), so only the OpenStack member can show reuse.
    let metrics = String::from_utf8(broker.anonymous().get("/metrics").await.bytes).unwrap();
    for (member, reused) in [("numergy-fr", false), ("belgacom-be", true)] {
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find(|l| l.starts_with(name) && l.contains(&format!("member=\"{member}\"")))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} for {member} missing:\n{metrics}"))
        };
        let requests = value("alliance_member_http_requests_total");
        let connections = value("alliance_member_connections_opened_total");
        assert!(
            requests >= 6.0 && connections >= 1.0 && connections <= requests,
            "{member}: {connections} connections for {requests} requests"
        );
        if reused {
            assert!(
                connections * 2.0 <= requests,
                "{member}: {connections} connections for {requests} requests"
            );
        }
    }

    // Deleting through the broker removes them at the members.
    for (_, instance, volume, bucket) in &created {
        acme.delete_and_wait("/v1/instances", instance["id"].as_str().unwrap())
            .await;
        acme.delete_and_wait("/v1/volumes", volume["id"].as_str().unwrap())
            .await;
        acme.delete_and_wait("/v1/buckets", bucket["id"].as_str().unwrap())
            .await;
    }
    let (_, instance, volume, _) = &created[0];
    let found = moto.ask(&format!("instances {}", instance["id"].as_str().unwrap()));
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["state"] == "terminated"),
        "{found}"
    );
    assert_eq!(
        moto.ask(&format!("volumes {}", volume["id"].as_str().unwrap())),
        json!([])
    );
    assert_eq!(moto.ask(&format!("bucket {bucket_name}"))["exists"], false);
    let (_, instance, volume, _) = &created[1];
    assert!(servers_tagged(instance["id"].as_str().unwrap())
        .await
        .is_empty());
    assert!(volumes_of(volume["id"].as_str().unwrap()).await.is_empty());
    assert_eq!(swift_container(&container).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_killed_between_ec2s_answer_and_its_commit_never_duplicates() {
    let mut moto = Moto::start();
    let image = moto.ask("image").as_str().unwrap().to_owned();
    let (_broker, id) = crash_after_member_answer(real_federation(&moto, &image), "FR").await;
    // moto does not deduplicate ClientToken: only the tag search before the retry prevents
    // a second instance.
    let found = moto.ask(&format!("instances {id}"));
    assert_eq!(
        found.as_array().unwrap().len(),
        1,
        "duplicate instances at the member: {found}"
    );
}

/// What makes resources usable, at an EC2 member (moto), seen through boto3: the key pair,
/// the user data, the security group's rule, stop/start, the new instance type, the
/// attachment, and an object stored with curl through a presigned URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_uses_its_instance_volume_and_bucket_at_an_ec2_member() {
    let mut moto = Moto::start();
    let image = moto.ask("image").as_str().unwrap().to_owned();
    let broker = Broker::start(real_federation(&moto, &image)).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    acme.post(
        "/v1/ssh-keys",
        &json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@laptop"}),
    )
    .await
    .assert_status(201);
    let cloud_init = "#cloud-config\nruncmd:\n  - echo hello\n";
    let user_data = base64::engine::general_purpose::STANDARD.encode(cloud_init);
    let instance = acme
        .create_and_wait(
            "/v1/instances",
            &json!({"name": "web", "jurisdiction": "FR", "size": "small", "image": "debian-12",
                    "ssh_key": "laptop", "user_data": user_data,
                    "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.0/24"}]}),
        )
        .await;
    assert_eq!(instance["member"], "numergy-fr");
    assert_eq!(instance["power_state"], "running", "{instance}");
    let id = instance["id"].as_str().unwrap();
    let found = &moto.ask(&format!("instances {id}"))[0];
    assert_eq!(found["key_name"], "alliance-acme-laptop", "{found}");
    assert_eq!(found["user_data"], cloud_init);
    assert_eq!(
        instance["addresses"]["private"][0], found["private_ip"],
        "{instance}"
    );
    let rules = found["rules"].as_array().unwrap();
    assert!(
        rules.iter().any(|r| r["protocol"] == "tcp"
            && r["from"] == 22
            && r["to"] == 22
            && r["cidr"] == "203.0.113.0/24"),
        "{found}"
    );
    assert_eq!(moto.ask("keypair alliance-acme-laptop")["exists"], true);
    // Closed by default: no public address unless asked for, whatever the default subnet
    // would give.
    assert!(found["public_ip"].is_null(), "{found}");
    assert_eq!(instance["addresses"]["public"], json!([]), "{instance}");
    let public = acme
        .create_and_wait(
            "/v1/instances",
            &json!({"name": "edge", "jurisdiction": "FR", "size": "small", "image": "debian-12",
                    "public_ip": true, "ingress": [{"protocol": "tcp", "port": 443, "cidr": "0.0.0.0/0"}]}),
        )
        .await;
    let seen = &moto.ask(&format!("instances {}", public["id"].as_str().unwrap()))[0];
    assert!(seen["public_ip"].is_string(), "{seen}");
    assert_eq!(
        public["addresses"]["public"][0], seen["public_ip"],
        "{public}"
    );
    assert!(
        seen["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["from"] == 443),
        "the group is on the interface: {seen}"
    );
    // The instance's own group goes with it.
    let edge_group = format!("group alliance-{}", public["id"].as_str().unwrap());
    assert_eq!(moto.ask(&edge_group)["exists"], true);
    acme.delete_and_wait("/v1/instances", public["id"].as_str().unwrap())
        .await;
    assert_eq!(
        moto.ask(&edge_group)["exists"],
        false,
        "deleted with its instance"
    );

    let actions = format!("/v1/instances/{id}/actions");
    acme.change_and_wait(&actions, &json!({"action": "stop"}))
        .await;
    assert_eq!(moto.ask(&format!("instances {id}"))[0]["state"], "stopped");
    acme.change_and_wait(&actions, &json!({"action": "start"}))
        .await;
    assert_eq!(moto.ask(&format!("instances {id}"))[0]["state"], "running");
    acme.change_and_wait(&actions, &json!({"action": "resize", "size": "medium"}))
        .await;
    let found = &moto.ask(&format!("instances {id}"))[0];
    assert_eq!(found["type"], "t3.small", "{found}");
    assert_eq!(found["state"], "running");
    assert_eq!(
        acme.get(&format!("/v1/instances/{id}")).await.json()["size"],
        "medium"
    );

    let volume = acme
        .create_and_wait(
            "/v1/volumes",
            &json!({"name": "data", "size_gb": 10, "attach_to": id}),
        )
        .await;
    assert_eq!(volume["attached_to"], id, "{volume}");
    let found = &moto.ask(&format!("volumes {}", volume["id"].as_str().unwrap()))[0];
    assert_eq!(
        found["attachments"][0]["instance"],
        instance_member_id(&acme, id).await,
        "{found}"
    );

    let bucket = acme.create_bucket("reports", "FR").await;
    let urls = format!("/v1/buckets/{}/urls", bucket["id"].as_str().unwrap());
    let put = acme
        .post(&urls, &json!({"method": "PUT", "object": "q4/report.csv"}))
        .await
        .json();
    let url = put["url"].as_str().unwrap();
    assert!(
        url.contains("X-Amz-Signature="),
        "a SigV4 presigned URL: {put}"
    );
    let file = scratch("ec2-usable").join("report.csv");
    std::fs::write(&file, b"tenant,amount\nacme,12.50\n").unwrap();
    let (status, body) = curl(&["--upload-file", file.to_str().unwrap(), url]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let bucket_name = format!("alliance-{}", bucket["id"].as_str().unwrap());
    let stored = moto.ask(&format!("object {bucket_name} q4/report.csv"));
    assert_eq!(stored["body"], "tenant,amount\nacme,12.50\n", "{stored}");
    let get = acme
        .post(&urls, &json!({"method": "GET", "object": "q4/report.csv"}))
        .await
        .json();
    let (status, body) = curl(&[get["url"].as_str().unwrap()]);
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&file).unwrap());
}

async fn instance_member_id(client: &alliance_e2e::Client, id: &str) -> Value {
    client.get(&format!("/v1/instances/{id}")).await.json()["member_resource_id"].clone()
}

/// What makes resources usable, at an OpenStack member, checked at the member with a
/// Keystone token: the keypair, user data and security group at Nova (the project's fake
/// until real Nova lands), the server actions, the attachment through Nova, and an object
/// stored and read with curl through a TempURL of the real Swift.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_uses_its_instance_volume_and_bucket_at_an_openstack_member() {
    let moto = Moto::start();
    let broker = Broker::start(real_federation(&moto, "ami-unused")).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    acme.post(
        "/v1/ssh-keys",
        &json!({"name": "laptop", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@laptop"}),
    )
    .await
    .assert_status(201);
    let user_data = base64::engine::general_purpose::STANDARD.encode("#cloud-config\n");
    let instance = acme
        .create_and_wait(
            "/v1/instances",
            &json!({"name": "web", "jurisdiction": "BE", "size": "small", "image": "debian-12",
                    "ssh_key": "laptop", "user_data": user_data,
                    "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.0/24"}]}),
        )
        .await;
    assert_eq!(instance["member"], "belgacom-be");
    assert_eq!(instance["power_state"], "running", "{instance}");
    assert!(
        !instance["addresses"]["private"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{instance}"
    );
    let id = instance["id"].as_str().unwrap();
    let server = &servers_tagged(id).await[0];
    assert_eq!(server["key_name"], "alliance-acme-laptop", "{server}");
    assert_eq!(server["OS-EXT-SRV-ATTR:user_data"], user_data.as_str());
    assert_eq!(
        server["security_groups"][0]["name"],
        format!("alliance-{id}")
    );
    let (status, keypair) = openstack_get("/compute/v2.1/os-keypairs/alliance-acme-laptop").await;
    assert_eq!(status, 200, "{keypair}");
    assert_eq!(
        instance["addresses"]["public"],
        json!([]),
        "closed by default: {instance}"
    );

    // A public address: a floating IP of the external network on the server's port, in the
    // view once the operation succeeds; released with the server.
    let edge = acme
        .create_and_wait(
            "/v1/instances",
            &json!({"name": "edge", "jurisdiction": "BE", "size": "small", "image": "debian-12", "public_ip": true,
                    "ingress": [{"protocol": "tcp", "port": 443, "cidr": "0.0.0.0/0"}]}),
        )
        .await;
    let edge_server = servers_tagged(edge["id"].as_str().unwrap()).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, floating) = openstack_get(&format!(
        "/network/v2.0/floatingips?port_id=port-{edge_server}"
    ))
    .await;
    let address = floating["floatingips"][0]["floating_ip_address"].clone();
    assert!(address.is_string(), "{floating}");
    assert_eq!(edge["addresses"]["public"], json!([address]), "{edge}");
    let groups_of_edge = format!(
        "/network/v2.0/security-groups?name=alliance-{}",
        edge["id"].as_str().unwrap()
    );
    let (_, groups) = openstack_get(&groups_of_edge).await;
    assert_eq!(
        groups["security_groups"].as_array().map(Vec::len),
        Some(1),
        "{groups}"
    );
    acme.delete_and_wait("/v1/instances", edge["id"].as_str().unwrap())
        .await;
    let (_, floating) = openstack_get(&format!(
        "/network/v2.0/floatingips?port_id=port-{edge_server}"
    ))
    .await;
    assert_eq!(floating["floatingips"], json!([]), "released: {floating}");
    let (_, groups) = openstack_get(&groups_of_edge).await;
    assert_eq!(
        groups["security_groups"],
        json!([]),
        "deleted with its server: {groups}"
    );

    let actions = format!("/v1/instances/{id}/actions");
    acme.change_and_wait(&actions, &json!({"action": "stop"}))
        .await;
    assert_eq!(servers_tagged(id).await[0]["status"], "SHUTOFF");
    acme.change_and_wait(&actions, &json!({"action": "start"}))
        .await;
    assert_eq!(servers_tagged(id).await[0]["status"], "ACTIVE");
    acme.change_and_wait(&actions, &json!({"action": "resize", "size": "medium"}))
        .await;
    let server = &servers_tagged(id).await[0];
    assert_eq!(
        (server["flavor"]["id"].as_str(), server["status"].as_str()),
        (Some("2"), Some("ACTIVE")),
        "{server}"
    );

    let volume = acme
        .create_and_wait(
            "/v1/volumes",
            &json!({"name": "data", "size_gb": 1, "attach_to": id}),
        )
        .await;
    assert_eq!(volume["attached_to"], id, "{volume}");
    let found = &volumes_of(volume["id"].as_str().unwrap()).await[0];
    assert_eq!(found["status"], "in-use");
    assert_eq!(
        found["attachments"][0]["server_id"], server["id"],
        "{found}"
    );

    let bucket = acme.create_bucket("reports", "BE").await;
    let urls = format!("/v1/buckets/{}/urls", bucket["id"].as_str().unwrap());
    let put = acme
        .post(&urls, &json!({"method": "PUT", "object": "q4/report.csv"}))
        .await
        .json();
    let url = put["url"].as_str().unwrap();
    assert!(
        url.starts_with(&openstack_env("ALLIANCE_TEST_SWIFT")) && url.contains("temp_url_sig="),
        "{put}"
    );
    let file = scratch("openstack-usable").join("report.csv");
    std::fs::write(&file, b"tenant,amount\nacme,7.25\n").unwrap();
    let (status, body) = curl(&["--upload-file", file.to_str().unwrap(), url]);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let get = acme
        .post(&urls, &json!({"method": "GET", "object": "q4/report.csv"}))
        .await
        .json();
    let (status, body) = curl(&[get["url"].as_str().unwrap()]);
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&file).unwrap());
    // A URL for GET does not write, and a tampered one is refused by Swift itself.
    let (status, _) = curl(&[
        "--upload-file",
        file.to_str().unwrap(),
        get["url"].as_str().unwrap(),
    ]);
    assert_eq!(status, 401);
    let (status, _) = curl(&[&get["url"]
        .as_str()
        .unwrap()
        .replace("q4/report.csv", "q4/other.csv")]);
    assert_eq!(status, 401);
}
