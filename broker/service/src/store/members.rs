//! Members' lifecycle status, shared by every replica. The catalogue itself (jurisdictions,
//! certifications, adapter) comes from config.

use std::collections::BTreeMap;

use alliance_core::{MemberId, MemberStatus};

use super::{col, Store, StoreError, StoreResult};

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
