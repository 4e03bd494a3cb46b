//! Uploaded statements and reconciliation reports.

use super::{col, Store, StoreError, StoreResult};

impl Store {
    /// Stores (or replaces) a member's statement for a period, with its audit event in the
    /// same transaction.
    pub async fn put_statement(
        &self,
        member: &str,
        period: &str,
        body: &str,
        by: &str,
        audit: &super::AuditEntry,
        now: i64,
    ) -> StoreResult<()> {
        let statement = sqlx::query(
            "INSERT INTO statements (member_id, period, body, uploaded_by, uploaded_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (member_id, period) DO UPDATE SET body = excluded.body, uploaded_by = excluded.uploaded_by, uploaded_at = excluded.uploaded_at",
        )
        .bind(member)
        .bind(period)
        .bind(body)
        .bind(by)
        .bind(now);
        super::audit::change_audited(self, statement, Some(audit), now).await?;
        Ok(())
    }

    /// An uploaded statement.
    pub async fn statement(&self, member: &str, period: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT body FROM statements WHERE member_id = $1 AND period = $2")
                .bind(member)
                .bind(period)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    /// Stores a reconciliation report.
    #[expect(
        clippy::too_many_arguments,
        reason = "one insert with every column it sets"
    )]
    pub async fn insert_reconciliation(
        &self,
        id: &str,
        member: &str,
        period: &str,
        status: &str,
        report: &serde_json::Value,
        by: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO reconciliations (id, member_id, period, status, report, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(member)
            .bind(period)
            .bind(status)
            .bind(report.to_string())
            .bind(by)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// A reconciliation report.
    pub async fn reconciliation(&self, id: &str) -> StoreResult<Option<serde_json::Value>> {
        let row = sqlx::query("SELECT report FROM reconciliations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| {
            let raw: String = col(&r, "report")?;
            serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }
}
