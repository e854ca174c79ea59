//! Job runs (`job_runs`): the scheduler's history for the health view and `trademind status`.

use rusqlite::{Connection, params};

use super::StoreResult;

/// One finished run of a scheduled job, as the health view shows it; the scheduler records
/// these and `job_runs` keeps them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobRun {
    pub job: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub error: Option<String>,
}

/// How long a job's runs are kept: the daemon records ~11,500 runs a day, and nothing reads
/// further back than the latest run, success and error.
pub const KEEP_RUNS_MS: i64 = 7 * 86_400_000;

/// Record a run, and drop the same job's runs that started more than [`KEEP_RUNS_MS`] before it
/// (an indexed delete, so pruning as we go costs nothing noticeable and needs no extra job).
pub fn insert_run(conn: &Connection, run: &JobRun) -> StoreResult<i64> {
    super::write_tx(conn, |tx| {
        tx.execute(
            "INSERT INTO job_runs (job, started_at, finished_at, ok, error) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![run.job, run.started_at, run.finished_at, run.error.is_none(), run.error],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "DELETE FROM job_runs WHERE job = ?1 AND started_at < ?2",
            params![run.job, run.started_at.saturating_sub(KEEP_RUNS_MS)],
        )?;
        Ok(id)
    })
}

/// The latest run, the latest success and the latest error of each job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobHealth {
    pub job: String,
    pub last_run: Option<i64>,
    pub last_success: Option<i64>,
    pub last_error: Option<(i64, String)>,
    pub runs: i64,
}

pub fn job_health(conn: &Connection) -> StoreResult<Vec<JobHealth>> {
    let mut stmt = conn.prepare(
        "SELECT job, MAX(started_at), MAX(CASE WHEN ok THEN finished_at END), COUNT(*) FROM job_runs GROUP BY job ORDER BY job",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<(String, Option<i64>, Option<i64>, i64)>, _>>()?;
    let mut err_stmt =
        conn.prepare("SELECT finished_at, error FROM job_runs WHERE job = ?1 AND NOT ok ORDER BY started_at DESC LIMIT 1")?;
    let mut out = Vec::with_capacity(rows.len());
    for (job, last_run, last_success, runs) in rows {
        let last_error = err_stmt
            .query_map([&job], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                ))
            })?
            .next()
            .transpose()?;
        out.push(JobHealth {
            job,
            last_run,
            last_success,
            last_error,
            runs,
        });
    }
    Ok(out)
}

/// Whether a daemon is running, judged from its jobs' recent runs: the scheduler records one
/// run per job per interval, so silence for longer than `window_ms` means nobody is running
/// them (a `strategy list` that says "running" with no daemon up misleads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "daemon")]
pub enum DaemonLiveness {
    Alive { last_run_ms: i64 },
    Silent { last_run_ms: Option<i64> },
}

pub fn daemon_liveness(
    conn: &Connection,
    now_ms: i64,
    window_ms: i64,
) -> StoreResult<DaemonLiveness> {
    let last: Option<i64> = conn.query_row(
        "SELECT MAX(COALESCE(finished_at, started_at)) FROM job_runs",
        [],
        |r| r.get(0),
    )?;
    Ok(match last {
        Some(at) if now_ms.saturating_sub(at) <= window_ms => {
            DaemonLiveness::Alive { last_run_ms: at }
        }
        other => DaemonLiveness::Silent { last_run_ms: other },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn daemon_is_alive_only_while_its_jobs_ran_within_the_window() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        assert_eq!(
            daemon_liveness(c, 1_000_000, 90_000).unwrap(),
            DaemonLiveness::Silent { last_run_ms: None }
        );
        insert_run(
            c,
            &JobRun {
                job: "monitor_orders".into(),
                started_at: 900_000,
                finished_at: 900_100,
                error: None,
            },
        )
        .unwrap();
        assert_eq!(
            daemon_liveness(c, 950_000, 90_000).unwrap(),
            DaemonLiveness::Alive {
                last_run_ms: 900_100
            }
        );
        assert_eq!(
            daemon_liveness(c, 1_000_000, 90_000).unwrap(),
            DaemonLiveness::Silent {
                last_run_ms: Some(900_100)
            }
        );
    }

    #[test]
    fn health_reports_last_run_success_and_error() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let run = |start, err: Option<&str>| JobRun {
            job: "monitor_orders".into(),
            started_at: start,
            finished_at: start + 5,
            error: err.map(String::from),
        };
        insert_run(c, &run(100, None)).unwrap();
        insert_run(c, &run(200, Some("timeout"))).unwrap();
        insert_run(c, &run(300, None)).unwrap();
        let h = job_health(c).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].last_run, Some(300));
        assert_eq!(h[0].last_success, Some(305));
        assert_eq!(h[0].last_error, Some((205, "timeout".into())));
        assert_eq!(h[0].runs, 3);
    }

    #[test]
    fn runs_older_than_a_week_are_pruned_as_new_ones_are_recorded() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let run = |job: &str, start| JobRun {
            job: job.into(),
            started_at: start,
            finished_at: start + 5,
            error: None,
        };
        const DAY: i64 = 86_400_000;
        for d in 0..10 {
            insert_run(c, &run("monitor_orders", 1_000 + d * DAY)).unwrap();
        }
        insert_run(c, &run("update_prices", 1_000)).unwrap();
        let count = |job: &str| -> i64 {
            c.query_row("SELECT COUNT(*) FROM job_runs WHERE job = ?1", [job], |r| {
                r.get(0)
            })
            .unwrap()
        };
        // Days 2..=9 are within a week of day 9; another job's runs are its own business.
        assert_eq!(count("monitor_orders"), 8);
        assert_eq!(count("update_prices"), 1);
    }
}
