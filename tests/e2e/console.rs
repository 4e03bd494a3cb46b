//! The web console in a real browser: `tests/browser/console_check.py` drives Debian's
//! Chromium with Playwright (`scripts/peers install-browser`, named by
//! `ALLIANCE_TEST_BROWSER_PYTHON` and `ALLIANCE_TEST_AXE`; without them the test fails
//! loudly) against the compiled broker after the README's first session. It signs in,
//! compares the map with the residency API, creates a bucket through the form and watches
//! its operation succeed without a reload, keeps tenants apart, refuses a form without its
//! CSRF token, suspends a member as an operator, runs axe-core, and writes the screenshots
//! that `docs/console.md` shows.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use alliance_e2e::{scratch, Broker, Options, DEMO_CONFIG, FAST_OPERATIONS};
use serde_json::{json, Value};

fn peer(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test (scripts/peers install-browser installs Chromium, Playwright and axe-core)")
    })
}

/// Resources per jurisdiction, as `GET /v1/tenants/{id}/residency` counts them.
fn counts(residency: &Value) -> BTreeMap<String, u64> {
    residency["by_jurisdiction"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(j, r)| {
            let n = ["instance", "volume", "bucket"]
                .iter()
                .map(|k| r[*k].as_u64().unwrap())
                .sum();
            (j.clone(), n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_real_browser() {
    let python = peer("ALLIANCE_TEST_BROWSER_PYTHON");
    let axe = peer("ALLIANCE_TEST_AXE");
    let broker = Broker::start(Options::demo()).await;
    // The README's first session, and santeplus's own data.
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let web = acme
        .create_and_wait(
            "/v1/instances",
            &json!({ "name": "web", "jurisdiction": "BE", "size": "small", "image": "debian-12" }),
        )
        .await;
    acme.create_bucket("reports", "FR").await;
    acme.create_and_wait(
        "/v1/volumes",
        &json!({ "name": "data", "jurisdiction": "BE", "size_gb": 10 }),
    )
    .await;
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    sante.create_bucket("records", "FR").await;

    let acme_counts = counts(&acme.get("/v1/tenants/acme/residency").await.json());
    let mut sante_counts = counts(&sante.get("/v1/tenants/santeplus/residency").await.json());
    sante_counts.entry("BE".into()).or_insert(0);
    let operator = broker.client(&broker.token("operator", None));
    let allowed = operator.get("/v1/tenants/acme").await.json()["allowed_jurisdictions"].clone();
    let expected = json!({
        "acme": acme_counts,
        "santeplus": sante_counts,
        "acme_resource": web["id"],
        "acme_allowed": allowed,
        "axe": axe,
    });
    let dir = scratch("console");
    std::fs::create_dir_all(&dir).unwrap();
    let expected_file = dir.join("expected.json");
    std::fs::write(&expected_file, expected.to_string()).unwrap();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console");
    std::fs::create_dir_all(&shots).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/console_check.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&broker.url)
        .arg(&expected_file)
        .arg(&shots)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser checks failed:\n{report}");
    assert!(report.contains("0 failures"), "{report}");
    // The API agrees with what the browser did: the bucket made through the form exists.
    let buckets = acme.get("/v1/buckets").await.json();
    assert!(
        buckets["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "from-the-console" && b["jurisdiction"] == "BE"),
        "{buckets}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_development_issuer_there_is_no_development_sign_in() {
    let mut options = Options::demo();
    options.config = format!(
        "{}{FAST_OPERATIONS}",
        DEMO_CONFIG.replacen(
            "[auth.dev_issuer]\nenabled = true",
            "[auth.dev_issuer]\nenabled = false",
            1
        )
    );
    assert_ne!(options.config, format!("{DEMO_CONFIG}{FAST_OPERATIONS}"));
    let broker = Broker::start(options).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client
        .get(format!("{}/console/login/dev", broker.url))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 403);
    let posted = client
        .post(format!("{}/console/login/dev", broker.url))
        .form(&[("tenant", "acme"), ("role", "operator")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 403);
    assert!(posted.headers().get("set-cookie").is_none());
    let login = client
        .get(format!("{}/console/login", broker.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!login.contains("/console/login/dev"), "{login}");
    // A forged session cookie opens nothing.
    let forged = client
        .get(format!("{}/console", broker.url))
        .header("cookie", "alliance_session=eyJzdWIiOiJ4In0.AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303);
}
