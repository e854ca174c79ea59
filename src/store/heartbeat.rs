//! The daemon's heartbeat (`daemon_heartbeat`): the one reading of "is a daemon running on this
//! data dir?" that `status`, `strategy list` and the TUI header all show.
//!
//! Job runs are not that reading: the TUI and one-shot commands record runs too, and a daemon
//! killed with SIGKILL leaves its last runs behind looking fresh for a while. The daemon beats
//! every [`BEAT_EVERY_MS`]; a beat older than [`STALE_AFTER_MS`] means it died.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::StoreResult;

/// How often a running daemon refreshes its beat.
pub const BEAT_EVERY_MS: i64 = 5_000;
/// A beat older than this (three missed beats and some slack) is a dead daemon.
pub const STALE_AFTER_MS: i64 = 20_000;

/// Whether a daemon runs on this data dir, as every face shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DaemonPresence {
    Alive {
        pid: u32,
        host: String,
        since_ms: i64,
        beat_ms: i64,
        /// The end of its latest job run (a trading cycle, an order check, a price update).
        last_cycle_ms: Option<i64>,
        last_cycle_job: Option<String>,
    },
    NotRunning {
        /// Its last beat, if a daemon ever ran here.
        last_seen_ms: Option<i64>,
        /// Stopped by SIGINT/SIGTERM (false: it died, or never ran).
        stopped_cleanly: bool,
    },
}

impl DaemonPresence {
    pub fn is_alive(&self) -> bool {
        matches!(self, DaemonPresence::Alive { .. })
    }

    /// "daemon alive (pid 4242, since …, last cycle …)" or "no daemon running (…)".
    pub fn describe(&self, time: impl Fn(i64) -> String) -> String {
        match self {
            DaemonPresence::Alive {
                pid,
                since_ms,
                last_cycle_ms,
                last_cycle_job,
                ..
            } => {
                let cycle = match (last_cycle_ms, last_cycle_job) {
                    (Some(t), Some(job)) => format!("{} ({job})", time(*t)),
                    (Some(t), None) => time(*t),
                    (None, _) => "none yet".into(),
                };
                format!(
                    "daemon alive (pid {pid}, since {}, last cycle {cycle})",
                    time(*since_ms)
                )
            }
            DaemonPresence::NotRunning {
                last_seen_ms: None, ..
            } => "no daemon running (none has run on this data dir)".into(),
            DaemonPresence::NotRunning {
                last_seen_ms: Some(t),
                stopped_cleanly,
            } => format!(
                "no daemon running (last seen {}{})",
                time(*t),
                if *stopped_cleanly {
                    ", stopped cleanly"
                } else {
                    ", it did not stop cleanly"
                }
            ),
        }
    }
}

/// A daemon starts on this data dir (it holds the data dir's lock): its row replaces any
/// earlier one.
pub fn start(conn: &Connection, pid: u32, host: &str, now_ms: i64) -> StoreResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO daemon_heartbeat
             (id, pid, host, started_at, beat_at, last_cycle_at, last_cycle_job, stopped_at)
         VALUES (1, ?1, ?2, ?3, ?3, NULL, NULL, NULL)",
        params![pid, host, now_ms],
    )?;
    Ok(())
}

/// The running daemon `pid` is still there.
pub fn beat(conn: &Connection, pid: u32, now_ms: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE daemon_heartbeat SET beat_at = MAX(beat_at, ?2) WHERE id = 1 AND pid = ?1",
        params![pid, now_ms],
    )?;
    Ok(())
}

/// The daemon `pid` finished a job run (`job`) at `at_ms`.
pub fn cycle(conn: &Connection, pid: u32, job: &str, at_ms: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE daemon_heartbeat SET last_cycle_at = ?2, last_cycle_job = ?3,
                beat_at = MAX(beat_at, ?2)
         WHERE id = 1 AND pid = ?1",
        params![pid, at_ms, job],
    )?;
    Ok(())
}

/// The daemon `pid` stopped cleanly.
pub fn stop(conn: &Connection, pid: u32, now_ms: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE daemon_heartbeat SET stopped_at = ?2, beat_at = MAX(beat_at, ?2)
         WHERE id = 1 AND pid = ?1",
        params![pid, now_ms],
    )?;
    Ok(())
}

/// Whether a daemon runs, as of `now_ms`. A database from before the heartbeat (opened
/// read-only, unmigrated) has never seen a daemon that beats.
pub fn presence(conn: &Connection, now_ms: i64) -> StoreResult<DaemonPresence> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'daemon_heartbeat')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(DaemonPresence::NotRunning {
            last_seen_ms: None,
            stopped_cleanly: false,
        });
    }
    type Row = (
        u32,
        String,
        i64,
        i64,
        Option<i64>,
        Option<String>,
        Option<i64>,
    );
    let row: Option<Row> = conn
        .query_row(
            "SELECT pid, host, started_at, beat_at, last_cycle_at, last_cycle_job, stopped_at
             FROM daemon_heartbeat WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()?;
    Ok(match row {
        None => DaemonPresence::NotRunning {
            last_seen_ms: None,
            stopped_cleanly: false,
        },
        Some((pid, host, since_ms, beat_ms, last_cycle_ms, last_cycle_job, None))
            if now_ms.saturating_sub(beat_ms) <= STALE_AFTER_MS && !process_gone(pid, &host) =>
        {
            DaemonPresence::Alive {
                pid,
                host,
                since_ms,
                beat_ms,
                last_cycle_ms,
                last_cycle_job,
            }
        }
        Some((_, _, _, beat_ms, _, _, stopped)) => DaemonPresence::NotRunning {
            last_seen_ms: Some(beat_ms),
            stopped_cleanly: stopped.is_some(),
        },
    })
}

/// This machine's name, as the daemon records it beside its pid.
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether the daemon's process is provably gone: it ran on this host and the kernel has no
/// such process, or only its zombie (Linux `/proc`). Then a `kill -9` reads as "no daemon" at
/// once instead of after the beat's [`STALE_AFTER_MS`]. Anything else (another host, no
/// `/proc`) is left to the beat's age.
fn process_gone(pid: u32, host: &str) -> bool {
    if host != this_host() || !std::path::Path::new("/proc/self/stat").exists() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_daemon_process_that_is_gone_from_this_host_is_not_running_at_once() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        start(c, dead, &this_host(), 1_000).unwrap();
        // Its beat is fresh, but the process is gone: no waiting out STALE_AFTER_MS.
        assert_eq!(
            presence(c, 1_001).unwrap(),
            DaemonPresence::NotRunning {
                last_seen_ms: Some(1_000),
                stopped_cleanly: false
            }
        );
        // A live process on this host, or any pid on another host, goes by the beat.
        start(c, std::process::id(), &this_host(), 2_000).unwrap();
        assert!(presence(c, 2_001).unwrap().is_alive());
        start(c, dead, "another-host", 3_000).unwrap();
        assert!(presence(c, 3_001).unwrap().is_alive());
    }

    fn t(ms: i64) -> String {
        format!("t{ms}")
    }

    #[test]
    fn a_fresh_database_has_no_daemon() {
        let store = Store::open_in_memory().unwrap();
        let p = presence(store.conn(), 1_000).unwrap();
        assert!(!p.is_alive());
        assert_eq!(
            p.describe(t),
            "no daemon running (none has run on this data dir)"
        );
    }

    #[test]
    fn a_beating_daemon_is_alive_with_its_pid_start_and_last_cycle() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        start(c, 4242, "box", 1_000).unwrap();
        assert_eq!(
            presence(c, 2_000).unwrap().describe(t),
            "daemon alive (pid 4242, since t1000, last cycle none yet)"
        );
        cycle(c, 4242, "monitor_orders", 9_000).unwrap();
        beat(c, 4242, 25_000).unwrap();
        assert_eq!(
            presence(c, 40_000).unwrap().describe(t),
            "daemon alive (pid 4242, since t1000, last cycle t9000 (monitor_orders))"
        );
    }

    #[test]
    fn a_daemon_whose_beat_went_stale_or_that_stopped_is_not_running() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        start(c, 7, "box", 1_000).unwrap();
        // Killed with SIGKILL: no stop, the beat just ages.
        assert_eq!(
            presence(c, 1_000 + STALE_AFTER_MS + 1).unwrap(),
            DaemonPresence::NotRunning {
                last_seen_ms: Some(1_000),
                stopped_cleanly: false
            }
        );
        // A beat from another pid (an older daemon's late write) does not revive the row.
        beat(c, 8, 50_000).unwrap();
        assert!(!presence(c, 50_000).unwrap().is_alive());
        start(c, 9, "box", 60_000).unwrap();
        assert!(presence(c, 60_001).unwrap().is_alive());
        stop(c, 9, 61_000).unwrap();
        let stopped = presence(c, 61_001).unwrap();
        assert_eq!(
            stopped.describe(t),
            "no daemon running (last seen t61000, stopped cleanly)"
        );
    }
}
