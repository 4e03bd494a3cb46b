//! Member faults: a down member is skipped for another member of the same jurisdiction only;
//! with none left the answer is 503 `member.unavailable` with `Retry-After`; an operation
//! accepted while its member is down finishes when the member comes back, created once.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

use alliance_e2e::{eventually, federation_config, Broker, Client, MemberSim, Options};
use serde_json::json;

async fn wait_health(operator: &Client, member: &str, want: &str) {
    let path = format!("/v1/members/{member}");
    eventually(
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let health = operator.get(&path).await.json()["health"].clone();
            if health == want {
                Ok(())
            } else {
                Err(format!("{member} health stayed {health}, expected {want}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_stays_in_the_jurisdiction_and_operations_survive_an_outage() {
    let mut members = [
        MemberSim::start("numergy-fr", "FR", 50, None).await,
        MemberSim::start("belgacom-be", "BE", 50, None).await,
        MemberSim::start("telekom-de", "DE", 50, None).await,
        MemberSim::start("ovh-fr", "FR", 50, None).await,
    ];
    let mut config = federation_config(&members.iter().take(3).collect::<Vec<_>>(), None);
    config.push_str(&format!(
        "health_interval_ms = 1000\n\n[[members]]\nid = \"ovh-fr\"\nname = \"OVH\"\njurisdictions = [\"FR\"]\ncertifications = [\"gaia-x-1\"]\nservices = [\"instance\", \"volume\", \"bucket\"]\nadapter = {{ kind = \"federation\", endpoint = \"{}\" }}\n",
        members[3].url
    ));
    let mut options = Options::demo();
    options.config = config;
    let broker = Broker::start(options).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let operator = broker.client(&broker.token_with(&["--role", "operator"]));

    // numergy-fr goes down: FR placements fail over to ovh-fr, never to another country.
    members[0].kill();
    wait_health(&operator, "numergy-fr", "down").await;
    let bucket = acme.create_bucket("fr", "FR").await;
    assert_eq!(bucket["member"], "ovh-fr");
    let evaluation = acme
        .post(
            "/v1/placement/evaluate",
            &json!({ "resource_type": "bucket", "jurisdiction": "FR" }),
        )
        .await
        .json();
    let numergy = evaluation["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["member"] == "numergy-fr")
        .unwrap()
        .clone();
    assert!(numergy["reasons"].to_string().contains("down"), "{numergy}");

    // Both FR members down: 503 with Retry-After, not a placement abroad.
    members[3].kill();
    wait_health(&operator, "ovh-fr", "down").await;
    let refused = acme
        .post(
            "/v1/buckets",
            &json!({ "name": "fr2", "jurisdiction": "FR" }),
        )
        .await;
    refused.assert_problem(503, "member.unavailable");
    assert!(refused.header("retry-after").is_some());
    // Other countries are not affected.
    acme.create_bucket("be", "BE").await;

    // An operation accepted just as its member dies finishes once it is back, created once.
    members[2].kill();
    let accepted = acme
        .post(
            "/v1/buckets",
            &json!({ "name": "de", "jurisdiction": "DE" }),
        )
        .await;
    if accepted.status == 202 {
        let op = accepted.json();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_ne!(
            acme.get(&format!("/v1/operations/{}", op["id"].as_str().unwrap()))
                .await
                .json()["status"],
            "succeeded"
        );
        members[2].restart().await;
        let done = acme.wait_operation(op["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let id = op["resource_id"].as_str().unwrap();
        assert_eq!(members[2].creations().get(id), Some(&1));
    } else {
        // The health probe noticed first: the refusal is the documented one.
        accepted.assert_problem(503, "member.unavailable");
        members[2].restart().await;
    }
    wait_health(&operator, "telekom-de", "up").await;
}

/// A member that refuses a creation: the operation and the resource end `failed` with the
/// member's reason, and the failed resource can still be deleted.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_creation_fails_cleanly_and_can_be_deleted() {
    // numergy-fr's endpoint is a member that serves BE only: it refuses FR resources (422).
    let members = [
        MemberSim::start("numergy-fr", "BE", 0, None).await,
        MemberSim::start("belgacom-be", "BE", 0, None).await,
        MemberSim::start("telekom-de", "DE", 0, None).await,
    ];
    let mut options = Options::demo();
    options.config = federation_config(&members.iter().collect::<Vec<_>>(), None);
    let broker = Broker::start(options).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let op = acme
        .post(
            "/v1/buckets",
            &json!({ "name": "refused", "jurisdiction": "FR" }),
        )
        .await
        .json();
    let done = acme.wait_operation(op["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "member.rejected", "{done}");
    assert!(
        done["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("jurisdiction"),
        "{done}"
    );
    let id = op["resource_id"].as_str().unwrap();
    assert_eq!(
        acme.get(&format!("/v1/buckets/{id}")).await.json()["status"],
        "failed"
    );
    let delete = acme.delete(&format!("/v1/buckets/{id}")).await.json();
    assert_eq!(
        acme.wait_operation(delete["id"].as_str().unwrap()).await["status"],
        "succeeded"
    );
    assert_eq!(
        acme.get(&format!("/v1/buckets/{id}")).await.json()["status"],
        "deleted"
    );
}
