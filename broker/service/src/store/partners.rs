//! Partner applications and the members they become, and member lifecycle transitions.

use alliance_core::{ApplicationStatus, MemberId, MemberStatus};
use sqlx::any::AnyRow;

use super::audit::{self, AuditEntry};
use super::{col, parsed_col, Store, StoreError, StoreResult};
use crate::members::MemberDefinition;

/// A partner application as stored (credentials stay sealed).
#[derive(Debug, Clone, PartialEq)]
pub struct ApplicationRow {
    /// Application id.
    pub id: String,
    /// The member it would create.
    pub member_id: String,
    /// Who submitted it (issuer|subject).
    pub submitted_by: String,
    /// conformance_running | conformance_failed | awaiting_approval | approved | rejected.
    pub status: ApplicationStatus,
    /// The self-description without credentials.
    pub description: serde_json::Value,
    /// Sealed credentials.
    pub credentials: Option<String>,
    /// The conformance report.
    pub conformance: Option<serde_json::Value>,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// ms.
    pub created_at: i64,
    /// ms.
    pub updated_at: i64,
}

/// How a lifecycle transition went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// No such member.
    NotFound,
    /// Not allowed from the current status.
    Refused(String),
    /// Retiring a member that still holds resources.
    HasResources(i64),
    /// Done.
    Done,
}

fn application_from_row(row: &AnyRow) -> StoreResult<ApplicationRow> {
    let json = |name: &str| -> StoreResult<Option<serde_json::Value>> {
        let raw: Option<String> = col(row, name)?;
        raw.map(|r| {
            serde_json::from_str(&r).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
        })
        .transpose()
    };
    Ok(ApplicationRow {
        id: col(row, "id")?,
        member_id: col(row, "member_id")?,
        submitted_by: col(row, "submitted_by")?,
        status: parsed_col(row, "status", ApplicationStatus::parse)?,
        description: json("description")?.unwrap_or(serde_json::Value::Null),
        credentials: col(row, "credentials")?,
        conformance: json("conformance")?,
        decided_by: col(row, "decided_by")?,
        reason: col(row, "reason")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

impl Store {
    /// Stores a new application (status `conformance_running`) with its audit event.
    pub async fn insert_application(
        &self,
        row: &ApplicationRow,
        audit_entry: &AuditEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        // One live application per member id (a partial unique index): a concurrent one
        // inserts nothing, atomically.
        let inserted = sqlx::query(
            "INSERT INTO partner_applications (id, member_id, submitted_by, status, description, credentials, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
        )
        .bind(&row.id)
        .bind(&row.member_id)
        .bind(&row.submitted_by)
        .bind(row.status.as_str())
        .bind(row.description.to_string())
        .bind(row.credentials.as_deref())
        .bind(row.created_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        audit::append_all(
            &mut tx,
            self.backend,
            std::slice::from_ref(audit_entry),
            row.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// One application.
    pub async fn application(&self, id: &str) -> StoreResult<Option<ApplicationRow>> {
        let row = sqlx::query("SELECT * FROM partner_applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(application_from_row).transpose()
    }

    /// Applications in a status (e.g. to resume conformance runs after a restart).
    pub async fn applications_in(
        &self,
        status: ApplicationStatus,
    ) -> StoreResult<Vec<ApplicationRow>> {
        let rows = sqlx::query("SELECT * FROM partner_applications WHERE status = $1 ORDER BY id")
            .bind(status.as_str())
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(application_from_row).collect()
    }

    /// Whether a member id is taken: a member, or an application not refused.
    pub async fn member_id_taken(&self, id: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM members WHERE id = $1) + \
             (SELECT COUNT(*) FROM partner_applications WHERE member_id = $1 AND status NOT IN ('rejected', 'conformance_failed'))",
        )
        .bind(id)
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    /// Records a conformance outcome; only from `conformance_running`.
    pub async fn set_conformance(
        &self,
        id: &str,
        status: ApplicationStatus,
        report: &serde_json::Value,
        audit_entry: &AuditEntry,
        now: i64,
    ) -> StoreResult<bool> {
        let statement = sqlx::query(
            "UPDATE partner_applications SET status = $2, conformance = $3, updated_at = $4 WHERE id = $1 AND status = 'conformance_running'",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(report.to_string())
        .bind(now);
        audit::change_audited(self, statement, Some(audit_entry), now).await
    }

    /// Approves an application awaiting approval and creates its member (active), in one
    /// transaction; `false` when the application is not awaiting approval.
    pub async fn approve_application(
        &self,
        id: &str,
        decided_by: &str,
        definition: &MemberDefinition,
        credentials: Option<&str>,
        audit_entry: &AuditEntry,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE partner_applications SET status = 'approved', decided_by = $2, updated_at = $3 WHERE id = $1 AND status = 'awaiting_approval'",
        )
        .bind(id)
        .bind(decided_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let definition_json =
            serde_json::to_string(definition).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // A member of that id (from the config) may exist: nothing is approved then.
        let created = sqlx::query(
            "INSERT INTO members (id, status, created_at, updated_at, source, definition, credentials) VALUES ($1, 'active', $2, $2, 'application', $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(definition.id.as_str())
        .bind(now)
        .bind(definition_json)
        .bind(credentials)
        .execute(&mut *tx)
        .await?;
        if created.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        audit::append_all(
            &mut tx,
            self.backend,
            std::slice::from_ref(audit_entry),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Rejects an application awaiting approval or failed; `false` otherwise.
    pub async fn reject_application(
        &self,
        id: &str,
        decided_by: &str,
        reason: Option<&str>,
        audit_entry: &AuditEntry,
        now: i64,
    ) -> StoreResult<bool> {
        let statement = sqlx::query(
            "UPDATE partner_applications SET status = 'rejected', decided_by = $2, reason = $3, updated_at = $4 \
             WHERE id = $1 AND status IN ('awaiting_approval', 'conformance_failed')",
        )
        .bind(id)
        .bind(decided_by)
        .bind(reason)
        .bind(now);
        audit::change_audited(self, statement, Some(audit_entry), now).await
    }

    /// Members that joined by application: definition and sealed credentials.
    pub async fn application_members(
        &self,
    ) -> StoreResult<Vec<(MemberDefinition, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT definition, credentials FROM members WHERE source = 'application' ORDER BY id",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let raw: String = col(row, "definition")?;
                let definition = serde_json::from_str(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("member definition: {e}")))?;
                Ok((definition, col(row, "credentials")?))
            })
            .collect()
    }

    /// Moves a member from one of `from` to `to` (retiring only without live resources),
    /// with its audit event, in one transaction.
    pub async fn transition_member(
        &self,
        id: &MemberId,
        from: &[MemberStatus],
        to: MemberStatus,
        audit_entry: &AuditEntry,
        now: i64,
    ) -> StoreResult<Transition> {
        let mut tx = self.write.begin().await?;
        let current: Option<String> =
            sqlx::query_scalar("SELECT status FROM members WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(current) = current else {
            tx.rollback().await?;
            return Ok(Transition::NotFound);
        };
        if !from.iter().any(|s| s.as_str() == current) {
            tx.rollback().await?;
            return Ok(Transition::Refused(current));
        }
        if to == MemberStatus::Retired {
            let live: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM resources WHERE member_id = $1 AND status <> 'deleted'",
            )
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if live > 0 {
                tx.rollback().await?;
                return Ok(Transition::HasResources(live));
            }
        }
        sqlx::query(
            "UPDATE members SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4",
        )
        .bind(id.as_str())
        .bind(to.as_str())
        .bind(now)
        .bind(&current)
        .execute(&mut *tx)
        .await?;
        audit::append_all(
            &mut tx,
            self.backend,
            std::slice::from_ref(audit_entry),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Transition::Done)
    }
}
