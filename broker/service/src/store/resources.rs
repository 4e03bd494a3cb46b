//! Resources: creating and deleting them, reading them per tenant, residency.
//!
//! A creating or deleting request writes the resource change, its operation and its audit
//! events (and completes its idempotency key) in ONE transaction; the operations journal
//! (`operations.rs`) then drives it.

use alliance_core::{
    DataClassName, Jurisdiction, MemberId, ResourceShape, ResourceStatus, ResourceType, TenantId,
};

use alliance_adapter_api::Observed;

use super::audit::{self, AuditEntry};
use super::batch::Write;
use super::changes::ResourceSettings;
use super::idempotency::{self, IdempotencyKeyRecord, StoredResponse};
use super::operations::{insert_operation, operation_from_row, OperationRow};
use super::{col, parsed_col, Columns, Select, Store, StoreResult, TenantScope};

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
    pub jurisdiction: Jurisdiction,
    /// Which member holds it.
    pub member_id: MemberId,
    /// Data class.
    pub data_class: DataClassName,
    /// What the tenant chose: size, image, size_gb.
    pub shape: ResourceShape,
    /// The placement decision: `{"reasons": [...]}`.
    pub placement: serde_json::Value,
    /// What the tenant asked for besides the shape (key, user data, ingress, attach_to).
    pub settings: ResourceSettings,
}

/// A resource as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    /// Broker id.
    pub id: String,
    /// Owner.
    pub tenant_id: TenantId,
    /// Kind.
    pub resource_type: ResourceType,
    /// Tenant's name.
    pub name: String,
    /// Where.
    pub jurisdiction: Jurisdiction,
    /// Member.
    pub member_id: MemberId,
    /// Where it is in its life.
    pub status: ResourceStatus,
    /// Data class.
    pub data_class: DataClassName,
    /// What the tenant chose.
    pub shape: ResourceShape,
    /// The member's own id, once known.
    pub member_resource_id: Option<String>,
    /// Placement decision.
    pub placement: StoredPlacement,
    /// What the tenant asked for besides the shape.
    pub settings: ResourceSettings,
    /// What the member last reported (addresses, power state, device, endpoint).
    pub observed: Observed,
    /// Volumes: the instance (broker id) it is attached to.
    pub attached_to: Option<String>,
    /// ms.
    pub created_at: i64,
    /// ms.
    pub updated_at: i64,
}

/// A placement decision as stored with its resource: `{"reasons": [...]}` (read straight
/// into its fields, not through a JSON tree: it is on every resource read).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct StoredPlacement {
    /// The decision's reasons, in order.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// One line of a residency report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidencyRow {
    /// Resource id.
    pub id: String,
    /// Kind.
    pub resource_type: ResourceType,
    /// Where.
    pub jurisdiction: Jurisdiction,
    /// Member.
    pub member_id: MemberId,
    /// Status.
    pub status: ResourceStatus,
    /// The data class it was placed for.
    pub data_class: DataClassName,
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

/// The columns [`resource_from_row`] reads.
const RESOURCE_COLUMNS: [&str; 16] = [
    "id",
    "tenant_id",
    "resource_type",
    "name",
    "jurisdiction",
    "member_id",
    "status",
    "data_class",
    "spec",
    "member_resource_id",
    "placement",
    "settings",
    "observed",
    "attached_to",
    "created_at",
    "updated_at",
];

pub(super) fn resource_from_row(row: &impl Columns) -> StoreResult<ResourceRow> {
    Ok(ResourceRow {
        id: row.string("id")?,
        tenant_id: row.parsed("tenant_id", TenantId::parse)?,
        resource_type: row.parsed("resource_type", ResourceType::parse)?,
        name: row.string("name")?,
        jurisdiction: row.parsed("jurisdiction", Jurisdiction::parse)?,
        member_id: row.parsed("member_id", MemberId::parse)?,
        status: row.parsed("status", ResourceStatus::parse)?,
        data_class: row.parsed("data_class", DataClassName::parse)?,
        shape: row.json("spec")?,
        member_resource_id: row.opt_string("member_resource_id")?,
        placement: row.json("placement")?,
        settings: row.opt_json("settings")?,
        observed: row.opt_json("observed")?,
        attached_to: row.opt_string("attached_to")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
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
    /// A creation placed on the tenant's policy as of this `updated_at`: committed only if
    /// the tenant is still at it (`None`: not checked).
    pub tenant_version: Option<i64>,
}

impl Journal<'_> {
    /// Writes a started operation with what it commits besides (audit events, the
    /// idempotency response), inside the caller's transaction.
    pub(super) async fn write(
        &self,
        conn: &mut sqlx::AnyConnection,
        backend: super::Backend,
        operation: &OperationRow,
        deadline_at: i64,
    ) -> StoreResult<()> {
        insert_operation(conn, operation, deadline_at, self.traceparent.as_deref()).await?;
        if let Some((key, response)) = self.idempotency {
            idempotency::complete(conn, key, response).await?;
        }
        // Last, so that the chain's lock is held only until the commit.
        audit::append_all(conn, backend, &self.audit, operation.created_at).await?;
        Ok(())
    }
}

impl Store {
    /// Inserts a resource (provisioning) with its create operation, audit events and
    /// idempotency response, in one transaction (group-committed with concurrent writes);
    /// `false`, with nothing written, when the tenant is no longer at
    /// `journal.tenant_version`.
    pub async fn create_resource(
        &self,
        resource: &NewResource,
        operation: &OperationRow,
        deadline_at: i64,
        journal: &Journal<'_>,
    ) -> StoreResult<bool> {
        let write = Write::Create {
            resource: resource.clone(),
            operation: operation.clone(),
            deadline_at,
            audit: journal.audit.clone(),
            idempotency: journal.idempotency.map(|(k, r)| (k.clone(), r.clone())),
            traceparent: journal.traceparent.clone(),
            tenant_version: journal.tenant_version,
        };
        self.batcher.submit(write).await
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
        // An attached volume, or an instance with volumes attached, is not deleted: the
        // tenant detaches first (nothing is lost by surprise).
        let attached: Option<String> = sqlx::query_scalar(
            "SELECT COALESCE(r.attached_to, (SELECT v.id FROM resources v WHERE v.attached_to = r.id AND v.status <> 'deleted' ORDER BY v.id LIMIT 1)) \
             FROM resources r WHERE r.id = $1 AND r.tenant_id = $2 AND r.resource_type = $3",
        )
        .bind(id)
        .bind(scope.tenant().as_str())
        .bind(resource_type.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .flatten();
        if let Some(other) = attached {
            tx.rollback().await?;
            return Ok(DeleteStart::Busy(match resource_type {
                ResourceType::Volume => {
                    format!("the volume is attached to {other}; detach it first")
                }
                _ => format!("volume {other} is attached to the instance; detach it first"),
            }));
        }
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
        journal
            .write(&mut tx, self.backend, operation, deadline_at)
            .await?;
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
        static BY_ID: Select = Select::new(
            &RESOURCE_COLUMNS,
            "resources WHERE id = $1 AND tenant_id = $2 AND resource_type = $3",
        );
        let params = (id, scope.tenant().as_str(), resource_type.as_str());
        let native = self.native.as_ref();
        if let Some(found) =
            native.and_then(|n| n.optional(&BY_ID, params, |r| resource_from_row(r)))
        {
            return found;
        }
        let row = sqlx::query(BY_ID.sql())
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

    /// Where the tenant's live data is.
    pub async fn residency(&self, scope: &TenantScope) -> StoreResult<Vec<ResidencyRow>> {
        let rows = sqlx::query(
            "SELECT id, resource_type, jurisdiction, member_id, status, data_class FROM resources \
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
                    jurisdiction: parsed_col(row, "jurisdiction", Jurisdiction::parse)?,
                    member_id: parsed_col(row, "member_id", MemberId::parse)?,
                    status: parsed_col(row, "status", ResourceStatus::parse)?,
                    data_class: parsed_col(row, "data_class", DataClassName::parse)?,
                })
            })
            .collect()
    }
}
