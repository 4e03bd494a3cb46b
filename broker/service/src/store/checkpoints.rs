//! Signed audit checkpoints (`crate::checkpoints` signs and checks them): stored one per
//! sequence number, so replicas signing the same head keep one.

use super::{col, Store, StoreResult};
use crate::checkpoints::Checkpoint;

impl Store {
    /// The chain's newest event: sequence number and hash.
    pub async fn audit_head(&self) -> StoreResult<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok((col(&r, "seq")?, col(&r, "hash")?)))
            .transpose()
    }

    /// Keeps a checkpoint (a second one for the same sequence number is ignored).
    pub async fn insert_checkpoint(&self, checkpoint: &Checkpoint, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(checkpoint.seq)
        .bind(&checkpoint.hash)
        .bind(now_ms)
        .bind(&checkpoint.key_id)
        .bind(&checkpoint.signature)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The newest checkpoint.
    pub async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        let rows = sqlx::query("SELECT * FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(checkpoint_from_row).next().transpose()
    }

    /// Every checkpoint, oldest first.
    pub async fn checkpoints(&self) -> StoreResult<Vec<Checkpoint>> {
        let rows = sqlx::query("SELECT * FROM audit_checkpoints ORDER BY seq")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    /// How many events of `tenant` the chain holds up to `seq`.
    pub async fn tenant_audit_count(&self, tenant: &str, seq: i64) -> StoreResult<u64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM audit_events WHERE tenant_id = $1 AND seq <= $2",
        )
        .bind(tenant)
        .bind(seq)
        .fetch_one(&self.read)
        .await?;
        let n: i64 = col(&row, "n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn checkpoint_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        seq: col(row, "seq")?,
        hash: col(row, "hash")?,
        at: crate::time::rfc3339(col(row, "at")?),
        tenant: None,
        tenant_events: None,
        key_id: col(row, "key_id")?,
        signature: col(row, "signature")?,
    })
}
