//! The JWT attack suite, against a real JWKS served over HTTP by the test with keys it mints
//! itself: every forged or malformed token is 401 `auth.invalid_token`; a role without the
//! right is 403; random key ids do not make the broker hammer the identity provider.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alliance_e2e::{Answer, Broker, Client, Options, DEMO_CONFIG, FAST_OPERATIONS};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

struct Key {
    encoding: EncodingKey,
    jwk: Value,
    public: Vec<u8>,
}

fn key(kid: &str) -> Key {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &SystemRandom::new(),
    )
    .unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    Key {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk,
        public: point,
    }
}

struct Idp {
    url: String,
    jwks_hits: Arc<AtomicUsize>,
    attacker_hits: Arc<AtomicUsize>,
}

async fn serve_jwks(good: Value, attacker: Value) -> Idp {
    let jwks_hits = Arc::new(AtomicUsize::new(0));
    let attacker_hits = Arc::new(AtomicUsize::new(0));
    let (h1, h2) = (jwks_hits.clone(), attacker_hits.clone());
    let app = axum::Router::new()
        .route(
            "/jwks.json",
            axum::routing::get(move || {
                h1.fetch_add(1, Ordering::SeqCst);
                let body = json!({ "keys": [good.clone()] });
                async move { axum::Json(body) }
            }),
        )
        .route(
            "/attacker.json",
            axum::routing::get(move || {
                h2.fetch_add(1, Ordering::SeqCst);
                let body = json!({ "keys": [attacker.clone()] });
                async move { axum::Json(body) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Idp {
        url,
        jwks_hits,
        attacker_hits,
    }
}

#[expect(
    clippy::disallowed_methods,
    reason = "tokens for the broker under test carry the machine's wall-clock time"
)]
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(iss: &str) -> Value {
    let t = now();
    json!({ "iss": iss, "sub": "alice", "aud": "alliance", "iat": t, "nbf": t, "exp": t + 600, "roles": ["tenant-user"], "tenant": "acme" })
}

fn sign(key: &Key, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// `GET /v1/instances` with `authorization` as the whole `Authorization` header.
async fn instances_with(client: &Client, authorization: &str) -> Answer {
    client
        .send(
            reqwest::Method::GET,
            "/v1/instances",
            None,
            &[("authorization", authorization)],
        )
        .await
}

async fn assert_401(client: &Client, token: &str, case: &str) {
    let answer = instances_with(client, &format!("Bearer {token}")).await;
    assert_eq!(
        answer.status,
        401,
        "case {case}: {}",
        String::from_utf8_lossy(&answer.bytes)
    );
    answer.assert_problem(401, "auth.invalid_token");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_malformed_tokens_are_refused() {
    let good = key("k1");
    let attacker = key("attacker");
    let idp = serve_jwks(good.jwk.clone(), attacker.jwk.clone()).await;
    let iss = idp.url.clone();
    let mut options = Options::demo();
    // [[auth.issuers]] belongs to [auth]: insert it before the next top-level table.
    options.config = format!(
        "{}{FAST_OPERATIONS}",
        DEMO_CONFIG.replacen(
            "[security]",
            &format!("[[auth.issuers]]\nissuer = \"{iss}\"\njwks_url = \"{iss}/jwks.json\"\nalgorithms = [\"ES256\"]\n\n[security]"),
            1,
        )
    );
    let broker = Broker::start(options).await;
    let anon = broker.anonymous();

    // A valid token from the configured issuer works.
    let valid = sign(&good, "k1", &claims(&iss));
    instances_with(&anon, &format!("Bearer {valid}"))
        .await
        .assert_status(200);

    let mut expired = claims(&iss);
    expired["exp"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 7200);
    assert_401(&anon, &sign(&good, "k1", &expired), "expired").await;

    let mut wrong_aud = claims(&iss);
    wrong_aud["aud"] = json!("someone-else");
    assert_401(&anon, &sign(&good, "k1", &wrong_aud), "wrong aud").await;

    assert_401(
        &anon,
        &sign(&good, "k1", &claims("http://evil.example")),
        "untrusted iss",
    )
    .await;

    let mut no_exp = claims(&iss);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_401(&anon, &sign(&good, "k1", &no_exp), "no exp").await;

    let mut no_nbf = claims(&iss);
    no_nbf["nbf"] = json!(now() + 3600);
    assert_401(&anon, &sign(&good, "k1", &no_nbf), "nbf in the future").await;

    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        b64(&claims(&iss))
    );
    assert_401(&anon, &none, "alg none").await;

    // HS256 signed with the issuer's public key as the secret (algorithm confusion).
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused =
        jsonwebtoken::encode(&hs, &claims(&iss), &EncodingKey::from_secret(&good.public)).unwrap();
    assert_401(&anon, &confused, "HS256 with the public key").await;
    let confused_jwk = jsonwebtoken::encode(
        &hs,
        &claims(&iss),
        &EncodingKey::from_secret(good.jwk.to_string().as_bytes()),
    )
    .unwrap();
    assert_401(&anon, &confused_jwk, "HS256 with the JWK").await;

    assert_401(
        &anon,
        &sign(&attacker, "k1", &claims(&iss)),
        "foreign key, trusted kid",
    )
    .await;

    // A subject that names nobody.
    for sub in ["", "   ", "\u{0}"] {
        let mut nobody = claims(&iss);
        nobody["sub"] = json!(sub);
        assert_401(&anon, &sign(&good, "k1", &nobody), "blank sub").await;
    }

    // Validly signed, but listing critical header extensions the broker does not know
    // (RFC 7515 §4.1.11: must be refused).
    let by_hand = |header: Value| {
        let message = format!("{}.{}", b64(&header), b64(&claims(&iss)));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &good.encoding, Algorithm::ES256)
                .unwrap();
        format!("{message}.{signature}")
    };
    instances_with(
        &anon,
        &format!(
            "Bearer {}",
            by_hand(json!({"alg": "ES256", "typ": "JWT", "kid": "k1", "x-alliance": "yes"}))
        ),
    )
    .await
    .assert_status(200);
    for crit in [json!(["x-alliance"]), json!(["exp"]), json!([])] {
        let token = by_hand(
            json!({"alg": "ES256", "typ": "JWT", "kid": "k1", "crit": crit, "x-alliance": "yes"}),
        );
        assert_401(&anon, &token, "crit").await;
    }

    // Tampered payload: an operator role pasted onto a valid signature.
    let parts: Vec<&str> = valid.split('.').collect();
    let mut elevated = claims(&iss);
    elevated["roles"] = json!(["operator"]);
    assert_401(
        &anon,
        &format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]),
        "tampered payload",
    )
    .await;

    // jku / x5u / embedded jwk pointing at the attacker's key are never followed.
    let mut jku = Header::new(Algorithm::ES256);
    jku.kid = Some("attacker".into());
    jku.jku = Some(format!("{iss}/attacker.json"));
    jku.x5u = Some(format!("{iss}/attacker.json"));
    assert_401(
        &anon,
        &jsonwebtoken::encode(&jku, &claims(&iss), &attacker.encoding).unwrap(),
        "jku",
    )
    .await;
    let mut embedded = Header::new(Algorithm::ES256);
    embedded.kid = Some("attacker".into());
    embedded.jwk = Some(serde_json::from_value(attacker.jwk.clone()).unwrap());
    assert_401(
        &anon,
        &jsonwebtoken::encode(&embedded, &claims(&iss), &attacker.encoding).unwrap(),
        "embedded jwk",
    )
    .await;
    assert_eq!(
        idp.attacker_hits.load(Ordering::SeqCst),
        0,
        "the broker fetched a key URL from a token"
    );

    // kid injection and random kids: refused, and the JWKS is refreshed at most once.
    let before = idp.jwks_hits.load(Ordering::SeqCst);
    for i in 0..30 {
        let kid = if i == 0 {
            "../../../../etc/passwd".to_owned()
        } else {
            format!("random-{i}")
        };
        assert_401(&anon, &sign(&good, &kid, &claims(&iss)), "unknown kid").await;
    }
    let refreshes = idp.jwks_hits.load(Ordering::SeqCst) - before;
    assert!(
        refreshes <= 1,
        "30 unknown kids caused {refreshes} JWKS fetches"
    );

    for garbage in [
        "",
        "Bearer",
        "Basic YWxpY2U6cHc=",
        "Bearer a.b",
        "Bearer ...",
        "Bearer é.é.é",
    ] {
        instances_with(&anon, garbage)
            .await
            .assert_problem(401, "auth.invalid_token");
    }

    // The development issuer's tokens are still accepted beside the configured issuer.
    let dev = broker.client(&broker.token("tenant-user", Some("acme")));
    assert_eq!(dev.get("/v1/instances").await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_are_decided_at_one_point() {
    let broker = Broker::start(Options::demo()).await;
    let user = broker.client(&broker.token("tenant-user", Some("acme")));
    let admin = broker.client(&broker.token("tenant-admin", Some("acme")));
    let operator = broker.client(&broker.token("operator", None));
    let billing = broker.client(&broker.token("billing", None));
    let tenant = json!({ "id": "globex", "name": "Globex", "home_jurisdiction": "DE", "allowed_jurisdictions": ["DE", "BE"] });
    user.post_problem("/v1/tenants", &tenant, 403, "auth.forbidden")
        .await;
    admin
        .post_problem("/v1/tenants", &tenant, 403, "auth.forbidden")
        .await;
    billing
        .post_problem("/v1/tenants", &tenant, 403, "auth.forbidden")
        .await;
    let created = operator.post("/v1/tenants", &tenant).await;
    created.assert_status(201);
    assert_eq!(created.json()["default_data_class"], "standard");
    let trail = operator.get("/v1/audit?resource=globex").await.json();
    let event = &trail["items"][0];
    assert_eq!(event["action"], "tenant.create");
    assert!(
        event["request_id"].as_str().is_some_and(|r| !r.is_empty()),
        "{event}"
    );
    operator
        .post_problem("/v1/tenants", &tenant, 409, "resource.conflict")
        .await;
    let bad = json!({ "id": "x", "name": "X", "home_jurisdiction": "FR", "allowed_jurisdictions": ["DE"] });
    operator
        .post_problem("/v1/tenants", &bad, 422, "validation.invalid_field")
        .await;
    let patched = operator
        .patch(
            "/v1/tenants/globex",
            &json!({ "allowed_jurisdictions": ["DE", "BE", "FR"] }),
        )
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(
        patched.json()["allowed_jurisdictions"],
        json!(["BE", "DE", "FR"])
    );

    // The new tenant provisions at once, in its own jurisdictions only.
    let globex = broker.client(&broker.token("tenant-admin", Some("globex")));
    let bucket = globex
        .create_and_wait("/v1/buckets", &json!({ "name": "g" }))
        .await;
    assert_eq!(bucket["member"], "telekom-de");

    // Operators and billing are not tenants: tenant routes are 403 for them.
    operator
        .get_problem("/v1/instances", 403, "auth.forbidden")
        .await;
    billing
        .get_problem("/v1/instances", 403, "auth.forbidden")
        .await;
    billing
        .get_problem("/v1/audit", 403, "auth.forbidden")
        .await;
    user.get_problem("/v1/audit", 403, "auth.forbidden").await;
    assert_eq!(operator.get("/v1/audit").await.status, 200);
    for client in [&user, &admin, &operator, &billing] {
        assert_eq!(client.get("/v1/members").await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_tenant_route_hides_other_tenants() {
    let broker = Broker::start(Options::demo()).await;
    let acme = broker.client(&broker.token("tenant-admin", Some("acme")));
    let sante = broker.client(&broker.token("tenant-admin", Some("santeplus")));
    let mut owned = Vec::new();
    for (collection, body) in [
        (
            "/v1/instances",
            json!({ "name": "i", "size": "small", "image": "debian-12" }),
        ),
        ("/v1/volumes", json!({ "name": "v", "size_gb": 5 })),
        ("/v1/buckets", json!({ "name": "b" })),
    ] {
        let resource = acme.create_and_wait(collection, &body).await;
        owned.push((collection, resource["id"].as_str().unwrap().to_owned()));
    }
    for (collection, id) in &owned {
        sante
            .get_problem(&format!("{collection}/{id}"), 404, "resource.not_found")
            .await;
        sante
            .delete_problem(&format!("{collection}/{id}"), 404, "resource.not_found")
            .await;
        assert_eq!(sante.get(collection).await.json()["items"], json!([]));
    }
    let op = acme
        .delete(&format!("/v1/buckets/{}", owned[2].1))
        .await
        .json();
    sante
        .get_problem(
            &format!("/v1/operations/{}", op["id"].as_str().unwrap()),
            404,
            "resource.not_found",
        )
        .await;
    sante
        .get_problem("/v1/tenants/acme/residency", 404, "resource.not_found")
        .await;
    sante
        .get_problem("/v1/tenants/nobody/residency", 404, "resource.not_found")
        .await;
    // The owner still sees everything.
    for (collection, id) in &owned {
        assert_eq!(acme.get(&format!("{collection}/{id}")).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_rate_limited_with_retry_after() {
    let mut options = Options::demo();
    options
        .env
        .push(("ALLIANCE_RATE_LIMIT_PER_SECOND".into(), "5".into()));
    let broker = Broker::start(options).await;
    let acme = broker.client(&broker.token("tenant-user", Some("acme")));
    let sante = broker.client(&broker.token("tenant-user", Some("santeplus")));
    let mut limited = None;
    for _ in 0..30 {
        let answer = acme.get("/v1/buckets").await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("30 requests at once must exceed 5 per second");
    limited.assert_problem(429, "request.rate_limited");
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Another tenant is not affected.
    assert_eq!(sante.get("/v1/buckets").await.status, 200);
}
