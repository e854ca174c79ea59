//! Walk-forward: exact window boundaries, no lookahead in either direction (training never sees
//! its test candles; a test window's decisions see nothing after them), the chosen parameters
//! are the best in-sample ones, and the out-of-sample equity carries on from window to window.

use crate::backtest_common::{H, hourly_candles as candles};
use rust_decimal::Decimal;
use std::sync::atomic::AtomicBool;
use trademind::app::backtest::{
    BacktestRequest, SweepAxis, WalkForwardRun, rank_value, run_on, run_walk_forward, sweep_grid,
};
use trademind::domain::backtest::{ExitReason, FillModel, WalkForwardSpec};
use trademind::domain::market::{Candle, CandleColumns};
use trademind::domain::money::Quote;

/// Prices rounded to cents: quick swings for the first 40 candles (short averages catch them),
/// then a zigzagging rise and fall (short averages whipsaw, long ones ride it), so different
/// windows favour different averages.
fn wavy(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let x = i as f64;
            let p = if i < 40 {
                100.0 + 6.0 * (x / 1.5).sin() + 2.0 * (x / 5.0).cos()
            } else {
                100.0 + 20.0 * ((x - 40.0) / 12.0).sin() + if i % 2 == 0 { 1.5 } else { -1.5 }
            };
            (p * 100.0).round() / 100.0
        })
        .collect()
}

fn request() -> BacktestRequest {
    crate::backtest_common::request(
        crate::backtest_common::spec("sma-cross", &[]),
        Decimal::new(10_000, 0),
        FillModel::Close,
    )
}

fn axes() -> Vec<SweepAxis> {
    ["fast=2..4:1", "slow=5..11:3"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn walk(candles: &[Candle], spec: &str) -> WalkForwardRun {
    let columns = CandleColumns::from_candles(candles);
    run_walk_forward(
        &request(),
        &sweep_grid(&axes()),
        "total_return",
        &spec.parse::<WalkForwardSpec>().unwrap(),
        candles,
        &columns,
        2,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap()
}

#[test]
fn windows_fall_on_exact_boundaries_and_roll_by_the_test_length() {
    // 60 hourly candles, train 24 h, test 12 h: tests [24h,36h), [36h,48h), [48h,60h); the
    // next would end at 72 h, past the data.
    let data = candles(&wavy(60));
    let wf = walk(&data, "train=24h,test=12h");
    assert_eq!(wf.planned_windows, 3);
    assert!(!wf.cancelled);
    let spans: Vec<_> = wf
        .windows
        .iter()
        .map(|w| {
            (
                w.train_first / H,
                w.train_last / H,
                w.train_candles,
                w.test_first / H,
                w.test_last / H,
                w.test_candles,
            )
        })
        .collect();
    assert_eq!(
        spans,
        vec![
            (0, 23, 24, 24, 35, 12),
            (12, 35, 24, 36, 47, 12),
            (24, 47, 24, 48, 59, 12)
        ]
    );
    // Only out-of-sample candles are reported: the 36 test candles, from 24 h on.
    assert_eq!(wf.result.equity.len(), 36);
    assert_eq!(wf.result.times.first(), Some(24 * H));
    assert_eq!(wf.result.times.last(), Some(59 * H));
    assert!(wf.result.trades.iter().all(|t| t.entry_time >= 24 * H));
    // The same windows in candle counts.
    let by_count = walk(&data, "train=24,test=12");
    assert_eq!(by_count.windows, wf.windows);
}

#[test]
fn chosen_parameters_are_the_best_in_sample() {
    let data = candles(&wavy(96));
    let wf = walk(&data, "train=24h,test=12h");
    let grid = sweep_grid(&axes());
    for w in &wf.windows {
        // Re-run every combination on the training candles alone, independently.
        let start = (w.train_first / H) as usize;
        let train = &data[start..start + w.train_candles];
        let columns = CandleColumns::from_candles(train);
        let scores: Vec<(Vec<(String, f64)>, f64)> = grid
            .iter()
            .map(|combo| {
                let mut req = request();
                req.strategy.params.extend(combo.iter().cloned());
                let r = run_on(
                    &req,
                    train,
                    &columns,
                    &AtomicBool::new(false),
                    &mut |_, _| {},
                )
                .unwrap();
                (
                    combo.clone(),
                    rank_value("total_return", &r.metrics).unwrap(),
                )
            })
            .collect();
        let best = scores.iter().map(|(_, s)| *s).fold(f64::MIN, f64::max);
        assert_eq!(w.in_sample_score, best, "window {}", w.window);
        // The first combination in grid order with the best score.
        let first_best = scores.iter().find(|(_, s)| *s == best).unwrap();
        assert_eq!(w.params, first_best.0, "window {}", w.window);
    }
    // The data makes different windows prefer different parameters.
    assert!(
        wf.windows.windows(2).any(|p| p[0].params != p[1].params),
        "{:?}",
        wf.windows.iter().map(|w| &w.params).collect::<Vec<_>>()
    );
}

#[test]
fn training_never_sees_its_test_candles_and_tests_never_see_later_candles() {
    let closes = wavy(60);
    let base = walk(&candles(&closes), "train=24h,test=12h");
    // Rewrite window 1's test span (candles 24..36) and everything after it.
    let mut changed = closes.clone();
    for (i, c) in changed.iter_mut().enumerate().skip(24) {
        *c = 300.0 - *c + (i as f64 * 1.3).sin() * 20.0;
    }
    let other = walk(&candles(&changed), "train=24h,test=12h");
    // Window 1 trains on candles 0..24 only: same choice and the same in-sample score.
    assert_eq!(other.windows[0].params, base.windows[0].params);
    assert_eq!(
        other.windows[0].in_sample_score,
        base.windows[0].in_sample_score
    );
    // ...while its out-of-sample result does change with its test candles.
    assert_ne!(other.windows[0].metrics, base.windows[0].metrics);

    // Rewrite only what comes after window 1's test span (candles 36..): window 1 is untouched,
    // its decisions saw nothing past its own candles.
    let mut later = closes.clone();
    for c in later.iter_mut().skip(36) {
        *c *= 3.0;
    }
    let after = walk(&candles(&later), "train=24h,test=12h");
    assert_eq!(after.windows[0], base.windows[0]);
    let n = base.windows[0].test_candles;
    assert_eq!(
        after.result.equity.range_to_vec(0, n),
        base.result.equity.range_to_vec(0, n)
    );
    assert_ne!(after.windows[1], base.windows[1]);
}

#[test]
fn out_of_sample_equity_carries_on_from_window_to_window() {
    let data = candles(&wavy(96));
    let wf = walk(&data, "train=24h,test=12h");
    assert_eq!(wf.windows.len(), 6);
    assert_eq!(wf.windows[0].start_equity, Quote(Decimal::new(10_000, 0)));
    for pair in wf.windows.windows(2) {
        assert_eq!(pair[1].start_equity, pair[0].end_equity);
    }
    let last = wf.windows.last().unwrap();
    assert_eq!(wf.result.final_equity, last.end_equity);
    // Stitched return = the product of the windows' returns.
    let product: f64 = wf
        .windows
        .iter()
        .map(|w| w.end_equity.to_f64() / w.start_equity.to_f64())
        .product();
    assert!((wf.result.metrics.total_return_pct / 100.0 + 1.0 - product).abs() < 1e-12);
    // The curve is continuous: each window's points are where the stitched curve has them,
    // and a window's last point is its end equity.
    let mut at = 0;
    for w in &wf.windows {
        at += w.test_candles;
        assert!((wf.result.equity.get(at - 1).unwrap() - w.end_equity.to_f64()).abs() < 1e-9);
        assert!((w.metrics.final_equity - w.end_equity.to_f64()).abs() < 1e-9);
    }
    // A position open at a window's end is sold at its last close (taker fee paid), so every
    // window starts flat: no trade spans two windows.
    assert!(
        wf.result
            .trades
            .iter()
            .any(|t| t.exit_reason == Some(ExitReason::WindowEnd))
    );
    for t in &wf.result.trades {
        let exit = t
            .exit_time
            .expect("every trade is closed by its window's end");
        let window = wf
            .windows
            .iter()
            .find(|w| (w.test_first..=w.test_last).contains(&t.entry_time))
            .unwrap();
        assert!(exit <= window.test_last);
        if t.exit_reason == Some(ExitReason::WindowEnd) {
            assert_eq!(exit, window.test_last);
            // fee = qty * close * 0.1 %
            let close = data[(exit / H) as usize].close;
            assert_eq!(t.exit_fee, close * t.qty * Decimal::new(1, 3));
        }
    }
}

#[test]
fn too_little_data_for_one_window_is_an_error() {
    let data = candles(&wavy(30));
    let columns = CandleColumns::from_candles(&data);
    let err = run_walk_forward(
        &request(),
        &sweep_grid(&axes()),
        "total_return",
        &"train=24h,test=12h".parse().unwrap(),
        &data,
        &columns,
        1,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("do not hold one training window"),
        "{err}"
    );
}

#[test]
fn cancelling_between_windows_keeps_the_windows_already_done() {
    let data = candles(&wavy(96));
    let columns = CandleColumns::from_candles(&data);
    let stop = AtomicBool::new(false);
    let wf = run_walk_forward(
        &request(),
        &sweep_grid(&axes()),
        "total_return",
        &"train=24h,test=12h".parse().unwrap(),
        &data,
        &columns,
        1,
        &stop,
        &mut |done, _| {
            // Asked to stop once two windows are done (as a polled `cancel_requested` row would).
            if done == 2 {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        },
    )
    .unwrap();
    assert!(wf.cancelled);
    assert_eq!((wf.windows.len(), wf.planned_windows), (2, 6));
    let full = walk(&data, "train=24h,test=12h");
    assert_eq!(wf.windows[..], full.windows[..2]);
    assert_eq!(wf.result.equity.len(), 24);
    assert_eq!(wf.result.final_equity, full.windows[1].end_equity);
}
