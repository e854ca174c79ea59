//! One trading step per (connection, symbol) at a time, across tasks and processes: the
//! daemon's strategies, `trademind execute`, `close`, `cancel` and the TUI's controls all take
//! this lock before they read the state they act on, so two steps never both see "flat" and
//! both buy, and protection is never placed twice.
//!
//! Inside a process a tokio mutex per key orders the tasks; across processes an OS file lock
//! (`flock`) on a file beside the database does. The kernel drops a file lock when its process
//! dies, so a `kill -9` never leaves a symbol locked. An in-memory database (tests) has no file
//! and is only shared within its process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crate::domain::symbol::Symbol;

/// How long a step waits for another to finish before giving up (an entry resolving a lost
/// reply can take tens of seconds).
const WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(20);

type LocalLocks = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

static LOCAL: LazyLock<LocalLocks> = LazyLock::new(|| Mutex::new(HashMap::new()));

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another trading step on {symbol} ({connection}) has held it for over {}s; try again",
        WAIT.as_secs()
    )]
    Busy { connection: String, symbol: Symbol },
    #[error("cannot take the trading lock file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held while one trading step runs on a symbol; dropping it lets the next one in.
pub struct SymbolGuard {
    _local: tokio::sync::OwnedMutexGuard<()>,
    /// Closing the file releases the OS lock.
    _file: Option<std::fs::File>,
}

/// Where a database's lock files live: `locks/` beside the database file.
fn lock_dir(db_path: &Path) -> PathBuf {
    db_path
        .parent()
        .map_or_else(|| PathBuf::from("locks"), |d| d.join("locks"))
}

/// A file name for the key: letters, digits, `-` and `_` kept, anything else as `_`.
fn file_name(connection: &str, symbol: &Symbol) -> String {
    let clean: String = connection
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}@{symbol}.lock")
}

/// Take the lock of (`connection`, `symbol`) for the database at `db_path` (`None`: in memory,
/// identified by `memory_id`).
pub async fn lock_symbol(
    db_path: Option<&Path>,
    memory_id: usize,
    connection: &str,
    symbol: &Symbol,
) -> Result<SymbolGuard, LockError> {
    let key = match db_path {
        Some(p) => format!("{}|{connection}|{symbol}", p.display()),
        None => format!("memory:{memory_id:x}|{connection}|{symbol}"),
    };
    let local = {
        let mut map = LOCAL.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(key).or_default().clone()
    };
    let busy = || LockError::Busy {
        connection: connection.to_string(),
        symbol: symbol.clone(),
    };
    let local = tokio::time::timeout(WAIT, local.lock_owned())
        .await
        .map_err(|_| busy())?;
    let file = match db_path {
        Some(p) => Some(lock_file(p, connection, symbol, busy).await?),
        None => None,
    };
    Ok(SymbolGuard {
        _local: local,
        _file: file,
    })
}

async fn lock_file(
    db_path: &Path,
    connection: &str,
    symbol: &Symbol,
    busy: impl Fn() -> LockError,
) -> Result<std::fs::File, LockError> {
    let dir = lock_dir(db_path);
    let path = dir.join(file_name(connection, symbol));
    let io = |source| LockError::File {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(busy());
                }
                tokio::time::sleep(POLL).await;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_step_on_the_same_symbol_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("trademind.db");
        let btc = Symbol::new("BTCUSDT").unwrap();
        let first = lock_symbol(Some(&db), 0, "paper", &btc).await.unwrap();
        let second = tokio::time::timeout(
            Duration::from_millis(100),
            lock_symbol(Some(&db), 0, "paper", &btc),
        )
        .await;
        assert!(second.is_err(), "the second step must wait");
        // Another symbol or connection is not held up.
        let eth = Symbol::new("ETHUSDT").unwrap();
        lock_symbol(Some(&db), 0, "paper", &eth).await.unwrap();
        lock_symbol(Some(&db), 0, "binance", &btc).await.unwrap();
        drop(first);
        tokio::time::timeout(
            Duration::from_secs(2),
            lock_symbol(Some(&db), 0, "paper", &btc),
        )
        .await
        .expect("free once the first is dropped")
        .unwrap();
    }

    #[test]
    fn another_open_of_the_lock_file_is_refused_while_it_is_held() {
        // What a second process sees: flock is per open file, so a second open conflicts.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("trademind.db");
        let btc = Symbol::new("BTCUSDT").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let held = rt
            .block_on(lock_file(&db, "paper", &btc, || LockError::Busy {
                connection: "paper".into(),
                symbol: btc.clone(),
            }))
            .unwrap();
        let path = lock_dir(&db).join(file_name("paper", &btc));
        let other = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.try_lock().unwrap();
    }
}
