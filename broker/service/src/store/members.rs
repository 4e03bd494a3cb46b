//! Members' lifecycle status, shared by every replica. The catalogue itself (jurisdictions,
//! certifications, adapter) comes from config.

use std::collections::BTreeMap;

use alliance_core::{Jurisdiction, MemberId, MemberStatus, ResourceStatus, ResourceType, TenantId};

use super::{col, parsed_col, Store, StoreError, StoreResult};

impl Store {
    /// Records a member as active unless it is already known.
    pub async fn seed_member(&self, id: &MemberId, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO members (id, status, created_at, updated_at) VALUES ($1, 'active', $2, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every member's lifecycle status.
    pub async fn member_statuses(&self) -> StoreResult<BTreeMap<MemberId, MemberStatus>> {
        let rows = sqlx::query("SELECT id, status FROM members")
            .fetch_all(&self.read)
            .await?;
        let mut out = BTreeMap::new();
        for row in &rows {
            let id: String = col(row, "id")?;
            let status: String = col(row, "status")?;
            let id = MemberId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let status = MemberStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("member status `{status}`")))?;
            out.insert(id, status);
        }
        Ok(out)
    }

    /// Live resources per member (anything not deleted), for placement's load ranking.
    pub async fn member_loads(&self) -> StoreResult<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT member_id, COUNT(*) AS n FROM resources WHERE status <> 'deleted' GROUP BY member_id",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out = BTreeMap::new();
        for row in &rows {
            out.insert(col::<String>(row, "member_id")?, col::<i64>(row, "n")?);
        }
        Ok(out)
    }
}

/// One resource as the broker's books hold it at a member, for drift detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHolding {
    /// Broker id.
    pub id: String,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Kind.
    pub resource_type: ResourceType,
    /// Jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// Broker status.
    pub status: ResourceStatus,
    /// The member's id for it.
    pub member_resource_id: Option<String>,
    /// ms.
    pub created_at: i64,
}

impl Store {
    /// Every resource the books place on `member` (deleted ones too, for drift).
    pub async fn member_holdings(
        &self,
        member: &str,
        include_deleted: bool,
    ) -> StoreResult<Vec<MemberHolding>> {
        self.member_holdings_after(member, include_deleted, "", i64::MAX)
            .await
    }

    /// At most `limit` of the member's resources with an id after `after`, by id.
    pub async fn member_holdings_after(
        &self,
        member: &str,
        include_deleted: bool,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<MemberHolding>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, resource_type, jurisdiction, status, member_resource_id, created_at FROM resources \
             WHERE member_id = $1 AND ($2 = 1 OR status <> 'deleted') AND id > $3 ORDER BY id LIMIT $4",
        )
        .bind(member)
        .bind(i64::from(include_deleted))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberHolding {
                    id: col(row, "id")?,
                    tenant_id: parsed_col(row, "tenant_id", TenantId::parse)?,
                    resource_type: parsed_col(row, "resource_type", ResourceType::parse)?,
                    jurisdiction: parsed_col(row, "jurisdiction", Jurisdiction::parse)?,
                    status: parsed_col(row, "status", ResourceStatus::parse)?,
                    member_resource_id: col(row, "member_resource_id")?,
                    created_at: col(row, "created_at")?,
                })
            })
            .collect()
    }

    /// Stores a member's drift report and, when `audit` makes one from the previous report,
    /// its audit event, in one transaction; returns the previous report.
    pub async fn put_drift_report(
        &self,
        member: &str,
        report: &serde_json::Value,
        now: i64,
        audit: impl FnOnce(Option<&serde_json::Value>) -> Option<super::AuditEntry>,
    ) -> StoreResult<Option<serde_json::Value>> {
        let mut tx = self.write.begin().await?;
        let raw: Option<String> =
            sqlx::query_scalar("SELECT report FROM drift_reports WHERE member_id = $1")
                .bind(member)
                .fetch_optional(&mut *tx)
                .await?;
        let previous = raw
            .map(|r| {
                serde_json::from_str(&r)
                    .map_err(|e| StoreError::Corrupt(format!("drift report: {e}")))
            })
            .transpose()?;
        sqlx::query(
            "INSERT INTO drift_reports (member_id, checked_at, report) VALUES ($1, $2, $3) \
             ON CONFLICT (member_id) DO UPDATE SET checked_at = excluded.checked_at, report = excluded.report",
        )
        .bind(member)
        .bind(now)
        .bind(report.to_string())
        .execute(&mut *tx)
        .await?;
        let entry = audit(previous.as_ref());
        super::audit::commit_audited(tx, self.backend, true, entry.as_ref(), now).await?;
        Ok(previous)
    }

    /// The latest drift report of a member.
    pub async fn drift_report(&self, member: &str) -> StoreResult<Option<serde_json::Value>> {
        let raw: Option<String> =
            sqlx::query_scalar("SELECT report FROM drift_reports WHERE member_id = $1")
                .bind(member)
                .fetch_optional(&self.read)
                .await?;
        raw.map(|r| {
            serde_json::from_str(&r).map_err(|e| StoreError::Corrupt(format!("drift report: {e}")))
        })
        .transpose()
    }

    /// Runs `job` only if no other replica runs the job named `key` right now (a
    /// PostgreSQL advisory lock; SQLite has one process). `None` when another holds it.
    pub async fn singleton<F, T>(&self, key: i64, job: F) -> StoreResult<Option<T>>
    where
        F: std::future::Future<Output = T>,
    {
        if self.backend == super::Backend::Sqlite {
            return Ok(Some(job.await));
        }
        let mut conn = self.write.acquire().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut *conn)
            .await?;
        if !locked {
            return Ok(None);
        }
        let out = job.await;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(Some(out))
    }
}
