//! `alliance audit verify`: recompute the audit log's hash chain.

use std::process::ExitCode;

use alliance_service::store::Store;

use crate::Common;

/// `audit verify` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
}

/// Exit 0 intact, 1 tampered (naming the first broken event), 2 error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (_, url) = super::config_and_database(&args.common)?;
    super::runtime()?.block_on(async {
        let store = Store::connect(&url, 2).await?;
        let verdict = store.verify_audit_chain().await?;
        store.close().await;
        Ok(match verdict {
            Ok(count) => {
                println!("audit log intact: {count} events");
                ExitCode::SUCCESS
            }
            Err(broken) => {
                println!("audit log TAMPERED: {broken}");
                ExitCode::from(1)
            }
        })
    })
}
