//! The store: sqlx on SQLite or PostgreSQL, chosen by the database URL.
//!
//! Handlers never hold SQL; they call the repositories in this module, and every query on a
//! tenant's data takes a [`TenantScope`], so that a cross-tenant read does not compile.
//! One code path serves both backends through sqlx's `Any` driver; the few statements whose
//! dialects differ (row locks, advisory locks) branch on [`Backend`].
//!
//! SQLite runs in WAL mode with a single writer connection (writes queue in the pool instead
//! of failing with SQLITE_BUSY) beside a pool of readers; the point reads of the request
//! path run on the calling thread instead ([`native`]). PostgreSQL uses one pool, claims
//! work with `FOR UPDATE SKIP LOCKED` and serialises audit appends with an advisory lock.

mod audit;
mod batch;
mod changes;
mod checkpoints;
mod compliance;
mod grouped;
mod idempotency;
mod members;
mod migrations;
mod native;
mod operations;
mod partners;
mod resources;
mod ssh_keys;
mod statements;
mod tenants;
mod usage;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use alliance_core::TenantId;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};

pub use audit::{AuditEntry, AuditEvent, AuditFilter, ChainBreak, ChainSummary};
pub use changes::{ChangeStart, OperationParams, ResourceSettings, ResourceUpdate};
pub use idempotency::{IdempotencyClaim, IdempotencyKeyRecord, StoredResponse};
pub use members::MemberHolding;
pub use operations::{new_operation, ClaimedOperation, Finish, OperationRow, OperationStep};
pub use partners::{ApplicationRow, Transition};
pub use resources::{
    DeleteStart, Journal, NewResource, ResidencyRow, ResourceRow, StoredPlacement,
};
pub use ssh_keys::SshKeyRow;
pub use tenants::TenantRow;

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, a file in the data dir.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Store failures, classified for the API.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// A query failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Stored data could not be read back (a bug or a hand edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Self::Unavailable(err),
            other => Self::Database(other),
        }
    }
}

/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// Proof that a query is about one tenant's data: built only from an authenticated
/// principal (or by the engine from a row it owns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope(TenantId);

impl TenantScope {
    /// Builds a scope; callers outside the auth layer and the engine must not.
    pub(crate) fn new(tenant: TenantId) -> Self {
        Self(tenant)
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.0
    }
}

/// The store handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, writes).
    read: AnyPool,
    /// Writes: on SQLite a single connection, on PostgreSQL the same pool as reads.
    write: AnyPool,
    backend: Backend,
    /// Group commit of the hot-path writes.
    batcher: batch::Batcher,
    /// SQLite (a file): the hot point reads on the calling thread.
    native: Option<native::NativeReads>,
    /// Tenants as last read, for placing creations: each creation is committed only if the
    /// tenant's version is still the one it was placed with (`tenants.rs`).
    tenants: tenants::TenantCache,
}

/// Resolves a `sqlite://FILE` URL against the data dir; other URLs pass through.
pub fn resolve_url(url: &str, data_dir: &Path) -> String {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if rest == ":memory:" || rest.starts_with('/') {
            return format!("sqlite://{rest}");
        }
        let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = data_dir.join(file);
        let query = if query.is_empty() {
            "mode=rwc".to_owned()
        } else {
            query.to_owned()
        };
        return format!("sqlite://{}?{query}", path.display());
    }
    url.to_owned()
}

impl Store {
    /// Connects; `url` must already be resolved (see [`resolve_url`]).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            // Create the file (and WAL mode) before the pools open it.
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .map_err(StoreError::Database)?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
            let file = options.get_filename().to_path_buf();
            let native = (!url.contains("mode=memory") && file.as_os_str() != ":memory:")
                .then(|| native::NativeReads::new(file));
            let first = sqlx::ConnectOptions::connect(&options).await?;
            sqlx::Connection::close(first).await.ok();
            let pragmas = |pool: AnyPoolOptions| {
                pool.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        conn.execute("PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32000;")
                            .await
                            .map(|_| ())
                    })
                })
            };
            let write = pragmas(
                AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(10)),
            )
            .connect(url)
            .await?;
            let read = pragmas(
                AnyPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10)),
            )
            .connect(url)
            .await?;
            let batcher = batch::Batcher::start(write.clone(), Backend::Sqlite);
            Ok(Self {
                read,
                write,
                backend: Backend::Sqlite,
                batcher,
                native,
                tenants: tenants::TenantCache::new(),
            })
        } else {
            let pool = AnyPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            let batcher = batch::Batcher::start(pool.clone(), Backend::Postgres);
            Ok(Self {
                read: pool.clone(),
                write: pool,
                backend: Backend::Postgres,
                batcher,
                native: None,
                tenants: tenants::TenantCache::new(),
            })
        }
    }

    /// Applies the migrations of this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        migrations::migrator(self.backend)
            .await?
            .run(&self.write)
            .await?;
        Ok(())
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Reads a column, mapping a decode failure to [`StoreError::Corrupt`].
pub(crate) fn col<T>(row: &AnyRow, name: &str) -> StoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Row::try_get(row, name).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

/// Parses a JSON column.
pub(crate) fn json_col<T: serde::de::DeserializeOwned>(row: &AnyRow, name: &str) -> StoreResult<T> {
    row.json(name)
}

/// Decodes the JSON text of column `name`.
fn decode_json<T: serde::de::DeserializeOwned>(name: &str, raw: &str) -> StoreResult<T> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

/// A point read's statement: `SELECT <columns> FROM <from>`, built once. Both drivers run
/// the same text; the native reads find its columns by position ([`native`]).
pub(crate) struct Select {
    columns: &'static [&'static str],
    from: &'static str,
    sql: std::sync::OnceLock<String>,
}

impl Select {
    /// `columns` in the order selected; `from` is the rest of the statement.
    pub(crate) const fn new(columns: &'static [&'static str], from: &'static str) -> Self {
        Self {
            columns,
            from,
            sql: std::sync::OnceLock::new(),
        }
    }

    /// The statement.
    pub(crate) fn sql(&self) -> &str {
        self.sql
            .get_or_init(|| format!("SELECT {} FROM {}", self.columns.join(", "), self.from))
    }
}

/// The columns of a row, whichever driver read it: the row mappers of the hot reads are
/// written once over this, for sqlx's rows and for the native reads' ([`native`]).
pub(crate) trait Columns {
    /// A text column that may be NULL.
    fn opt_string(&self, name: &str) -> StoreResult<Option<String>>;

    /// An integer column.
    fn int(&self, name: &str) -> StoreResult<i64>;

    /// A text column that must not be NULL.
    fn string(&self, name: &str) -> StoreResult<String> {
        self.opt_string(name)?
            .ok_or_else(|| StoreError::Corrupt(format!("{name}: NULL")))
    }

    /// A text column parsed by `parse`.
    fn parsed<T, E: std::fmt::Display>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> StoreResult<T> {
        let raw = self.string(name)?;
        parse(&raw).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
    }

    /// A JSON column.
    fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> StoreResult<T> {
        decode_json(name, &self.string(name)?)
    }

    /// A JSON column that may be NULL, `T::default()` then.
    fn opt_json<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> StoreResult<T> {
        self.opt_string(name)?
            .map_or_else(|| Ok(T::default()), |raw| decode_json(name, &raw))
    }
}

impl Columns for AnyRow {
    fn opt_string(&self, name: &str) -> StoreResult<Option<String>> {
        col(self, name)
    }

    fn int(&self, name: &str) -> StoreResult<i64> {
        col(self, name)
    }
}

/// Parses a column through `FromStr`-like parsing.
pub(crate) fn parsed_col<T, E: std::fmt::Display>(
    row: &AnyRow,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> StoreResult<T> {
    row.parsed(name, parse)
}

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_batch;
#[cfg(test)]
mod tests_changes;
