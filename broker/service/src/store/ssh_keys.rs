//! Tenants' SSH public keys, each under the tenant's name for it.
//!
//! Every query takes a `TenantScope`: another tenant's key is not found. A name is taken
//! once per tenant: the insert itself says whether it was (no check-then-insert race), and
//! each change commits with its audit event.

use sqlx::any::AnyRow;

use super::audit::{change_audited, AuditEntry};
use super::{col, Store, StoreResult, TenantScope};

/// A key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKeyRow {
    /// The tenant's name for it.
    pub name: String,
    /// Its algorithm, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The OpenSSH public key line.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// ms.
    pub created_at: i64,
}

fn ssh_key_from_row(row: &AnyRow) -> StoreResult<SshKeyRow> {
    Ok(SshKeyRow {
        name: col(row, "name")?,
        algorithm: col(row, "algorithm")?,
        public_key: col(row, "public_key")?,
        fingerprint: col(row, "fingerprint")?,
        created_at: col(row, "created_at")?,
    })
}

impl Store {
    /// Stores a key with its audit event; `false` when the tenant has one by that name.
    pub async fn insert_ssh_key(
        &self,
        scope: &TenantScope,
        key: &SshKeyRow,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let statement = sqlx::query(
            "INSERT INTO ssh_keys (tenant_id, name, algorithm, public_key, fingerprint, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(scope.tenant().as_str())
        .bind(&key.name)
        .bind(&key.algorithm)
        .bind(&key.public_key)
        .bind(&key.fingerprint)
        .bind(key.created_at);
        change_audited(self, statement, Some(audit), key.created_at).await
    }

    /// One of the tenant's keys.
    pub async fn ssh_key(&self, scope: &TenantScope, name: &str) -> StoreResult<Option<SshKeyRow>> {
        let row = sqlx::query("SELECT * FROM ssh_keys WHERE tenant_id = $1 AND name = $2")
            .bind(scope.tenant().as_str())
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(ssh_key_from_row).transpose()
    }

    /// The tenant's keys after `after` (by name), at most `limit`.
    pub async fn ssh_keys(
        &self,
        scope: &TenantScope,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<SshKeyRow>> {
        let rows = sqlx::query(
            "SELECT * FROM ssh_keys WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT $3",
        )
        .bind(scope.tenant().as_str())
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(ssh_key_from_row).collect()
    }

    /// Deletes one of the tenant's keys with its audit event; `false` when there was none.
    pub async fn delete_ssh_key(
        &self,
        scope: &TenantScope,
        name: &str,
        audit: &AuditEntry,
        now: i64,
    ) -> StoreResult<bool> {
        let statement = sqlx::query("DELETE FROM ssh_keys WHERE tenant_id = $1 AND name = $2")
            .bind(scope.tenant().as_str())
            .bind(name);
        change_audited(self, statement, Some(audit), now).await
    }
}
