//! A backtest that dies does not stay `running`: a panic inside the run records it `failed`, and
//! `backtest cancel` ends a run whose process is gone instead of asking it forever.

use std::sync::atomic::AtomicBool;
use trademind::app::backtest::run_and_record;
use trademind::domain::backtest::RunStatus;
use trademind::store::{Store, backtests};

use crate::backtest_control::{candles, request, trademind};

#[test]
fn a_backtest_that_panics_is_recorded_failed_not_left_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("trademind.db")).unwrap();
    let data = candles(100);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_and_record(
            &store,
            &request(),
            &data,
            &AtomicBool::new(false),
            &mut |_, _| panic!("a bug inside the run"),
            &|| 1,
        )
    }));
    assert!(outcome.is_err(), "the run should have panicked");
    let run = &backtests::list(store.conn(), 1).unwrap()[0];
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .contains("panicked"),
        "{run:?}"
    );
}

#[test]
fn cancel_ends_a_run_whose_process_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("trademind.db")).unwrap();
    let params = serde_json::json!({});
    // A run left `running` by a process that no longer exists (a finished child's pid) and one
    // from before the owner was recorded (NULL).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let mut ids = Vec::new();
    for pid in [Some(dead_pid), None] {
        let id = backtests::create(store.conn(), "sma-cross", "BTCUSDT", "1m", &params, 1).unwrap();
        store
            .conn()
            .execute(
                "UPDATE backtests SET status = 'running', started_at = 1, owner_pid = ?2 WHERE id = ?1",
                rusqlite::params![id, pid],
            )
            .unwrap();
        ids.push(id);
    }
    for id in ids {
        let out = trademind(dir.path())
            .args(["backtest", "cancel", &id.to_string()])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        assert!(
            String::from_utf8_lossy(&out).contains("gone"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(
            backtests::status(store.conn(), id).unwrap(),
            RunStatus::Cancelled
        );
    }
    // A run of a live process (this test) is only asked to stop.
    let id = backtests::create(store.conn(), "sma-cross", "BTCUSDT", "1m", &params, 1).unwrap();
    backtests::mark_running(store.conn(), id, 2).unwrap();
    trademind(dir.path())
        .args(["backtest", "cancel", &id.to_string()])
        .assert()
        .success();
    assert_eq!(
        backtests::status(store.conn(), id).unwrap(),
        RunStatus::CancelRequested
    );
}
