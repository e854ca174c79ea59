//! Where paid-for LLM replies and the news they were given are kept: a SQLite file of its own
//! (`<data-dir>/llm_cache.sqlite`) beside the main database, so a demo that resets its database
//! at every start does not throw away what it paid for. Tests and callers without a data dir
//! use the main database's `llm_cache` table (the same columns).

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::domain::market::TimestampMs;
use crate::store::Store;
use crate::store::decisions::{self as recorder, CachedReply};

/// The cache file's name inside the data dir.
pub const CACHE_FILE: &str = "llm_cache.sqlite";

#[derive(Debug, thiserror::Error)]
#[error("cannot open the LLM cache {}: {source} (delete the file to start an empty cache)", path.display())]
pub struct CacheError {
    pub path: PathBuf,
    pub source: rusqlite::Error,
}

/// The LLM cache: its own file, or the main database's table.
#[derive(Clone)]
pub enum LlmCache {
    File(Arc<Mutex<Connection>>),
    Store(Arc<Mutex<Store>>),
}

impl std::fmt::Debug for LlmCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LlmCache::File(_) => "LlmCache::File",
            LlmCache::Store(_) => "LlmCache::Store",
        })
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS llm_cache (
    key        TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    response   TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cost_usd   TEXT,
    created_at INTEGER NOT NULL
)";

impl LlmCache {
    /// Open (creating if needed) the cache file in `data_dir`.
    pub fn open_in(data_dir: &Path) -> Result<LlmCache, CacheError> {
        Self::open(&data_dir.join(CACHE_FILE))
    }

    pub fn open(path: &Path) -> Result<LlmCache, CacheError> {
        let err = |source| CacheError {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // Several processes (a backtest and the daemon) may share the file.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(LlmCache::File(Arc::new(Mutex::new(conn))))
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> crate::store::StoreResult<T>) -> Option<T> {
        let outcome = match self {
            LlmCache::File(c) => c.lock().ok().map(|c| f(&c)),
            LlmCache::Store(s) => s.lock().ok().map(|s| f(s.conn())),
        };
        match outcome {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "LLM cache unusable; going on without it");
                None
            }
            None => {
                tracing::warn!("LLM cache lock poisoned; going on without it");
                None
            }
        }
    }

    /// The reply stored under `key`; `None` on a miss or an unreadable cache (the caller then
    /// pays for a fresh answer rather than failing).
    pub fn get(&self, key: &str) -> Option<CachedReply> {
        self.with(|c| recorder::cache_get(c, key)).flatten()
    }

    pub fn put(&self, key: &str, model: &str, reply: &CachedReply, now_ms: TimestampMs) {
        self.with(|c| recorder::cache_put(c, key, model, reply, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_file_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let reply = CachedReply {
            response: "{}".into(),
            prompt_tokens: Some(1),
            completion_tokens: Some(2),
            cost_usd: None,
        };
        LlmCache::open_in(dir.path())
            .unwrap()
            .put("k", "m", &reply, 0);
        let again = LlmCache::open_in(dir.path()).unwrap();
        assert_eq!(again.get("k"), Some(reply));
        assert_eq!(again.get("other"), None);
    }
}
