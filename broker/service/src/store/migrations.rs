//! The schema migrations, embedded in the binary.
//!
//! Listed here instead of through `sqlx::migrate!`: the macro needs sqlx's `macros` feature,
//! which compiles a second sqlx (SQLite included) for the build host, about 25 s of CPU on a
//! first build. The versions, descriptions and checksums are the ones the macro gave (the
//! version is the file's number, the checksum is SHA-384 of its text), so databases migrated
//! before keep validating. A test checks that this list is exactly the migrations directory.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use super::{Backend, StoreResult};

/// One backend's migrations: (file stem, SQL), in order.
#[derive(Debug, Clone, Copy)]
struct Embedded(&'static [(&'static str, &'static str)]);

macro_rules! embedded {
    ($dir:literal: $($stem:literal),+ $(,)?) => {
        Embedded(&[$(($stem, include_str!(concat!("../../migrations/", $dir, "/", $stem, ".sql")))),+])
    };
}

const SQLITE: Embedded = embedded!("sqlite":
    "0001_init", "0002_partners", "0003_drift", "0004_usage", "0005_reconciliation",
    "0006_ssh_keys", "0007_usable_resources", "0008_one_live_application",
    "0009_billing_currency", "0010_audit_checkpoints", "0011_resource_compliance",
);

const POSTGRES: Embedded = embedded!("postgres":
    "0001_init", "0002_partners", "0003_drift", "0004_usage", "0005_reconciliation",
    "0006_ssh_keys", "0007_usable_resources", "0008_one_live_application",
    "0009_billing_currency", "0010_audit_checkpoints", "0011_resource_compliance",
);

impl Embedded {
    fn migrations(self) -> Result<Vec<Migration>, BoxDynError> {
        self.0
            .iter()
            .map(|(stem, sql)| {
                let (version, description) = stem
                    .split_once('_')
                    .ok_or_else(|| format!("migration {stem}: no `NNNN_` prefix"))?;
                let version: i64 = version
                    .parse()
                    .map_err(|e| format!("migration {stem}: version: {e}"))?;
                Ok(Migration::new(
                    version,
                    Cow::Owned(description.replace('_', " ")),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    sql.starts_with("-- no-transaction"),
                ))
            })
            .collect()
    }
}

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { self.migrations() })
    }
}

/// The migrator of `backend`.
pub(super) async fn migrator(backend: Backend) -> StoreResult<Migrator> {
    let source = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    Ok(Migrator::new(source).await?)
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn stems_on_disk(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut stems: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|name| name.strip_suffix(".sql").map(str::to_owned))
            .collect();
        stems.sort();
        stems
    }

    #[test]
    fn the_embedded_list_is_exactly_the_migrations_directory_in_order() {
        for (dir, embedded) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let listed: Vec<String> = embedded.0.iter().map(|(s, _)| (*s).to_owned()).collect();
            assert_eq!(
                listed,
                stems_on_disk(dir),
                "{dir}: add new files to migrations.rs"
            );
            let versions: Vec<i64> = embedded
                .migrations()
                .unwrap()
                .iter()
                .map(|m| m.version)
                .collect();
            assert!(
                versions.windows(2).all(|w| w[0] < w[1]),
                "{dir}: {versions:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_checksums_are_those_of_the_files_text() {
        // What sqlx::migrate! recorded in databases migrated before: SHA-384 of the text.
        let migrator = migrator(Backend::Sqlite).await.unwrap();
        let first = migrator.iter().next().unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(first.description, "init");
        assert_eq!(
            first.checksum.as_ref(),
            Migration::new(
                1,
                "x".into(),
                MigrationType::Simple,
                SQLITE.0[0].1.into(),
                false
            )
            .checksum
            .as_ref()
        );
        assert_eq!(migrator.iter().count(), SQLITE.0.len());
    }
}
