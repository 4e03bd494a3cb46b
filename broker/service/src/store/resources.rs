//! Resources and the operations journal.
//!
//! A creating or deleting request writes the resource change, its operation and its audit
//! events (and completes its idempotency key) in ONE transaction; workers then claim due
//! operations under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), run one step against
//! the member, and commit the step's outcome fenced by the lease: a worker that lost its
//! lease cannot overwrite the work of the one that took over.

use alliance_core::{ResourceType, TenantId};
use sqlx::any::AnyRow;

use super::audit::{self, AuditEntry, ChainCursor};
use super::idempotency::{self, IdempotencyKeyRecord, StoredResponse};
use super::{col, json_col, parsed_col, Backend, Store, StoreResult, TenantScope};

/// A resource to insert.
#[derive(Debug, Clone)]
pub struct NewResource {
    /// Broker id.
    pub id: String,
    /// Owner.
    pub tenant: TenantId,
    /// Kind.
    pub resource_type: ResourceType,
    /// Tenant's name for it.
    pub name: String,
    /// Where it lives.
    pub jurisdiction: String,
    /// Which member holds it.
    pub member_id: String,
    /// Data class.
    pub data_class: String,
    /// Type-specific fields: size, image, size_gb.
    pub spec: serde_json::Value,
    /// The placement decision: `{"reasons": [...]}`.
    pub placement: serde_json::Value,
}

/// A resource as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    /// Broker id.
    pub id: String,
    /// Owner.
    pub tenant_id: String,
    /// Kind.
    pub resource_type: ResourceType,
    /// Tenant's name.
    pub name: String,
    /// Where.
    pub jurisdiction: String,
    /// Member.
    pub member_id: String,
    /// provisioning | active | deleting | deleted | failed.
    pub status: String,
    /// Data class.
    pub data_class: String,
    /// Type-specific fields.
    pub spec: serde_json::Value,
    /// The member's own id, once known.
    pub member_resource_id: Option<String>,
    /// Placement decision.
    pub placement: serde_json::Value,
    /// ms.
    pub created_at: i64,
    /// ms.
    pub updated_at: i64,
}

/// An operation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRow {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Resource.
    pub resource_id: String,
    /// Resource kind.
    pub resource_type: ResourceType,
    /// create | delete.
    pub kind: String,
    /// pending | running | succeeded | failed.
    pub status: String,
    /// Where the engine is.
    pub step: OperationStep,
    /// Attempts so far.
    pub attempts: i64,
    /// The problem when failed.
    pub error: Option<serde_json::Value>,
    /// ms.
    pub created_at: i64,
    /// ms.
    pub updated_at: i64,
}

/// The engine's position within an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationStep {
    /// Ask the member (create or delete).
    Submit,
    /// Poll the member until the change shows.
    Await,
    /// Finished.
    Done,
}

impl OperationStep {
    fn as_str(&self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Await => "await",
            Self::Done => "done",
        }
    }
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "submit" => Ok(Self::Submit),
            "await" => Ok(Self::Await),
            "done" => Ok(Self::Done),
            other => Err(format!("unknown step `{other}`")),
        }
    }
}

/// An operation claimed by a worker, with its resource.
#[derive(Debug, Clone)]
pub struct ClaimedOperation {
    /// The operation.
    pub operation: OperationRow,
    /// Its resource.
    pub resource: ResourceRow,
    /// When it must be finished, ms.
    pub deadline_at: i64,
    /// The trace context of the request that started it.
    pub traceparent: Option<String>,
}

/// One line of a residency report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidencyRow {
    /// Resource id.
    pub id: String,
    /// Kind.
    pub resource_type: ResourceType,
    /// Where.
    pub jurisdiction: String,
    /// Member.
    pub member_id: String,
    /// Status.
    pub status: String,
}

/// How a delete request went.
#[derive(Debug, Clone)]
pub enum DeleteStart {
    /// No such resource for this tenant.
    NotFound,
    /// It cannot be deleted now (its creation is still running).
    Busy(String),
    /// A delete is running or done already: this is its operation.
    Existing(OperationRow),
    /// The delete was accepted.
    Started(OperationRow),
}

/// The outcome of a finished operation.
#[derive(Debug, Clone)]
pub enum Finish {
    /// It worked: the resource's new status and the member's id for it.
    Succeeded {
        /// active (create) or deleted (delete).
        resource_status: &'static str,
        /// The member's id.
        member_resource_id: Option<String>,
    },
    /// It failed with this problem; the resource becomes `failed`.
    Failed(serde_json::Value),
}

fn resource_from_row(row: &AnyRow) -> StoreResult<ResourceRow> {
    Ok(ResourceRow {
        id: col(row, "id")?,
        tenant_id: col(row, "tenant_id")?,
        resource_type: parsed_col(row, "resource_type", ResourceType::parse)?,
        name: col(row, "name")?,
        jurisdiction: col(row, "jurisdiction")?,
        member_id: col(row, "member_id")?,
        status: col(row, "status")?,
        data_class: col(row, "data_class")?,
        spec: json_col(row, "spec")?,
        member_resource_id: col(row, "member_resource_id")?,
        placement: json_col(row, "placement")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn operation_from_row(row: &AnyRow) -> StoreResult<OperationRow> {
    let error: Option<String> = col(row, "error")?;
    Ok(OperationRow {
        id: col(row, "id")?,
        tenant_id: col(row, "tenant_id")?,
        resource_id: col(row, "resource_id")?,
        resource_type: parsed_col(row, "resource_type", ResourceType::parse)?,
        kind: col(row, "kind")?,
        status: col(row, "status")?,
        step: parsed_col(row, "step", OperationStep::parse)?,
        attempts: col(row, "attempts")?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// A new operation row, as the API answers it before it is stored.
pub fn new_operation(
    id: &str,
    tenant: &str,
    resource_id: &str,
    resource_type: ResourceType,
    kind: &str,
    now: i64,
) -> OperationRow {
    OperationRow {
        id: id.to_owned(),
        tenant_id: tenant.to_owned(),
        resource_id: resource_id.to_owned(),
        resource_type,
        kind: kind.to_owned(),
        status: "pending".to_owned(),
        step: OperationStep::Submit,
        attempts: 0,
        error: None,
        created_at: now,
        updated_at: now,
    }
}

async fn insert_operation(
    conn: &mut sqlx::AnyConnection,
    op: &OperationRow,
    deadline_at: i64,
    traceparent: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO operations (id, tenant_id, resource_id, resource_type, kind, status, step, attempts, next_attempt_at, deadline_at, traceparent, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 'submit', 0, $6, $7, $8, $6, $6)",
    )
    .bind(&op.id)
    .bind(&op.tenant_id)
    .bind(&op.resource_id)
    .bind(op.resource_type.as_str())
    .bind(&op.kind)
    .bind(op.created_at)
    .bind(deadline_at)
    .bind(traceparent)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a creating or deleting request commits besides the resource change.
#[derive(Debug, Clone, Default)]
pub struct Journal<'a> {
    /// Audit events to append.
    pub audit: Vec<AuditEntry>,
    /// The idempotency key to complete with the response.
    pub idempotency: Option<(&'a IdempotencyKeyRecord, &'a StoredResponse)>,
    /// The trace context to hand to the engine.
    pub traceparent: Option<String>,
}

impl Store {
    /// Inserts a resource (provisioning) with its create operation, audit events and
    /// idempotency response, in one transaction (group-committed with concurrent writes).
    pub async fn create_resource(
        &self,
        resource: &NewResource,
        operation: &OperationRow,
        deadline_at: i64,
        journal: &Journal<'_>,
    ) -> StoreResult<()> {
        let write = Write::Create {
            resource: resource.clone(),
            operation: operation.clone(),
            deadline_at,
            audit: journal.audit.clone(),
            idempotency: journal.idempotency.map(|(k, r)| (k.clone(), r.clone())),
            traceparent: journal.traceparent.clone(),
        };
        self.batcher.submit(write).await.map(|_| ())
    }

    /// Starts deleting a resource: marks it `deleting` and journals a delete operation.
    pub async fn begin_delete(
        &self,
        scope: &TenantScope,
        resource_type: ResourceType,
        id: &str,
        operation: &OperationRow,
        deadline_at: i64,
        journal: &Journal<'_>,
    ) -> StoreResult<DeleteStart> {
        let now = operation.created_at;
        let mut tx = self.write.begin().await?;
        let updated = sqlx::query(
            "UPDATE resources SET status = 'deleting', updated_at = $4 \
             WHERE id = $1 AND tenant_id = $2 AND resource_type = $3 AND status IN ('active', 'failed')",
        )
        .bind(id)
        .bind(scope.tenant().as_str())
        .bind(resource_type.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let status: Option<String> = sqlx::query_scalar(
                "SELECT status FROM resources WHERE id = $1 AND tenant_id = $2 AND resource_type = $3",
            )
            .bind(id)
            .bind(scope.tenant().as_str())
            .bind(resource_type.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(match status.as_deref() {
                None => DeleteStart::NotFound,
                Some("deleting") | Some("deleted") => match self.latest_delete(scope, id).await? {
                    Some(op) => DeleteStart::Existing(op),
                    None => DeleteStart::Busy("the resource is being deleted".into()),
                },
                Some(other) => DeleteStart::Busy(format!(
                    "the resource is {other}; wait for its operation to finish"
                )),
            });
        }
        insert_operation(
            &mut tx,
            operation,
            deadline_at,
            journal.traceparent.as_deref(),
        )
        .await?;
        audit::append_all(
            &mut tx,
            self.backend,
            &journal.audit,
            now,
            &mut ChainCursor::default(),
        )
        .await?;
        if let Some((key, response)) = journal.idempotency {
            idempotency::complete(&mut tx, key, response).await?;
        }
        tx.commit().await?;
        Ok(DeleteStart::Started(operation.clone()))
    }

    async fn latest_delete(
        &self,
        scope: &TenantScope,
        resource_id: &str,
    ) -> StoreResult<Option<OperationRow>> {
        let row = sqlx::query(
            "SELECT * FROM operations WHERE resource_id = $1 AND tenant_id = $2 AND kind = 'delete' ORDER BY id DESC LIMIT 1",
        )
        .bind(resource_id)
        .bind(scope.tenant().as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(operation_from_row).transpose()
    }

    /// One of the tenant's resources.
    pub async fn resource(
        &self,
        scope: &TenantScope,
        resource_type: ResourceType,
        id: &str,
    ) -> StoreResult<Option<ResourceRow>> {
        let row = sqlx::query(
            "SELECT * FROM resources WHERE id = $1 AND tenant_id = $2 AND resource_type = $3",
        )
        .bind(id)
        .bind(scope.tenant().as_str())
        .bind(resource_type.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(resource_from_row).transpose()
    }

    /// The tenant's resources of a type after `after` (by id), at most `limit`; deleted ones
    /// are left out.
    pub async fn resources(
        &self,
        scope: &TenantScope,
        resource_type: ResourceType,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ResourceRow>> {
        let rows = sqlx::query(
            "SELECT * FROM resources WHERE tenant_id = $1 AND resource_type = $2 AND id > $3 AND status <> 'deleted' \
             ORDER BY id LIMIT $4",
        )
        .bind(scope.tenant().as_str())
        .bind(resource_type.as_str())
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(resource_from_row).collect()
    }

    /// One of the tenant's operations.
    pub async fn operation(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<OperationRow>> {
        let row = sqlx::query("SELECT * FROM operations WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(scope.tenant().as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(operation_from_row).transpose()
    }

    /// Where the tenant's live data is.
    pub async fn residency(&self, scope: &TenantScope) -> StoreResult<Vec<ResidencyRow>> {
        let rows = sqlx::query(
            "SELECT id, resource_type, jurisdiction, member_id, status FROM resources \
             WHERE tenant_id = $1 AND status <> 'deleted' ORDER BY id",
        )
        .bind(scope.tenant().as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ResidencyRow {
                    id: col(row, "id")?,
                    resource_type: parsed_col(row, "resource_type", ResourceType::parse)?,
                    jurisdiction: col(row, "jurisdiction")?,
                    member_id: col(row, "member_id")?,
                    status: col(row, "status")?,
                })
            })
            .collect()
    }

    /// Claims up to `limit` due operations for `owner` until `now + lease_ms`.
    pub async fn claim_operations(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<ClaimedOperation>> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE operations SET lease_owner = $1, lease_until = $2, status = 'running', updated_at = $3 \
             WHERE id IN (SELECT id FROM operations WHERE status IN ('pending', 'running') AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_attempt_at, id LIMIT $4{lock}) \
             RETURNING *"
        );
        let mut tx = self.write.begin().await?;
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        if !rows.is_empty() {
            // One query for every claimed operation's resource.
            let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT * FROM resources WHERE id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            let mut ops = Vec::with_capacity(rows.len());
            for row in &rows {
                let op = operation_from_row(row)?;
                query = query.bind(op.resource_id.clone());
                ops.push((
                    op,
                    col::<i64>(row, "deadline_at")?,
                    col::<Option<String>>(row, "traceparent")?,
                ));
            }
            let resources: std::collections::HashMap<String, ResourceRow> = query
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| resource_from_row(r).map(|r| (r.id.clone(), r)))
                .collect::<StoreResult<_>>()?;
            for (operation, deadline_at, traceparent) in ops {
                let resource = resources
                    .get(&operation.resource_id)
                    .cloned()
                    .ok_or_else(|| {
                        super::StoreError::Corrupt(format!(
                            "operation {} has no resource",
                            operation.id
                        ))
                    })?;
                claimed.push(ClaimedOperation {
                    operation,
                    resource,
                    deadline_at,
                    traceparent,
                });
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Moves a claimed operation to its next step at `next_at`, releasing the lease;
    /// `false` when the lease was lost.
    #[expect(
        clippy::too_many_arguments,
        reason = "one fenced update with every column it sets"
    )]
    pub async fn reschedule_operation(
        &self,
        id: &str,
        owner: &str,
        step: OperationStep,
        attempts: i64,
        next_at: i64,
        last_error: Option<&str>,
        member_resource_id: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let updated = sqlx::query(
            "UPDATE operations SET step = $3, attempts = $4, next_attempt_at = $5, last_error = $6, lease_owner = NULL, \
             lease_until = NULL, updated_at = $7 WHERE id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(owner)
        .bind(step.as_str())
        .bind(attempts)
        .bind(next_at)
        .bind(last_error)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(member_id) = member_resource_id {
            sqlx::query("UPDATE resources SET member_resource_id = $2, updated_at = $3 WHERE id = (SELECT resource_id FROM operations WHERE id = $1)")
                .bind(id)
                .bind(member_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Finishes a claimed operation and its resource, with audit events, in one
    /// transaction (group-committed with concurrent writes); `false` when the lease was lost.
    pub async fn finish_operation(
        &self,
        id: &str,
        owner: &str,
        finish: &Finish,
        audit_entries: &[AuditEntry],
        now: i64,
    ) -> StoreResult<bool> {
        let write = Write::Finish {
            id: id.to_owned(),
            owner: owner.to_owned(),
            finish: finish.clone(),
            audit: audit_entries.to_vec(),
            now,
        };
        self.batcher.submit(write).await
    }

    /// Counts operations by status (for metrics and tests).
    pub async fn operation_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM operations GROUP BY status ORDER BY status",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((col(r, "status")?, col(r, "n")?)))
            .collect()
    }
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

/// Applies one write inside the caller's transaction; `Ok(false)` when a fenced update
/// found its lease lost (and nothing was changed for it).
pub(crate) async fn apply(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    write: &Write,
    cursor: &mut ChainCursor,
) -> StoreResult<bool> {
    match write {
        Write::Create {
            resource,
            operation,
            deadline_at,
            audit,
            idempotency,
            traceparent,
        } => {
            let now = operation.created_at;
            sqlx::query(
                "INSERT INTO resources (id, tenant_id, resource_type, name, jurisdiction, member_id, status, data_class, spec, placement, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'provisioning', $7, $8, $9, $10, $10)",
            )
            .bind(&resource.id)
            .bind(resource.tenant.as_str())
            .bind(resource.resource_type.as_str())
            .bind(&resource.name)
            .bind(&resource.jurisdiction)
            .bind(&resource.member_id)
            .bind(&resource.data_class)
            .bind(resource.spec.to_string())
            .bind(resource.placement.to_string())
            .bind(now)
            .execute(&mut *conn)
            .await?;
            insert_operation(conn, operation, *deadline_at, traceparent.as_deref()).await?;
            audit::append_all(conn, backend, audit, now, cursor).await?;
            if let Some((key, response)) = idempotency {
                idempotency::complete(conn, key, response).await?;
            }
            Ok(true)
        }
        Write::Finish {
            id,
            owner,
            finish,
            audit: entries,
            now,
        } => {
            let (status, error, resource_status, member_resource_id) = match finish {
                Finish::Succeeded {
                    resource_status,
                    member_resource_id,
                } => (
                    "succeeded",
                    None,
                    *resource_status,
                    member_resource_id.clone(),
                ),
                Finish::Failed(problem) => ("failed", Some(problem.to_string()), "failed", None),
            };
            let updated = sqlx::query(
                "UPDATE operations SET status = $3, step = 'done', error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 \
                 WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
            )
            .bind(id)
            .bind(owner)
            .bind(status)
            .bind(error)
            .bind(*now)
            .execute(&mut *conn)
            .await?;
            if updated.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE resources SET status = $2, member_resource_id = COALESCE($3, member_resource_id), updated_at = $4 \
                 WHERE id = (SELECT resource_id FROM operations WHERE id = $1)",
            )
            .bind(id)
            .bind(resource_status)
            .bind(member_resource_id)
            .bind(*now)
            .execute(&mut *conn)
            .await?;
            // The usage ledger moves with the state change, in this transaction.
            let event = match finish {
                Finish::Succeeded {
                    resource_status: "active",
                    ..
                } => Some("start"),
                Finish::Succeeded {
                    resource_status: "deleted",
                    ..
                } => Some("stop"),
                _ => None,
            };
            if let Some(event) = event {
                sqlx::query(
                    "INSERT INTO usage_events (resource_id, event, at, tenant_id, member_id, resource_type, jurisdiction, name, spec) \
                     SELECT r.id, $2, $3, r.tenant_id, r.member_id, r.resource_type, r.jurisdiction, r.name, r.spec FROM resources r \
                     WHERE r.id = (SELECT resource_id FROM operations WHERE id = $1) \
                     AND NOT EXISTS (SELECT 1 FROM usage_events u WHERE u.resource_id = r.id AND u.event = $2)",
                )
                .bind(id)
                .bind(event)
                .bind(*now)
                .execute(&mut *conn)
                .await?;
            }
            audit::append_all(conn, backend, entries, *now, cursor).await?;
            Ok(true)
        }
    }
}
