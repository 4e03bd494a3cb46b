//! Signed checkpoints of the audit chain, so that truncation shows as well as edits.
//!
//! The hash chain (`store::audit`) shows an event changed, removed or reordered in the
//! middle, but not events removed from its end: a shorter chain is still a valid chain. So
//! the broker signs the chain's head (sequence and hash) at least every
//! `security.audit_checkpoint_interval_ms` and at shutdown, with the audit key, a P-256
//! key kept in a file outside the database (`security.audit_key_file`, else
//! `<data-dir>/audit-key.pem`). [`verify`] then fails when the log is shorter than a
//! checkpoint or disagrees with one.
//!
//! What it protects against: someone who can write the database but not read the key file
//! (an SQL injection, a stolen database credential, a restored old backup) cannot remove
//! the newest events unseen, since checkpoints kept elsewhere (fetched from
//! `GET /v1/audit/checkpoint`) or still in the database name them. What it does not: someone
//! holding both the database and the key can rewrite the log and sign new checkpoints; and
//! events after the newest checkpoint can be removed together with nothing noticing until
//! the next one is signed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine;
use ring::signature::{EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::keyfile::{load_or_create_p256, load_p256, KeyFileError};
use crate::config::SecurityConfig;
use crate::store::{ChainBreak, Store, StoreResult};

/// The key file name inside the data dir when the config names none.
pub const KEY_FILE: &str = "audit-key.pem";

/// A signed checkpoint: the audit chain held event `seq` with `hash` at `at`. A tenant's
/// checkpoint adds how many of its own events the chain held up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The sequence number of the chain's newest event.
    pub seq: i64,
    /// That event's hash.
    pub hash: String,
    /// When it was signed (RFC 3339).
    pub at: String,
    /// For a tenant's view: the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// For a tenant's view: the number of the tenant's events up to `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_events: Option<u64>,
    /// The signing key: the first 16 hex digits of SHA-256 over its public key.
    pub key_id: String,
    /// ECDSA P-256 SHA-256 over [`Checkpoint::signed_text`], base64url without padding.
    pub signature: String,
}

impl Checkpoint {
    /// The exact text the signature covers.
    pub fn signed_text(&self) -> String {
        format!(
            "alliance-audit-checkpoint/1\nseq={}\nhash={}\nat={}\ntenant={}\ntenant_events={}\n",
            self.seq,
            self.hash,
            self.at,
            self.tenant.as_deref().unwrap_or("-"),
            self.tenant_events
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
        )
    }
}

/// The audit key.
pub struct AuditKey {
    pair: EcdsaKeyPair,
    key_id: String,
    path: PathBuf,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("path", &self.path)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Where the config puts the key: `security.audit_key_file` (relative to the data dir
    /// when relative), else `<data-dir>/audit-key.pem`.
    pub fn path(security: &SecurityConfig, data_dir: &Path) -> PathBuf {
        match &security.audit_key_file {
            Some(file) if file.is_absolute() => file.clone(),
            Some(file) => data_dir.join(file),
            None => data_dir.join(KEY_FILE),
        }
    }

    /// Loads the key, creating it on first use (`serve`).
    pub fn load_or_create(path: &Path) -> Result<Self, KeyFileError> {
        let (_, pair) = load_or_create_p256(path)?;
        Ok(Self::from_pair(pair, path))
    }

    /// Loads an existing key (`audit verify`, which must never make one up).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let (_, pair) = load_p256(path)?;
        Ok(Self::from_pair(pair, path))
    }

    fn from_pair(pair: EcdsaKeyPair, path: &Path) -> Self {
        let digest = Sha256::digest(pair.public_key().as_ref());
        Self {
            key_id: hex::encode(&digest[..8]),
            pair,
            path: path.to_path_buf(),
        }
    }

    /// This key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs a checkpoint of (`seq`, `hash`) at `at_ms`, for a tenant's view when `tenant`
    /// is given with its event count.
    pub fn sign(
        &self,
        seq: i64,
        hash: &str,
        at_ms: i64,
        tenant: Option<(String, u64)>,
    ) -> Result<Checkpoint, String> {
        let (tenant, tenant_events) = match tenant {
            Some((t, n)) => (Some(t), Some(n)),
            None => (None, None),
        };
        let mut checkpoint = Checkpoint {
            seq,
            hash: hash.to_owned(),
            at: crate::time::rfc3339(at_ms),
            tenant,
            tenant_events,
            key_id: self.key_id.clone(),
            signature: String::new(),
        };
        let signature = self
            .pair
            .sign(
                &ring::rand::SystemRandom::new(),
                checkpoint.signed_text().as_bytes(),
            )
            .map_err(|_| "cannot sign an audit checkpoint".to_owned())?;
        checkpoint.signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.as_ref());
        Ok(checkpoint)
    }

    /// Whether `checkpoint` carries this key's valid signature.
    pub fn verifies(&self, checkpoint: &Checkpoint) -> bool {
        let Ok(signature) =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&checkpoint.signature)
        else {
            return false;
        };
        checkpoint.key_id == self.key_id
            && UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
                .verify(checkpoint.signed_text().as_bytes(), &signature)
                .is_ok()
    }
}

/// Signs and stores a checkpoint of the chain's head when the chain has grown since the
/// newest checkpoint; the new checkpoint, if any. Replicas may race: one row per sequence.
pub async fn checkpoint_now(
    store: &Store,
    key: &AuditKey,
    now_ms: i64,
) -> anyhow::Result<Option<Checkpoint>> {
    let Some((seq, hash)) = store.audit_head().await? else {
        return Ok(None);
    };
    // A newest row that the key did not sign (written into the database by someone else)
    // does not stop the signing: verify reports it.
    if store
        .latest_checkpoint()
        .await?
        .is_some_and(|latest| latest.seq >= seq && key.verifies(&latest))
    {
        return Ok(None);
    }
    let checkpoint = key
        .sign(seq, &hash, now_ms, None)
        .map_err(anyhow::Error::msg)?;
    store.insert_checkpoint(&checkpoint, now_ms).await?;
    Ok(Some(checkpoint))
}

/// How the log stands against its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Intact: the events, and the checkpoints checked.
    Intact {
        /// Events in the chain.
        events: u64,
        /// Checkpoints checked.
        checkpoints: usize,
    },
    /// The chain itself is broken.
    Broken(ChainBreak),
    /// A checkpoint no longer matches the log (the newest such is named).
    Mismatch {
        /// The checkpoint.
        checkpoint: Checkpoint,
        /// Why.
        reason: String,
    },
}

/// Verifies the chain and every checkpoint: those stored, and `extra` (files kept outside).
/// Every checkpoint must carry the audit key's signature and name an event the log still
/// holds with the same hash (and, for a tenant's, as many of its events up to it).
pub async fn verify(store: &Store, key: &AuditKey, extra: &[Checkpoint]) -> StoreResult<Verdict> {
    let mut checkpoints = store.checkpoints().await?;
    checkpoints.extend(extra.iter().cloned());
    let wanted: BTreeSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let summary = match store.verify_audit_chain_at(&wanted).await? {
        Ok(summary) => summary,
        Err(broken) => return Ok(Verdict::Broken(broken)),
    };
    // Newest first, so the one named is the last checkpoint that no longer matches.
    checkpoints.sort_by_key(|c| std::cmp::Reverse(c.seq));
    let mut tenant_counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for checkpoint in &checkpoints {
        let reason = if !key.verifies(checkpoint) {
            Some(format!(
                "its signature is not the audit key's ({})",
                key.key_id()
            ))
        } else if checkpoint.seq > summary.last_seq {
            Some(format!(
                "the log ends at event {} but this checkpoint names event {}: events were removed from its end",
                summary.last_seq, checkpoint.seq
            ))
        } else if summary.hashes.get(&checkpoint.seq) != Some(&checkpoint.hash) {
            Some(format!(
                "event {} no longer has the hash the checkpoint signed",
                checkpoint.seq
            ))
        } else if let (Some(tenant), Some(expected)) =
            (&checkpoint.tenant, checkpoint.tenant_events)
        {
            let key = (tenant.clone(), checkpoint.seq);
            let count = match tenant_counts.get(&key) {
                Some(n) => *n,
                None => {
                    let n = store.tenant_audit_count(tenant, checkpoint.seq).await?;
                    tenant_counts.insert(key, n);
                    n
                }
            };
            (count != expected).then(|| {
                format!("the log holds {count} events of tenant {tenant} up to event {}, the checkpoint signed {expected}", checkpoint.seq)
            })
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok(Verdict::Mismatch {
                checkpoint: checkpoint.clone(),
                reason,
            });
        }
    }
    Ok(Verdict::Intact {
        events: summary.count,
        checkpoints: checkpoints.len(),
    })
}
