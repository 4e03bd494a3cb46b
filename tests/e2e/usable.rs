//! The README's first session, against the compiled binary on the embedded demo: a key, an
//! instance with user data and port 22 open, its actions, a volume attached, and an object
//! stored and read back with curl through URLs the broker signed, straight at the member.
#![expect(clippy::unwrap_used, reason = "tests")]

use alliance_e2e::{curl, Broker};
use serde_json::json;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@laptop";

#[tokio::test(flavor = "multi_thread")]
async fn the_first_session_uses_what_it_creates() {
    let broker = Broker::start(alliance_e2e::Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let key = acme
        .post(
            "/v1/ssh-keys",
            &json!({"name": "laptop", "public_key": ED25519}),
        )
        .await;
    key.assert_status(201);
    assert!(key.json()["fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("SHA256:"));

    let user_data = "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6CiAgLSBlY2hvIGhlbGxvCg==";
    let instance = acme
        .create_and_wait(
            "/v1/instances",
            &json!({"name": "web", "jurisdiction": "BE", "size": "small", "image": "debian-12",
                    "ssh_key": "laptop", "user_data": user_data,
                    "ingress": [{"protocol": "tcp", "port": 22, "cidr": "203.0.113.0/24"}]}),
        )
        .await;
    assert_eq!(instance["status"], "active", "{instance}");
    assert_eq!(instance["power_state"], "running");
    assert!(
        !instance["addresses"]["private"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{instance}"
    );
    assert!(instance["user_data_sha256"].is_string());
    assert!(!instance.to_string().contains(user_data));
    let id = instance["id"].as_str().unwrap();
    let actions = format!("/v1/instances/{id}/actions");
    for (action, power) in [("stop", "stopped"), ("start", "running")] {
        let op = acme
            .change_and_wait(&actions, &json!({"action": action}))
            .await;
        assert_eq!(op["kind"], action);
        let now = acme.get(&format!("/v1/instances/{id}")).await.json();
        assert_eq!(now["power_state"], power, "{now}");
    }
    acme.change_and_wait(&actions, &json!({"action": "resize", "size": "medium"}))
        .await;
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
    assert_eq!(volume["member"], instance["member"]);

    let bucket = acme.create_bucket("reports", "FR").await;
    let urls = format!("/v1/buckets/{}/urls", bucket["id"].as_str().unwrap());
    let put = acme
        .post(
            &urls,
            &json!({"method": "PUT", "object": "2026/q4.csv", "expires_in": 900}),
        )
        .await;
    put.assert_status(200);
    let file = alliance_e2e::scratch("usable").join("q4.csv");
    std::fs::write(&file, b"member,amount\nnumergy-fr,12.50\n").unwrap();
    let (status, _) = curl(&[
        "--upload-file",
        file.to_str().unwrap(),
        put.json()["url"].as_str().unwrap(),
    ]);
    assert_eq!(status, 200);
    let get = acme
        .post(&urls, &json!({"method": "GET", "object": "2026/q4.csv"}))
        .await
        .json();
    let (status, body) = curl(&[get["url"].as_str().unwrap()]);
    assert_eq!(status, 200);
    assert_eq!(body, std::fs::read(&file).unwrap());
    // The broker never carried the bytes and never logged the URLs.
    let log = broker.log_text();
    assert!(!log.contains("signature="), "a signed URL reached the log");
    assert!(!log.contains(user_data), "user data reached the log");
}

/// A broker killed (abort, as kill -9) between the member's answer to a resize and its
/// commit: restarted, it finishes the operation, and the member resized once.
#[tokio::test(flavor = "multi_thread")]
async fn an_action_killed_before_its_commit_has_one_effect() {
    let mut options = alliance_e2e::Options::demo();
    options
        .env
        .push(("ALLIANCE_FAILPOINT".into(), "after-member-action".into()));
    let mut armed = Broker::start(options).await;
    let acme = armed.client(&armed.token("tenant-admin", Some("acme")));
    let instance = acme
        .create_and_wait(
            "/v1/instances",
            &json!({"name": "web", "jurisdiction": "DE", "size": "small", "image": "debian-12"}),
        )
        .await;
    let id = instance["id"].as_str().unwrap().to_owned();
    let accepted = acme
        .post_accepted(
            &format!("/v1/instances/{id}/actions"),
            &json!({"action": "resize", "size": "large"}),
            &[("idempotency-key", "resize-once")],
        )
        .await
        .json();
    let status = armed.wait_exit(std::time::Duration::from_secs(30));
    assert!(
        !status.success(),
        "the broker should have died at the failpoint"
    );
    assert!(armed
        .log_text()
        .contains("failpoint after-member-action reached"));

    let mut unarmed = armed.options.clone();
    unarmed.env.retain(|(k, _)| k != "ALLIANCE_FAILPOINT");
    unarmed.data_dir = Some(armed.data_dir.clone());
    let restarted = Broker::start(unarmed).await;
    let acme = restarted.client(&restarted.token("tenant-admin", Some("acme")));
    let done = acme.wait_succeeded(accepted["id"].as_str().unwrap()).await;
    assert_eq!(done["kind"], "resize");
    // The retried request replays the same operation.
    let again = acme
        .post_accepted(
            &format!("/v1/instances/{id}/actions"),
            &json!({"action": "resize", "size": "large"}),
            &[("idempotency-key", "resize-once")],
        )
        .await
        .json();
    assert_eq!(again["id"], accepted["id"]);
    assert_eq!(
        acme.get(&format!("/v1/instances/{id}")).await.json()["size"],
        "large"
    );
    // At the member: one resize, whatever the broker repeated.
    let journal = std::fs::read_to_string(restarted.data_dir.join("sim/telekom-de.jsonl")).unwrap();
    let last = journal
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "updated" && e["resource"]["broker_id"] == id.as_str())
        .unwrap();
    assert_eq!(
        last["resource"]["resized"].as_array().unwrap().len(),
        1,
        "{last}"
    );
}
