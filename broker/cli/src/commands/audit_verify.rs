//! `alliance audit verify`: recompute the audit log's hash chain and check it against the
//! signed checkpoints (those in the database, and `--checkpoint` files kept elsewhere).

use std::path::PathBuf;
use std::process::ExitCode;

use alliance_service::checkpoints::{self, AuditKey, Checkpoint, Verdict};
use alliance_service::store::Store;
use anyhow::Context;

use crate::Common;

/// `audit verify` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// A checkpoint kept outside the broker (the JSON of `GET /v1/audit/checkpoint`);
    /// may be given more than once.
    #[arg(long)]
    checkpoint: Vec<PathBuf>,
}

/// Exit 0 intact, 1 tampered or truncated (naming the first broken event, or the last
/// checkpoint that no longer matches), 2 error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (config, url) = super::config_and_database(&args.common)?;
    let mut extra = Vec::new();
    for path in &args.checkpoint {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the checkpoint {}", path.display()))?;
        let checkpoint: Checkpoint = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not an audit checkpoint (the JSON of GET /v1/audit/checkpoint)",
                path.display()
            )
        })?;
        extra.push(checkpoint);
    }
    let key_path = AuditKey::path(&config.security, &args.common.data_dir);
    super::runtime()?.block_on(async {
        let store = Store::connect(&url, 2).await?;
        let stored = store.checkpoints().await?;
        let verdict = if stored.is_empty() && extra.is_empty() && !key_path.exists() {
            store.verify_audit_chain().await?.map_or_else(Verdict::Broken, |events| {
                Verdict::Intact {
                    events,
                    checkpoints: 0,
                }
            })
        } else {
            let key = AuditKey::load(&key_path).with_context(|| {
                "checkpoints are checked with the audit key (security.audit_key_file, else audit-key.pem in the data dir)".to_owned()
            })?;
            checkpoints::verify(&store, &key, &extra).await?
        };
        store.close().await;
        Ok(match verdict {
            Verdict::Intact {
                events,
                checkpoints: 0,
            } => {
                println!("audit log intact: {events} events (no checkpoint to compare with)");
                ExitCode::SUCCESS
            }
            Verdict::Intact {
                events,
                checkpoints,
            } => {
                println!("audit log intact: {events} events, {checkpoints} signed checkpoints match");
                ExitCode::SUCCESS
            }
            Verdict::Broken(broken) => {
                println!("audit log TAMPERED: {broken}");
                ExitCode::from(1)
            }
            Verdict::Mismatch { checkpoint, reason } => {
                println!(
                    "audit log TAMPERED: checkpoint of event {} signed at {}{} no longer matches: {reason}",
                    checkpoint.seq,
                    checkpoint.at,
                    checkpoint
                        .tenant
                        .as_deref()
                        .map(|t| format!(" (tenant {t})"))
                        .unwrap_or_default(),
                );
                ExitCode::from(1)
            }
        })
    })
}
