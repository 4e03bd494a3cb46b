//! `Idempotency-Key` on every creating POST: claim, replay, refusal, and the first response
//! kept.
//!
//! A key is claimed `in_flight` before the change runs; the first response (success or a
//! refusal) is kept and replayed byte for byte; the same key with another request is 422,
//! the same key while the first runs is 409. Resource creations record the response in the
//! same transaction as the change (`provisioning`); the other creating POSTs go through
//! [`with_idempotency_key`], which records it right after. This module knows replies as
//! [`StoredResponse`] values; `api/` sends them.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::store::{IdempotencyClaim, IdempotencyKeyRecord, StoredResponse};

/// How long idempotency keys live.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an in-flight key is locked before a crashed request's claim may be taken over.
const IDEMPOTENCY_LOCK: Duration = Duration::from_secs(60);
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Facts about the request kept in the books, read once by the API's extractor.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `traceparent` of the request.
    pub traceparent: Option<String>,
    /// `Idempotency-Key` as sent (raw bytes: a present but invalid key is refused, never
    /// taken for an absent one).
    pub idempotency_key: Option<Vec<u8>>,
}

/// A reply as JSON with a status (and a `Location`).
pub fn json_reply<T: serde::Serialize>(
    status: u16,
    location: Option<String>,
    value: &T,
) -> ApiResult<StoredResponse> {
    Ok(StoredResponse {
        status,
        location,
        body: serde_json::to_string(value).map_err(ApiError::internal)?,
    })
}

/// Validates an `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn parse_key(raw: &[u8]) -> ApiResult<String> {
    if raw.is_empty() || raw.len() > MAX_KEY_LEN || !raw.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(String::from_utf8_lossy(raw).into_owned())
}

fn record(principal: &Principal, key: String, fingerprint: String) -> IdempotencyKeyRecord {
    IdempotencyKeyRecord {
        tenant: principal
            .tenant
            .as_ref()
            .map_or_else(|| "-".to_owned(), |t| t.to_string()),
        subject: format!("{}|{}", principal.issuer, principal.subject),
        key,
        fingerprint,
    }
}

/// Fingerprint of a request: method, path and the canonical JSON body.
pub fn fingerprint(method: &str, path: &str, body: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// What claiming a request's `Idempotency-Key` decided.
pub enum Claim {
    /// No key: run the request.
    NoKey,
    /// The key is ours: run the request, then record its outcome.
    Run(IdempotencyKeyRecord),
    /// Answer this first response again without running anything.
    Replay(StoredResponse),
}

/// Claims the request's key, if it sent one.
pub async fn claim(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    path: &str,
    canonical_body: &serde_json::Value,
) -> ApiResult<Claim> {
    let Some(raw) = facts.idempotency_key.as_deref() else {
        return Ok(Claim::NoKey);
    };
    let key = record(
        principal,
        parse_key(raw)?,
        fingerprint("POST", path, canonical_body),
    );
    let now = state.clock.now_ms();
    let lock = i64::try_from(IDEMPOTENCY_LOCK.as_millis()).unwrap_or(60_000);
    let ttl = i64::try_from(IDEMPOTENCY_TTL.as_millis()).unwrap_or(86_400_000);
    match state
        .store
        .claim_idempotency_key(&key, now, lock, ttl)
        .await?
    {
        IdempotencyClaim::Claimed => Ok(Claim::Run(key)),
        IdempotencyClaim::Replay(stored) => Ok(Claim::Replay(stored)),
        IdempotencyClaim::Mismatch => Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request",
        )),
        IdempotencyClaim::InFlight => Err(ApiError::new(
            ErrorCode::IdempotencyInFlight,
            "the first request with this Idempotency-Key is still in flight; retry shortly",
        )
        .with_retry_after(Duration::from_secs(1))),
    }
}

/// Records a failed first response: refusals are part of it and are replayed; transient
/// failures release the key so that the client can retry.
pub async fn settle_failure(state: &AppState, key: &IdempotencyKeyRecord, error: &ApiError) {
    let outcome = if (400..500).contains(&error.status()) {
        let stored = StoredResponse {
            status: error.status(),
            location: None,
            body: String::from_utf8_lossy(&error.body()).into_owned(),
        };
        state.store.complete_idempotency_key(key, &stored).await
    } else {
        state.store.release_idempotency_key(key).await
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "cannot record the idempotency outcome");
    }
}

/// Runs a creating POST other than a resource's (tenants, partner applications,
/// reconciliations) under its `Idempotency-Key`, when the client sent one. The response is
/// recorded just after the change commits: a crash in between leaves the key in flight
/// until its lock expires (60 s).
pub async fn with_idempotency_key(
    state: &AppState,
    principal: &Principal,
    facts: &RequestFacts,
    path: &str,
    canonical_body: &serde_json::Value,
    action: impl std::future::Future<Output = ApiResult<StoredResponse>>,
) -> ApiResult<StoredResponse> {
    let key = match claim(state, principal, facts, path, canonical_body).await? {
        Claim::NoKey => return action.await,
        Claim::Replay(stored) => return Ok(stored),
        Claim::Run(key) => key,
    };
    match action.await {
        Ok(stored) => {
            if let Err(e) = state.store.complete_idempotency_key(&key, &stored).await {
                tracing::warn!(error = %e, "cannot record the idempotency outcome");
            }
            Ok(stored)
        }
        Err(error) => {
            settle_failure(state, &key, &error).await;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert_eq!(parse_key(b"first-try").ok().as_deref(), Some("first-try"));
        for bad in [
            &b""[..],
            "clé-42".as_bytes(),
            b"\xe9t\xe9",
            b"with space",
            b"tab\t",
            &[b'a'; 256][..],
        ] {
            let error = parse_key(bad).expect_err("refused");
            assert_eq!(error.code, ErrorCode::InvalidIdempotencyKey);
            assert_eq!(error.status(), 400);
        }
        assert!(parse_key(&[b'a'; 255]).is_ok());
    }

    #[test]
    fn fingerprints_differ_by_method_path_and_body() {
        let body = serde_json::json!({"name": "web"});
        let a = fingerprint("POST", "/v1/instances", &body);
        assert_eq!(a, fingerprint("POST", "/v1/instances", &body));
        assert_ne!(a, fingerprint("POST", "/v1/volumes", &body));
        assert_ne!(
            a,
            fingerprint("POST", "/v1/instances", &serde_json::json!({"name": "db"}))
        );
    }
}
