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
pub mod book_risk;
pub mod candles;
pub mod codec;
pub mod decisions;
pub mod equity;
pub mod heartbeat;
pub mod jobs;
pub mod live_confirmations;
pub mod orders;
pub mod paper;
pub mod positions;
pub mod reflections;
pub mod risk;
pub mod secret_entries;
pub mod shadow;
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
        M::up(include_str!("migrations/0008_entry_protection.sql")),
        M::up(include_str!("migrations/0009_backtest_owner.sql")),
        M::up(include_str!("migrations/0010_trading_state.sql")),
        M::up(include_str!("migrations/0012_books.sql")),
        M::up(include_str!("migrations/0014_daemon_heartbeat.sql")),
        M::up(include_str!("migrations/0015_backtest_decisions.sql")),
        M::up(include_str!("migrations/0016_strategy_allocation.sql")),
        M::up(include_str!("migrations/0020_telegram_key.sql")),
        M::up(include_str!("migrations/0022_shadow_decisions.sql")),
        M::up(include_str!("migrations/0023_connection_base_url.sql")),
        M::up(include_str!("migrations/0024_position_dust.sql")),
        M::up(include_str!("migrations/0025_reflections.sql")),
        M::up(include_str!("migrations/0026_pstrat_book_pnl_peaks.sql")),
        M::up(include_str!("migrations/0027_lim_entry_booked.sql")),
        M::up_with_hook(
            include_str!("migrations/0028_imp_integer_candles.sql"),
            candles::migrate_text_candles,
        ),
        M::up(include_str!("migrations/0029_side_history_revision.sql")),
        M::up(include_str!("migrations/0030_append_prefix_revision.sql")),
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
    "candle_series",
    "candle_bars",
    "llm_cache",
    "alerts",
    "circuit_breaker_state",
    "job_runs",
    "paper_accounts",
    "secret_entries",
    "live_confirmations",
    "equity_snapshots",
    "equity_peaks",
    "unmanaged_holdings",
    "shadow_fills",
    "reflections",
    "book_pnl_peaks",
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
    #[error(
        "{path} is not a TradeMind database: {reason}; it was left untouched (move it away to start a new ledger, or point --data-dir at the right directory)"
    )]
    NotALedger { path: PathBuf, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Run `f` inside one `BEGIN IMMEDIATE … COMMIT`, rolling back when it fails.
///
/// Every read-modify-write goes through here. A deferred transaction that reads and then writes
/// must upgrade its read lock to a write lock, and in WAL mode that upgrade fails at once with
/// "database is locked" when another connection wrote in between (the busy handler cannot help:
/// waiting would not make the snapshot current). Taking the write lock up front makes a
/// concurrent writer wait for the busy timeout instead, and no update is lost.
///
/// Generic over the error so a caller can carry its own (a usage error, say) out of `f`.
pub fn write_tx<T, E: From<rusqlite::Error>>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, E>,
) -> Result<T, E> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // On an error `tx` is dropped un-committed, which rolls back.
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// The schema version this build migrates to.
pub fn latest_version() -> usize {
    // `Migrations` has no public count; the SQL list above is the source of truth.
    MIGRATION_COUNT
}
const MIGRATION_COUNT: usize = 24;

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
    /// The file opened (device and inode), to notice it removed or replaced under us.
    identity: Option<FileIdentity>,
}

/// Which file a path named when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    /// The file `path` names now.
    #[cfg(unix)]
    pub fn of(path: &Path) -> std::io::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        Ok(FileIdentity {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    #[cfg(not(unix))]
    pub fn of(path: &Path) -> std::io::Result<FileIdentity> {
        std::fs::metadata(path).map(|_| FileIdentity { dev: 0, ino: 0 })
    }
}

/// Refuse an existing file that cannot be a ledger: empty (a truncated or placeholder file
/// would otherwise silently become a new, empty ledger) or not a regular file. A file that is
/// not SQLite at all is refused by [`not_sqlite`] on the first read through SQLite.
///
/// Only metadata is read here, never the file itself: SQLite's locks are POSIX advisory locks,
/// which belong to the process and are ALL released when the process closes ANY descriptor of
/// the file. Opening and closing the database with `std::fs` in a process that holds a
/// connection to it (the daemon opens stores all the time) silently drops that connection's
/// locks; another process then takes itself for the last connection and deletes the WAL the
/// daemon is still writing into (<https://www.sqlite.org/howtocorrupt.html>, 2.2).
fn refuse_foreign_file(path: &Path) -> StoreResult<()> {
    let not_ledger = |reason: &str| StoreError::NotALedger {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // missing: created by the open
    };
    if !meta.is_file() {
        return Err(not_ledger("it is not a regular file"));
    }
    if meta.len() == 0 {
        // In WAL mode the content may still be in the -wal file only; and another trademind
        // process may be creating the database this instant (the file exists, empty, for the
        // few milliseconds before its first page is written): wait a little before refusing.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let has_content = || {
            std::fs::metadata(path).is_ok_and(|m| m.len() > 0)
                || std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !has_content() {
            if std::time::Instant::now() >= deadline {
                return Err(not_ledger("the file is empty (0 bytes)"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            return Ok(());
        }
    }
    Ok(())
}

/// SQLite's "file is not a database" on the first read of `path`, as the ledger's refusal.
fn not_sqlite(path: &Path, e: rusqlite::Error) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
        StoreError::NotALedger {
            path: path.to_path_buf(),
            reason: "the file is not an SQLite database".into(),
        }
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        }
    }
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
        refuse_foreign_file(path)?;
        let existed = path.exists();
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let store_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        // Version 0 with tables: another program's SQLite file. Switching it to WAL or
        // migrating would change it; refuse before touching it.
        if existed {
            let version: i64 = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(|e| not_sqlite(path, e))?;
            let tables: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(store_err)?;
            if version == 0 && tables > 0 {
                return Err(StoreError::NotALedger {
                    path: path.to_path_buf(),
                    reason: "it is an SQLite database with another program's tables".into(),
                });
            }
        }
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
            identity: FileIdentity::of(path).ok(),
        })
    }

    /// Open an existing database read-only (a data dir this user may read but not write: a
    /// read-only mount, another user's directory). Nothing is created, migrated or switched to
    /// WAL; a schema older than this build's is refused, since it cannot be migrated here.
    pub fn open_read_only(path: &Path) -> StoreResult<Store> {
        refuse_foreign_file(path)?;
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // A WAL database needs its -shm file, which cannot be created in a read-only directory
        // (SQLITE_READONLY_DIRECTORY). Then read it as immutable: no locks and no -shm. Nobody
        // can be writing it through this directory anyway; the risk is a stale read if another
        // user with write access is, which is acceptable for a status view.
        let first_read = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0));
        if let Err(e) = first_read {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
                return Err(not_sqlite(path, e));
            }
            let mut uri = std::ffi::OsString::from("file:");
            uri.push(path.as_os_str());
            uri.push("?immutable=1");
            conn = Connection::open_with_flags(
                std::path::Path::new(&uri),
                flags | rusqlite::OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open_err)?;
        }
        let store = Store {
            conn,
            path: Some(path.to_path_buf()),
            identity: FileIdentity::of(path).ok(),
        };
        let version = store.schema_version()?;
        if version != latest_version() {
            return Err(StoreError::Conflict(format!(
                "{} is at schema version {version} and this build needs {}; it cannot be migrated read-only: run trademind once with write access to the data dir",
                path.display(),
                latest_version()
            )));
        }
        Ok(store)
    }

    /// A migrated in-memory database, for tests and dry runs.
    pub fn open_in_memory() -> StoreResult<Store> {
        let conn = Connection::open_in_memory()?;
        configure(&conn)?;
        let mut store = Store {
            conn,
            path: None,
            identity: None,
        };
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

    /// `PRAGMA quick_check` (pages and structure, not index contents): fast enough for every
    /// daemon start.
    pub fn quick_check(&self) -> StoreResult<()> {
        let mut stmt = self.conn.prepare("PRAGMA quick_check")?;
        let problems = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        if problems.len() == 1 && problems[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "the database failed its quick check: {}; run `trademind db check` and restore a backup",
                problems.join("; ")
            )))
        }
    }

    /// Whether the path still names the file that was opened. `Err` with what happened when it
    /// was removed or replaced (writes would go to a file no one will open again).
    pub fn check_file(&self) -> Result<(), String> {
        let (Some(path), Some(opened)) = (&self.path, self.identity) else {
            return Ok(());
        };
        match FileIdentity::of(path) {
            Ok(now) if now == opened => Ok(()),
            Ok(_) => Err(format!(
                "the database file {} was replaced by another file while open",
                path.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "the database file {} was removed while open",
                path.display()
            )),
            Err(e) => Err(format!(
                "the database file {} cannot be checked: {e}",
                path.display()
            )),
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
    fn side_file_migration_gives_each_series_a_revision_the_candles_view_bumps() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        MIGRATIONS.to_version(&mut conn, 22).unwrap();
        let insert = |conn: &Connection, t: i64| {
            conn.execute(
                "INSERT INTO candles VALUES ('BTCUSDT', '1h', ?1, '1.5', '2', '1', '1.75', '10')",
                [t],
            )
            .unwrap()
        };
        insert(&conn, 0);
        MIGRATIONS.to_latest(&mut conn).unwrap();
        let revision = |conn: &Connection| -> i64 {
            conn.query_row("SELECT revision FROM candle_series", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(revision(&conn), 0, "an existing series starts at 0");
        insert(&conn, 3_600_000);
        assert_ne!(revision(&conn), 0, "the view's insert");
        let bars: i64 = conn
            .query_row("SELECT COUNT(*) FROM candle_bars", [], |r| r.get(0))
            .unwrap();
        assert_eq!(bars, 2);
    }

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
        let mut store = Store {
            conn,
            path: None,
            identity: None,
        };
        let report = store.migrate().unwrap();
        assert_eq!(
            (report.from_version, report.to_version),
            (5, latest_version())
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

    #[test]
    fn books_migration_moves_the_open_single_book_to_the_default_book_and_keeps_history() {
        let mut conn = Connection::open_in_memory().unwrap();
        configure(&conn).unwrap();
        MIGRATIONS.to_version(&mut conn, 10).unwrap();
        conn.execute_batch(
            "INSERT INTO strategies (id, name, decision_engine, created_at, updated_at)
                 VALUES (7, 'fast', 'rules', 0, 0);
             INSERT INTO positions (id, strategy_id, connection, symbol, entry_price, quantity,
                                    status, opened_at, closed_at, updated_at)
                 VALUES (1, 7, 'paper', 'BTCUSDT', '50000', '0.02', 'open', 0, NULL, 0),
                        (2, 7, 'paper', 'BTCUSDT', '49000', '0', 'closed', 0, 5, 5);
             INSERT INTO orders (client_order_id, strategy_id, position_id, symbol, side,
                                 order_type, status, purpose, quantity, created_at, updated_at)
                 VALUES ('e-1', 7, 1, 'BTCUSDT', 'BUY', 'MARKET', 'FILLED', 'entry', '0.02', 0, 0),
                        ('sl-1', 7, 1, 'BTCUSDT', 'SELL', 'STOP_LOSS_LIMIT', 'NEW', 'stop_loss',
                         '0.02', 0, 0),
                        ('e-2', 7, NULL, 'BTCUSDT', 'BUY', 'MARKET', 'FILLED', 'entry', '0.01',
                         0, 0);",
        )
        .unwrap();
        let mut store = Store {
            conn,
            path: None,
            identity: None,
        };
        store.migrate().unwrap();
        let c = store.conn();
        let book = |id: i64| -> Option<i64> {
            c.query_row(
                "SELECT strategy_id FROM positions WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        let order = |cid: &str| -> Option<i64> {
            c.query_row(
                "SELECT strategy_id FROM orders WHERE client_order_id = ?1",
                [cid],
                |r| r.get(0),
            )
            .unwrap()
        };
        // The open position (the old single book) is the default book's, with its protection;
        // history keeps the strategy that opened it; an entry not booked yet goes to its own.
        assert_eq!((book(1), book(2)), (None, Some(7)));
        assert_eq!(
            (order("sl-1"), order("e-1"), order("e-2")),
            (None, Some(7), Some(7))
        );
        assert_eq!(
            positions::open_position(c, "paper", "BTCUSDT", None)
                .unwrap()
                .map(|r| (r.id, r.book().to_string())),
            Some((1, positions::DEFAULT_BOOK.to_string()))
        );
    }
}
