//! SMA(10)/SMA(30) crossover, all-in, 0.1 % fees: the same trades, final equity and max drawdown
//! as vectorbt, backtesting.py, backtrader, nautilus_trader and a compiled loop
//! (`/work/shared/data/PARITY.md`), on both bundled data sets and in both fill modes.

use crate::backtest_common::{run_all_in, spec};
use std::path::Path;
use trademind::app::backtest::read_candles_csv;
use trademind::domain::backtest::FillModel;
use trademind::domain::market::Interval;

/// A bundled hourly data set.
fn load(file: &str) -> Vec<trademind::domain::market::Candle> {
    read_candles_csv(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets")
            .join(file),
        Interval::H1,
    )
    .unwrap()
}

fn run(file: &str, fill: FillModel) -> (usize, f64, f64) {
    let candles = load(file);
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
    let candles = load("btcusdt_1h_2025-01_binance.csv");
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

/// The run reads an order's prices and times from the f64 columns when they are provably exact
/// (`CandleColumns::exact_close`), and from the decimal candles otherwise. Both must give the
/// same run to the last digit: trades, fees, equity curve, metrics, with stops and targets and
/// in both fill modes, on both data sets.
#[test]
fn exact_prices_from_the_columns_give_the_same_runs_as_the_candles() {
    use crate::backtest_common::request;
    use std::sync::atomic::AtomicBool;
    use trademind::app::backtest::run_on;
    use trademind::domain::market::CandleColumns;
    let never = AtomicBool::new(false);
    for file in [
        "btcusdt_1h_2025-01_binance.csv",
        "coinbase_btcusd_1h_2017-2019.csv",
    ] {
        let candles = read_candles_csv(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("assets")
                .join(file),
            Interval::H1,
        )
        .unwrap();
        let exact = CandleColumns::from_candles(&candles);
        assert!(exact.exact_close(0).is_some(), "{file}: no exact view");
        // The same f64 columns without the exact view: every event reads the candle.
        let mut plain = CandleColumns::default();
        plain.open_time.clone_from(&exact.open_time);
        plain.open.clone_from(&exact.open);
        plain.high.clone_from(&exact.high);
        plain.low.clone_from(&exact.low);
        plain.close.clone_from(&exact.close);
        plain.volume.clone_from(&exact.volume);
        assert!(plain.exact_close(0).is_none());
        for fill in [FillModel::NextOpen, FillModel::Close] {
            for strategy in [
                spec("sma-cross", &[("fast", 10.0), ("slow", 30.0)]),
                spec(
                    "sma-cross",
                    &[
                        ("fast", 5.0),
                        ("slow", 20.0),
                        ("stop_pct", 1.5),
                        ("take_pct", 3.0),
                    ],
                ),
                spec("rsi-macd", &[("stop_pct", 2.0)]),
            ] {
                let req = request(
                    strategy.clone(),
                    rust_decimal::Decimal::new(100_000, 0),
                    fill,
                );
                let a = run_on(&req, &candles, &exact, &never, &mut |_, _| {}).unwrap();
                let b = run_on(&req, &candles, &plain, &never, &mut |_, _| {}).unwrap();
                assert!(
                    a.metrics.trades > 0,
                    "{file} {fill} {strategy:?}: no trades"
                );
                assert_eq!(a, b, "{file} {fill} {strategy:?}");
                // Same digits too, not only equal values.
                assert_eq!(
                    serde_json::to_string(&a.trades).unwrap(),
                    serde_json::to_string(&b.trades).unwrap()
                );
            }
        }
    }
}
