//! SQLite persistence: one database file in the data dir (WAL, foreign keys, busy timeout),
//! versioned forward-only migrations, and one repository module per aggregate.
//!
//! Decimals are stored as TEXT and parsed back exactly; timestamps are INTEGER ms UTC.

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

pub mod account;
pub mod backtests;
pub mod candles;
pub mod codec;
pub mod decisions;
pub mod equity;
pub mod jobs;
pub mod live_confirmations;
pub mod orders;
pub mod paper;
pub mod positions;
pub mod risk;
pub mod secret_entries;
pub mod strategies;

/// Every schema version, oldest first. Append only: a released migration is never edited.
static MIGRATIONS: LazyLock<Migrations<'static>> = LazyLock::new(|| {
    Migrations::new(vec![
        M::up(include_str!("migrations/0001_initial.sql")),
        M::up(include_str!("migrations/0002_paper_exchange.sql")),
        M::up(include_str!("migrations/0003_secrets_and_live_guard.sql")),
        M::up(include_str!("migrations/0004_trading.sql")),
        M::up(include_str!("migrations/0005_backtest_control.sql")),
        M::up(include_str!("migrations/0006_strategy_engine.sql")).foreign_key_check(),
        M::up(include_str!("migrations/0007_equity_peaks.sql")),
        M::up(include_str!("migrations/0010_trading_state.sql")),
    ])
});

/// Tables the current schema must contain (checked by tests and `db status`).
pub const TABLES: &[&str] = &[
    "exchange_connections",
    "strategies",
    "risk_configs",
    "orders",
    "trades",
    "positions",
    "decisions",
    "backtests",
    "candles",
    "llm_cache",
    "alerts",
    "circuit_breaker_state",
    "job_runs",
    "paper_accounts",
    "secret_entries",
    "live_confirmations",
    "equity_snapshots",
    "equity_peaks",
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt value in column {column}: {value:?} ({reason})")]
    Corrupt {
        column: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "database is at schema version {found}, newer than this program knows ({known}); upgrade trademind"
    )]
    TooNew { found: usize, known: usize },
    #[error("{0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The schema version this build migrates to.
pub fn latest_version() -> usize {
    // `Migrations` has no public count; the SQL list above is the source of truth.
    MIGRATION_COUNT
}
const MIGRATION_COUNT: usize = 8;

/// Result of a migration run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationReport {
    pub from_version: usize,
    pub to_version: usize,
}

/// An open database. Owned by one place at a time (a thread or `spawn_blocking`); clone the
/// path, not the handle, to share it.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// The database file name inside the data dir.
pub const DB_FILE: &str = "trademind.db";

impl Store {
    /// Open (creating the private data dir and the database if needed, and migrating) the
    /// database of the data dir `dir`.
    pub fn open_in(dir: &Path) -> StoreResult<Store> {
        crate::secrets::ensure_private_dir(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Self::open(&dir.join(DB_FILE))
    }

    /// Open (creating if needed) and migrate the database at `path`.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let mut store = Self::open_unmigrated(path)?;
        store.migrate()?;
        Ok(store)
    }

    /// Open without migrating (for `db status` on an old file).
    pub fn open_unmigrated(path: &Path) -> StoreResult<Store> {
        let existed = path.exists();
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        configure(&conn).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if !existed {
            restrict_permissions(path);
        }
        Ok(Store {
            conn,
            path: Some(path.to_path_buf()),
        })
    }

    /// A migrated in-memory database, for tests and dry runs.
    pub fn open_in_memory() -> StoreResult<Store> {
        let conn = Connection::open_in_memory()?;
        configure(&conn)?;
        let mut store = Store { conn, path: None };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Bring the schema to the latest version; a no-op when it already is.
    pub fn migrate(&mut self) -> StoreResult<MigrationReport> {
        let from_version = self.schema_version()?;
        if from_version > latest_version() {
            return Err(StoreError::TooNew {
                found: from_version,
                known: latest_version(),
            });
        }
        // Table rebuilds (0006) must not fire ON DELETE actions on the rows that point at the
        // table: foreign keys are off while migrating (they cannot be switched inside the
        // migrations' transaction) and each rebuild is followed by a foreign-key check.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let migrated = MIGRATIONS.to_latest(&mut self.conn);
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        migrated?;
        Ok(MigrationReport {
            from_version,
            to_version: self.schema_version()?,
        })
    }

    pub fn schema_version(&self) -> StoreResult<usize> {
        let v: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok(usize::try_from(v).unwrap_or(0))
    }

    pub fn journal_mode(&self) -> StoreResult<String> {
        Ok(self
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))?)
    }

    /// Names of the tables that exist, sorted.
    pub fn tables(&self) -> StoreResult<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    }

    /// `PRAGMA integrity_check`; `Ok(())` when the file is sound.
    pub fn integrity_check(&self) -> StoreResult<()> {
        let result: String = self
            .conn
            .pragma_query_value(None, "integrity_check", |r| r.get(0))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "integrity check failed: {result}"
            )))
        }
    }

    /// Checkpoint the WAL into the main file (on clean shutdown).
    pub fn checkpoint(&self) -> StoreResult<()> {
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Give up the store wrapper and keep the connection (to share it behind a lock).
    pub fn into_connection(self) -> Connection {
        self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: the data dir is already 0700; a failure here is not worth refusing to start.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        let tables = store.tables().unwrap();
        for t in TABLES {
            assert!(tables.iter().any(|n| n == t), "missing table {t}");
        }
        let again = store.migrate().unwrap();
        assert_eq!(again.from_version, again.to_version);
        assert_eq!(store.journal_mode().unwrap(), "wal");
        drop(store);
        let reopened = Store::open(&path).unwrap();
        assert_eq!(reopened.schema_version().unwrap(), latest_version());
        reopened.integrity_check().unwrap();
    }

    #[test]
    fn strategy_engine_migration_keeps_the_rows_that_point_at_a_strategy() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        MIGRATIONS.to_version(&mut conn, 5).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(
            "INSERT INTO strategies (id, name, decision_engine, created_at, updated_at)
                 VALUES (7, 'trend', 'rules', 0, 0);
             INSERT INTO risk_configs (strategy_id, config, updated_at) VALUES (7, '{}', 0);
             INSERT INTO orders (client_order_id, strategy_id, symbol, side, order_type, status,
                                 quantity, created_at, updated_at)
                 VALUES ('e-1', 7, 'BTCUSDT', 'BUY', 'MARKET', 'FILLED', '1', 0, 0);",
        )
        .unwrap();
        let mut store = Store { conn, path: None };
        let report = store.migrate().unwrap();
        assert_eq!(
            (report.from_version, report.to_version),
            (5, MIGRATION_COUNT)
        );
        let c = store.conn();
        // Dropping the old table fired no ON DELETE CASCADE / SET NULL.
        let risk: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM risk_configs WHERE strategy_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let order: Option<i64> = c
            .query_row(
                "SELECT strategy_id FROM orders WHERE client_order_id = 'e-1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((risk, order), (1, Some(7)));
        c.execute(
            "UPDATE strategies SET decision_engine = 'strategy' WHERE id = 7",
            [],
        )
        .unwrap();
        assert!(
            c.execute(
                "UPDATE strategies SET decision_engine = 'magic' WHERE id = 7",
                []
            )
            .is_err()
        );
        // Foreign keys are on again and still point at the rebuilt table.
        let on: i64 = c
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(on, 1);
        c.execute("DELETE FROM strategies WHERE id = 7", [])
            .unwrap();
        let risk: i64 = c
            .query_row("SELECT COUNT(*) FROM risk_configs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(risk, 0);
    }
}
