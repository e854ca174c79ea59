//! Walk-forward analysis, the pure parts: where the rolling training and test windows fall, the
//! hand-over between test windows, and stitching the out-of-sample runs into one result.
//! Choosing each window's parameters (a sweep on the training candles) is the app's job.
//!
//! Windows are laid on a fixed grid so they can neither overlap nor leave gaps: test window `k`
//! is `[b_k, b_{k+1})` with `b_{k+1} = b_k + test`, and its training window is the `train` span
//! that ends exactly where the test window starts. Only complete test windows are made.

use super::engine::ExitReason;
use super::metrics::{self, Metrics};
use super::{BacktestResult, EquityCurve, Times, return_pct};
use crate::domain::market::candle::{Candle, Interval, TimestampMs};
use crate::domain::money::{Price, Quote};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// The length of a training or test window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Span {
    /// Calendar time in milliseconds (`90d`, `12h`, `2w`).
    Millis(i64),
    /// A number of candles (`500`).
    Candles(usize),
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad =
            || format!("{s:?}: expected a length like 90d, 12h, 2w or a candle count like 500");
        let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: i64 = digits.parse().map_err(|_| bad())?;
        if n <= 0 {
            return Err(bad());
        }
        let hour = 3_600_000i64;
        let unit_ms = match unit {
            "" | "c" => return usize::try_from(n).map(Span::Candles).map_err(|_| bad()),
            "h" => hour,
            "d" => 24 * hour,
            "w" => 7 * 24 * hour,
            _ => return Err(bad()),
        };
        n.checked_mul(unit_ms).map(Span::Millis).ok_or_else(bad)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (day, hour) = (86_400_000, 3_600_000);
        match *self {
            Span::Candles(n) => write!(f, "{n}"),
            Span::Millis(ms) if ms % (7 * day) == 0 => write!(f, "{}w", ms / (7 * day)),
            Span::Millis(ms) if ms % day == 0 => write!(f, "{}d", ms / day),
            Span::Millis(ms) if ms % hour == 0 => write!(f, "{}h", ms / hour),
            Span::Millis(ms) => write!(f, "{ms}ms"),
        }
    }
}

/// `train=90d,test=30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkForwardSpec {
    pub train: Span,
    pub test: Span,
}

impl FromStr for WalkForwardSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut train, mut test) = (None, None);
        for part in s.split(',') {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("walk-forward {s:?}: expected train=LEN,test=LEN"))?;
            let span: Span = value
                .parse()
                .map_err(|e| format!("walk-forward {key}={e}"))?;
            match key.trim() {
                "train" => train = Some(span),
                "test" => test = Some(span),
                other => {
                    return Err(format!(
                        "walk-forward: unknown key {other:?} (expected train and test)"
                    ));
                }
            }
        }
        match (train, test) {
            (Some(train), Some(test)) => Ok(WalkForwardSpec { train, test }),
            _ => Err(format!(
                "walk-forward {s:?}: give both lengths, e.g. train=90d,test=30d"
            )),
        }
    }
}

impl fmt::Display for WalkForwardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "train={},test={}", self.train, self.test)
    }
}

/// One window as candle index ranges: training ends exactly where the test starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSplit {
    pub train: Range<usize>,
    pub test: Range<usize>,
}

/// Lay the windows over candles with these open times (ascending). Windows whose training or
/// test span holds no candle (a hole in the data) are left out; a test window running past the
/// end of the data is not made.
pub fn split_windows(
    times: &[TimestampMs],
    interval: Interval,
    spec: &WalkForwardSpec,
) -> Vec<WindowSplit> {
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else {
        return Vec::new();
    };
    let index_at = |t: TimestampMs| times.partition_point(|&x| x < t);
    let data_end = last.saturating_add(interval.millis());
    // Test boundaries as (candle index, time): a candle-count test span steps indices, a
    // calendar one steps times.
    let mut bounds: Vec<(usize, TimestampMs)> = Vec::new();
    let at_index = |i: usize| (i, times.get(i).copied().unwrap_or(data_end));
    match spec.test {
        Span::Candles(m) => {
            let mut b = match spec.train {
                Span::Candles(n) => n,
                Span::Millis(d) => index_at(first.saturating_add(d)),
            };
            if b + m <= times.len() {
                bounds.push(at_index(b));
            }
            while b + m <= times.len() {
                b += m;
                bounds.push(at_index(b));
            }
        }
        Span::Millis(d) => {
            let mut t = match spec.train {
                Span::Millis(train_ms) => first.saturating_add(train_ms),
                Span::Candles(n) => match times.get(n) {
                    Some(&t) => t,
                    None => return Vec::new(),
                },
            };
            if t.saturating_add(d) <= data_end {
                bounds.push((index_at(t), t));
            }
            while t.saturating_add(d) <= data_end {
                t = t.saturating_add(d);
                bounds.push((index_at(t), t));
            }
        }
    }
    bounds
        .windows(2)
        .filter_map(|b| {
            let ((start, start_time), (end, _)) = (b[0], b[1]);
            let train_start = match spec.train {
                Span::Candles(n) => start.checked_sub(n)?,
                // From the boundary itself, not from the first test candle, so a hole at the
                // start of a test window does not shift its training window.
                Span::Millis(d) => index_at(start_time.saturating_sub(d)),
            };
            let (train, test) = (train_start..start, start..end);
            (!train.is_empty() && !test.is_empty()).then_some(WindowSplit { train, test })
        })
        .collect()
}

/// One walk-forward window as reported: its spans, the parameters the training sweep chose and
/// the out-of-sample result of the test span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    /// 1-based.
    pub window: usize,
    /// Open times of the first and last candle of each span.
    pub train_first: TimestampMs,
    pub train_last: TimestampMs,
    pub train_candles: usize,
    pub test_first: TimestampMs,
    pub test_last: TimestampMs,
    pub test_candles: usize,
    /// The best in-sample combination.
    pub params: Vec<(String, f64)>,
    /// Its in-sample score on the ranking metric.
    pub in_sample_score: f64,
    pub start_equity: Quote,
    pub end_equity: Quote,
    /// Out of sample: the test span only.
    pub metrics: Metrics,
}

/// A position still open when a test window ends is sold at that window's last close, paying the
/// taker fee, so the next window starts flat with cash it could really have had. (A single
/// backtest only marks it to market instead, as the peer tools do; between windows that would
/// hand over a position for free.) Returns the fee charged.
pub fn close_at_window_end(
    result: &mut BacktestResult,
    last: &Candle,
    taker_fee: Decimal,
) -> Quote {
    let Some(t) = result.trades.last_mut().filter(|t| t.is_open()) else {
        return Quote::ZERO;
    };
    let fee = last.close * t.qty * taker_fee;
    let cost = t.entry_price * t.qty + t.entry_fee;
    t.exit_time = Some(last.open_time);
    t.exit_price = Some(last.close);
    t.exit_fee = fee;
    t.exit_reason = Some(ExitReason::WindowEnd);
    t.pnl = last.close * t.qty - fee - cost;
    t.return_pct = return_pct(t);
    result.final_equity -= fee;
    if let Some(e) = result.equity.last() {
        result.equity.set_last(e - fee.to_f64());
    }
    fee
}

/// Recompute a result's metrics from its equity, trades and times (after a hand-over sale, or
/// for a stitched curve). `first_open` and `last_close` bound the buy-and-hold comparison.
pub fn refresh_metrics(
    result: &mut BacktestResult,
    interval: Interval,
    initial_equity: Quote,
    in_market: usize,
    first_open: Price,
    last_close: Price,
) {
    let fees = result
        .trades
        .iter()
        .fold(Quote::ZERO, |acc, t| acc + t.entry_fee + t.exit_fee);
    result.metrics = metrics::compute(&metrics::MetricsInput {
        interval,
        initial_equity: initial_equity.to_f64(),
        equity: &result.equity.to_vec(),
        times: &result.times,
        trades: &result.trades,
        candles_in_market: in_market,
        fees_paid: fees,
        first_open: first_open.to_f64(),
        last_close: last_close.to_f64(),
    });
}

/// Candles a result spent in the market, recovered from its metrics.
pub fn candles_in_market(m: &Metrics) -> usize {
    (m.exposure_pct / 100.0 * m.candles as f64).round() as usize
}

/// Join the test windows' runs (each started with the previous one's end equity) into one
/// out-of-sample result: the curves and trades end to end, metrics over the whole of it.
pub fn stitch(
    windows: &[BacktestResult],
    interval: Interval,
    initial_equity: Quote,
    first_open: Price,
    last_close: Price,
) -> Option<BacktestResult> {
    let last = windows.last()?;
    let mut out = BacktestResult {
        strategy: last.strategy.clone(),
        sizer: last.sizer.clone(),
        final_equity: last.final_equity,
        metrics: last.metrics.clone(),
        trades: Vec::new(),
        equity: EquityCurve::default(),
        times: Times::default(),
        rejections: Vec::new(),
    };
    let mut in_market = 0;
    for w in windows {
        out.trades.extend(w.trades.iter().cloned());
        out.equity.append(&w.equity);
        out.times.extend(&w.times);
        out.rejections.extend(w.rejections.iter().cloned());
        in_market += candles_in_market(&w.metrics);
    }
    refresh_metrics(
        &mut out,
        interval,
        initial_equity,
        in_market,
        first_open,
        last_close,
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn spec(s: &str) -> WalkForwardSpec {
        s.parse().unwrap()
    }

    #[test]
    fn spans_parse_hours_days_weeks_and_candle_counts() {
        assert_eq!("90d".parse(), Ok(Span::Millis(90 * 24 * H)));
        assert_eq!("12h".parse(), Ok(Span::Millis(12 * H)));
        assert_eq!("2w".parse(), Ok(Span::Millis(14 * 24 * H)));
        assert_eq!("500".parse(), Ok(Span::Candles(500)));
        for bad in ["0d", "-3d", "3y", "d", "", "1.5d"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
        let s = spec("train=90d,test=30d");
        assert_eq!(s.to_string(), "train=90d,test=30d");
        assert!("train=90d".parse::<WalkForwardSpec>().is_err());
        assert!(
            "train=90d,test=30d,step=1d"
                .parse::<WalkForwardSpec>()
                .is_err()
        );
    }

    #[test]
    fn calendar_windows_roll_by_the_test_length_without_overlap() {
        // 100 hourly candles from t=0; train 24h, test 12h: tests start at 24, 36, .., 84 and
        // the one starting at 96 would end at 108 > 100, so it is not made.
        let times: Vec<i64> = (0..100).map(|i| i * H).collect();
        let w = split_windows(&times, Interval::H1, &spec("train=24h,test=12h"));
        assert_eq!(w.len(), 6);
        assert_eq!(
            w[0],
            WindowSplit {
                train: 0..24,
                test: 24..36
            }
        );
        assert_eq!(
            w[5],
            WindowSplit {
                train: 60..84,
                test: 84..96
            }
        );
        for pair in w.windows(2) {
            assert_eq!(pair[0].test.end, pair[1].test.start);
        }
        for x in &w {
            assert_eq!(x.train.end, x.test.start);
        }
    }

    #[test]
    fn candle_count_windows_and_a_hole_in_the_data() {
        let times: Vec<i64> = (0..10).map(|i| i * H).collect();
        let w = split_windows(&times, Interval::H1, &spec("train=4,test=3"));
        assert_eq!(
            w,
            vec![
                WindowSplit {
                    train: 0..4,
                    test: 4..7
                },
                WindowSplit {
                    train: 3..7,
                    test: 7..10
                },
            ]
        );
        // Candles 5h..8h missing: the calendar grid stays put and the windows over the hole
        // simply hold fewer candles.
        let holed: Vec<i64> = [0, 1, 2, 3, 4, 9, 10, 11, 12, 13]
            .iter()
            .map(|i| i * H)
            .collect();
        let w = split_windows(&holed, Interval::H1, &spec("train=4h,test=3h"));
        // boundaries 4h, 7h, 10h, 13h; ends at 14h: tests [4h,7h) = idx 4..5, [7h,10h) =
        // idx 5..6, [10h,13h) = idx 6..9. Training spans: [0h,4h) = 0..4, [3h,7h) = 3..5,
        // [6h,10h) = 5..6.
        assert_eq!(
            w,
            vec![
                WindowSplit {
                    train: 0..4,
                    test: 4..5
                },
                WindowSplit {
                    train: 3..5,
                    test: 5..6
                },
                WindowSplit {
                    train: 5..6,
                    test: 6..9
                },
            ]
        );
        assert!(split_windows(&times, Interval::H1, &spec("train=9,test=3")).is_empty());
    }
}
