//! Hot point reads on SQLite, run on the calling thread through rusqlite.
//!
//! sqlx runs each SQLite connection on a thread of its own, so every query through the
//! pool is two thread hand-offs; with the broker on one core, a `GET` of a resource spent
//! more time switching threads than answering (`docs/benchmarks.md`). A point read by
//! primary key in WAL mode takes microseconds and never waits for the writer, so the few
//! reads on the request path run here, on the worker thread that asked, with prepared
//! statements cached per connection. Idle connections are kept in a small stack; at most
//! one per thread is in use at a time, since nothing awaits while holding one.
//!
//! Any failure here (the file cannot be opened, the database is busy past a short
//! timeout) is not an answer: the caller runs the same query through the sqlx pool, which
//! waits and reports as every other query does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Params, Row};

use super::{Columns, Select, StoreError, StoreResult};

/// How long a native read waits on a lock before it hands the query to the pool.
const BUSY: Duration = Duration::from_millis(20);

/// The most idle connections kept.
const KEEP: usize = 16;

/// Native readers of one SQLite file.
#[derive(Clone)]
pub(super) struct NativeReads {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl std::fmt::Debug for NativeReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeReads")
            .field("path", &self.path)
            .finish()
    }
}

impl NativeReads {
    /// Readers of the database file at `path` (which the pools have created).
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY)?;
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -8000;")?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Runs `read` on an idle connection (or a new one); `None` when SQLite failed, for
    /// the caller to ask the pool instead.
    fn with<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let taken = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match taken {
            Some(conn) => conn,
            None => self.open().ok()?,
        };
        let result = read(&conn);
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < KEEP {
                idle.push(conn);
            }
        }
        result.ok()
    }

    /// At most one row of `select`, mapped by `map`; `None` when SQLite failed. Columns
    /// are found by their position in the statement, not by asking SQLite each one's name.
    pub(super) fn optional<T>(
        &self,
        select: &Select,
        params: impl Params,
        map: impl Fn(&Listed<'_, '_>) -> StoreResult<T>,
    ) -> Option<StoreResult<Option<T>>> {
        self.with(|conn| {
            let mut statement = conn.prepare_cached(select.sql())?;
            let mut rows = statement.query(params)?;
            Ok(match rows.next()? {
                Some(row) => map(&Listed {
                    row,
                    columns: select.columns,
                })
                .map(Some),
                None => Ok(None),
            })
        })
    }
}

/// A native row whose columns are known by position.
pub(super) struct Listed<'a, 'r> {
    row: &'a Row<'r>,
    columns: &'static [&'static str],
}

impl Listed<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> StoreResult<T> {
        let index = self
            .columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| StoreError::Corrupt(format!("{name}: not selected")))?;
        self.row
            .get(index)
            .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
    }
}

impl Columns for Listed<'_, '_> {
    fn opt_string(&self, name: &str) -> StoreResult<Option<String>> {
        self.get(name)
    }

    fn int(&self, name: &str) -> StoreResult<i64> {
        self.get(name)
    }
}

#[cfg(test)]
mod tests {
    use alliance_core::{OperationKind, ResourceType, TenantId};

    use super::super::operations::{new_operation, operation_from_row};
    use super::super::resources::{resource_from_row, Journal};
    use super::super::tests::{new_resource, sqlite_store};
    use super::super::TenantScope;
    use super::*;

    #[tokio::test]
    async fn native_reads_answer_what_the_pool_answers_and_step_aside_when_they_cannot() {
        let (store, _dir) = sqlite_store().await;
        let native = store
            .native
            .clone()
            .expect("a SQLite file has native reads");
        let acme = TenantScope::new(TenantId::parse("acme").expect("id"));
        let op = new_operation(
            "op-1",
            acme.tenant(),
            "bkt-1",
            ResourceType::Bucket,
            OperationKind::Create,
            100,
        );
        store
            .create_resource(
                &new_resource("bkt-1", "acme"),
                &op,
                10_000,
                &Journal::default(),
            )
            .await
            .expect("create");
        let pooled = sqlx::query("SELECT * FROM resources WHERE id = 'bkt-1'")
            .fetch_one(&store.read)
            .await
            .expect("pool read");
        let natively = store
            .resource(&acme, ResourceType::Bucket, "bkt-1")
            .await
            .expect("read")
            .expect("found");
        assert_eq!(natively, resource_from_row(&pooled).expect("row"));
        let pooled = sqlx::query("SELECT * FROM operations WHERE id = 'op-1'")
            .fetch_one(&store.read)
            .await
            .expect("pool read");
        let natively = store
            .operation(&acme, "op-1")
            .await
            .expect("read")
            .expect("found");
        assert_eq!(natively, operation_from_row(&pooled).expect("row"));
        // The wrong type is not found natively either (another tenant's id: store tests).
        assert!(store
            .resource(&acme, ResourceType::Volume, "bkt-1")
            .await
            .expect("read")
            .is_none());
        // A column the statement does not select is a corrupt row, never a wrong value.
        static ID_ONLY: Select = Select::new(&["id"], "resources");
        let read = native.optional(&ID_ONLY, (), |row| row.int("created_at"));
        assert!(matches!(read, Some(Err(StoreError::Corrupt(_)))));
        // A file that cannot be opened is no answer: the caller asks the pool.
        let missing = NativeReads::new(PathBuf::from("/nonexistent/dir/alliance.db"));
        assert!(missing
            .optional(&Select::new(&["x"], "resources"), (), |row| row.int("x"))
            .is_none());
    }
}
