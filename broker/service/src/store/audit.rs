//! The audit log: an append-only, SHA-256 hash-chained list of events.
//!
//! Each event's `hash` is SHA-256 over the previous event's hash and the event's whole
//! content, in a fixed, unambiguous encoding. Appends happen inside the transaction of the
//! change they record; on PostgreSQL an advisory transaction lock serialises appends across
//! replicas (SQLite has a single writer). [`Store::verify_audit_chain`] recomputes the chain
//! and names the first event that does not match.

use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use super::{col, Backend, Store, StoreResult};

/// The hash before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Advisory lock key serialising audit appends on PostgreSQL ("alli").
const AUDIT_LOCK: i64 = 0x616c_6c69;

/// An event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who: the token subject, or `system` for the engine.
    pub actor: String,
    /// The actor's roles.
    pub roles: Vec<String>,
    /// The tenant concerned, if any.
    pub tenant: Option<String>,
    /// What, e.g. `instance.create`, `placement.decide`.
    pub action: String,
    /// The resource concerned, if any.
    pub resource_id: Option<String>,
    /// `accepted`, `succeeded`, `failed`, `rejected`.
    pub outcome: String,
    /// The request that caused it.
    pub request_id: Option<String>,
    /// Anything else worth keeping (placement reasons, error).
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// An event of the broker's own doing (`actor` names the job, e.g. `system:engine`).
    pub fn system(
        actor: &str,
        tenant: Option<String>,
        action: String,
        resource_id: Option<String>,
        outcome: &str,
        details: serde_json::Value,
    ) -> Self {
        Self {
            actor: actor.to_owned(),
            roles: Vec::new(),
            tenant,
            action,
            resource_id,
            outcome: outcome.to_owned(),
            request_id: None,
            details,
        }
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEvent {
    /// Position in the chain.
    pub seq: i64,
    /// Stable id.
    pub id: String,
    /// When, ms since the epoch.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// Their roles.
    pub roles: Vec<String>,
    /// Tenant concerned.
    pub tenant: Option<String>,
    /// What.
    pub action: String,
    /// Resource concerned.
    pub resource_id: Option<String>,
    /// How it ended.
    pub outcome: String,
    /// The request.
    pub request_id: Option<String>,
    /// Details.
    pub details: serde_json::Value,
    /// The previous event's hash.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// Filters for listing events.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's events.
    pub tenant: Option<String>,
    /// Only this resource's events.
    pub resource_id: Option<String>,
    /// At or after, ms.
    pub from: Option<i64>,
    /// Before, ms.
    pub to: Option<i64>,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {seq} ({id}): {reason}")]
pub struct ChainBreak {
    /// Sequence number of the first bad event.
    pub seq: i64,
    /// Its id.
    pub id: String,
    /// What does not match.
    pub reason: String,
}

/// An intact chain, as [`Store::verify_audit_chain_at`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// Events in the chain.
    pub count: u64,
    /// The last event's sequence number (0 when empty).
    pub last_seq: i64,
    /// The hashes of the events asked for, by sequence number.
    pub hashes: std::collections::BTreeMap<i64, String>,
}

struct Stored<'a> {
    id: &'a str,
    at: i64,
    actor: &'a str,
    roles: &'a str,
    tenant: Option<&'a str>,
    action: &'a str,
    resource_id: Option<&'a str>,
    outcome: &'a str,
    request_id: Option<&'a str>,
    details: &'a str,
}

/// SHA-256 over the previous hash and every field, each JSON-encoded on its own line (JSON
/// strings cannot contain a raw newline, so the encoding is unambiguous).
fn chain_hash(prev: &str, e: &Stored<'_>) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let o = |s: Option<&str>| s.map_or_else(|| "null".to_owned(), q);
    let mut h = Sha256::new();
    for part in [
        prev.to_owned(),
        q(e.id),
        e.at.to_string(),
        q(e.actor),
        e.roles.to_owned(),
        o(e.tenant),
        q(e.action),
        o(e.resource_id),
        q(e.outcome),
        o(e.request_id),
        e.details.to_owned(),
    ] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Appends events, in order, inside the caller's transaction.
pub(crate) async fn append_all(
    conn: &mut AnyConnection,
    backend: Backend,
    entries: &[AuditEntry],
    now: i64,
) -> StoreResult<()> {
    let timed: Vec<(&AuditEntry, i64)> = entries.iter().map(|e| (e, now)).collect();
    append_timed(conn, backend, &timed).await
}

/// Appends events, each with its own time, in order, inside the caller's transaction. The
/// chain's end is read (and on PostgreSQL, locked) once, and the rows go in by multi-row
/// INSERTs of [`ROWS_PER_INSERT`], so the lock is held for a few round trips, not one per
/// event. Callers append last, just before they commit, to keep the lock short.
pub(crate) async fn append_timed(
    conn: &mut AnyConnection,
    backend: Backend,
    entries: &[(&AuditEntry, i64)],
) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    let mut prev: String =
        sqlx::query_scalar("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or_else(|| GENESIS.to_owned());
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        prev = insert_after(conn, prev, chunk).await?;
    }
    Ok(())
}

/// Audit rows per INSERT statement: 12 parameters each, far under both databases' limits
/// (SQLite 32,766, PostgreSQL 65,535).
const ROWS_PER_INSERT: usize = 128;

/// The columns of an audit row, in insert order.
const AUDIT_INSERT: &str = "INSERT INTO audit_events (id, at, actor, roles, tenant_id, action, resource_id, outcome, request_id, details, prev_hash, hash) VALUES ";
/// Ends a transaction whose change was one row: with `changed`, appends `entry` (when
/// given) and commits; otherwise rolls back. Returns `changed`.
/// One SQL statement, committed with its audit event when it changed `expect` rows (any
/// row when `None`); `Ok(false)`, and nothing written, when it changed none.
pub(crate) async fn change_audited<'q>(
    store: &super::Store,
    statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    entry: Option<&AuditEntry>,
    now: i64,
) -> StoreResult<bool> {
    let mut tx = store.write.begin().await?;
    let done = statement.execute(&mut *tx).await?;
    commit_audited(tx, store.backend, done.rows_affected() != 0, entry, now).await
}

pub(crate) async fn commit_audited(
    mut tx: sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    changed: bool,
    entry: Option<&AuditEntry>,
    now: i64,
) -> StoreResult<bool> {
    if !changed {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some(entry) = entry {
        append_all(&mut tx, backend, std::slice::from_ref(entry), now).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// One event as it is stored and hashed.
struct Row {
    id: String,
    at: i64,
    roles: String,
    details: String,
    prev: String,
    hash: String,
}

/// Inserts `entries` after `prev`, in order, in one statement; returns the last hash.
/// Rows are listed in chain order, so their `seq` follows it.
async fn insert_after(
    conn: &mut AnyConnection,
    mut prev: String,
    entries: &[(&AuditEntry, i64)],
) -> StoreResult<String> {
    let mut rows = Vec::with_capacity(entries.len());
    for (entry, at) in entries {
        let id = format!("evt-{}", uuid::Uuid::now_v7().simple());
        let roles = serde_json::to_string(&entry.roles).unwrap_or_else(|_| "[]".to_owned());
        let details = entry.details.to_string();
        let hash = chain_hash(
            &prev,
            &Stored {
                id: &id,
                at: *at,
                actor: &entry.actor,
                roles: &roles,
                tenant: entry.tenant.as_deref(),
                action: &entry.action,
                resource_id: entry.resource_id.as_deref(),
                outcome: &entry.outcome,
                request_id: entry.request_id.as_deref(),
                details: &details,
            },
        );
        let row = Row {
            id,
            at: *at,
            roles,
            details,
            prev: std::mem::replace(&mut prev, hash.clone()),
            hash,
        };
        rows.push(row);
    }
    let mut sql = String::with_capacity(AUDIT_INSERT.len() + rows.len() * 64);
    sql.push_str(AUDIT_INSERT);
    for i in 0..rows.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=12 {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(i * 12 + c).to_string());
        }
        sql.push(')');
    }
    let mut query = sqlx::query(&sql);
    for ((entry, _), row) in entries.iter().zip(&rows) {
        query = query
            .bind(&row.id)
            .bind(row.at)
            .bind(&entry.actor)
            .bind(&row.roles)
            .bind(entry.tenant.as_deref())
            .bind(&entry.action)
            .bind(entry.resource_id.as_deref())
            .bind(&entry.outcome)
            .bind(entry.request_id.as_deref())
            .bind(&row.details)
            .bind(&row.prev)
            .bind(&row.hash);
    }
    query.execute(&mut *conn).await?;
    Ok(prev)
}

fn event_from_row(row: &AnyRow) -> StoreResult<AuditEvent> {
    let roles: String = col(row, "roles")?;
    let details: String = col(row, "details")?;
    Ok(AuditEvent {
        seq: col(row, "seq")?,
        id: col(row, "id")?,
        at: col(row, "at")?,
        actor: col(row, "actor")?,
        roles: serde_json::from_str(&roles).unwrap_or_default(),
        tenant: col(row, "tenant_id")?,
        action: col(row, "action")?,
        resource_id: col(row, "resource_id")?,
        outcome: col(row, "outcome")?,
        request_id: col(row, "request_id")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        prev_hash: col(row, "prev_hash")?,
        hash: col(row, "hash")?,
    })
}

impl Store {
    /// Appends one event in a transaction of its own.
    pub async fn append_audit(&self, entry: &AuditEntry, now: i64) -> StoreResult<()> {
        let mut tx = self.write.begin().await?;
        append_all(&mut tx, self.backend, std::slice::from_ref(entry), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events after `after_seq`, oldest first, at most `limit`.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE seq > $1 \
             AND ($2 IS NULL OR tenant_id = $2) AND ($3 IS NULL OR resource_id = $3) \
             AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5) \
             ORDER BY seq LIMIT $6",
        )
        .bind(after_seq)
        .bind(filter.tenant.as_deref())
        .bind(filter.resource_id.as_deref())
        .bind(filter.from)
        .bind(filter.to)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The newest `limit` events matching `filter`, newest first.
    pub async fn newest_audit_events(
        &self,
        filter: &AuditFilter,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_events WHERE ($1 IS NULL OR tenant_id = $1) AND ($2 IS NULL OR resource_id = $2) \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(filter.tenant.as_deref())
        .bind(filter.resource_id.as_deref())
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Recomputes the whole chain; the number of events when intact.
    pub async fn verify_audit_chain(&self) -> StoreResult<Result<u64, ChainBreak>> {
        Ok(self
            .verify_audit_chain_at(&std::collections::BTreeSet::new())
            .await?
            .map(|summary| summary.count))
    }

    /// Recomputes the whole chain; when intact, its length, its last sequence number and the
    /// hashes of the events `wanted` names (those checkpoints sign).
    pub async fn verify_audit_chain_at(
        &self,
        wanted: &std::collections::BTreeSet<i64>,
    ) -> StoreResult<Result<ChainSummary, ChainBreak>> {
        let mut prev = GENESIS.to_owned();
        let mut after = 0i64;
        let mut count = 0u64;
        let mut hashes = std::collections::BTreeMap::new();
        loop {
            let rows =
                sqlx::query("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT 1000")
                    .bind(after)
                    .fetch_all(&self.read)
                    .await?;
            if rows.is_empty() {
                return Ok(Ok(ChainSummary {
                    count,
                    last_seq: after,
                    hashes,
                }));
            }
            for row in &rows {
                let seq: i64 = col(row, "seq")?;
                let id: String = col(row, "id")?;
                let roles: String = col(row, "roles")?;
                let details: String = col(row, "details")?;
                let tenant: Option<String> = col(row, "tenant_id")?;
                let resource: Option<String> = col(row, "resource_id")?;
                let request: Option<String> = col(row, "request_id")?;
                let actor: String = col(row, "actor")?;
                let action: String = col(row, "action")?;
                let outcome: String = col(row, "outcome")?;
                let stored_prev: String = col(row, "prev_hash")?;
                let stored_hash: String = col(row, "hash")?;
                let stored = Stored {
                    id: &id,
                    at: col(row, "at")?,
                    actor: &actor,
                    roles: &roles,
                    tenant: tenant.as_deref(),
                    action: &action,
                    resource_id: resource.as_deref(),
                    outcome: &outcome,
                    request_id: request.as_deref(),
                    details: &details,
                };
                if stored_prev != prev {
                    return Ok(Err(ChainBreak { seq, id, reason: "prev_hash does not match the previous event (an event was removed or reordered)".into() }));
                }
                if chain_hash(&prev, &stored) != stored_hash {
                    return Ok(Err(ChainBreak {
                        seq,
                        id,
                        reason: "content does not match its hash (the event was changed)".into(),
                    }));
                }
                if wanted.contains(&seq) {
                    hashes.insert(seq, stored_hash.clone());
                }
                prev = stored_hash;
                after = seq;
                count += 1;
            }
        }
    }
}
