//! Tenants: their placement policy and display name.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use alliance_core::{DataClassName, Jurisdiction, TenantId, TenantPolicy};
use sqlx::any::AnyRow;

use super::audit::AuditEntry;
use super::{col, json_col, parsed_col, Store, StoreResult};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Policy (id, jurisdictions, default data class).
    pub policy: TenantPolicy,
    /// Display name.
    pub name: String,
    /// What its invoices are in.
    pub billing_currency: alliance_core::rates::Currency,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

fn tenant_from_row(row: &AnyRow) -> StoreResult<TenantRow> {
    let allowed: Vec<String> = json_col(row, "allowed_jurisdictions")?;
    let allowed = allowed
        .iter()
        .map(|c| Jurisdiction::parse(c))
        .collect::<Result<BTreeSet<_>, _>>()
        .map_err(|e| super::StoreError::Corrupt(format!("allowed_jurisdictions: {e}")))?;
    Ok(TenantRow {
        policy: TenantPolicy {
            id: parsed_col(row, "id", TenantId::parse)?,
            home_jurisdiction: parsed_col(row, "home_jurisdiction", Jurisdiction::parse)?,
            allowed_jurisdictions: allowed,
            default_data_class: parsed_col(row, "default_data_class", DataClassName::parse)?,
        },
        name: col(row, "name")?,
        billing_currency: parsed_col(
            row,
            "billing_currency",
            alliance_core::rates::Currency::parse,
        )?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

fn allowed_json(policy: &TenantPolicy) -> String {
    let codes: Vec<&str> = policy
        .allowed_jurisdictions
        .iter()
        .map(Jurisdiction::as_str)
        .collect();
    serde_json::to_string(&codes).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// Inserts a tenant, with its audit event in the same transaction when given; `false`
    /// when one with that id exists (it is left unchanged).
    pub async fn insert_tenant(
        &self,
        policy: &TenantPolicy,
        name: &str,
        billing_currency: &alliance_core::rates::Currency,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let statement = sqlx::query(
            "INSERT INTO tenants (id, name, home_jurisdiction, allowed_jurisdictions, default_data_class, created_at, updated_at, billing_currency) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(policy.id.as_str())
        .bind(name)
        .bind(policy.home_jurisdiction.as_str())
        .bind(allowed_json(policy))
        .bind(policy.default_data_class.as_str())
        .bind(now)
        .bind(billing_currency.as_str());
        super::audit::change_audited(self, statement, audit, now).await
    }

    /// Replaces a tenant's policy and name, with its audit event in the same transaction
    /// when given; `false` when it does not exist.
    pub async fn update_tenant(
        &self,
        policy: &TenantPolicy,
        name: &str,
        billing_currency: &alliance_core::rates::Currency,
        now: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let statement = sqlx::query(
            "UPDATE tenants SET name = $2, home_jurisdiction = $3, allowed_jurisdictions = $4, \
             default_data_class = $5, billing_currency = $7, \
             updated_at = CASE WHEN $6 > updated_at THEN $6 ELSE updated_at + 1 END WHERE id = $1",
        )
        .bind(policy.id.as_str())
        .bind(name)
        .bind(policy.home_jurisdiction.as_str())
        .bind(allowed_json(policy))
        .bind(policy.default_data_class.as_str())
        .bind(now)
        .bind(billing_currency.as_str());
        let changed = super::audit::change_audited(self, statement, audit, now).await;
        self.tenants.forget(&policy.id);
        changed
    }

    /// One tenant as this replica last read it (at most `CACHED_FOR` ago), for placing a
    /// creation: its `updated_at` goes with the creation as `Journal::tenant_version`, and
    /// the creation commits only if the tenant has not changed since, on any replica.
    pub async fn tenant_for_placement(&self, id: &TenantId) -> StoreResult<Option<Arc<TenantRow>>> {
        if let Some(row) = self.tenants.rows.get(id.as_str()) {
            return Ok(Some(row));
        }
        self.tenant_afresh(id).await
    }

    /// One tenant read now, replacing what `tenant_for_placement` had.
    pub async fn tenant_afresh(&self, id: &TenantId) -> StoreResult<Option<Arc<TenantRow>>> {
        let Some(row) = self.tenant(id).await? else {
            self.tenants.forget(id);
            return Ok(None);
        };
        let row = Arc::new(row);
        self.tenants
            .rows
            .insert(id.as_str().to_owned(), row.clone());
        Ok(Some(row))
    }

    /// One tenant.
    pub async fn tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRow>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// Tenants after `after` by id, at most `limit`.
    pub async fn tenants(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<TenantRow>> {
        let rows = sqlx::query("SELECT * FROM tenants WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }
}

/// How long a replica places creations on a tenant row it read before, without reading it
/// again. Correctness does not depend on it (a creation placed on an older version is not
/// committed, and is placed again on the new one); it bounds the memory and how long an
/// idle entry lives.
const CACHED_FOR: Duration = Duration::from_secs(60);

/// Tenants read for placing creations (see `Store::tenant_for_placement`).
#[derive(Debug, Clone)]
pub(super) struct TenantCache {
    rows: moka::sync::Cache<String, Arc<TenantRow>>,
}

impl TenantCache {
    pub(super) fn new() -> Self {
        Self {
            rows: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(CACHED_FOR)
                .build(),
        }
    }

    fn forget(&self, id: &TenantId) {
        self.rows.invalidate(id.as_str());
    }
}
