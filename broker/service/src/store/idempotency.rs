//! Idempotency keys: the first response to a creating POST, kept per (tenant, subject, key)
//! with a fingerprint of the request, so that a retry replays it byte for byte.
//!
//! A key is claimed `in_flight` before the request runs and completed in the same
//! transaction as the change it made (see `Store::create_resource`), so a crash never
//! leaves a change without its key or a key without its change. An `in_flight` claim left by
//! a crashed broker expires after `locked_until` and can be taken over.

use sqlx::AnyConnection;

use super::{col, Store, StoreResult};

/// The scope and identity of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKeyRecord {
    /// Tenant (or `-` for tenant-less principals).
    pub tenant: String,
    /// Token subject.
    pub subject: String,
    /// The client's key.
    pub key: String,
    /// SHA-256 of method, path and body.
    pub fingerprint: String,
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// `Location`, if any.
    pub location: Option<String>,
    /// The exact body bytes (UTF-8 JSON).
    pub body: String,
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is ours: run the request.
    Claimed,
    /// The same request already completed: replay this.
    Replay(StoredResponse),
    /// The key was used with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

impl Store {
    /// Claims a key for a request, or says why not.
    pub async fn claim_idempotency_key(
        &self,
        key: &IdempotencyKeyRecord,
        now: i64,
        lock_ms: i64,
        ttl_ms: i64,
    ) -> StoreResult<IdempotencyClaim> {
        let mut tx = self.write.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, subject, idempotency_key, fingerprint, state, locked_until, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, 'in_flight', $5, $6, $7) ON CONFLICT (tenant_id, subject, idempotency_key) DO NOTHING",
        )
        .bind(&key.tenant)
        .bind(&key.subject)
        .bind(&key.key)
        .bind(&key.fingerprint)
        .bind(now + lock_ms)
        .bind(now)
        .bind(now + ttl_ms)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(IdempotencyClaim::Claimed);
        }
        let row = sqlx::query(
            "SELECT fingerprint, state, locked_until, expires_at, response_status, response_location, response_body \
             FROM idempotency_keys WHERE tenant_id = $1 AND subject = $2 AND idempotency_key = $3",
        )
        .bind(&key.tenant)
        .bind(&key.subject)
        .bind(&key.key)
        .fetch_one(&mut *tx)
        .await?;
        let expires_at: i64 = col(&row, "expires_at")?;
        let state: String = col(&row, "state")?;
        let locked_until: i64 = col(&row, "locked_until")?;
        let fingerprint: String = col(&row, "fingerprint")?;
        let stale_claim = state == "in_flight" && locked_until <= now;
        if expires_at <= now || stale_claim {
            // An expired key, or a claim abandoned by a crashed broker: take it over.
            sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = $4, state = 'in_flight', locked_until = $5, created_at = $6, expires_at = $7, \
                 response_status = NULL, response_location = NULL, response_body = NULL \
                 WHERE tenant_id = $1 AND subject = $2 AND idempotency_key = $3",
            )
            .bind(&key.tenant)
            .bind(&key.subject)
            .bind(&key.key)
            .bind(&key.fingerprint)
            .bind(now + lock_ms)
            .bind(now)
            .bind(now + ttl_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(IdempotencyClaim::Claimed);
        }
        tx.commit().await?;
        if fingerprint != key.fingerprint {
            return Ok(IdempotencyClaim::Mismatch);
        }
        if state == "in_flight" {
            return Ok(IdempotencyClaim::InFlight);
        }
        let status: i64 = col(&row, "response_status")?;
        Ok(IdempotencyClaim::Replay(StoredResponse {
            status: u16::try_from(status).unwrap_or(500),
            location: col(&row, "response_location")?,
            body: col(&row, "response_body")?,
        }))
    }

    /// Records the response of a request that changed nothing (e.g. a 422).
    pub async fn complete_idempotency_key(
        &self,
        key: &IdempotencyKeyRecord,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let mut conn = self.write.acquire().await?;
        complete(&mut conn, key, response).await
    }

    /// Forgets a claim so the client may retry (after a transient failure).
    pub async fn release_idempotency_key(&self, key: &IdempotencyKeyRecord) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND subject = $2 AND idempotency_key = $3 AND state = 'in_flight'",
        )
        .bind(&key.tenant)
        .bind(&key.subject)
        .bind(&key.key)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Deletes keys past their lifetime; the number deleted.
    pub async fn expire_idempotency_keys(&self, now: i64) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1 AND state = 'done'")
                .bind(now)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected())
    }
}

/// Stores the response of a claimed key, inside the caller's transaction.
pub(crate) async fn complete(
    conn: &mut AnyConnection,
    key: &IdempotencyKeyRecord,
    response: &StoredResponse,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'done', response_status = $4, response_location = $5, response_body = $6 \
         WHERE tenant_id = $1 AND subject = $2 AND idempotency_key = $3",
    )
    .bind(&key.tenant)
    .bind(&key.subject)
    .bind(&key.key)
    .bind(i64::from(response.status))
    .bind(response.location.as_deref())
    .bind(&response.body)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
