//! Resources flagged outside their tenant's policy (`crate::compliance` decides), each
//! change recorded with its audit event in one transaction.

use super::audit::{change_audited, AuditEntry};
use super::{col, parsed_col, Store, StoreResult};
use alliance_core::{DataClassName, TenantId};

impl Store {
    /// The live resources (not deleted, not failed) of `class` on `member`: id and tenant.
    pub async fn live_resources_of_class(
        &self,
        member: &str,
        class: &DataClassName,
    ) -> StoreResult<Vec<(String, TenantId)>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id FROM resources WHERE member_id = $1 AND data_class = $2 \
             AND status NOT IN ('deleted', 'failed') ORDER BY id",
        )
        .bind(member)
        .bind(class.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((col(r, "id")?, parsed_col(r, "tenant_id", TenantId::parse)?)))
            .collect()
    }

    /// The resources flagged so far: id, tenant, and the reasons recorded.
    pub async fn flagged_resources(&self) -> StoreResult<Vec<(String, TenantId, Vec<String>)>> {
        let rows = sqlx::query("SELECT * FROM resource_compliance ORDER BY resource_id")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                let reasons: String = col(r, "reasons")?;
                Ok((
                    col(r, "resource_id")?,
                    parsed_col(r, "tenant_id", TenantId::parse)?,
                    serde_json::from_str(&reasons).unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// Records that `resource` is outside its tenant's policy for `reasons` (or, with
    /// none, that it no longer is), with `audit` in the same transaction.
    pub async fn set_compliance(
        &self,
        resource: &str,
        tenant: &TenantId,
        reasons: &[String],
        audit: &AuditEntry,
        now: i64,
    ) -> StoreResult<bool> {
        let statement = if reasons.is_empty() {
            sqlx::query("DELETE FROM resource_compliance WHERE resource_id = $1").bind(resource)
        } else {
            sqlx::query(
                "INSERT INTO resource_compliance (resource_id, tenant_id, reasons, since) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (resource_id) DO UPDATE SET reasons = excluded.reasons, since = excluded.since",
            )
            .bind(resource)
            .bind(tenant.as_str())
            .bind(serde_json::to_string(reasons).unwrap_or_else(|_| "[]".to_owned()))
            .bind(now)
        };
        change_audited(self, statement, Some(audit), now).await
    }
}
