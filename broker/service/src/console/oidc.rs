//! Sign-in through an OIDC issuer of the config: the authorization code flow with PKCE
//! (S256), `state` and `nonce`. The issuer's endpoints come from its discovery document
//! (a URL from the config file, never from a request). The ID token is verified by the
//! broker's own token verifier (issuer trusted, keys from its JWKS, audience
//! `auth.audience`, expiry), its `nonce` checked, and its roles and tenant claims make the
//! session, as a bearer token's would make a principal.
//!
//! Between the redirect to the issuer and the callback, the verifier, state, nonce and
//! redirect URI wait in a signed cookie (`alliance_oidc`, ten minutes, `SameSite=Lax` so
//! that the issuer's redirect back carries it): the broker keeps nothing per attempt.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::session::{random_token, Session};
use super::{cookie, over_tls, PageError, PageResult};
use crate::config::IssuerConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The cookie holding a sign-in in progress.
const FLOW_COOKIE: &str = "alliance_oidc";
/// How long a sign-in may take at the issuer.
const FLOW_SECS: i64 = 600;

/// A sign-in in progress.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    issuer: usize,
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    exp: i64,
}

/// The issuers the console offers, with their place in `[[auth.issuers]]`.
pub fn console_issuers(state: &AppState) -> Vec<(usize, &IssuerConfig)> {
    state
        .config
        .auth
        .issuers
        .iter()
        .enumerate()
        .filter(|(_, i)| i.console_client_id.is_some())
        .collect()
}

fn refused(detail: impl Into<String>) -> PageError {
    PageError(ApiError::forbidden(detail))
}

fn http() -> Result<reqwest::Client, PageError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PageError(ApiError::internal(e)))
}

/// The issuer's authorization and token endpoints, from its discovery document.
async fn endpoints(issuer: &IssuerConfig) -> Result<(String, String), PageError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.issuer.trim_end_matches('/')
    );
    let unavailable = |why: String| {
        PageError(ApiError::new(
            crate::error::ErrorCode::MemberUnavailable,
            format!("the identity provider cannot be reached: {why}"),
        ))
    };
    let doc: serde_json::Value = http()?
        .get(&url)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .json()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if doc["issuer"].as_str().map(|i| i.trim_end_matches('/'))
        != Some(issuer.issuer.trim_end_matches('/'))
    {
        return Err(unavailable(
            "its discovery document names another issuer".into(),
        ));
    }
    match (
        doc["authorization_endpoint"].as_str(),
        doc["token_endpoint"].as_str(),
    ) {
        (Some(a), Some(t)) => Ok((a.to_owned(), t.to_owned())),
        _ => Err(unavailable(
            "its discovery document has no authorization or token endpoint".into(),
        )),
    }
}

/// What the sign-in link may carry.
#[derive(Debug, Default, Deserialize)]
pub struct Start {
    login_hint: Option<String>,
}

/// `GET /console/login/oidc/{n}`: off to issuer `n`, with PKCE.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(n): Path<usize>,
    Query(start): Query<Start>,
) -> PageResult {
    let issuer = console_issuers(&state)
        .into_iter()
        .find(|(i, _)| *i == n)
        .map(|(_, issuer)| issuer)
        .ok_or_else(|| PageError(ApiError::not_found("identity provider", &n.to_string())))?;
    let client_id = issuer.console_client_id.clone().unwrap_or_default();
    let (authorize, _) = endpoints(issuer).await?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .ok_or_else(|| {
            PageError(ApiError::new(
                crate::error::ErrorCode::MalformedRequest,
                "no usable Host header",
            ))
        })?;
    let scheme = if over_tls(&headers) { "https" } else { "http" };
    let flow = Flow {
        issuer: n,
        state: random_token(24),
        nonce: random_token(24),
        verifier: random_token(32),
        redirect_uri: format!("{scheme}://{host}/console/login/oidc/callback"),
        exp: state.clock.now_ms() / 1000 + FLOW_SECS,
    };
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(flow.verifier.as_bytes()));
    let mut url = reqwest::Url::parse(&authorize).map_err(|e| PageError(ApiError::internal(e)))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &flow.redirect_uri)
            .append_pair("scope", "openid")
            .append_pair("state", &flow.state)
            .append_pair("nonce", &flow.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = start.login_hint.as_deref().filter(|h| !h.trim().is_empty()) {
            query.append_pair("login_hint", hint.trim());
        }
    }
    let sealed = state.console_key.seal_value(&flow);
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, url.to_string()),
            (
                header::SET_COOKIE,
                format!(
                    "{FLOW_COOKIE}={sealed}; Path=/console/login/oidc; HttpOnly; SameSite=Lax; Max-Age={FLOW_SECS}{}",
                    if over_tls(&headers) { "; Secure" } else { "" }
                ),
            ),
        ],
    )
        .into_response())
}

/// What the issuer sends back.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /console/login/oidc/callback`: the code exchanged (with the PKCE verifier), the ID
/// token verified, the session made.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> PageResult {
    if let Some(error) = back.error {
        return Err(refused(format!(
            "the identity provider refused the sign-in: {error}"
        )));
    }
    let now = state.clock.now_ms() / 1000;
    let flow: Flow = super::cookies(&headers, FLOW_COOKIE)
        .find_map(|v| state.console_key.open_value::<Flow>(v))
        .filter(|f| f.exp > now)
        .ok_or_else(|| refused("no sign-in is in progress in this browser (or it took over ten minutes): start again"))?;
    let given = back.state.unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        given.as_bytes(),
        flow.state.as_bytes(),
    )) {
        return Err(refused("the sign-in's state does not match: start again"));
    }
    let code = back
        .code
        .ok_or_else(|| refused("the identity provider sent no code"))?;
    let issuer = console_issuers(&state)
        .into_iter()
        .find(|(i, _)| *i == flow.issuer)
        .map(|(_, issuer)| issuer)
        .ok_or_else(|| refused("that identity provider is no longer configured"))?;
    let (_, token_endpoint) = endpoints(issuer).await?;
    let client_id = issuer.console_client_id.clone().unwrap_or_default();
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", flow.redirect_uri.clone()),
        ("client_id", client_id),
        ("code_verifier", flow.verifier.clone()),
    ];
    if let Some(name) = &issuer.console_client_secret_env {
        let secret = std::env::var(name)
            .map_err(|_| PageError(ApiError::internal(format!("{name} is not set"))))?;
        form.push(("client_secret", secret));
    }
    let answer = http()?
        .post(&token_endpoint)
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            refused(format!(
                "the identity provider's token endpoint failed: {e}"
            ))
        })?;
    if !answer.status().is_success() {
        return Err(refused(format!(
            "the identity provider refused the code ({})",
            answer.status()
        )));
    }
    let tokens: serde_json::Value = answer
        .json()
        .await
        .map_err(|e| refused(format!("the identity provider's answer is not JSON: {e}")))?;
    let id_token = tokens["id_token"]
        .as_str()
        .ok_or_else(|| refused("the identity provider sent no ID token"))?;
    let principal = state.verifier.verify(id_token).await.map_err(PageError)?;
    if principal.issuer.trim_end_matches('/') != issuer.issuer.trim_end_matches('/') {
        return Err(refused(
            "the ID token comes from another issuer than the sign-in went to",
        ));
    }
    if claim(id_token, "nonce").as_deref() != Some(flow.nonce.as_str()) {
        return Err(refused("the ID token's nonce is not this sign-in's"));
    }
    let session = Session::new(
        &principal.issuer,
        principal.subject.clone(),
        principal
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        principal.tenant.as_ref().map(ToString::to_string),
        now,
    );
    let sealed = state.console_key.seal(&session);
    let secure = over_tls(&headers);
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/console")]).into_response();
    let h = response.headers_mut();
    for value in [
        cookie(&sealed, secure, super::session::LIFETIME_SECS),
        format!("{FLOW_COOKIE}=; Path=/console/login/oidc; HttpOnly; SameSite=Lax; Max-Age=0"),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&value) {
            h.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// A string claim of a token already verified.
fn claim(token: &str, name: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims[name].as_str().map(str::to_owned)
}
