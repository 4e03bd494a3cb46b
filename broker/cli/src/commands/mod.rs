//! One module per subcommand.

pub mod audit_verify;
pub mod config_check;
pub mod conformance;
pub mod invoice;
pub mod member_sim;
pub mod migrate;
pub mod reconcile;
pub mod serve;
pub mod token;
pub mod usage;

use std::collections::BTreeMap;

use alliance_service::config::Config;

use crate::Common;

/// The process environment as a map (read once, here).
pub fn env_map() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

/// Loads the config named by `common` and applies `ALLIANCE_*` overrides.
pub fn load_config(common: &Common) -> anyhow::Result<Config> {
    let mut config = Config::load(common.config.as_deref())?;
    config.apply_env(&env_map())?;
    Ok(config)
}

/// The config named by `common` and the database URL it resolves to in the data dir.
pub fn config_and_database(common: &Common) -> anyhow::Result<(Config, String)> {
    let config = load_config(common)?;
    let url = alliance_service::store::resolve_url(&config.database.url, &common.data_dir);
    Ok((config, url))
}

/// A single-threaded runtime for short commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}
