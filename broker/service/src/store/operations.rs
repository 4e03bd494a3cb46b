//! The operations journal: operations as stored, claimed by workers under a lease
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL), rescheduled and finished fenced by that lease,
//! so that a worker that lost its lease cannot overwrite the work of the one that took over.

use alliance_core::{OperationKind, OperationStatus, ResourceStatus, ResourceType, TenantId};

use super::audit::AuditEntry;
use super::batch::Write;
use super::changes::{OperationParams, ResourceUpdate};
use super::resources::{resource_from_row, ResourceRow};
use super::{col, Backend, Columns, Select, Store, StoreResult, TenantScope};

/// An operation as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationRow {
    /// Id.
    pub id: String,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Resource.
    pub resource_id: String,
    /// Resource kind.
    pub resource_type: ResourceType,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is.
    pub status: OperationStatus,
    /// Where the engine is.
    pub step: OperationStep,
    /// Attempts so far.
    pub attempts: i64,
    /// The problem when failed.
    pub error: Option<serde_json::Value>,
    /// An action's arguments.
    pub params: OperationParams,
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

/// The outcome of a finished operation.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "short-lived values, one per finished step; boxing buys nothing"
)]
pub enum Finish {
    /// It worked: the resource's new status and the member's id for it.
    Succeeded {
        /// Active (create, a change) or deleted (delete).
        resource_status: ResourceStatus,
        /// The member's id.
        member_resource_id: Option<String>,
        /// What else changes on the resource.
        update: ResourceUpdate,
    },
    /// It failed with this problem; the resource becomes `failed`.
    Failed(serde_json::Value),
    /// A change (an action, an attachment) failed with this problem; the resource is
    /// `active` again, as it was.
    Refused(serde_json::Value),
}

/// The columns [`operation_from_row`] reads.
const OPERATION_COLUMNS: [&str; 12] = [
    "id",
    "tenant_id",
    "resource_id",
    "resource_type",
    "kind",
    "status",
    "step",
    "attempts",
    "error",
    "params",
    "created_at",
    "updated_at",
];

pub(super) fn operation_from_row(row: &impl Columns) -> StoreResult<OperationRow> {
    let error = row.opt_string("error")?;
    Ok(OperationRow {
        id: row.string("id")?,
        tenant_id: row.parsed("tenant_id", TenantId::parse)?,
        resource_id: row.string("resource_id")?,
        resource_type: row.parsed("resource_type", ResourceType::parse)?,
        kind: row.parsed("kind", OperationKind::parse)?,
        status: row.parsed("status", OperationStatus::parse)?,
        step: row.parsed("step", OperationStep::parse)?,
        attempts: row.int("attempts")?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        params: row.opt_json("params")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// A new operation row, as the API answers it before it is stored.
pub fn new_operation(
    id: &str,
    tenant: &TenantId,
    resource_id: &str,
    resource_type: ResourceType,
    kind: OperationKind,
    now: i64,
) -> OperationRow {
    OperationRow {
        id: id.to_owned(),
        tenant_id: tenant.clone(),
        resource_id: resource_id.to_owned(),
        resource_type,
        kind,
        status: OperationStatus::Pending,
        step: OperationStep::Submit,
        attempts: 0,
        error: None,
        params: OperationParams::default(),
        created_at: now,
        updated_at: now,
    }
}

pub(super) async fn insert_operation(
    conn: &mut sqlx::AnyConnection,
    op: &OperationRow,
    deadline_at: i64,
    traceparent: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO operations (id, tenant_id, resource_id, resource_type, kind, status, step, attempts, next_attempt_at, deadline_at, traceparent, params, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 'submit', 0, $6, $7, $8, $9, $6, $6)",
    )
    .bind(&op.id)
    .bind(op.tenant_id.as_str())
    .bind(&op.resource_id)
    .bind(op.resource_type.as_str())
    .bind(op.kind.as_str())
    .bind(op.created_at)
    .bind(deadline_at)
    .bind(traceparent)
    .bind(super::changes::json_or_null(&op.params, "params")?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// One of the tenant's operations.
    pub async fn operation(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> StoreResult<Option<OperationRow>> {
        static BY_ID: Select = Select::new(
            &OPERATION_COLUMNS,
            "operations WHERE id = $1 AND tenant_id = $2",
        );
        let params = (id, scope.tenant().as_str());
        let native = self.native.as_ref();
        if let Some(found) =
            native.and_then(|n| n.optional(&BY_ID, params, |r| operation_from_row(r)))
        {
            return found;
        }
        let row = sqlx::query(BY_ID.sql())
            .bind(id)
            .bind(scope.tenant().as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(operation_from_row).transpose()
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
