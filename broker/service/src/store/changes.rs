//! Changes to live resources: what a tenant asked for besides the shape (`settings`),
//! what the member reports (`observed`), and the actions and attachments that change them.
//!
//! A change starts like a delete: in ONE transaction the resource moves from `active` to
//! `updating` (so no second change or delete can start meanwhile), its operation and audit
//! events are written and the idempotency key completed. The engine finishes it with a
//! [`ResourceUpdate`] (`operations.rs`), and the resource is `active` again, whatever the
//! outcome.

use alliance_adapter_api::{IngressRule, Observed, UserData};
use alliance_core::{ResourceType, SizeName};
use serde::{Deserialize, Serialize};

use super::operations::OperationRow;
use super::resources::Journal;
use super::{Store, StoreError, StoreResult, TenantScope};

/// What a tenant asked for besides the shape; stored as JSON with only the fields set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSettings {
    /// Instances: the tenant's name of its SSH key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
    /// Instances: that key's OpenSSH line, as it was when the instance was asked for (a
    /// later delete of the key does not change what a retried create installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key: Option<String>,
    /// Instances: cloud-init user data (base64); never returned, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<UserData>,
    /// Instances: the SHA-256 of the decoded user data, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data_sha256: Option<String>,
    /// Instances: the inbound rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    /// Instances: a public address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public_ip: bool,
    /// Volumes: the instance it is created for (attached once created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_to: Option<String>,
}

/// An action's arguments, stored with its operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationParams {
    /// A resize's new size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<SizeName>,
    /// An attachment's instance (broker id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl OperationParams {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// What a finished operation changes on its resource besides its status.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceUpdate {
    /// What the member reported last.
    pub observed: Option<Observed>,
    /// A resize: the new shape (the usage ledger changes SKU at the commit).
    pub reshaped: Option<alliance_core::ResourceShape>,
    /// An attachment (`Some(Some(instance))`) or a detachment (`Some(None)`).
    pub attached_to: Option<Option<String>>,
}

/// How a change request went.
#[derive(Debug, Clone)]
pub enum ChangeStart {
    /// No such resource for this tenant.
    NotFound,
    /// It cannot change now: its status (not active) or another change is running.
    Busy(String),
    /// The change was accepted.
    Started(OperationRow),
}

/// A value as a JSON column, NULL when it is the default.
pub(super) fn json_or_null<T: Serialize + Default + PartialEq>(
    value: &T,
    name: &str,
) -> StoreResult<Option<String>> {
    if value == &T::default() {
        return Ok(None);
    }
    serde_json::to_string(value)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

impl Store {
    /// Starts an action or an attachment on an active resource: marks it `updating` and
    /// journals the operation (with its arguments, `operation.params`).
    pub async fn begin_change(
        &self,
        scope: &TenantScope,
        resource_type: ResourceType,
        id: &str,
        operation: &OperationRow,
        deadline_at: i64,
        journal: &Journal<'_>,
    ) -> StoreResult<ChangeStart> {
        let now = operation.created_at;
        let mut tx = self.write.begin().await?;
        let updated = sqlx::query(
            "UPDATE resources SET status = 'updating', updated_at = $4 \
             WHERE id = $1 AND tenant_id = $2 AND resource_type = $3 AND status = 'active'",
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
                None | Some("deleted") => ChangeStart::NotFound,
                Some("updating") => ChangeStart::Busy(
                    "another action is running on the resource; wait for its operation".into(),
                ),
                Some(other) => ChangeStart::Busy(format!(
                    "the resource is {other}; only an active resource can change"
                )),
            });
        }
        journal
            .write(&mut tx, self.backend, operation, deadline_at)
            .await?;
        tx.commit().await?;
        Ok(ChangeStart::Started(operation.clone()))
    }

    /// The tenant's live volumes attached to an instance.
    pub async fn attached_volumes(
        &self,
        scope: &TenantScope,
        instance: &str,
    ) -> StoreResult<Vec<String>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM resources WHERE tenant_id = $1 AND attached_to = $2 AND status <> 'deleted' ORDER BY id",
        )
        .bind(scope.tenant().as_str())
        .bind(instance)
        .fetch_all(&self.read)
        .await?;
        Ok(ids)
    }
}

/// Applies a finished operation's update to its resource, inside the finishing
/// transaction: a resize (and its usage change, once), an attachment. What the member
/// reported (`observed`) is written by the caller's status update (store/batch.rs).
pub(super) async fn apply_update(
    conn: &mut sqlx::AnyConnection,
    operation_id: &str,
    update: &ResourceUpdate,
    now: i64,
) -> StoreResult<()> {
    if let Some(shape) = &update.reshaped {
        let spec =
            serde_json::to_string(shape).map_err(|e| StoreError::Corrupt(format!("spec: {e}")))?;
        sqlx::query(
            "UPDATE resources SET spec = $2 WHERE id = (SELECT resource_id FROM operations WHERE id = $1)",
        )
        .bind(operation_id)
        .bind(&spec)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "INSERT INTO usage_changes (operation_id, resource_id, at, spec) \
             SELECT o.id, o.resource_id, $2, $3 FROM operations o WHERE o.id = $1 \
             AND NOT EXISTS (SELECT 1 FROM usage_changes c WHERE c.operation_id = o.id)",
        )
        .bind(operation_id)
        .bind(now)
        .bind(&spec)
        .execute(&mut *conn)
        .await?;
    }
    if let Some(attached_to) = &update.attached_to {
        sqlx::query(
            "UPDATE resources SET attached_to = $2 WHERE id = (SELECT resource_id FROM operations WHERE id = $1)",
        )
        .bind(operation_id)
        .bind(attached_to.as_deref())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
