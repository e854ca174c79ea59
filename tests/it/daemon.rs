//! The daemon: its real job set on tokio's paused time (schedules, no overlap, no burst), and the
//! real binary stopped with SIGTERM.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trademind::app::bus::{Event, EventBus, Received};
use trademind::app::daemon::{Jobs, StoreRecorder, StrategyJob, build_scheduler};
use trademind::app::decide::{AnyEngine, RulesEngine};
use trademind::app::scheduler::{JobRun, MemoryRecorder, RunRecorder, TokioClock};
use trademind::app::trading::{TradingDeps, TradingService};
use trademind::config::{SchedulerConfig, Settings};
use trademind::domain::trading::TradingMode;
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::store::Store;
use trademind::store::strategies::{
    NewStrategy, StrategyRow, add_strategy, set_active, strategy_by_name,
};

const MIN: i64 = 60_000;
// 2026-11-24 10:07:00 UTC: not on a 15-minute boundary.
const T0: i64 = 1_795_514_820_000;

/// Records into memory and into the real `StoreRecorder` (job_runs + bus).
struct Both(Arc<MemoryRecorder>, StoreRecorder);

impl RunRecorder for Both {
    fn record(&self, run: &JobRun) {
        self.0.record(run);
        self.1.record(run);
    }
}

/// The active strategy "swing": rules on BTCUSDT 15m.
pub(crate) fn swing_strategy(store: &Mutex<Store>, now_ms: i64) -> StrategyRow {
    let s = store.lock().unwrap();
    add_strategy(
        s.conn(),
        &NewStrategy {
            name: "swing".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "15m".into(),
            decision_engine: "rules".into(),
            parameters: serde_json::json!({}),
            connection_id: None,
        },
        now_ms,
    )
    .unwrap();
    set_active(s.conn(), "swing", true, now_ms).unwrap();
    strategy_by_name(s.conn(), "swing").unwrap().unwrap()
}

fn daemon_jobs(store: Arc<Mutex<Store>>, bus: EventBus) -> Arc<Jobs<PaperExchange>> {
    let strategy = swing_strategy(&store, T0);
    let trading = Arc::new(TradingService::new(TradingDeps {
        exchange: Arc::new(PaperExchange::in_memory(&PaperConfig::default())),
        store,
        connection: "paper".into(),
        mode: TradingMode::Paper,
        settings: Arc::new(Settings::default()),
        bus,
        mailer: None,
    }));
    Arc::new(Jobs::new(
        trading,
        vec![StrategyJob {
            strategy,
            engine: AnyEngine::Rules(RulesEngine::default()),
        }],
    ))
}

fn runs_of<'a>(runs: &'a [JobRun], job: &str) -> Vec<&'a JobRun> {
    runs.iter().filter(|r| r.job == job).collect()
}

fn assert_never_overlaps(runs: &[&JobRun]) {
    for pair in runs.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].finished_at,
            "{} started at {} before its previous run finished at {}",
            pair[1].job,
            pair[1].started_at,
            pair[0].finished_at
        );
    }
}

#[tokio::test(start_paused = true)]
async fn daemon_jobs_fire_on_schedule_never_overlap_and_do_not_burst_after_a_pause() {
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let bus = EventBus::default();
    let mut events = bus.subscribe();
    let jobs = daemon_jobs(store.clone(), bus.clone());
    let memory = Arc::new(MemoryRecorder::default());
    let recorder = Arc::new(Both(
        memory.clone(),
        StoreRecorder::new(store.clone(), bus.clone()),
    ));
    let config = SchedulerConfig::default(); // 15 min + 5 s, 30 s, 10 s
    let clock = Arc::new(TokioClock::new(T0));
    let (scheduler, pause) = build_scheduler(jobs, clock, recorder, &config);
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(scheduler.run(cancel.clone()));

    // One hour from 10:07:00.
    tokio::time::sleep(Duration::from_secs(3600) + Duration::from_millis(100)).await;
    let runs = memory.runs();
    let trading = runs_of(&runs, "autonomous_trading:swing");
    // 10:15:05, 10:30:05, 10:45:05, 11:00:05: candle closes plus the 5 s offset.
    let starts: Vec<i64> = trading.iter().map(|r| r.started_at).collect();
    let first = T0 + 8 * MIN + 5_000;
    assert_eq!(
        starts,
        vec![first, first + 15 * MIN, first + 30 * MIN, first + 45 * MIN]
    );
    let monitor = runs_of(&runs, "monitor_orders");
    assert_eq!(monitor.len(), 120, "every 30 s for an hour");
    assert_eq!(monitor[0].started_at, T0 + 30_000);
    let prices = runs_of(&runs, "update_prices");
    assert_eq!(prices.len(), 360, "every 10 s for an hour");
    for job in [&trading, &monitor, &prices] {
        assert_never_overlaps(job);
    }

    // A two-hour pause (the machine slept, or the user paused): 240 monitor slots and 8 trading
    // slots are missed and must not be replayed.
    pause.pause();
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    assert_eq!(memory.runs().len(), runs.len(), "nothing runs while paused");
    pause.resume();
    tokio::time::sleep(Duration::from_secs(31)).await;
    let after = memory.runs();
    let new_monitor = runs_of(&after, "monitor_orders").len() - monitor.len();
    assert_eq!(
        new_monitor, 1,
        "one monitor run in the 31 s after resuming, not a burst of 240"
    );
    assert!(
        runs_of(&after, "autonomous_trading:swing").len() == 4,
        "missed trading slots are not replayed"
    );
    cancel.cancel();
    handle.await.unwrap();

    // Every run is in job_runs, and the bus heard about them.
    let recorded: i64 = store
        .lock()
        .unwrap()
        .conn()
        .query_row("SELECT COUNT(*) FROM job_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded as usize, memory.runs().len());
    let (mut finished, mut health) = (0, 0);
    while let Some(Received::Event(e)) = events.try_recv() {
        match e {
            Event::JobFinished { .. } => finished += 1,
            Event::HealthChanged { .. } => health += 1,
            _ => {}
        }
    }
    assert_eq!(finished, memory.runs().len());
    assert!(health >= 1, "component health is published");
}

/// The real binary with a clean environment and its own data dir.
pub fn trademind_command(data_dir: &std::path::Path) -> std::process::Command {
    let mut cmd = crate::hermetic::hermetic_at(data_dir);
    cmd.env("TRADEMIND_SECRETS__BACKEND", "environment");
    cmd
}

/// Poll `query` (a COUNT) on the database until it is positive.
pub fn wait_for_rows(db: &std::path::Path, query: &str, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        // Without CREATE: an empty file made here before the daemon creates its database
        // would be refused by the daemon as "not a TradeMind database".
        if let Ok(conn) =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
            && let Ok(n) = conn.query_row(query, [], |r| r.get::<_, i64>(0))
            && n > 0
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

pub fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {}", child.id());
}

pub fn wait_exit(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the process did not exit in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_stops_the_daemon_with_status_zero_and_a_checkpointed_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(trademind::cli::DB_FILE);
    let mut child = trademind_command(dir.path())
        .arg("--daemon")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for_rows(
            &db,
            "SELECT COUNT(*) FROM job_runs WHERE job = 'reconcile'",
            Duration::from_secs(20)
        ),
        "the daemon never recorded its start-up reconciliation"
    );
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("daemon stopped cleanly"),
        "stderr:\n{stderr}"
    );
    // TRUNCATE leaves an empty WAL (or SQLite removed it when the last connection closed).
    let wal = dir.path().join(format!("{}-wal", trademind::cli::DB_FILE));
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL still holds {wal_len} bytes");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_daemon_on_an_unknown_connection_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = trademind_command(dir.path())
        .env("TRADEMIND_TRADING__CONNECTION", "nowhere")
        .arg("--daemon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no connection named \"nowhere\""),
        "{stderr}"
    );
}
