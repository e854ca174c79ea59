//! SMA(10)/SMA(30) crossover, all-in, 0.1 % fees: the same trades, final equity and max drawdown
//! as vectorbt, backtesting.py, backtrader, nautilus_trader and a compiled loop
//! (`/work/shared/data/PARITY.md`), on both bundled data sets and in both fill modes.

use crate::backtest_common::{run_all_in, spec};
use std::path::Path;
use trademind::app::backtest::read_candles_csv;
use trademind::domain::backtest::FillModel;
use trademind::domain::market::Interval;

fn run(file: &str, fill: FillModel) -> (usize, f64, f64) {
    let candles = read_candles_csv(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets")
            .join(file),
        Interval::H1,
    )
    .unwrap();
    let result = run_all_in(
        spec("sma-cross", &[("fast", 10.0), ("slow", 30.0)]),
        &candles,
        fill,
    );
    (
        result.metrics.trades,
        result.final_equity.to_f64(),
        result.metrics.max_drawdown_pct,
    )
}

fn assert_parity(file: &str, fill: FillModel, trades: usize, equity: f64, max_dd_pct: f64) {
    let (t, e, dd) = run(file, fill);
    assert_eq!(t, trades, "{file} {fill}: trade count");
    assert!(
        ((e - equity) / equity).abs() <= 1e-6,
        "{file} {fill}: final equity {e} vs {equity}"
    );
    assert!(
        (dd - max_dd_pct).abs() <= 1e-4,
        "{file} {fill}: max drawdown {dd} % vs {max_dd_pct} %"
    );
}

#[test]
fn binance_2025_01_next_open_matches_peers() {
    assert_parity(
        "btcusdt_1h_2025-01_binance.csv",
        FillModel::NextOpen,
        17,
        91_639.086_3,
        15.8479,
    );
}

#[test]
fn binance_2025_01_close_matches_peers() {
    assert_parity(
        "btcusdt_1h_2025-01_binance.csv",
        FillModel::Close,
        17,
        91_639.084_4,
        15.8479,
    );
}

#[test]
fn coinbase_2017_2019_next_open_matches_peers() {
    assert_parity(
        "coinbase_btcusd_1h_2017-2019.csv",
        FillModel::NextOpen,
        387,
        478_185.258_3,
        64.1026,
    );
}

#[test]
fn coinbase_2017_2019_close_matches_peers() {
    assert_parity(
        "coinbase_btcusd_1h_2017-2019.csv",
        FillModel::Close,
        387,
        477_960.563_8,
        64.1337,
    );
}

/// A sweep reads its moving averages from columns shared by all its runs; every run must come
/// out exactly as if it had updated its own averages.
#[test]
fn sweep_with_shared_averages_matches_single_runs_bit_for_bit() {
    use crate::backtest_common::request;
    use std::sync::atomic::AtomicBool;
    use trademind::app::backtest::{SweepAxis, run_on, run_sweep, sweep_grid};
    use trademind::domain::market::CandleColumns;
    let candles = read_candles_csv(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/btcusdt_1h_2025-01_binance.csv"),
        Interval::H1,
    )
    .unwrap();
    let columns = CandleColumns::from_candles(&candles);
    let base = request(
        spec("sma-cross", &[]),
        rust_decimal::Decimal::new(100_000, 0),
        FillModel::NextOpen,
    );
    let axes: Vec<SweepAxis> = ["fast=4..16:4", "slow=20..50:15"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let grid = sweep_grid(&axes);
    let never = AtomicBool::new(false);
    let runs = run_sweep(&base, &grid, &candles, &columns, 2, &never, &|_| {});
    assert_eq!(runs.len(), 12);
    for run in &runs {
        let mut req = base.clone();
        req.strategy.params.extend(run.params.iter().cloned());
        let alone = run_on(&req, &candles, &columns, &never, &mut |_, _| {}).unwrap();
        assert_eq!(
            run.metrics.as_ref(),
            Some(&alone.metrics),
            "{:?}",
            run.params
        );
    }
}
