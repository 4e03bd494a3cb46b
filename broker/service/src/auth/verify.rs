//! Bearer JWT verification.
//!
//! Trusted issuers come only from config: the development issuer (when enabled) and each
//! `[[auth.issuers]]` with its JWKS URL (or OIDC discovery) and its algorithm allow-list.
//! `iss`, `aud`, `exp`, `nbf` and `sub` are required and checked with a 30 s leeway.
//! Keys are parsed when fetched; an unknown `kid` triggers at most one refresh per
//! `REFRESH_INTERVAL` per issuer, and the last good key set is kept while the provider is
//! down. `jku`, `x5u` and embedded `jwk` headers are never followed; `none` and HMAC
//! algorithms are never accepted. Verified tokens are cached until shortly before expiry.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use alliance_core::{MemberId, TenantId};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use super::dev_issuer::{DevIssuer, DEV_ISSUER};
use super::{Principal, Role};
use crate::config::{AuthConfig, IssuerConfig};
use crate::error::ApiError;

/// Minimum time between two key refreshes of one issuer.
const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    member: Option<String>,
    exp: u64,
}

#[derive(Debug, Deserialize)]
struct IssOnly {
    iss: Option<String>,
}

struct RemoteIssuer {
    config: IssuerConfig,
    algorithms: Vec<Algorithm>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_refresh: Mutex<Option<Instant>>,
}

/// Verifies bearer tokens; shared by every request.
pub struct TokenVerifier {
    audience: String,
    dev: Option<Arc<DevIssuer>>,
    remote: HashMap<String, RemoteIssuer>,
    http: reqwest::Client,
    cache: moka::sync::Cache<String, (Principal, u64)>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    u64::try_from(crate::time::now_ms() / 1000).unwrap_or(0)
}

fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    names
        .iter()
        .map(|name| match name.as_str() {
            "RS256" => Ok(Algorithm::RS256),
            "RS384" => Ok(Algorithm::RS384),
            "RS512" => Ok(Algorithm::RS512),
            "PS256" => Ok(Algorithm::PS256),
            "PS384" => Ok(Algorithm::PS384),
            "PS512" => Ok(Algorithm::PS512),
            "ES256" => Ok(Algorithm::ES256),
            "ES384" => Ok(Algorithm::ES384),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other => Err(format!(
                "algorithm `{other}` is not allowed (asymmetric algorithms only)"
            )),
        })
        .collect()
}

impl TokenVerifier {
    /// Builds the verifier from config; `dev` when the development issuer is enabled.
    pub fn new(config: &AuthConfig, dev: Option<Arc<DevIssuer>>) -> Result<Self, String> {
        let mut remote = HashMap::new();
        for issuer in &config.issuers {
            let algorithms = parse_algorithms(&issuer.algorithms)?;
            remote.insert(
                issuer.issuer.clone(),
                RemoteIssuer {
                    config: issuer.clone(),
                    algorithms,
                    keys: RwLock::new(HashMap::new()),
                    last_refresh: Mutex::new(None),
                },
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            audience: config.audience.clone(),
            dev,
            remote,
            http,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        })
    }

    /// Verifies a token and returns who it proves.
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        if let Some((principal, exp)) = self.cache.get(token) {
            if now_secs() < exp + LEEWAY_SECS {
                return Ok(principal);
            }
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::invalid_token(format!("malformed token: {e}")))?;
        refuse_critical_extensions(token)?;
        let issuer = peek_issuer(token)?;
        let (key, algorithms) = if issuer == DEV_ISSUER {
            let dev = self
                .dev
                .as_ref()
                .ok_or_else(|| ApiError::invalid_token("the development issuer is disabled"))?;
            (dev.decoding_key().clone(), vec![Algorithm::ES256])
        } else {
            let remote = self
                .remote
                .get(&issuer)
                .ok_or_else(|| ApiError::invalid_token("the token's issuer is not trusted"))?;
            let kid = header.kid.clone().unwrap_or_default();
            (
                self.remote_key(remote, &kid).await?,
                remote.algorithms.clone(),
            )
        };
        if !algorithms.contains(&header.alg) {
            return Err(ApiError::invalid_token(format!(
                "algorithm {:?} is not allowed for this issuer",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = algorithms;
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| ApiError::invalid_token(format!("token rejected: {e}")))?;
        let principal = principal_from(data.claims.iss.clone(), &data.claims)?;
        self.cache
            .insert(token.to_owned(), (principal.clone(), data.claims.exp));
        Ok(principal)
    }

    async fn remote_key(&self, issuer: &RemoteIssuer, kid: &str) -> Result<DecodingKey, ApiError> {
        if let Some(key) = issuer.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        {
            let mut last = issuer.last_refresh.lock().await;
            let due = last.is_none_or(|t| t.elapsed() >= REFRESH_INTERVAL);
            if due {
                *last = Some(Instant::now());
                match self.fetch_keys(&issuer.config).await {
                    Ok(keys) => *issuer.keys.write().await = keys,
                    Err(e) => {
                        tracing::warn!(issuer = %issuer.config.issuer, error = %e, "cannot refresh the issuer's keys; keeping the last good set")
                    }
                }
            }
        }
        issuer
            .keys
            .read()
            .await
            .get(kid)
            .cloned()
            .ok_or_else(|| ApiError::invalid_token("the token's key id is unknown to its issuer"))
    }

    async fn fetch_keys(
        &self,
        issuer: &IssuerConfig,
    ) -> Result<HashMap<String, DecodingKey>, String> {
        let jwks_url = match (&issuer.jwks_url, issuer.discovery) {
            (Some(url), _) => url.clone(),
            (None, _) => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.issuer.trim_end_matches('/')
                );
                let doc: serde_json::Value = self.get_json(&url).await?;
                // The discovery document must be the configured issuer's own.
                if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer.issuer.as_str()) {
                    return Err(format!(
                        "the discovery document at {url} names another issuer"
                    ));
                }
                doc.get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or("discovery document has no jwks_uri")?
                    .to_owned()
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(&jwks_url).await?)
            .map_err(|e| format!("bad JWKS: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(jwk.common.key_id.clone().unwrap_or_default(), key);
            }
        }
        Ok(keys)
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let response = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if bytes.len() > 256 * 1024 {
            return Err(format!("{url} answered more than 256 KiB"));
        }
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }
}

/// Reads `iss` from the payload without trusting it, to pick the key.
/// RFC 7515 §4.1.11: a token whose header lists `crit` extensions must be refused by a
/// verifier that does not understand them, and the broker understands none.
fn refuse_critical_extensions(token: &str) -> Result<(), ApiError> {
    let header = token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|bytes| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok()
        })
        .ok_or_else(|| ApiError::invalid_token("malformed token header"))?;
    if header.contains_key("crit") {
        return Err(ApiError::invalid_token(
            "the token's header lists critical extensions (`crit`) the broker does not understand",
        ));
    }
    Ok(())
}

fn peek_issuer(token: &str) -> Result<String, ApiError> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| ApiError::invalid_token("malformed token"))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| ApiError::invalid_token("malformed token payload"))?;
    let claims: IssOnly = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::invalid_token("malformed token payload"))?;
    claims
        .iss
        .ok_or_else(|| ApiError::invalid_token("the token has no issuer"))
}

fn principal_from(issuer: String, claims: &Claims) -> Result<Principal, ApiError> {
    let roles: BTreeSet<Role> = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
    let tenant = claims
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_token(format!("bad tenant claim: {e}")))?;
    let member = claims
        .member
        .as_deref()
        .map(MemberId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_token(format!("bad member claim: {e}")))?;
    if roles.iter().any(Role::is_tenant_role) && tenant.is_none() {
        return Err(ApiError::invalid_token(
            "tenant roles need a `tenant` claim",
        ));
    }
    if roles.contains(&Role::Partner) && member.is_none() {
        return Err(ApiError::invalid_token(
            "the partner role needs a `member` claim",
        ));
    }
    if claims.sub.trim().is_empty() || claims.sub.chars().any(char::is_control) {
        // The subject names the actor in the audit log and scopes idempotency keys.
        return Err(ApiError::invalid_token("the `sub` claim must name someone"));
    }
    Ok(Principal {
        issuer,
        subject: claims.sub.clone(),
        roles,
        tenant,
        member,
        request_id: None,
    })
}
