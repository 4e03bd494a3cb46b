//! Attack cases from outside, over real sockets against the compiled broker: each class of
//! weakness an attack run found, tried with many variants, so that no fix regresses.
//! Idempotency keys that are not keys, racing creations, slow and unreadable requests,
//! strings meant to forge log lines, free text with control characters, policy changes
//! that would strand data, and the smaller leaks.
#![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::time::{Duration, Instant};

use alliance_e2e::{Answer, Broker, Client, MemberSim, Options, DEMO_CONFIG, FAST_OPERATIONS};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB516YI+BKb317xss/i9r/eox0zr1mkpnYJlPu7lkQmV alice@laptop";

/// The demo with short connection timeouts (the documented defaults are 10 s and 60 s).
fn short_timeouts() -> Options {
    let mut options = Options::demo();
    options.config = format!(
        "{}{FAST_OPERATIONS}",
        DEMO_CONFIG.replacen(
            "[server]\n",
            "[server]\nheader_read_timeout_ms = 3000\nidle_timeout_ms = 5000\n",
            1
        )
    );
    options
}

/// Sends `request` as raw bytes on a new connection and reads until the broker closes it
/// (or 15 s pass): the status, the head and the body.
async fn raw(broker: &Broker, request: &[u8]) -> (u16, String, Vec<u8>) {
    let address = broker.url.trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    // The broker may answer and close before reading all of an oversized request.
    let _ = tcp.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, _) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no HTTP answer to {:?}: {text:?}",
                String::from_utf8_lossy(&request[..request.len().min(80)])
            )
        });
    let body_at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |i| i + 4);
    (
        status,
        head.to_ascii_lowercase(),
        answer[body_at..].to_vec(),
    )
}

/// Asserts a raw answer is problem+json with `status` and `code`.
fn assert_raw_problem(answer: &(u16, String, Vec<u8>), status: u16, code: &str, case: &str) {
    let (got, head, body) = answer;
    assert_eq!(*got, status, "{case}: {head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{case}: {head}"
    );
    let problem: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {}", String::from_utf8_lossy(body)));
    assert_eq!(problem["code"], code, "{case}: {problem}");
    assert_eq!(problem["status"], status, "{case}");
}

/// A request with header values given as raw bytes (reqwest's `&str` headers cannot carry
/// Latin-1 or UTF-8 bytes).
async fn post_raw_key(base: &str, token: &str, path: &str, body: &Value, key: &[u8]) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header(
            "idempotency-key",
            reqwest::header::HeaderValue::from_bytes(key).unwrap(),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        bytes: response.bytes().await.unwrap().to_vec(),
    }
}

fn application(member: &str, endpoint: &str) -> Value {
    json!({
        "member_id": member, "name": "LuxCloud S.A.", "country": "LU", "jurisdictions": ["LU"],
        "certifications": ["gaia-x-1"], "evidence": [{ "certification": "gaia-x-1", "reference": "GX-2026-0042" }],
        "services": ["instance", "volume", "bucket"],
        "adapter": { "kind": "federation", "endpoint": endpoint },
        "prices": [{ "sku": "instance.small", "unit": "hour", "price": "0.012", "currency": "EUR" }],
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotency_keys_that_are_not_keys_are_refused_on_every_creating_post() {
    let broker = Broker::start(Options::demo()).await;
    let tenant = broker.token("tenant-admin", Some("acme"));
    let operator = broker.token("operator", None);
    let partner = broker.token_with(&["--role", "partner", "--member", "lux-cloud"]);
    let billing = broker.token("billing", None);
    let routes: Vec<(&str, &str, Value)> = vec![
        (
            &tenant,
            "/v1/buckets",
            json!({ "name": "keyed", "jurisdiction": "FR" }),
        ),
        (
            &tenant,
            "/v1/instances",
            json!({ "name": "keyed", "jurisdiction": "FR", "size": "small", "image": "debian-12" }),
        ),
        (
            &tenant,
            "/v1/volumes",
            json!({ "name": "keyed", "jurisdiction": "FR", "size_gb": 10 }),
        ),
        (
            &tenant,
            "/v1/ssh-keys",
            json!({ "name": "keyed", "public_key": ED25519 }),
        ),
        (
            &operator,
            "/v1/tenants",
            json!({ "id": "keyed", "name": "Keyed", "home_jurisdiction": "FR", "allowed_jurisdictions": ["FR"] }),
        ),
        (
            &partner,
            "/v1/partner-applications",
            application("lux-cloud", "http://127.0.0.1:9"),
        ),
        (
            &billing,
            "/v1/reconciliations",
            json!({ "member": "numergy-fr", "period": "2026-11" }),
        ),
    ];
    let mut long = vec![b'k'; 256];
    let bad_keys: Vec<&[u8]> = vec![
        "clé-42".as_bytes(),
        b"\xe9t\xe9-42",
        b"",
        &long,
        b"two words",
        b"tab\there",
        b"\xff\xfe",
    ];
    for (token, path, body) in &routes {
        for key in &bad_keys {
            post_raw_key(&broker.url, token, path, body, key)
                .await
                .assert_problem(400, "idempotency.invalid_key");
        }
    }
    long.truncate(255);
    // The longest valid key still works, and is replayed.
    let first = post_raw_key(
        &broker.url,
        &tenant,
        "/v1/buckets",
        &json!({ "name": "long-key", "jurisdiction": "FR" }),
        &long,
    )
    .await;
    first.assert_status(202);
    let again = post_raw_key(
        &broker.url,
        &tenant,
        "/v1/buckets",
        &json!({ "name": "long-key", "jurisdiction": "FR" }),
        &long,
    )
    .await;
    assert_eq!(again.bytes, first.bytes);

    // Twenty parallel retries with one non-ASCII key: twenty 400s, and no bucket.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let url = broker.url.clone();
        let token = tenant.clone();
        tasks.spawn(async move {
            let body = json!({ "name": "twice", "jurisdiction": "FR" });
            post_raw_key(&url, &token, "/v1/buckets", &body, "clé-42".as_bytes())
                .await
                .status
        });
    }
    let statuses: Vec<u16> = tasks.join_all().await;
    assert_eq!(statuses, vec![400; 20]);
    let acme = broker.client(&tenant);
    let buckets = acme.get("/v1/buckets?limit=500").await.json();
    assert!(
        !buckets["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "twice"),
        "{buckets}"
    );
    for (_, path, _) in &routes[..4] {
        let listed = acme.get(&format!("{path}?limit=500")).await.json();
        assert!(
            !listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["name"] == "keyed"),
            "{path}: {listed}"
        );
    }
}

/// Sends `n` copies of one creating request at once; the statuses.
async fn at_once(
    client: &Client,
    n: usize,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> Vec<Answer> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let path = path.to_owned();
        let body = body.clone();
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tasks.spawn(async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            client.post_with(&path, &body, &headers).await
        });
    }
    tasks.join_all().await
}

fn statuses(answers: &[Answer]) -> Vec<u16> {
    let mut s: Vec<u16> = answers.iter().map(|a| a.status).collect();
    s.sort_unstable();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_creations_end_in_one_winner_and_conflicts_never_a_5xx() {
    let broker = Broker::start(Options::demo()).await;
    let operator = broker.client(&broker.token("operator", None));
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let partner = broker.client(&broker.token_with(&["--role", "partner", "--member", "race-lu"]));
    let member = MemberSim::start("race-lu", "LU", 0, None).await;

    // Ten applications for one member id: one accepted, nine 409, and the winner approves.
    let applications = at_once(
        &partner,
        10,
        "/v1/partner-applications",
        &application("race-lu", &member.url),
        &[],
    )
    .await;
    let won: Vec<&Answer> = applications
        .iter()
        .filter(|a| a.status == 202 || a.status == 201)
        .collect();
    assert_eq!(won.len(), 1, "{:?}", statuses(&applications));
    for lost in applications.iter().filter(|a| a.status != won[0].status) {
        assert_eq!(lost.status, 409, "{}", lost.text());
    }
    let id = won[0].json()["id"].as_str().unwrap().to_owned();
    let settled = alliance_e2e::application_settled(&partner, &id, Duration::from_secs(60)).await;
    assert_eq!(settled["status"], "awaiting_approval", "{settled}");
    let approvals = at_once(
        &operator,
        5,
        &format!("/v1/partner-applications/{id}/approve"),
        &json!({}),
        &[],
    )
    .await;
    assert!(
        approvals.iter().all(|a| a.status < 500),
        "{:?}",
        statuses(&approvals)
    );
    assert_eq!(
        approvals.iter().filter(|a| a.status == 200).count(),
        1,
        "{:?}",
        statuses(&approvals)
    );
    operator.get("/v1/members/race-lu").await.assert_status(200);

    // Ten tenants with one id, ten keys with one name: one 201 each, the rest 409.
    let tenant = json!({ "id": "racer", "name": "Racer", "home_jurisdiction": "FR", "allowed_jurisdictions": ["FR"] });
    let tenants = at_once(&operator, 10, "/v1/tenants", &tenant, &[]).await;
    assert_eq!(statuses(&tenants), [vec![201], vec![409; 9]].concat());
    let keys = at_once(
        &acme,
        10,
        "/v1/ssh-keys",
        &json!({ "name": "racer", "public_key": ED25519 }),
        &[],
    )
    .await;
    assert_eq!(statuses(&keys), [vec![201], vec![409; 9]].concat());

    // Ten creations with one Idempotency-Key, on every creating POST: one thing made; the
    // others replay its answer byte for byte or are told the first is still running.
    let billing = broker.client(&broker.token("billing", None));
    let partner_two =
        broker.client(&broker.token_with(&["--role", "partner", "--member", "race-two"]));
    let creations: Vec<(&Client, &str, Value)> = vec![
        (
            &acme,
            "/v1/buckets",
            json!({ "name": "once", "jurisdiction": "FR" }),
        ),
        (
            &acme,
            "/v1/instances",
            json!({ "name": "once", "jurisdiction": "BE", "size": "small", "image": "debian-12" }),
        ),
        (
            &acme,
            "/v1/volumes",
            json!({ "name": "once", "jurisdiction": "DE", "size_gb": 10 }),
        ),
        (
            &operator,
            "/v1/tenants",
            json!({ "id": "keyed-racer", "name": "Keyed", "home_jurisdiction": "FR", "allowed_jurisdictions": ["FR"] }),
        ),
        (
            &partner_two,
            "/v1/partner-applications",
            application("race-two", &member.url),
        ),
        (
            &billing,
            "/v1/reconciliations",
            json!({ "member": "numergy-fr", "period": alliance_e2e::this_month() }),
        ),
    ];
    for (client, path, body) in creations {
        let key = format!("race{}", path.replace('/', "-"));
        let answers = at_once(client, 10, path, &body, &[("idempotency-key", &key)]).await;
        let first: Vec<&Answer> = answers.iter().filter(|a| a.status != 409).collect();
        assert!(!first.is_empty(), "{path}: {:?}", statuses(&answers));
        for answer in &answers {
            if answer.status == 409 {
                answer.assert_problem(409, "idempotency.in_flight");
            } else {
                assert!(answer.status < 300, "{path}: {}", answer.text());
                assert_eq!(answer.bytes, first[0].bytes, "{path}: a replay differs");
            }
        }
    }
    for path in ["/v1/buckets", "/v1/instances", "/v1/volumes"] {
        let listed = acme.get(&format!("{path}?limit=500")).await.json();
        let named = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["name"] == "once")
            .count();
        assert_eq!(named, 1, "{path}: {listed}");
    }

    // Ten uploads of one statement at once: each stored whole, never a 5xx.
    let period = alliance_e2e::this_month();
    let statement = partner_statement(&broker, &period).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let url = format!("{}/v1/members/numergy-fr/statements/{period}", broker.url);
        let token = broker.token("billing", None);
        let body = statement.clone();
        tasks.spawn(async move {
            reqwest::Client::new()
                .put(url)
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    assert_eq!(tasks.join_all().await, vec![204; 10]);
}

/// numergy-fr's own statement for `period`, as its member publishes it.
async fn partner_statement(broker: &Broker, period: &str) -> String {
    let billing = broker.client(&broker.token("billing", None));
    let answer = billing
        .get(&format!("/v1/members/numergy-fr/statements/{period}"))
        .await;
    answer.assert_status(200);
    answer.text()
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_cannot_hold_the_broker() {
    let broker = Broker::start(short_timeouts()).await;
    let address = broker.url.trim_start_matches("http://").to_owned();
    let started = Instant::now();
    // 200 slowloris connections, each sending one header line every half second.
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..200 {
        let address = address.clone();
        slow.spawn(async move {
            let mut tcp = TcpStream::connect(&address).await.unwrap();
            let opened = Instant::now();
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            let mut buf = [0u8; 512];
            loop {
                tokio::select! {
                    read = tcp.read(&mut buf) => {
                        // Closed (or answered and closed): the broker let go.
                        if matches!(read, Ok(0) | Err(_)) { return opened.elapsed(); }
                    }
                    () = tokio::time::sleep(Duration::from_millis(500)) => {
                        if tcp.write_all(format!("x-slow-{i}: still here\r\n").as_bytes()).await.is_err() {
                            return opened.elapsed();
                        }
                    }
                }
                if opened.elapsed() > Duration::from_secs(30) {
                    return opened.elapsed();
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Meanwhile, others are served at once: health and an authenticated read.
    let acme = broker.client(&broker.token("tenant-user", Some("acme")));
    let anonymous = broker.anonymous();
    for _ in 0..10 {
        let asked = Instant::now();
        anonymous.get("/healthz").await.assert_status(200);
        acme.get("/v1/instances").await.assert_status(200);
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "normal requests waited {:?} behind slow clients",
            asked.elapsed()
        );
    }
    let held: Vec<Duration> = slow.join_all().await;
    let longest = held.iter().max().unwrap();
    let shortest = held.iter().min().unwrap();
    assert!(
        *longest < Duration::from_secs(8),
        "a slow connection stayed open {longest:?} (header_read_timeout_ms = 3000)"
    );
    assert!(
        *shortest >= Duration::from_millis(2500),
        "a slow connection was closed after {shortest:?}, before its timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let opened = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), idle.read_to_end(&mut answer)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(
        opened.elapsed() < Duration::from_secs(8),
        "an idle connection stayed open {:?}",
        opened.elapsed()
    );

    // A body declared absurdly large is refused at once, not after the request timeout.
    let token = broker.token("tenant-admin", Some("acme"));
    let asked = Instant::now();
    let answer = raw(
        &broker,
        format!("POST /v1/buckets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{{\"a\":1}}").as_bytes(),
    )
    .await;
    assert_raw_problem(&answer, 413, "request.too_large", "absurd content-length");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

/// `POST /v1/buckets` with `body` sent with `encoding`, as raw bytes.
fn with_body(token: &str, encoding: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /v1/buckets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Encoding: {encoding}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_unreadable_request_gets_a_problem_document() {
    let broker = Broker::start(Options::demo()).await;
    let token = broker.token("tenant-admin", Some("acme"));
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    // Under hyper's buffer, so parsed whole: only the edge's own count refuses it.
    let headers_in_one_read = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: {a}\r\nX-B: {a}\r\n\r\n",
        a = "a".repeat(34_000)
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("header without a colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_vec(), 400, "request.malformed"),
        ("control byte in the method", b"GE\x01T /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, "request.malformed"),
        ("no version", b"GET /healthz\r\nHost: x\r\n\r\n".to_vec(), 400, "request.malformed"),
        ("bad version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), 400, "request.malformed"),
        ("space in the path", b"GET /v1/a b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, "request.malformed"),
        ("header too large", big_header.into_bytes(), 431, "request.headers_too_large"),
        ("headers over 64 KiB in one read", headers_in_one_read.into_bytes(), 431, "request.headers_too_large"),
        ("URI too long", long_uri.into_bytes(), 414, "request.uri_too_long"),
        ("path not UTF-8", format!("GET /v1/instances/%FF%FE HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").into_bytes(), 400, "request.malformed"),
        ("gzip body", [format!("POST /v1/buckets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\nConnection: close\r\n\r\n").into_bytes(), vec![0x1f, 0x8b, 0x08, 0x00]].concat(), 415, "validation.unsupported_media_type"),
        ("unknown encoding", with_body(&token, "x-mine", "{}"), 415, "validation.unsupported_media_type"),
        ("no token", b"GET /v1/instances HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), 401, "auth.invalid_token"),
        ("duplicate keys", with_body(&token, "identity", r#"{"name":"a","name":"b","jurisdiction":"FR"}"#), 400, "validation.invalid_json"),
    ];
    for (case, request, status, code) in cases {
        let answer = raw(&broker, &request).await;
        assert_raw_problem(&answer, status, code, case);
        if status == 401 {
            assert!(
                answer.1.contains("www-authenticate: bearer"),
                "{case}: {}",
                answer.1
            );
        }
    }
    // Nothing was created by any of them.
    let acme = broker.client(&token);
    assert_eq!(acme.get("/v1/buckets").await.json()["items"], json!([]));
    // A forged page token is refused, not taken for the first page.
    let operator = broker.client(&broker.token("operator", None));
    for token in ["bm9wZQ", "eyJsIjoiYnVja2V0IiwiYSI6IjEifQ", "!!!"] {
        operator
            .get_problem(
                &format!("/v1/audit?page_token={token}"),
                400,
                "validation.invalid_query",
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_strings_cannot_forge_log_lines_or_audit_events() {
    let broker = Broker::start(Options::demo()).await;
    let token = broker.token("tenant-admin", Some("acme"));
    let acme = broker.client(&token);
    let forged = "forged tenant.id=\"santeplus\"}: operation finished";
    let long = "r".repeat(5000);
    for request_id in [
        forged,
        long.as_str(),
        "a;b",
        "\"quoted\"",
        "caf\u{e9}-latin",
    ] {
        let answer = reqwest::Client::new()
            .get(format!("{}/healthz", broker.url))
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(request_id.as_bytes()).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let echoed = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(echoed, request_id);
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }
    // A safe id is kept, end to end into the audit log.
    let kept = acme
        .post_with(
            "/v1/buckets",
            &json!({ "name": "traced", "jurisdiction": "FR" }),
            &[("x-request-id", "trace-42.a_b:c")],
        )
        .await;
    kept.assert_status(202);
    assert_eq!(
        kept.header("x-request-id").as_deref(),
        Some("trace-42.a_b:c")
    );
    let sneaky = acme
        .post_with(
            "/v1/buckets",
            &json!({ "name": "sneaky", "jurisdiction": "FR" }),
            &[("x-request-id", forged)],
        )
        .await;
    sneaky.assert_status(202);
    let sneaky_id = sneaky.json()["resource_id"].as_str().unwrap().to_owned();
    let operator = broker.client(&broker.token("operator", None));
    let events = operator
        .get(&format!("/v1/audit?resource={sneaky_id}"))
        .await
        .json();
    for event in events["items"].as_array().unwrap() {
        let id = event["request_id"].as_str().unwrap_or("");
        assert!(!id.contains("forged"), "{event}");
    }
    // Quotes and braces in a path are logged escaped, inside the path's own quotes.
    let (status, _, _) = raw(
        &broker,
        b"GET /v1/\"}:forged=1{\" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status == 404 || status == 400, "{status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = broker.log_text();
    for line in log.lines() {
        assert!(
            !line.contains("tenant.id=\"santeplus\"}"),
            "forged line: {line}"
        );
        assert!(!line.contains("/v1/\"}:forged"), "unescaped path: {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_text_is_checked_in_every_field_a_person_can_type() {
    let broker = Broker::start(Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let operator = broker.client(&broker.token("operator", None));
    let partner = broker.client(&broker.token_with(&["--role", "partner", "--member", "text-lu"]));
    let huge = "x".repeat(500_000);
    let bad: Vec<(&str, String)> = vec![
        ("NUL", "a\u{0}b".to_owned()),
        ("ANSI escape", "red \u{1b}[31mALERT\u{1b}[0m".to_owned()),
        ("newline", "line\nforged".to_owned()),
        ("zero-width", "pay\u{200b}roll".to_owned()),
        ("bidi override", "invoice\u{202e}fdp.exe".to_owned()),
        ("byte-order mark", "\u{feff}name".to_owned()),
        ("only spaces", "    ".to_owned()),
        ("empty", String::new()),
        ("500 KB", huge.clone()),
    ];
    for (case, text) in &bad {
        let answers = [
            ("bucket name", acme.post("/v1/buckets", &json!({ "name": text, "jurisdiction": "FR" })).await),
            ("ssh key name", acme.post("/v1/ssh-keys", &json!({ "name": text, "public_key": ED25519 })).await),
            ("tenant name", operator.post("/v1/tenants", &json!({ "id": "texty", "name": text, "home_jurisdiction": "FR", "allowed_jurisdictions": ["FR"] })).await),
            ("tenant rename", operator.patch("/v1/tenants/acme", &json!({ "name": text })).await),
            ("application name", partner.post("/v1/partner-applications", &{
                let mut a = application("text-lu", "http://127.0.0.1:9");
                a["name"] = json!(text);
                a
            }).await),
            ("evidence reference", partner.post("/v1/partner-applications", &{
                let mut a = application("text-lu", "http://127.0.0.1:9");
                a["evidence"][0]["reference"] = json!(text);
                a
            }).await),
        ];
        for (field, answer) in answers {
            assert!(
                answer.status == 422 || answer.status == 400,
                "{field} with {case}: {} {}",
                answer.status,
                &answer.text()[..answer.text().len().min(300)]
            );
            assert_eq!(
                answer.header("content-type").as_deref(),
                Some("application/problem+json"),
                "{field} with {case}"
            );
        }
    }
    // Nothing of it was kept or shown.
    assert_eq!(acme.get("/v1/buckets").await.json()["items"], json!([]));
    assert_eq!(acme.get("/v1/ssh-keys").await.json()["items"], json!([]));
    assert_eq!(
        operator.get("/v1/tenants/acme").await.json()["name"],
        "ACME Corporation"
    );
    operator
        .get_problem("/v1/tenants/texty", 404, "resource.not_found")
        .await;
    let members = acme.get("/v1/members").await.text();
    assert!(
        !members.contains("text-lu") && !members.contains('\u{202e}'),
        "{members}"
    );
    // Names in other scripts are fine.
    acme.post(
        "/v1/buckets",
        &json!({ "name": "données-été 東京 Ωmega", "jurisdiction": "FR" }),
    )
    .await
    .assert_status(202);
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_changes_and_lost_certifications_never_strand_data_unflagged() {
    let broker = Broker::start(Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let operator = broker.client(&broker.token("operator", None));
    let volume = acme
        .create_and_wait(
            "/v1/volumes",
            &json!({ "name": "be-data", "jurisdiction": "BE", "size_gb": 10 }),
        )
        .await;
    let bucket = acme.create_bucket("de-data", "DE").await;
    let fr = acme.create_bucket("fr-data", "FR").await;
    for narrowed in [json!(["FR"]), json!(["FR", "BE"]), json!(["FR", "DE"])] {
        let problem = operator
            .patch(
                "/v1/tenants/acme",
                &json!({ "allowed_jurisdictions": narrowed }),
            )
            .await
            .assert_problem(409, "tenant.resources_outside_policy");
        let listed = problem.to_string();
        let expect_volume = !narrowed.as_array().unwrap().contains(&json!("BE"));
        let expect_bucket = !narrowed.as_array().unwrap().contains(&json!("DE"));
        assert_eq!(
            listed.contains(volume["id"].as_str().unwrap()),
            expect_volume,
            "{problem}"
        );
        assert_eq!(
            listed.contains(bucket["id"].as_str().unwrap()),
            expect_bucket,
            "{problem}"
        );
        assert!(!listed.contains(fr["id"].as_str().unwrap()), "{problem}");
    }
    let tenant = operator.get("/v1/tenants/acme").await.json();
    assert_eq!(
        tenant["allowed_jurisdictions"],
        json!(["BE", "CH", "DE", "FR"])
    );
    // Widening is fine.
    operator
        .patch(
            "/v1/tenants/acme",
            &json!({ "allowed_jurisdictions": ["FR", "BE", "DE", "LU"] }),
        )
        .await
        .assert_status(200);

    // santeplus keeps health data at numergy-fr, chosen for its HDS certification.
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    let records = sante.create_bucket("records", "FR").await;
    let residency = sante.get("/v1/tenants/santeplus/residency").await.json();
    assert_eq!(residency["outside_policy"], 0, "{residency}");
    assert_eq!(residency["resources"][0]["compliance"], "ok");

    // The member loses HDS (the operator edits its entry and restarts): the data stays,
    // and is flagged with the reason wherever it is shown.
    let mut options = broker.options.clone();
    options.data_dir = Some(broker.data_dir.clone());
    options.config = options.config.replacen(
        "certifications = [\"secnumcloud\", \"hds\", \"gaia-x-2\"]",
        "certifications = [\"secnumcloud\", \"gaia-x-2\"]",
        1,
    );
    assert_ne!(options.config, broker.options.config);
    let mut broker = broker;
    broker.terminate();
    let broker = Broker::start(options).await;
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    let residency = sante.get("/v1/tenants/santeplus/residency").await.json();
    assert_eq!(residency["outside_policy"], 1, "{residency}");
    let flagged = &residency["resources"][0];
    assert_eq!(flagged["id"], records["id"]);
    assert_eq!(flagged["compliance"], "outside_policy");
    assert!(
        flagged["compliance_reasons"].to_string().contains("hds"),
        "{flagged}"
    );
    let view = sante
        .get(&format!("/v1/buckets/{}", records["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(view["compliance"], "outside_policy", "{view}");
    // The change of facts is in the audit log once, however often the broker starts.
    let operator = broker.client(&broker.token("operator", None));
    let audited = |events: Value| -> Vec<Value> {
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "resource.compliance")
            .cloned()
            .collect()
    };
    let path = format!("/v1/audit?resource={}", records["id"].as_str().unwrap());
    let events = audited(operator.get(&path).await.json());
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "outside_policy");
    assert!(events[0]["details"]["reasons"].to_string().contains("hds"));
    let mut broker = broker;
    broker.terminate();
    let broker = broker.restart().await;
    let operator = broker.client(&broker.token("operator", None));
    assert_eq!(audited(operator.get(&path).await.json()).len(), 1);
    // acme's data, at members that kept their certifications, is still fine.
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let theirs = acme.get("/v1/tenants/acme/residency").await.json();
    assert_eq!(theirs["outside_policy"], 0, "{theirs}");
    // And no new health data goes there.
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    sante
        .post_problem(
            "/v1/buckets",
            &json!({ "name": "more", "jurisdiction": "FR" }),
            422,
            "placement.no_eligible_member",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_metrics_name_only_approved_members() {
    let broker = Broker::start(Options::demo()).await;
    let member = MemberSim::start("peek-lu", "LU", 0, None).await;
    let partner = broker.client(&broker.token_with(&["--role", "partner", "--member", "peek-lu"]));
    let submitted = partner
        .post(
            "/v1/partner-applications",
            &application("peek-lu", &member.url),
        )
        .await;
    assert!(
        submitted.status == 202 || submitted.status == 201,
        "{}",
        submitted.text()
    );
    let id = submitted.json()["id"].as_str().unwrap().to_owned();
    let settled = alliance_e2e::application_settled(&partner, &id, Duration::from_secs(60)).await;
    assert_eq!(settled["status"], "awaiting_approval", "{settled}");
    let metrics = broker.anonymous().get("/metrics").await;
    metrics.assert_status(200);
    let text = metrics.text();
    assert!(
        text.contains("alliance_member_http_requests_total"),
        "the conformance run made no member request?\n{text}"
    );
    assert!(
        !text.contains("peek-lu"),
        "an applicant is named in anonymous metrics:\n{text}"
    );
}
