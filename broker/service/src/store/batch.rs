//! Group commit: concurrent writes that each would be a small transaction (a resource
//! creation, an operation's outcome) are queued to one committer task, which applies up to
//! `MAX_BATCH` of them in a single transaction and answers each caller after the commit.
//!
//! Every caller still gets exactly the atomicity it asked for: all of its statements are
//! in the committed transaction or none are. If a batch fails, each write is retried in a
//! transaction of its own, so that one bad write never fails its neighbours. On SQLite,
//! where all writes share one connection, this removes most of the per-transaction cost;
//! on PostgreSQL it takes the audit lock once per batch instead of once per write.

use alliance_core::{OperationStatus, ResourceStatus};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::audit::{self, AuditEntry};
use super::idempotency::{self, IdempotencyKeyRecord, StoredResponse};
use super::operations::{insert_operation, Finish, OperationRow};
use super::resources::NewResource;
use super::{Backend, StoreError, StoreResult};

/// Writes committed together at most.
const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<StoreResult<bool>>;

/// The handle to the committer task.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    queue: mpsc::Sender<(Write, Reply)>,
}

impl Batcher {
    /// Starts the committer on the current runtime.
    pub(crate) fn start(pool: AnyPool, backend: Backend) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        tokio::spawn(run(pool, backend, rx));
        Self { queue }
    }

    /// Queues a write and waits until it is committed (or failed).
    pub(crate) async fn submit(&self, write: Write) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?
    }
}

async fn run(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<(Write, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        if batch.len() > 1 {
            match commit(&pool, backend, batch.iter().map(|(w, _)| w)).await {
                Ok(results) => {
                    for ((_, reply), result) in batch.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                    continue;
                }
                Err(e) => {
                    tracing::debug!(error = %e, size = batch.len(), "group commit failed; committing one by one")
                }
            }
        }
        for (write, reply) in batch {
            let result = commit(&pool, backend, std::iter::once(&write))
                .await
                .map(|r| r.first().copied().unwrap_or(false));
            let _ = reply.send(result);
        }
    }
}

/// Applies `writes` in one transaction: for each, whether it applied.
pub(super) async fn commit<'a>(
    pool: &AnyPool,
    backend: Backend,
    writes: impl Iterator<Item = &'a Write>,
) -> StoreResult<Vec<bool>> {
    let writes: Vec<&Write> = writes.collect();
    let mut tx = pool.begin().await?;
    let mut results: Vec<Option<bool>> = vec![None; writes.len()];
    // On PostgreSQL the batch's creations and plain outcomes go in as one statement each
    // (`grouped.rs`); SQLite runs in-process, where a statement is cheap. What is left is
    // applied one by one, in order.
    if backend == Backend::Postgres {
        super::grouped::apply_all(&mut tx, &writes, &mut results).await?;
    }
    for (write, result) in writes.iter().zip(results.iter_mut()) {
        if result.is_none() {
            *result = Some(apply(&mut tx, write).await?);
        }
    }
    // The audit events of the writes that applied go in last, all together, in the order
    // of the writes: the chain's lock (PostgreSQL) is then held only from there to the
    // commit, so another replica's batch can do its own inserts meanwhile.
    let mut events: Vec<(&AuditEntry, i64)> = Vec::new();
    let results: Vec<bool> = results.into_iter().map(|r| r == Some(true)).collect();
    for (write, applied) in writes.iter().zip(&results) {
        if *applied {
            let (entries, now) = write.audit();
            events.extend(entries.iter().map(|e| (e, now)));
        }
    }
    audit::append_timed(&mut tx, backend, &events).await?;
    tx.commit().await?;
    Ok(results)
}

/// A write that may be group-committed with others (see `store/batch.rs`).
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived values in a bounded queue; boxing buys nothing"
)]
pub(crate) enum Write {
    /// `create_resource`.
    Create {
        resource: NewResource,
        operation: OperationRow,
        deadline_at: i64,
        audit: Vec<AuditEntry>,
        idempotency: Option<(IdempotencyKeyRecord, StoredResponse)>,
        traceparent: Option<String>,
        /// `Journal::tenant_version`.
        tenant_version: Option<i64>,
    },
    /// `finish_operation`.
    Finish {
        id: String,
        owner: String,
        finish: Finish,
        audit: Vec<AuditEntry>,
        now: i64,
    },
}

impl Write {
    /// The audit events to append when the write applied, and their time.
    fn audit(&self) -> (&[AuditEntry], i64) {
        match self {
            Write::Create {
                audit, operation, ..
            } => (audit, operation.created_at),
            Write::Finish { audit, now, .. } => (audit, *now),
        }
    }
}

/// Applies one write inside the caller's transaction, without its audit events (the caller
/// appends them); `Ok(false)` when a fenced update found its lease lost (and nothing was
/// changed for it).
async fn apply(conn: &mut sqlx::AnyConnection, write: &Write) -> StoreResult<bool> {
    match write {
        Write::Create {
            resource,
            operation,
            deadline_at,
            audit: _,
            idempotency,
            traceparent,
            tenant_version,
        } => {
            let now = operation.created_at;
            // (On PostgreSQL, `grouped.rs` writes these.)
            let inserted = sqlx::query(INSERT_RESOURCE)
                .bind(&resource.id)
                .bind(resource.tenant.as_str())
                .bind(resource.resource_type.as_str())
                .bind(&resource.name)
                .bind(resource.jurisdiction.as_str())
                .bind(resource.member_id.as_str())
                .bind(resource.data_class.as_str())
                .bind(
                    serde_json::to_string(&resource.shape)
                        .map_err(|e| StoreError::Corrupt(format!("spec: {e}")))?,
                )
                .bind(resource.placement.to_string())
                .bind(now)
                .bind(super::changes::json_or_null(
                    &resource.settings,
                    "settings",
                )?)
                .bind(*tenant_version)
                .execute(&mut *conn)
                .await?;
            if inserted.rows_affected() == 0 {
                return Ok(false);
            }
            insert_operation(conn, operation, *deadline_at, traceparent.as_deref()).await?;
            if let Some((key, response)) = idempotency {
                idempotency::complete(conn, key, response).await?;
            }
            Ok(true)
        }
        Write::Finish {
            id,
            owner,
            finish,
            audit: _,
            now,
        } => {
            let outcome = Outcome::of(finish)?;
            let updated = sqlx::query(
                "UPDATE operations SET status = $3, step = 'done', error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(owner)
            .bind(outcome.status.as_str())
            .bind(outcome.error)
            .bind(*now)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE resources SET status = $2, member_resource_id = COALESCE($3, member_resource_id), updated_at = $4, \
                 observed = CASE WHEN $5 = 1 THEN $6 ELSE observed END \
                 WHERE id = (SELECT resource_id FROM operations WHERE id = $1)",
            )
            .bind(id)
            .bind(outcome.resource_status.as_str())
            .bind(outcome.member_resource_id)
            .bind(*now)
            .bind(i64::from(outcome.observed.is_some()))
            .bind(outcome.observed.flatten())
            .execute(&mut *conn)
            .await?;
            if let Finish::Succeeded { update, .. } = finish {
                super::changes::apply_update(conn, id, update, *now).await?;
            }
            if let Some(event) = outcome.event {
                sqlx::query(
                    "INSERT INTO usage_events (resource_id, event, at, tenant_id, member_id, resource_type, jurisdiction, name, spec) \
                     SELECT r.id, $2, CASE WHEN $4 < o.created_at THEN o.created_at WHEN $4 < $3 THEN $4 ELSE $3 END, \
                     r.tenant_id, r.member_id, r.resource_type, r.jurisdiction, r.name, r.spec \
                     FROM resources r JOIN operations o ON o.id = $1 AND o.resource_id = r.id \
                     WHERE NOT EXISTS (SELECT 1 FROM usage_events u WHERE u.resource_id = r.id AND u.event = $2)",
                )
                .bind(id)
                .bind(event)
                .bind(*now)
                .bind(outcome.member_time.unwrap_or(*now))
                .execute(&mut *conn)
                .await?;
            }
            Ok(true)
        }
    }
}

/// What an operation's outcome writes, worked out once for both ways of writing it (one
/// outcome per statement here, a batch's outcomes in one statement in `grouped.rs`).
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) status: OperationStatus,
    pub(super) error: Option<String>,
    pub(super) resource_status: ResourceStatus,
    pub(super) member_resource_id: Option<String>,
    /// `Some` when the member reported what it observed (`Some(None)`: nothing to keep).
    pub(super) observed: Option<Option<String>>,
    /// The usage ledger's event, if the outcome starts or stops usage.
    pub(super) event: Option<&'static str>,
    /// When the member says the resource became active (ms), if it said.
    pub(super) member_time: Option<i64>,
    /// Nothing reshaped or attached: the operation, the resource and the ledger are all.
    pub(super) plain: bool,
}

impl Outcome {
    pub(super) fn of(finish: &Finish) -> StoreResult<Self> {
        let (status, error, resource_status, member_resource_id) = match finish {
            Finish::Succeeded {
                resource_status,
                member_resource_id,
                ..
            } => (
                OperationStatus::Succeeded,
                None,
                *resource_status,
                member_resource_id.clone(),
            ),
            Finish::Failed(problem) => (
                OperationStatus::Failed,
                Some(problem.to_string()),
                ResourceStatus::Failed,
                None,
            ),
            Finish::Refused(problem) => (
                OperationStatus::Failed,
                Some(problem.to_string()),
                ResourceStatus::Active,
                None,
            ),
        };
        // What the member reported goes in with the status, in one statement.
        let observed = match finish {
            Finish::Succeeded { update, .. } => update
                .observed
                .as_ref()
                .map(|o| super::changes::json_or_null(o, "observed"))
                .transpose()?,
            _ => None,
        };
        // The usage ledger moves with the state change, in this transaction (a
        // change's `start` is already there, so it is not written twice).
        let event = match finish {
            Finish::Succeeded {
                resource_status: ResourceStatus::Active,
                ..
            } => Some("start"),
            Finish::Succeeded {
                resource_status: ResourceStatus::Deleted,
                ..
            } => Some("stop"),
            _ => None,
        };
        // Usage starts when the member says it made the resource active (its own
        // clock, whole seconds), kept within the operation's lifetime: never before
        // the tenant asked, never after now. Without its word, now.
        let member_time = match finish {
            Finish::Succeeded { update, .. } if event == Some("start") => update
                .observed
                .as_ref()
                .and_then(|o| o.active_since)
                .and_then(|s| s.checked_mul(1000)),
            _ => None,
        };
        // The common outcome (nothing reshaped or attached): on PostgreSQL a batch's
        // such outcomes are one statement (`grouped.rs`).
        let plain = match finish {
            Finish::Succeeded { update, .. } => {
                update.reshaped.is_none() && update.attached_to.is_none()
            }
            _ => true,
        };
        Ok(Self {
            status,
            error,
            resource_status,
            member_resource_id,
            observed,
            event,
            member_time,
            plain,
        })
    }
}

/// A new resource, `provisioning` (`Write::Create` on SQLite, with `insert_operation` after
/// it), if its tenant is still at the version it was placed with ($12, when given).
const INSERT_RESOURCE: &str = "INSERT INTO resources (id, tenant_id, resource_type, name, jurisdiction, member_id, status, data_class, spec, placement, settings, created_at, updated_at) \
     SELECT $1, $2, $3, $4, $5, $6, 'provisioning', $7, $8, $9, $11, $10, $10 \
     WHERE $12 IS NULL OR EXISTS (SELECT 1 FROM tenants WHERE id = $2 AND updated_at = $12)";
