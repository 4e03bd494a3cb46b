//! The web console in a real browser: `tests/browser/console_check.py` drives Debian's
//! Chromium with Playwright (`scripts/peers install-browser`, named by
//! `ALLIANCE_TEST_BROWSER_PYTHON` and `ALLIANCE_TEST_AXE`; without them the test fails
//! loudly) against the compiled broker after the README's first session. It signs in,
//! compares the map with the residency API, creates a bucket through the form and watches
//! its operation succeed without a reload, keeps tenants apart, refuses a form without its
//! CSRF token, suspends a member as an operator, runs axe-core, and takes a screenshot of each view
//! (into `docs/console`, which `docs/console.md` shows, with `ALLIANCE_UPDATE_SCREENSHOTS=1`).
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
    let reports = acme.create_bucket("reports", "FR").await;
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
    // A partner applies (a member-sim in LU), and waits for an operator.
    let member = alliance_e2e::MemberSim::start("lux-cloud", "LU", 0, None).await;
    let partner =
        broker.client(&broker.token_with(&["--role", "partner", "--member", "lux-cloud"]));
    let submitted = partner
        .post(
            "/v1/partner-applications",
            &json!({
                "member_id": "lux-cloud", "name": "LuxCloud S.A.", "country": "LU", "jurisdictions": ["LU"],
                "certifications": ["gaia-x-1"], "evidence": [{ "certification": "gaia-x-1", "reference": "GX-2026-0042" }],
                "services": ["instance", "volume", "bucket"],
                "adapter": { "kind": "federation", "endpoint": member.url },
            }),
        )
        .await;
    submitted.assert_status(202);
    let application = submitted.json()["id"].as_str().unwrap().to_owned();
    let settled = alliance_e2e::application_settled(
        &partner,
        &application,
        std::time::Duration::from_secs(60),
    )
    .await;
    assert_eq!(settled["status"], "awaiting_approval", "{settled}");

    // numergy-fr's own statement, and the same with row 1's cost unreadable.
    let period = alliance_e2e::this_month();
    let billing = broker.client(&broker.token_with(&["--role", "billing"]));
    let statement = billing
        .get(&format!("/v1/members/numergy-fr/statements/{period}"))
        .await
        .text();
    let dir = scratch("console");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("numergy-fr.csv");
    std::fs::write(&good, &statement).unwrap();
    let mut lines: Vec<String> = statement.lines().map(str::to_owned).collect();
    let cost = lines[0].split(',').position(|c| c == "BilledCost").unwrap();
    assert!(lines.len() >= 2, "{statement}");
    let mut fields: Vec<&str> = lines[1].split(',').collect();
    fields[cost] = "twelve";
    lines[1] = fields.join(",");
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let expected = json!({
        "period": period,
        "application": application,
        "good_statement": good,
        "bad_statement": bad,
        "acme": acme_counts,
        "santeplus": sante_counts,
        "acme_resource": web["id"],
        "acme_bucket": reports["id"],
        "acme_allowed": allowed,
        "axe": axe,
    });
    let expected_file = dir.join("expected.json");
    std::fs::write(&expected_file, expected.to_string()).unwrap();
    // The screenshots `docs/console.md` shows are rewritten only on request, so that a
    // test run leaves a clean checkout clean; otherwise they go to the test's directory.
    let shots = if std::env::var_os("ALLIANCE_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console")
    } else {
        dir.join("screenshots")
    };
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
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A development session made while the issuer is on…
    let mut first = Broker::start(Options::demo()).await;
    let dev = |b: &Broker, site: &'static str| {
        client
            .post(format!("{}/console/login/dev", b.url))
            .header("sec-fetch-site", site)
            .form(&[("tenant", ""), ("role", "operator")])
            .send()
    };
    let cross_site = dev(&first, "cross-site").await.unwrap();
    assert_eq!(
        cross_site.status(),
        403,
        "another site's page cannot sign a visitor in"
    );
    let signed = dev(&first, "same-origin").await.unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = set_cookies(&signed)
        .into_iter()
        .find(|c| c.starts_with("alliance_session="))
        .unwrap();
    let members = client
        .get(format!("{}/console/members", first.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(members.status(), 200);
    first.terminate();
    // …opens nothing once it is off, on the same data dir and key.
    let mut options = first.options.clone();
    options.data_dir = Some(first.data_dir.clone());
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
    let stale = client
        .get(format!("{}/console/members", broker.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        303,
        "a development session outlived its issuer"
    );
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

/// The `Set-Cookie` values of an answer, as `name=value` pairs.
fn set_cookies(answer: &reqwest::Response) -> Vec<String> {
    answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_development_issuer_sign_in_goes_through_oidc_with_pkce() {
    let oidc = alliance_e2e::OidcPeer::start();
    let mut options = Options::demo();
    options.config = oidc
        .demo_config("console_client_id = \"alliance\"\n")
        .replacen(
            "[auth.dev_issuer]\nenabled = true",
            "[auth.dev_issuer]\nenabled = false",
            1,
        );
    let broker = Broker::start(options).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .get(format!("{}/console/login", broker.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        login.contains("/console/login/oidc/0") && !login.contains("/console/login/dev"),
        "{login}"
    );

    // Off to the issuer with a PKCE challenge, state and nonce.
    let start = client
        .get(format!(
            "{}/console/login/oidc/0?login_hint=tenant-admin@acme",
            broker.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let flow_cookie = set_cookies(&start)
        .into_iter()
        .find(|c| c.starts_with("alliance_oidc="))
        .unwrap();
    let authorize = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert!(authorize.as_str().starts_with(&oidc.issuer), "{authorize}");
    let query: BTreeMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["code_challenge"].len(), 43);
    assert_eq!(query["response_type"], "code");
    assert!(query["state"].len() >= 32 && query["nonce"].len() >= 32);

    // The issuer (which approves at once) sends the browser back with a code.
    let back = client.get(authorize.as_str()).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{}/console/login/oidc/callback?", broker.url)),
        "{callback}"
    );

    // Without the flow's cookie, or with another state, the code makes no session.
    let stray = client.get(&callback).send().await.unwrap();
    assert_eq!(stray.status(), 403);
    assert!(set_cookies(&stray)
        .iter()
        .all(|c| !c.starts_with("alliance_session=")));
    let forged_state = callback.replace(&format!("state={}", query["state"]), "state=forged");
    let forged = client
        .get(&forged_state)
        .header("cookie", &flow_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // With it: a session for acme's tenant-admin, whose console shows acme's map.
    let done = client
        .get(&callback)
        .header("cookie", &flow_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303, "{:?}", done.text().await);
    let session = set_cookies(&done)
        .into_iter()
        .find(|c| c.starts_with("alliance_session="))
        .unwrap();
    let home = client
        .get(format!("{}/console", broker.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let page = home.text().await.unwrap();
    assert!(
        page.contains("data-jurisdiction=\"FR\"") && page.contains("ACME Corporation"),
        "{page}"
    );
    assert!(
        page.contains("oidc-tenant-admin@acme"),
        "the subject is the issuer's"
    );
    // The same code again is refused by the issuer: no second session.
    let again = client
        .get(&callback)
        .header("cookie", &flow_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 403);
}
