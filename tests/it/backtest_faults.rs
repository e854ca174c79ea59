//! A backtest that dies does not stay `running`: a panic inside the run records it `failed`, and
//! `backtest cancel` ends a run whose process is gone instead of asking it forever.

use assert_cmd::Command;
use rust_decimal::Decimal;
use std::sync::atomic::AtomicBool;
use trademind::app::backtest::{BacktestRequest, CandleSource, SizingChoice, run_and_record};
use trademind::domain::backtest::{Costs, FillModel, RunStatus, StrategySpec};
use trademind::domain::market::{Candle, Interval};
use trademind::domain::money::{Price, Qty, Quote};
use trademind::domain::risk::RiskConfig;
use trademind::store::{Store, backtests};

fn candles(n: usize) -> Vec<Candle> {
    (0..n)
        .map(|i| {
            let p = Price(Decimal::from(100 + (i % 17) as i64));
            Candle {
                open_time: i as i64 * 60_000,
                open: p,
                high: p,
                low: p,
                close: p,
                volume: Qty(Decimal::ONE),
            }
        })
        .collect()
}

fn request() -> BacktestRequest {
    BacktestRequest {
        strategy: StrategySpec {
            name: "sma-cross".into(),
            params: [("fast".to_string(), 3.0), ("slow".to_string(), 8.0)].into(),
        },
        symbol: "BTCUSDT".into(),
        interval: Interval::M1,
        from: None,
        to: None,
        source: CandleSource::Store,
        initial_cash: Quote(Decimal::new(1_000, 0)),
        costs: Costs::default(),
        fill: FillModel::NextOpen,
        sizing: SizingChoice::AllIn,
        risk: RiskConfig::default(),
    }
}

fn trademind(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("trademind").expect("binary built");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRADEMIND_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-trademind-test");
    cmd.args(["--data-dir", data_dir.to_str().unwrap()]);
    cmd
}

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
