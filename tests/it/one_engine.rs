//! One engine: the same strategy on the same candles, (a) backtested with risk sizing and
//! close fills and (b) traded live by the trading service on the paper exchange (one cycle a
//! candle, as the demo replays them), makes the same trades.

use std::sync::Arc;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;
use trademind::app::bus::EventBus;
use trademind::app::decide::AnyEngine;
use trademind::app::demo::{BUNDLED_BTCUSDT_1H, DEMO_STRATEGY, Demo, DemoOptions, DemoTrade};
use trademind::app::strategy_engine::StrategyEngine;
use trademind::config::Settings;
use trademind::domain::backtest::{
    BacktestConfig, BacktestService, Costs, Engine, ExitReason, FillModel, RiskSizer, StrategySpec,
    TradeRecord, build_strategy,
};
use trademind::domain::market::{Candle, CandleColumns, Interval};
use trademind::domain::money::Quote;
use trademind::domain::risk::{RiskConfig, SizingMode};
use trademind::services::market_data::import::parse_candles;

/// Warm-up candles (history only), then candles traded: 400 in all, under the 500 the trading
/// service fetches, so live sees every candle the backtest has seen.
const WARMUP: usize = 100;
const TRADED: usize = 300;

fn candles() -> Vec<Candle> {
    let all = parse_candles(BUNDLED_BTCUSDT_1H, Interval::H1, false)
        .unwrap()
        .candles;
    all[..WARMUP + TRADED].to_vec()
}

/// One rule for both paths: fixed risk of 1 % of equity over the strategy's stop, at most 4 %
/// of equity in the position (binding: a 20 % stop would allow 5 %), no reward:risk floor
/// (the strategy sets no target).
fn risk() -> RiskConfig {
    RiskConfig {
        sizing_mode: SizingMode::Fixed,
        risk_per_trade_pct: dec!(1),
        max_position_pct: dec!(4),
        min_reward_risk: Decimal::ZERO,
        ..RiskConfig::default()
    }
}

fn settings() -> Settings {
    let mut s = Settings {
        risk: risk(),
        ..Settings::default()
    };
    s.exchange.paper.slippage_bps = Decimal::ZERO;
    s.demo.warmup_candles = WARMUP;
    s
}

fn spec(params: &[(&str, f64)]) -> StrategySpec {
    StrategySpec {
        name: "sma-cross".into(),
        params: params.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

fn backtest(spec: &StrategySpec, candles: &[Candle]) -> Vec<TradeRecord> {
    backtest_run(spec, candles).trades
}

fn backtest_run(
    spec: &StrategySpec,
    candles: &[Candle],
) -> trademind::domain::backtest::BacktestResult {
    let settings = settings();
    let filters = settings
        .exchange
        .paper
        .filters_for("BTCUSDT")
        .expect("the paper exchange lists BTCUSDT");
    let mut config = BacktestConfig::new(Interval::H1);
    config.initial_cash = Quote(dec!(10000));
    config.costs = Costs::default();
    config.fill_model = FillModel::Close;
    config.filters = filters.clone();
    let sizer = RiskSizer::new(risk()).with_filters(filters);
    let engine = Engine::new(
        Box::new(build_strategy(spec).unwrap()),
        Box::new(sizer),
        config.initial_cash,
    )
    .with_fee_rate(config.costs.taker_fee);
    let columns = CandleColumns::from_candles(candles);
    let never = std::sync::atomic::AtomicBool::new(false);
    BacktestService::run_from(
        &config,
        engine,
        candles,
        &columns,
        WARMUP,
        &never,
        &mut |_, _| {},
    )
    .unwrap()
}

async fn live(spec: &StrategySpec) -> Vec<DemoTrade> {
    let dir = tempfile::tempdir().unwrap();
    let engine = StrategyEngine::new(spec.clone()).unwrap();
    let demo = Demo::prepare(
        Arc::new(settings()),
        &dir.path().join("live.db"),
        EventBus::default(),
        AnyEngine::Strategy(engine),
    )
    .unwrap();
    let summary = demo
        .run(
            DemoOptions {
                speed: None,
                candles: Some(TRADED),
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    // The demo's records say what traded: the strategy row, every decision's engine, and the
    // backtest it shows beside the replay.
    let db = demo.store.lock().unwrap();
    let row = trademind::store::strategies::strategy_by_name(db.conn(), DEMO_STRATEGY)
        .unwrap()
        .unwrap();
    assert_eq!(row.decision_engine, "strategy");
    assert_eq!(row.parameters["strategy"], spec.name.as_str());
    let strings = |sql: &str| -> Vec<String> {
        let mut stmt = db.conn().prepare(sql).unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let engines = strings("SELECT DISTINCT engine FROM decisions");
    assert_eq!(engines, [format!("strategy:{}", spec.name)]);
    assert_eq!(
        strings("SELECT strategy FROM backtests"),
        [spec.name.as_str()]
    );
    summary.trades
}

/// Binance's (and the paper exchange's) 0.1 % fee, the backtest's default taker fee.
const FEE: Decimal = dec!(0.001);
/// The paper exchange's BTCUSDT lot step and tick.
const STEP: Decimal = dec!(0.00001);
const TICK: Decimal = dec!(0.01);
const HOUR_MS: i64 = 3_600_000;
/// The trading service runs 5 s after a candle closes (as the demo and the daemon do).
const AFTER_CLOSE_MS: i64 = 5_000;

fn floor_to(v: Decimal, step: Decimal) -> Decimal {
    (v / step).floor() * step
}

/// The live rule by hand: 1 % of equity over the stop distance (stop rounded up to the tick),
/// at most 4 % of equity in notional, at most the cash after the fee, floored to the lot.
fn expected_qty(equity: Decimal, entry: Decimal, stop_pct: Decimal) -> Decimal {
    let stop = (entry * (Decimal::ONE - stop_pct / dec!(100)) / TICK).ceil() * TICK;
    let by_risk = equity * dec!(0.01) / (entry - stop);
    let by_position = equity * dec!(0.04) / entry;
    let by_cash = equity / (entry * (Decimal::ONE + FEE));
    floor_to(by_risk.min(by_position).min(by_cash), STEP)
}

/// Both paths decide on the candle that just closed and fill at its close: the backtest stamps
/// the trade with that candle's open time, live trading runs 5 s after its close.
fn live_time(backtest_time: i64) -> i64 {
    backtest_time + HOUR_MS + AFTER_CLOSE_MS
}

/// The entry checks both tests share: same candle and price, the backtest sized by the rule on
/// its equity; returns (entry price, backtest size, live size by the rule on the live equity),
/// at most one lot apart (the equities differ by the dust).
fn check_entry(
    b: &TradeRecord,
    l: &DemoTrade,
    bt_equity: Decimal,
    live_equity: Decimal,
    stop_pct: Decimal,
) -> (Decimal, Decimal, Decimal) {
    let (e, q_b) = (b.entry_price.get(), b.qty.get());
    assert_eq!(l.opened_at, live_time(b.entry_time), "entry candle");
    assert_eq!(l.entry_price.get(), e, "entry price");
    assert_eq!(q_b, expected_qty(bt_equity, e, stop_pct), "backtest size");
    let q_l = expected_qty(live_equity, e, stop_pct);
    assert!((q_l - q_b).abs() <= STEP, "sizes {q_l} vs {q_b}");
    (e, q_b, q_l)
}

#[tokio::test]
async fn sma_cross_trades_the_same_live_as_in_its_backtest() {
    let candles = candles();
    // A 20 % stop is never reached in this month, so every exit is the strategy's own: the
    // comparison is of signals, sizing and fills, not of the two stop models.
    let stop_pct = dec!(20);
    let spec = spec(&[("fast", 10.0), ("slow", 30.0), ("stop_pct", 20.0)]);
    let bt = backtest(&spec, &candles);
    let lv = live(&spec).await;

    assert_eq!(bt.len(), lv.len(), "backtest {bt:#?}\nlive {lv:#?}");
    assert!(
        bt.len() >= 5,
        "the data should give several trades, got {}",
        bt.len()
    );
    let mut bt_equity = dec!(10000);
    // Live equity is the USDT balance when flat: the buy fee is taken in BTC and the part of
    // the held BTC below one lot step stays behind as dust when the position is sold.
    let mut live_equity = dec!(10000);
    for (b, l) in bt.iter().zip(&lv) {
        let (e, q_b, q_l) = check_entry(b, l, bt_equity, live_equity, stop_pct);
        let Some(exit_time) = b.exit_time else {
            // Still open at the end in both: live holds what it bought less the fee in BTC.
            assert_eq!(l.closed_at, None);
            assert_eq!(
                l.quantity.get(),
                q_l * (Decimal::ONE - FEE),
                "open position"
            );
            continue;
        };
        assert_eq!(l.quantity.get(), q_l, "live size");
        assert_eq!(l.closed_at, Some(live_time(exit_time)), "exit candle");
        assert_eq!(l.exit, "exit", "a signal exit, not a stop");
        let x = b.exit_price.unwrap().get();
        assert_eq!(l.exit_price.map(|p| p.get()), Some(x), "exit price");
        // Backtest: fees in quote on both sides.
        let bt_pnl = q_b * x * (Decimal::ONE - FEE) - q_b * e * (Decimal::ONE + FEE);
        assert_eq!(b.pnl.get(), bt_pnl, "backtest PnL");
        // Live: the buy fee is q·FEE BTC (worth q·e·FEE), the whole lot steps s of the rest are
        // sold (fee s·x·FEE) and the dust below a step is booked at the exit price.
        let sold = floor_to(q_l * (Decimal::ONE - FEE), STEP);
        let live_pnl = q_l * (Decimal::ONE - FEE) * x - sold * x * FEE - q_l * e;
        assert_eq!(l.realized_pnl.get(), live_pnl, "live PnL");
        if q_l == q_b {
            // Same size: the PnLs differ only by the fee asset, FEE·(q·e − s·x): a few cents
            // on these 400-USDT positions.
            let diff = l.realized_pnl.get() - b.pnl.get();
            assert_eq!(diff, FEE * (q_b * e - sold * x));
            assert!(diff.abs() < dec!(0.05), "PnL apart by {diff}");
        }
        bt_equity += bt_pnl;
        live_equity += sold * x * (Decimal::ONE - FEE) - q_l * e;
    }
}

fn ceil_to(v: Decimal, step: Decimal) -> Decimal {
    (v / step).ceil() * step
}

/// Where the paper exchange's protection of a long fills inside `candle`, per its model: the
/// candle is walked as four prices (open, low, high, close for a rising candle; open, high, low,
/// close for a falling one); the stop-limit triggers at the first price at or under the stop
/// and sells at that price when it is not under the limit, else rests and sells at the limit
/// once a later price reaches it; the take-profit (a resting LIMIT_MAKER) sells at its own
/// price once reached.
fn paper_exit(candle: &Candle, stop: Decimal, limit: Decimal, target: Decimal) -> Option<Decimal> {
    let (o, h, l, c) = (
        candle.open.get(),
        candle.high.get(),
        candle.low.get(),
        candle.close.get(),
    );
    let path = if c >= o { [o, l, h, c] } else { [o, h, l, c] };
    let mut triggered = false;
    for p in path {
        if !triggered && p <= stop {
            triggered = true;
            if p >= limit {
                return Some(p);
            }
        } else if triggered && p >= limit {
            return Some(limit);
        } else if !triggered && p >= target {
            return Some(target);
        }
    }
    None
}

#[tokio::test]
async fn sma_cross_with_a_stop_and_a_target_exits_on_the_same_candles_live_and_in_its_backtest() {
    let candles = candles();
    let (stop_pct, take_pct) = (dec!(1), dec!(2));
    let spec = spec(&[
        ("fast", 10.0),
        ("slow", 30.0),
        ("stop_pct", 1.0),
        ("take_pct", 2.0),
    ]);
    let bt = backtest(&spec, &candles);
    let lv = live(&spec).await;
    let offset = Settings::default().trading.stop_limit_offset_pct / dec!(100);

    assert_eq!(bt.len(), lv.len(), "backtest {bt:#?}\nlive {lv:#?}");
    let reasons: Vec<_> = bt.iter().filter_map(|t| t.exit_reason).collect();
    for wanted in [
        ExitReason::StopLoss,
        ExitReason::TakeProfit,
        ExitReason::Signal,
    ] {
        assert!(
            reasons.contains(&wanted),
            "no {wanted:?} exit in {reasons:?}"
        );
    }
    let mut bt_equity = dec!(10000);
    let mut live_equity = dec!(10000);
    for (b, l) in bt.iter().zip(&lv) {
        let (e, q_b, q_l) = check_entry(b, l, bt_equity, live_equity, stop_pct);
        assert_eq!(l.quantity.get(), q_l, "live size");
        let (Some(exit_time), Some(reason)) = (b.exit_time, b.exit_reason) else {
            panic!("every trade of this run is closed: {b:?}");
        };
        let bar = candles.iter().find(|c| c.open_time == exit_time).unwrap();
        let open = bar.open.get();
        // Both stops are the risk layer's: 1 % under the entry, rounded up to the tick.
        let stop = ceil_to(e * (Decimal::ONE - stop_pct / dec!(100)), TICK);
        let target = e * (Decimal::ONE + take_pct / dec!(100));
        let x_b = b.exit_price.unwrap().get();
        let x_l = l.exit_price.unwrap().get();
        match reason {
            ExitReason::Signal => {
                assert_eq!(l.exit, "exit");
                assert_eq!(l.closed_at, Some(live_time(exit_time)), "exit candle");
                assert_eq!(x_l, x_b, "signal exit price");
            }
            ExitReason::StopLoss | ExitReason::TakeProfit => {
                // The exchange fills protection while the candle runs; the service books it at
                // the candle's close.
                assert_eq!(l.closed_at, Some(exit_time + HOUR_MS), "exit candle");
                // Backtest: at the level, or at the open when the candle gapped through it.
                // The target is not put on the tick (the engine leaves brackets as given).
                let level = if reason == ExitReason::StopLoss {
                    assert_eq!(l.exit, "stop_loss");
                    if open < stop { open } else { stop }
                } else {
                    assert_eq!(l.exit, "take_profit");
                    if open > target { open } else { target }
                };
                assert_eq!(x_b, level, "backtest {reason:?} price");
                // Live: the paper exchange's model above, with the stop-limit 0.5 % under the
                // stop and the target rounded down to the tick.
                let limit = floor_to(stop * (Decimal::ONE - offset), TICK);
                let expected = paper_exit(bar, stop, limit, floor_to(target, TICK));
                assert_eq!(Some(x_l), expected, "live {reason:?} price");
            }
            other => panic!("unexpected exit {other:?}"),
        }
        let bt_pnl = q_b * x_b * (Decimal::ONE - FEE) - q_b * e * (Decimal::ONE + FEE);
        assert_eq!(b.pnl.get(), bt_pnl, "backtest PnL");
        let sold = floor_to(q_l * (Decimal::ONE - FEE), STEP);
        let live_pnl = q_l * (Decimal::ONE - FEE) * x_l - sold * x_l * FEE - q_l * e;
        assert_eq!(l.realized_pnl.get(), live_pnl, "live PnL");
        bt_equity += bt_pnl;
        live_equity += sold * x_l * (Decimal::ONE - FEE) - q_l * e;
    }
}

#[tokio::test]
async fn sma_cross_with_a_break_even_move_exits_on_the_same_candles_and_prices_live_and_in_its_backtest()
 {
    let candles = candles();
    let (stop_pct, take_pct) = (dec!(1), dec!(2));
    let spec = spec(&[
        ("fast", 10.0),
        ("slow", 30.0),
        ("stop_pct", 1.0),
        ("take_pct", 2.0),
        ("breakeven_r", 0.5),
    ]);
    let bt = backtest(&spec, &candles);
    let lv = live(&spec).await;
    let offset = Settings::default().trading.stop_limit_offset_pct / dec!(100);

    assert_eq!(bt.len(), lv.len(), "backtest {bt:#?}\nlive {lv:#?}");
    let mut moved_stop_exits = 0;
    let mut bt_equity = dec!(10000);
    let mut live_equity = dec!(10000);
    for (b, l) in bt.iter().zip(&lv) {
        let (e, q_b, q_l) = check_entry(b, l, bt_equity, live_equity, stop_pct);
        assert_eq!(l.quantity.get(), q_l, "live size");
        let (Some(exit_time), Some(reason)) = (b.exit_time, b.exit_reason) else {
            panic!("every trade of this run is closed: {b:?}");
        };
        let bar = candles.iter().find(|c| c.open_time == exit_time).unwrap();
        let open = bar.open.get();
        let first_stop = ceil_to(e * (Decimal::ONE - stop_pct / dec!(100)), TICK);
        // Break-even by hand: after a close at entry + ½ R, the stop is entry × 1.001 / 0.999
        // rounded up to the tick, from the next candle on.
        let trigger = e + (e - first_stop) / dec!(2);
        let moved = candles.iter().any(|c| {
            c.open_time > b.entry_time && c.open_time < exit_time && c.close.get() >= trigger
        });
        let stop = if moved {
            ceil_to(e * (Decimal::ONE + FEE) / (Decimal::ONE - FEE), TICK)
        } else {
            first_stop
        };
        let target = e * (Decimal::ONE + take_pct / dec!(100));
        let x_b = b.exit_price.unwrap().get();
        let x_l = l.exit_price.unwrap().get();
        match reason {
            ExitReason::Signal => {
                assert_eq!(l.exit, "exit");
                assert_eq!(l.closed_at, Some(live_time(exit_time)), "exit candle");
                assert_eq!(x_l, x_b, "signal exit price");
            }
            ExitReason::StopLoss | ExitReason::TakeProfit => {
                assert_eq!(l.closed_at, Some(exit_time + HOUR_MS), "exit candle");
                let level = if reason == ExitReason::StopLoss {
                    assert_eq!(l.exit, "stop_loss");
                    moved_stop_exits += usize::from(moved);
                    if open < stop { open } else { stop }
                } else {
                    assert_eq!(l.exit, "take_profit");
                    if open > target { open } else { target }
                };
                assert_eq!(x_b, level, "backtest {reason:?} price (moved: {moved})");
                let limit = floor_to(stop * (Decimal::ONE - offset), TICK);
                let expected = paper_exit(bar, stop, limit, floor_to(target, TICK));
                assert_eq!(
                    Some(x_l),
                    expected,
                    "live {reason:?} price (moved: {moved})"
                );
            }
            other => panic!("unexpected exit {other:?}"),
        }
        let bt_pnl = q_b * x_b * (Decimal::ONE - FEE) - q_b * e * (Decimal::ONE + FEE);
        assert_eq!(b.pnl.get(), bt_pnl, "backtest PnL");
        let sold = floor_to(q_l * (Decimal::ONE - FEE), STEP);
        let live_pnl = q_l * (Decimal::ONE - FEE) * x_l - sold * x_l * FEE - q_l * e;
        assert_eq!(l.realized_pnl.get(), live_pnl, "live PnL");
        bt_equity += bt_pnl;
        live_equity += sold * x_l * (Decimal::ONE - FEE) - q_l * e;
    }
    assert!(
        moved_stop_exits > 0,
        "no trade left at its break-even stop: {bt:#?}"
    );
}

#[tokio::test]
async fn sma_cross_with_a_time_exit_sells_on_the_same_candles_live_and_in_its_backtest() {
    let candles = candles();
    let hold = 5;
    let spec = spec(&[
        ("fast", 10.0),
        ("slow", 30.0),
        ("stop_pct", 20.0),
        ("time_exit_candles", f64::from(hold)),
    ]);
    let bt = backtest(&spec, &candles);
    let lv = live(&spec).await;

    assert_eq!(bt.len(), lv.len(), "backtest {bt:#?}\nlive {lv:#?}");
    let reasons: Vec<_> = bt.iter().filter_map(|t| t.exit_reason).collect();
    assert!(
        reasons.contains(&ExitReason::TimeExit),
        "no time exit in {reasons:?}"
    );
    let mut bt_equity = dec!(10000);
    let mut live_equity = dec!(10000);
    for (b, l) in bt.iter().zip(&lv) {
        let (e, q_b, q_l) = check_entry(b, l, bt_equity, live_equity, dec!(20));
        let (Some(exit_time), Some(reason)) = (b.exit_time, b.exit_reason) else {
            assert_eq!(l.closed_at, None);
            continue;
        };
        assert_eq!(l.quantity.get(), q_l, "live size");
        if reason == ExitReason::TimeExit {
            // The close of the 5th candle after the entry candle.
            assert_eq!(exit_time, b.entry_time + i64::from(hold) * HOUR_MS);
        } else {
            assert_eq!(reason, ExitReason::Signal);
            assert!(exit_time <= b.entry_time + i64::from(hold) * HOUR_MS);
        }
        // Both sell at market at that close.
        assert_eq!(l.exit, "exit");
        assert_eq!(l.closed_at, Some(live_time(exit_time)), "exit candle");
        let x = b.exit_price.unwrap().get();
        assert_eq!(l.exit_price.map(|p| p.get()), Some(x), "exit price");
        let bt_pnl = q_b * x * (Decimal::ONE - FEE) - q_b * e * (Decimal::ONE + FEE);
        assert_eq!(b.pnl.get(), bt_pnl, "backtest PnL");
        let sold = floor_to(q_l * (Decimal::ONE - FEE), STEP);
        let live_pnl = q_l * (Decimal::ONE - FEE) * x - sold * x * FEE - q_l * e;
        assert_eq!(l.realized_pnl.get(), live_pnl, "live PnL");
        bt_equity += bt_pnl;
        live_equity += sold * x * (Decimal::ONE - FEE) - q_l * e;
    }
}

/// Where a trailing stop `bips` under the high sells a long entered at `entry` (the price at
/// which the order was placed, its first high), walking `after` (the candles after the entry)
/// as the paper exchange replays them: open, nearer extreme, farther extreme, close. Binance's
/// rule: a new high moves the trigger to high × (1 − delta); the first price at or under the
/// trigger triggers the order, which (its limit far below) sells at that price.
fn trailing_exit(after: &[Candle], entry: Decimal, bips: Decimal) -> Option<(i64, Decimal)> {
    let keep = Decimal::ONE - bips / dec!(10000);
    let mut high = entry;
    for c in after {
        let (o, h, l, cl) = (c.open.get(), c.high.get(), c.low.get(), c.close.get());
        let path = if cl >= o {
            [o, l, h, cl]
        } else {
            [o, h, l, cl]
        };
        for p in path {
            if p > high {
                high = p;
            } else if p <= high * keep {
                return Some((c.open_time, p));
            }
        }
    }
    None
}

#[tokio::test]
async fn sma_cross_with_a_trailing_stop_exits_on_the_same_candles_and_prices_live_and_in_its_backtest()
 {
    let candles = candles();
    let bips = dec!(150);
    let spec = spec(&[("fast", 10.0), ("slow", 30.0), ("trail_bips", 150.0)]);
    let bt = backtest(&spec, &candles);
    let lv = live(&spec).await;

    assert_eq!(bt.len(), lv.len(), "backtest {bt:#?}\nlive {lv:#?}");
    let reasons: Vec<_> = bt.iter().filter_map(|t| t.exit_reason).collect();
    assert!(
        reasons.contains(&ExitReason::TrailingStop),
        "no trailing exit in {reasons:?}"
    );
    let mut bt_equity = dec!(10000);
    let mut live_equity = dec!(10000);
    for (b, l) in bt.iter().zip(&lv) {
        // Sized on where the trailing stop starts: 1.5 % under the entry.
        let (e, q_b, q_l) = check_entry(b, l, bt_equity, live_equity, bips / dec!(100));
        let (Some(exit_time), Some(reason)) = (b.exit_time, b.exit_reason) else {
            assert_eq!(l.closed_at, None);
            continue;
        };
        assert_eq!(l.quantity.get(), q_l, "live size");
        let x_b = b.exit_price.unwrap().get();
        let x_l = l.exit_price.unwrap().get();
        match reason {
            ExitReason::Signal => {
                assert_eq!(l.exit, "exit");
                assert_eq!(l.closed_at, Some(live_time(exit_time)), "exit candle");
                assert_eq!(x_l, x_b, "signal exit price");
            }
            ExitReason::TrailingStop => {
                // Both trail from the entry candle's close over the candles after it.
                let after: Vec<Candle> = candles
                    .iter()
                    .filter(|c| c.open_time > b.entry_time)
                    .cloned()
                    .collect();
                let expected = trailing_exit(&after, e, bips);
                assert_eq!(Some((exit_time, x_b)), expected, "backtest trailing exit");
                assert_eq!(l.exit, "stop_loss");
                assert_eq!(l.closed_at, Some(exit_time + HOUR_MS), "exit candle");
                assert_eq!(x_l, x_b, "live trailing exit price");
            }
            other => panic!("unexpected exit {other:?}"),
        }
        let bt_pnl = q_b * x_b * (Decimal::ONE - FEE) - q_b * e * (Decimal::ONE + FEE);
        assert_eq!(b.pnl.get(), bt_pnl, "backtest PnL");
        let sold = floor_to(q_l * (Decimal::ONE - FEE), STEP);
        let live_pnl = q_l * (Decimal::ONE - FEE) * x_l - sold * x_l * FEE - q_l * e;
        assert_eq!(l.realized_pnl.get(), live_pnl, "live PnL");
        bt_equity += bt_pnl;
        live_equity += sold * x_l * (Decimal::ONE - FEE) - q_l * e;
    }
}

/// Each live position's sells in time order: (purpose, quantity, average price, time), beside
/// the demo's trades (same order: by opening time).
type LiveSells = Vec<(
    trademind::domain::trading::order::OrderPurpose,
    Decimal,
    Decimal,
    i64,
)>;

async fn live_with_sells(spec: &StrategySpec) -> (Vec<DemoTrade>, Vec<LiveSells>) {
    use trademind::store::{orders, positions};
    let dir = tempfile::tempdir().unwrap();
    let engine = StrategyEngine::new(spec.clone()).unwrap();
    let demo = Demo::prepare(
        Arc::new(settings()),
        &dir.path().join("live.db"),
        EventBus::default(),
        AnyEngine::Strategy(engine),
    )
    .unwrap();
    let summary = demo
        .run(
            DemoOptions {
                speed: None,
                candles: Some(TRADED),
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let db = demo.store.lock().unwrap();
    let mut rows = positions::closed_positions(db.conn(), usize::MAX / 2).unwrap();
    rows.extend(positions::open_positions(db.conn()).unwrap());
    rows.sort_by_key(|r| r.position.opened_at);
    let sells = rows
        .iter()
        .map(|r| {
            let mut sold: LiveSells = orders::of_position(db.conn(), r.id)
                .unwrap()
                .into_iter()
                .filter(|o| {
                    o.order.side == trademind::domain::trading::order::Side::Sell
                        && !o.order.filled_quantity.is_zero()
                })
                .map(|o| {
                    (
                        o.purpose,
                        o.order.filled_quantity.get(),
                        o.order.average_fill_price().unwrap().get(),
                        o.order.updated_at,
                    )
                })
                .collect();
            sold.sort_by_key(|s| s.3);
            sold
        })
        .collect();
    (summary.trades, sells)
}

/// Scale-out both ways: sma-cross with stop 1 %, target 2 % and half out at the target. Before
/// the target a stop sells everything (the part's OCO leg and the rest's stop at one price);
/// at the target half sells (the backtest at the target or the better open, the paper exchange
/// at the target on the tick); after it the rest's stop moves to break-even at the first close
/// above it, and the rest leaves at that stop or on the strategy's exit, on the same candle
/// both ways. Every PnL is worked out by hand from the legs, fees included.
#[tokio::test]
async fn sma_cross_with_a_scale_out_sells_the_same_parts_on_the_same_candles_live_and_in_its_backtest()
 {
    use trademind::domain::trading::order::OrderPurpose;
    let candles = candles();
    let (stop_pct, take_pct) = (dec!(1), dec!(2));
    let spec = spec(&[
        ("fast", 10.0),
        ("slow", 30.0),
        ("stop_pct", 1.0),
        ("take_pct", 2.0),
        ("scale_out_pct", 50.0),
    ]);
    let bt = backtest(&spec, &candles);
    let (lv, sells) = live_with_sells(&spec).await;
    let offset = Settings::default().trading.stop_limit_offset_pct / dec!(100);
    let maker = Costs::default().maker_fee;

    assert_eq!(bt.len(), lv.len(), "backtest {bt:#?}\nlive {lv:#?}");
    let scaled = bt.iter().filter(|t| t.scaled_out.is_some()).count();
    assert!(scaled > 0, "no trade reached its first target: {bt:#?}");
    let mut moved_stop_exits = 0;
    let mut bt_equity = dec!(10000);
    let mut live_equity = dec!(10000);
    for ((b, l), sold) in bt.iter().zip(&lv).zip(&sells) {
        let (e, q_b, q_l) = check_entry(b, l, bt_equity, live_equity, stop_pct);
        let (Some(exit_time), Some(reason)) = (b.exit_time, b.exit_reason) else {
            assert_eq!(l.closed_at, None);
            continue;
        };
        assert_eq!(l.quantity.get(), q_l, "live size");
        let held = q_l * (Decimal::ONE - FEE);
        let sellable = floor_to(held, STEP);
        let first_stop = ceil_to(e * (Decimal::ONE - stop_pct / dec!(100)), TICK);
        let target = e * (Decimal::ONE + take_pct / dec!(100));
        let bar_at = |t: i64| candles.iter().find(|c| c.open_time == t).unwrap();
        // (quantity, price, fee rate) of each backtest sell, and the live sells expected.
        let mut bt_legs = Vec::new();
        let mut rest_l = sellable;
        let mut stop = first_stop;
        if let Some(part) = b.scaled_out {
            let bar = bar_at(part.time);
            assert_eq!(
                part.qty.get(),
                floor_to(q_b / dec!(2), STEP),
                "backtest part"
            );
            let level = if bar.open.get() > target {
                bar.open.get()
            } else {
                target
            };
            assert_eq!(part.price.get(), level, "backtest part price");
            bt_legs.push((part.qty.get(), level, maker));
            let part_l = floor_to(sellable / dec!(2), STEP);
            let (purpose, qty, price, time) = sold[0];
            assert_eq!(purpose, OrderPurpose::TakeProfit);
            assert_eq!(qty, part_l, "live part");
            // Filled while its candle ran, booked at the pass after its close.
            assert_eq!(time, live_time(part.time), "live part's candle");
            let expected = paper_exit(bar, first_stop, Decimal::ZERO, floor_to(target, TICK));
            assert_eq!(Some(price), expected, "live part price");
            rest_l -= part_l;
            // Break-even at the first close above it, from the part's candle on.
            let level = ceil_to(e * (Decimal::ONE + FEE) / (Decimal::ONE - FEE), TICK);
            if candles.iter().any(|c| {
                c.open_time >= part.time && c.open_time < exit_time && c.close.get() > level
            }) {
                stop = level;
            }
        }
        let rest_b = q_b - b.scaled_out.map_or(Decimal::ZERO, |p| p.qty.get());
        let bar = bar_at(exit_time);
        let limit = floor_to(stop * (Decimal::ONE - offset), TICK);
        // The backtest's price for the rest, and the live rest's (purpose, price, closing time).
        let (x_b, live_rest) = match reason {
            ExitReason::Signal => (
                bar.close.get(),
                (OrderPurpose::Exit, bar.close.get(), live_time(exit_time)),
            ),
            ExitReason::StopLoss => {
                moved_stop_exits += usize::from(stop != first_stop);
                let x_b = if bar.open.get() < stop {
                    bar.open.get()
                } else {
                    stop
                };
                let live = match paper_exit(bar, stop, limit, floor_to(target, TICK)) {
                    Some(x) => (OrderPurpose::StopLoss, x, exit_time + HOUR_MS),
                    // The candle fell through the stop-limit's limit and closed under it: a
                    // triggered STOP_LOSS_LIMIT rests unfilled (Binance's rule; the backtest's
                    // stop sells at the stop), and the rest left on the strategy's exit at
                    // that close.
                    None => (OrderPurpose::Exit, bar.close.get(), live_time(exit_time)),
                };
                (x_b, live)
            }
            ExitReason::TakeProfit => {
                // Not scaled out (its part would be refused): the whole at the target.
                assert!(b.scaled_out.is_none());
                let x_b = if bar.open.get() > target {
                    bar.open.get()
                } else {
                    target
                };
                (
                    x_b,
                    (
                        OrderPurpose::TakeProfit,
                        floor_to(target, TICK),
                        exit_time + HOUR_MS,
                    ),
                )
            }
            other => panic!("unexpected exit {other:?}"),
        };
        assert_eq!(l.closed_at, Some(live_rest.2), "exit candle {b:?} {sold:?}");
        let fee_b = if reason == ExitReason::TakeProfit {
            maker
        } else {
            FEE
        };
        bt_legs.push((rest_b, x_b, fee_b));
        let bt_pnl: Decimal = bt_legs
            .iter()
            .map(|(q, x, f)| q * x * (Decimal::ONE - f))
            .sum::<Decimal>()
            - q_b * e * (Decimal::ONE + FEE);
        assert_eq!(b.pnl.get(), bt_pnl, "backtest PnL");
        // Live: every sell of the rest at the price the paper exchange's model gives it.
        let rest_sells = &sold[usize::from(b.scaled_out.is_some())..];
        let sold_rest: Decimal = rest_sells.iter().map(|s| s.1).sum();
        assert_eq!(sold_rest, rest_l, "live rest {sold:?}");
        for &(purpose, _, price, _) in rest_sells {
            assert_eq!(
                (purpose, price),
                (live_rest.0, live_rest.1),
                "live {reason:?} sell {b:?} {sold:?}"
            );
        }
        let last_price = sold.last().unwrap().2;
        let received: Decimal = sold.iter().map(|s| s.1 * s.2 * (Decimal::ONE - FEE)).sum();
        // The dust under a lot step is booked at the last sell's price, fee-free.
        let live_pnl = received + (held - sellable) * last_price - q_l * e;
        assert_eq!(l.realized_pnl.get(), live_pnl, "live PnL");
        bt_equity += bt_pnl;
        live_equity += received - q_l * e;
    }
    assert!(
        moved_stop_exits > 0,
        "no rest left at its break-even stop: {bt:#?}"
    );
}

use crate::exchange_cli::trademind;

fn stdout_json(assert: assert_cmd::assert::Assert) -> serde_json::Value {
    serde_json::from_slice(&assert.success().get_output().stdout).unwrap()
}

#[test]
fn a_strategy_added_with_the_strategy_engine_decides_with_its_backtest_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let add = |name: &str, params: &[&str]| {
        let mut cmd = trademind(dir.path());
        cmd.args([
            "strategy", "add", name, "--symbol", "BTCUSDT", "--engine", "strategy",
        ]);
        for p in params {
            cmd.args(["--param", p]);
        }
        cmd.assert()
    };
    // A row the daemon could not run is refused when it is added.
    let refused = add("bad", &["strategy=sma-cross", "fast=40", "slow=30"])
        .code(2)
        .get_output()
        .stderr
        .clone();
    let refused = String::from_utf8(refused).unwrap();
    assert!(refused.contains("shorter than slow"), "{refused}");
    add("nameless", &["fast=10"]).code(2);
    add(
        "trend",
        &[
            "strategy=sma-cross",
            "fast=10",
            "slow=30",
            "stop_pct=2",
            "take_pct=4",
        ],
    )
    .success();

    // `execute --strategy` (what the daemon's job does) on the paper exchange and the bundled
    // candles decides with the strategy and records it under its engine label.
    let report = stdout_json(
        trademind(dir.path())
            .args(["--json", "execute", "BTCUSDT", "--strategy", "trend"])
            .assert(),
    );
    assert_eq!(report["engine"], "strategy:sma-cross", "{report}");
    let listed = stdout_json(trademind(dir.path()).args(["--json", "decisions"]).assert());
    assert_eq!(listed["decisions"][0]["engine"], "strategy:sma-cross");
}

#[test]
fn strategy_add_refuses_exits_live_trading_would_ignore_for_every_engine() {
    let dir = tempfile::tempdir().unwrap();
    for (engine, param) in [
        ("rules", "trail_bips=5000"),
        ("rules", "breakeven_r=0"),
        ("llm", "time_exit_candles=2.5"),
        ("strategy", "trail_bips=5"),
    ] {
        let mut cmd = trademind(dir.path());
        cmd.args([
            "strategy", "add", "x", "--symbol", "BTCUSDT", "--engine", engine,
        ]);
        cmd.args(["--param", "strategy=sma-cross", "--param", param]);
        let out = cmd.assert().code(2).get_output().stderr.clone();
        let key = param.split('=').next().unwrap();
        assert!(
            String::from_utf8_lossy(&out).contains(key),
            "{engine} {param}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    trademind(dir.path())
        .args([
            "strategy", "add", "ok", "--symbol", "BTCUSDT", "--engine", "rules",
        ])
        .args([
            "--param",
            "trail_bips=150",
            "--param",
            "time_exit_candles=24",
        ])
        .assert()
        .success();
}

#[tokio::test]
async fn the_scheduler_builds_a_strategy_rows_engine_from_its_parameters() {
    use trademind::app::decide::{DecisionEngine, EngineError, engine_for};
    use trademind::store::Store;
    use trademind::store::strategies::StrategyRow;
    let store = Arc::new(std::sync::Mutex::new(Store::open_in_memory().unwrap()));
    let mut row = StrategyRow {
        id: 1,
        name: "trend".into(),
        is_active: true,
        status: "stopped".into(),
        symbols: vec!["BTCUSDT".into()],
        interval: "1h".into(),
        decision_engine: "strategy".into(),
        parameters: serde_json::json!({"strategy": "rsi-reversion", "period": 14, "stop_pct": 2}),
        connection_id: None,
        created_at: 0,
        updated_at: 0,
    };
    let settings = Settings::default();
    let no_mailer = async { None };
    match engine_for(&settings, &row, store.clone(), no_mailer)
        .await
        .unwrap()
    {
        AnyEngine::Strategy(e) => {
            assert_eq!(e.spec().name, "rsi-reversion");
            assert_eq!(e.label(), "strategy");
        }
        _ => panic!("not the strategy engine"),
    }
    row.parameters = serde_json::json!({"strategy": "rsi-reversion", "period": 0});
    let err = engine_for(&settings, &row, store, async { None })
        .await
        .err()
        .unwrap();
    assert!(matches!(err, EngineError::Strategy { .. }), "{err}");
    assert!(err.to_string().contains("\"trend\""), "{err}");
}

/// Limit entries both ways: sma-cross with `entry_limit_bps = 10` (the limit 0.1 % under the
/// decision's close, rounded down to the tick) resting one candle. Where the next candle trades
/// down to the limit, both fill there (the backtest as the maker at the limit, the paper
/// exchange when its replayed path crosses the resting order) on that candle, with the same
/// size at that limit; where it does not, both cancel the entry at that candle's close and no
/// trade follows. Every exit is the strategy's own (a 20 % stop is never reached).
#[tokio::test]
async fn sma_cross_with_a_limit_entry_fills_and_misses_the_same_entries_live_and_in_its_backtest() {
    use trademind::domain::backtest::Rejection;
    use trademind::domain::trading::order::{OrderPurpose, OrderStatus, OrderType};
    let candles = candles();
    let stop_pct = dec!(20);
    let bps = dec!(10);
    let spec = spec(&[
        ("fast", 10.0),
        ("slow", 30.0),
        ("stop_pct", 20.0),
        ("entry_limit_bps", 10.0),
    ]);
    let bt = backtest_run(&spec, &candles);
    let missed_bt: Vec<i64> = bt
        .rejections
        .iter()
        .filter(|(_, r)| matches!(r, Rejection::Expired { .. }))
        .map(|(t, _)| *t)
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let engine = StrategyEngine::new(spec.clone()).unwrap();
    let demo = Demo::prepare(
        Arc::new(settings()),
        &dir.path().join("live.db"),
        EventBus::default(),
        AnyEngine::Strategy(engine),
    )
    .unwrap();
    let summary = demo
        .run(
            DemoOptions {
                speed: None,
                candles: Some(TRADED),
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
    let entries: Vec<_> = trademind::store::orders::all(demo.store.lock().unwrap().conn())
        .unwrap()
        .into_iter()
        .filter(|o| o.purpose == OrderPurpose::Entry)
        .collect();
    let lv = summary.trades;

    assert!(
        entries
            .iter()
            .all(|o| o.order.order_type == OrderType::Limit),
        "every live entry is a limit buy"
    );
    let missed_live = entries
        .iter()
        .filter(|o| o.order.status == OrderStatus::Canceled && o.order.filled_quantity.is_zero())
        .count();
    assert_eq!(
        missed_live,
        missed_bt.len(),
        "entries missed: {missed_bt:?}"
    );
    assert!(
        !missed_bt.is_empty() && bt.trades.len() >= 2,
        "the data should give fills and misses: {} trades, {} missed",
        bt.trades.len(),
        missed_bt.len()
    );
    assert_eq!(
        bt.trades.len(),
        lv.len(),
        "backtest {:#?}\nlive {lv:#?}",
        bt.trades
    );
    let mut bt_equity = dec!(10000);
    let mut live_equity = dec!(10000);
    for (b, l) in bt.trades.iter().zip(&lv) {
        // The entry was decided on the candle before the fill, at its close.
        let decided = candles
            .iter()
            .rposition(|c| c.open_time < b.entry_time)
            .map(|i| candles[i].close.get())
            .unwrap();
        let limit = floor_to(decided * (Decimal::ONE - bps / dec!(10000)), TICK);
        let e = b.entry_price.get();
        assert_eq!(e, limit, "backtest fills at the limit");
        assert_eq!(l.entry_price.get(), limit, "live fills at the limit");
        // Filled while the candle ran: booked by the pass after its close.
        assert_eq!(l.opened_at, b.entry_time + HOUR_MS, "entry candle");
        // Both sized at the limit by one rule: 4 % of equity binds (a 20 % stop under the
        // decision's close leaves 1 % of equity room for more).
        let size = |equity: Decimal| {
            let stop = ceil_to(decided * (Decimal::ONE - stop_pct / dec!(100)), TICK);
            let by_risk = equity * dec!(0.01) / (limit - stop);
            let by_position = equity * dec!(0.04) / limit;
            floor_to(by_risk.min(by_position), STEP)
        };
        let (q_b, q_l) = (b.qty.get(), size(live_equity));
        assert_eq!(q_b, size(bt_equity), "backtest size");
        assert!((q_l - q_b).abs() <= STEP, "sizes {q_l} vs {q_b}");
        let Some(exit_time) = b.exit_time else {
            assert_eq!(l.closed_at, None);
            assert_eq!(
                l.quantity.get(),
                q_l * (Decimal::ONE - FEE),
                "open position"
            );
            continue;
        };
        assert_eq!(l.quantity.get(), q_l, "live size");
        assert_eq!(l.closed_at, Some(live_time(exit_time)), "exit candle");
        assert_eq!(l.exit, "exit", "a signal exit");
        let x = b.exit_price.unwrap().get();
        assert_eq!(l.exit_price.map(|p| p.get()), Some(x), "exit price");
        // The maker fee is Binance's base 0.1 % as the taker's.
        let bt_pnl = q_b * x * (Decimal::ONE - FEE) - q_b * e * (Decimal::ONE + FEE);
        assert_eq!(b.pnl.get(), bt_pnl, "backtest PnL");
        let sold = floor_to(q_l * (Decimal::ONE - FEE), STEP);
        let live_pnl = q_l * (Decimal::ONE - FEE) * x - sold * x * FEE - q_l * e;
        assert_eq!(l.realized_pnl.get(), live_pnl, "live PnL");
        bt_equity += bt_pnl;
        live_equity += sold * x * (Decimal::ONE - FEE) - q_l * e;
    }
}
