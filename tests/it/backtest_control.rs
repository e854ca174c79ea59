//! Stopping a backtest from another process: `backtest cancel ID` marks the row
//! `cancel_requested`; the process running it polls the row between chunks and ends the run
//! `cancelled`, keeping the results of the candles it got through.

use assert_cmd::Command;
use rust_decimal::Decimal;
use std::sync::atomic::AtomicBool;
use trademind::app::backtest::{
    BacktestRequest, BacktestRunError, CandleSource, SizingChoice, run_and_record,
};
use trademind::domain::backtest::{
    BacktestError, Costs, FillModel, PROGRESS_EVERY, RunStatus, StrategySpec,
};
use trademind::domain::market::{Candle, Interval};
use trademind::domain::money::{Price, Qty, Quote};
use trademind::domain::risk::RiskConfig;
use trademind::store::{Store, backtests};

pub(crate) fn candles(n: usize) -> Vec<Candle> {
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

pub(crate) fn request() -> BacktestRequest {
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

#[test]
fn cancel_requested_through_another_handle_stops_the_run_at_the_next_chunk_keeping_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trademind.db");
    let runner = Store::open(&path).unwrap();
    let other = Store::open(&path).unwrap();
    let data = candles(3 * PROGRESS_EVERY + 10);
    let mut asked = None;
    let outcome = run_and_record(
        &runner,
        &request(),
        &data,
        &AtomicBool::new(false),
        &mut |done, _| {
            // While the first chunk starts, "another process" asks the run to stop.
            if done == 0 {
                let id = backtests::list(other.conn(), 1).unwrap()[0].id;
                assert_eq!(
                    backtests::status(other.conn(), id).unwrap(),
                    RunStatus::Running
                );
                backtests::request_cancel(other.conn(), id).unwrap();
                asked = Some(id);
            }
        },
        &|| 1,
    );
    let Err((
        Some(id),
        BacktestRunError::Backtest(BacktestError::Cancelled {
            done,
            total,
            partial,
        }),
    )) = outcome
    else {
        panic!("expected a cancelled run, got {outcome:?}");
    };
    assert_eq!(Some(id), asked);
    // Seen at the poll after the first chunk; the second chunk never ran.
    assert_eq!((done, total), (PROGRESS_EVERY, data.len()));
    assert_eq!(partial.unwrap().equity.len(), PROGRESS_EVERY);
    let row = backtests::get(other.conn(), id).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Cancelled);
    let metrics = row.metrics.expect("partial metrics kept");
    assert_eq!(metrics.candles, PROGRESS_EVERY);
    assert_eq!(row.equity_curve.len(), PROGRESS_EVERY);
    assert_eq!(
        row.equity_curve.last().unwrap().0,
        (PROGRESS_EVERY as i64 - 1) * 60_000
    );
    assert!(!row.trades.is_empty());
    // A finished run cannot be asked again.
    assert!(backtests::request_cancel(other.conn(), id).is_err());
}

#[test]
fn a_run_nobody_cancels_completes_even_with_the_poll_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("trademind.db")).unwrap();
    let data = candles(2 * PROGRESS_EVERY);
    let (id, result) = run_and_record(
        &store,
        &request(),
        &data,
        &AtomicBool::new(false),
        &mut |_, _| {},
        &|| 1,
    )
    .unwrap();
    assert_eq!(result.equity.len(), data.len());
    assert_eq!(
        backtests::status(store.conn(), id).unwrap(),
        RunStatus::Completed
    );
}

pub(crate) fn trademind(data_dir: &std::path::Path) -> Command {
    crate::hermetic::trademind_at(data_dir)
}

#[test]
fn cli_cancel_marks_a_running_row_and_refuses_unknown_or_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("trademind.db")).unwrap();
    let id = backtests::create(
        store.conn(),
        "sma-cross",
        "BTCUSDT",
        "1h",
        &serde_json::json!({}),
        1,
    )
    .unwrap();
    backtests::mark_running(store.conn(), id, 2).unwrap();

    let out = trademind(dir.path())
        .args(["--json", "backtest", "cancel", &id.to_string()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["status"], "cancel_requested");
    assert_eq!(
        backtests::status(store.conn(), id).unwrap(),
        RunStatus::CancelRequested
    );
    // The run (here: this handle) sees it and ends cancelled; cancelling again is refused.
    assert!(backtests::cancel_requested(store.conn(), id).unwrap());
    backtests::cancel(store.conn(), id, None, 3).unwrap();
    trademind(dir.path())
        .args(["backtest", "cancel", &id.to_string()])
        .assert()
        .code(1);
    trademind(dir.path())
        .args(["backtest", "cancel", "999"])
        .assert()
        .code(2);
}
