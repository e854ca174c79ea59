//! Performance statistics of a finished run (f64: these are statistics, not money), and the
//! round-trip trade records they are computed from (exact decimals).

use super::engine::ExitReason;
use super::times::Times;
use crate::domain::market::candle::{Interval, TimestampMs};
use crate::domain::money::{Price, Qty, Quote};
use serde::{Deserialize, Serialize};

/// One round trip: entry, and exit unless still open at the end of the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeRecord {
    pub entry_time: TimestampMs,
    pub entry_price: Price,
    pub qty: Qty,
    pub entry_fee: Quote,
    pub exit_time: Option<TimestampMs>,
    pub exit_price: Option<Price>,
    pub exit_fee: Quote,
    pub exit_reason: Option<ExitReason>,
    /// Net of both fees; for an open trade, marked at the last close without an exit fee.
    pub pnl: Quote,
    /// `pnl` over the entry cost (fees included), in percent.
    pub return_pct: f64,
    /// The part a scale-out sold at its first target (`exit_*` then describe the whole exit:
    /// the average price of both sells and their fees together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_out: Option<PartialExit>,
}

/// A sell that left part of the position open: a scale-out's part sold at its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialExit {
    pub time: TimestampMs,
    pub qty: Qty,
    pub price: Price,
    pub fee: Quote,
    pub reason: ExitReason,
}

impl TradeRecord {
    pub fn is_open(&self) -> bool {
        self.exit_time.is_none()
    }
}

/// Everything a user asks about a backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub initial_equity: f64,
    pub final_equity: f64,
    pub total_return_pct: f64,
    /// `None` when it does not fit an f64 (a huge gain over a very short span).
    pub cagr_pct: Option<f64>,
    pub sharpe: f64,
    pub sortino: f64,
    pub calmar: Option<f64>,
    pub max_drawdown_pct: f64,
    pub max_drawdown_start: Option<TimestampMs>,
    pub max_drawdown_end: Option<TimestampMs>,
    /// Entries, the open one at the end included (how the peer tools count).
    pub trades: usize,
    pub closed_trades: usize,
    pub win_rate_pct: f64,
    /// Gross profit over gross loss; `None` when nothing was lost.
    pub profit_factor: Option<f64>,
    pub expectancy: f64,
    pub avg_win: f64,
    pub avg_loss: f64,
    pub largest_win: f64,
    pub largest_loss: f64,
    pub exposure_pct: f64,
    pub avg_trade_duration_hours: f64,
    pub fees_paid: f64,
    pub buy_and_hold_return_pct: f64,
    pub candles: usize,
    pub start: Option<TimestampMs>,
    pub end: Option<TimestampMs>,
}

/// Inputs to [`compute`].
pub struct MetricsInput<'a> {
    pub interval: Interval,
    pub initial_equity: f64,
    /// Equity at each candle's close.
    pub equity: &'a [f64],
    /// Open time of each candle (same length as `equity`).
    pub times: &'a Times,
    pub trades: &'a [TradeRecord],
    pub candles_in_market: usize,
    pub fees_paid: Quote,
    pub first_open: f64,
    pub last_close: f64,
}

fn ratio_or_zero(num: f64, den: f64) -> f64 {
    if den == 0.0 || !den.is_finite() {
        0.0
    } else {
        num / den
    }
}

/// The simple return of equity `e` over `prev`, the equity a candle before. A zero or non-finite
/// `prev` gives a zero return, as `ratio_or_zero` does. Branch-free where the data decides (a
/// real equity curve goes up and down at random, and a mispredicted branch per candle would cost
/// more than the arithmetic).
#[inline(always)]
fn simple_return(e: f64, prev: f64) -> f64 {
    let usable = prev != 0.0 && prev.is_finite();
    if usable { e / prev - 1.0 } else { 0.0 }
}

/// The deepest drawdown of a curve, found without a division per point: while the peak stands,
/// the deepest point under it is simply the lowest equity (a division is monotonic in its
/// numerator), so only each peak's lowest point is divided, when the next peak (or the end)
/// closes its stretch. The first of equally deep drawdowns wins.
#[derive(Debug, Clone)]
struct Drawdown {
    peak: f64,
    peak_at: usize,
    /// The lowest equity since the peak, and where.
    low: f64,
    low_at: usize,
    max_dd: f64,
    span: Option<(usize, usize)>,
}

impl Drawdown {
    fn new(initial: f64) -> Self {
        Drawdown {
            peak: initial,
            peak_at: 0,
            low: f64::INFINITY,
            low_at: 0,
            max_dd: 0.0,
            span: None,
        }
    }

    #[inline(always)]
    fn push(&mut self, e: f64, i: usize) {
        if e > self.peak {
            // Out of the loop's way, but not a call: a call would take the state's address and
            // keep it in memory over a whole stretch of points (see `EquityStats::push_all`).
            std::hint::cold_path();
            self.new_peak(e, i);
        } else {
            // Whether an equity point is a new low is as random as the market: a select, not
            // a branch the predictor would miss on about every other held candle (left to
            // itself the compiler branches here).
            let lower = e < self.low;
            self.low = std::hint::select_unpredictable(lower, e, self.low);
            self.low_at = std::hint::select_unpredictable(lower, i, self.low_at);
        }
    }

    #[inline(always)]
    fn new_peak(&mut self, e: f64, i: usize) {
        self.close_stretch();
        self.peak = e;
        self.peak_at = i;
        self.low = e;
        self.low_at = i;
    }

    /// The stretch under the current peak ends: its lowest point may be the deepest so far.
    #[inline(always)]
    fn close_stretch(&mut self) {
        if self.peak > 0.0 && self.low.is_finite() {
            let dd = 1.0 - self.low / self.peak;
            if dd > self.max_dd {
                self.max_dd = dd;
                self.span = Some((self.peak_at, self.low_at));
            }
        }
    }

    fn finish(mut self) -> (f64, Option<(usize, usize)>) {
        self.close_stretch();
        (self.max_dd, self.span)
    }
}

/// What the metrics need of an equity curve, taken one point at a time: the per-candle returns
/// sums, the deepest drawdown, the last point. A run that keeps no curve (a sweep's) pushes its
/// points here as it marks them; [`compute`] pushes a kept curve's. The same arithmetic in the
/// same order either way, so both give the same metrics to the last bit.
#[derive(Debug, Clone)]
pub struct EquityStats {
    initial: f64,
    /// The last point (the starting equity before the first).
    prev: f64,
    sum: f64,
    sum_sq: f64,
    down_sq: f64,
    len: usize,
    drawdown: Drawdown,
}

impl EquityStats {
    pub fn new(initial: f64) -> Self {
        EquityStats {
            initial,
            prev: initial,
            sum: 0.0,
            sum_sq: 0.0,
            down_sq: 0.0,
            len: 0,
            drawdown: Drawdown::new(initial),
        }
    }

    /// The stats of a whole curve.
    pub fn of(initial: f64, curve: &[f64]) -> Self {
        let mut stats = EquityStats::new(initial);
        for &e in curve {
            stats.push(e);
        }
        stats
    }

    /// The equity at the next candle's close (per-candle simple returns, the first against the
    /// starting equity).
    #[inline(always)]
    pub fn push(&mut self, e: f64) {
        self.push_with_return(e, simple_return(e, self.prev));
    }

    /// `e`, whose return over the point before is `r` (`simple_return(e, self.prev)`).
    #[inline(always)]
    fn push_with_return(&mut self, e: f64, r: f64) {
        self.sum += r;
        self.sum_sq += r * r;
        self.down_sq += if r < 0.0 { r * r } else { 0.0 };
        self.prev = e;
        self.drawdown.push(e, self.len);
        self.len += 1;
    }

    /// [`push`](Self::push) of each of `points` in turn.
    #[inline]
    pub fn push_all(&mut self, points: &[f64]) {
        self.push_mapped(points, |e| e);
    }

    /// [`push`](Self::push) of `point(x)` for each of `xs` in turn: the same arithmetic in the
    /// same order, so the same bits. The running state is a local copy over the slice (pushed a
    /// point at a time through `&mut self`, every field went back to memory on each point), and
    /// a block's returns, which depend on its points alone, are worked out ahead of its running
    /// sums: measured, about 4 % off the warm CPU time of the 1M-candle SMA-cross run.
    #[inline]
    pub fn push_mapped(&mut self, xs: &[f64], point: impl Fn(f64) -> f64) {
        const BLOCK: usize = 8;
        let mut s = self.clone();
        let mut blocks = xs.chunks_exact(BLOCK);
        for block in &mut blocks {
            let mut e = [0.0; BLOCK];
            for j in 0..BLOCK {
                e[j] = point(block[j]);
            }
            let mut r = [0.0; BLOCK];
            r[0] = simple_return(e[0], s.prev);
            for j in 1..BLOCK {
                r[j] = simple_return(e[j], e[j - 1]);
            }
            for j in 0..BLOCK {
                s.push_with_return(e[j], r[j]);
            }
        }
        for &x in blocks.remainder() {
            s.push(point(x));
        }
        *self = s;
    }

    /// `count` points of equity `e` in a row. After the first, each is a zero return that
    /// moves no sum and no drawdown, for a positive, finite `e`: only counted.
    #[inline(always)]
    pub fn push_repeat(&mut self, e: f64, count: usize) {
        if count == 0 {
            return;
        }
        self.push(e);
        if e > 0.0 && e.is_finite() {
            self.len += count - 1;
        } else {
            for _ in 1..count {
                self.push(e);
            }
        }
    }

    /// The statistics of a curve of which only the last point (`None`: no point) and the
    /// number of points are known: its total return is the curve's, nothing else is.
    pub(crate) fn last_point(initial: f64, last: Option<f64>, len: usize) -> Self {
        let mut stats = EquityStats::new(initial);
        if let Some(e) = last {
            stats.prev = e;
        }
        stats.len = len;
        stats
    }

    /// Points pushed so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What the metrics read of the closed round trips, in their order: each one's PnL and its
/// duration in hours, as f64. A run takes them as each trade closes, while its record is at
/// hand, so the metrics need not walk the records again (thousands of them, a few hundred
/// bytes each); [`of`](Self::of) takes them from finished records, by the same arithmetic.
#[derive(Debug, Clone, Default)]
pub struct ClosedStats {
    pnls: Vec<f64>,
    hours: Vec<f64>,
}

impl ClosedStats {
    pub fn of(trades: &[TradeRecord]) -> Self {
        let mut stats = ClosedStats::default();
        for t in trades {
            stats.push(t);
        }
        stats
    }

    /// `t`, if it is closed (an open trade is not counted).
    #[inline]
    pub fn push(&mut self, t: &TradeRecord) {
        if let Some(exit) = t.exit_time {
            self.pnls.push(t.pnl.to_f64());
            self.hours.push((exit - t.entry_time) as f64 / 3_600_000.0);
        }
    }
}

/// The closed trades' wins (PnL over zero) and losses (at or under zero), in one pass.
///
/// Each figure is what its own walk over the filtered PnLs gives, bit for bit: the sums add
/// the same values in the same order from the same start as `Iterator::sum`, a value the
/// filter would skip adding `-0.0` (which leaves any sum as it is, a zero's sign included); the
/// extremes fold from zero as `fold(0.0, f64::max)` would. Selects instead of branches: whether
/// a trade won is as random as the market, and a branch on it is missed about every other
/// trade.
#[derive(Debug)]
struct WinsAndLosses {
    wins: usize,
    losses: usize,
    win_sum: f64,
    loss_sum: f64,
    largest_win: f64,
    largest_loss: f64,
    /// All of them.
    sum: f64,
}

impl WinsAndLosses {
    fn of(pnls: &[f64]) -> Self {
        use std::hint::select_unpredictable as select;
        let start: f64 = std::iter::empty::<f64>().sum();
        let mut w = WinsAndLosses {
            wins: 0,
            losses: 0,
            win_sum: start,
            loss_sum: start,
            largest_win: 0.0,
            largest_loss: 0.0,
            sum: start,
        };
        for &p in pnls {
            let (win, loss) = (p > 0.0, p <= 0.0);
            w.wins += usize::from(win);
            w.losses += usize::from(loss);
            w.win_sum += select(win, p, -0.0);
            w.loss_sum += select(loss, p, -0.0);
            w.largest_win = select(win, w.largest_win.max(p), w.largest_win);
            w.largest_loss = select(loss, w.largest_loss.min(p), w.largest_loss);
            w.sum += p;
        }
        w
    }
}

/// The metrics of a run whose equity curve is kept (`input.equity`).
pub fn compute(input: &MetricsInput<'_>) -> Metrics {
    summarise(
        EquityStats::of(input.initial_equity, input.equity),
        &ClosedStats::of(input.trades),
        input,
    )
}

/// The metrics of a run from its curve's [`EquityStats`] and its [`ClosedStats`] (which must be
/// those of `input.trades`); `input.equity` is not read (a run that streamed its curve passes
/// an empty one).
pub fn summarise(stats: EquityStats, closed: &ClosedStats, input: &MetricsInput<'_>) -> Metrics {
    let n = stats.len;
    let initial = stats.initial;
    let final_equity = stats.prev;
    let total_return = ratio_or_zero(final_equity, initial) - 1.0;

    let ppy = input.interval.periods_per_year();
    let years = n as f64 / ppy;
    let cagr = if years > 0.0 && final_equity > 0.0 && initial > 0.0 {
        (final_equity / initial).powf(1.0 / years) - 1.0
    } else {
        0.0
    };

    let EquityStats {
        sum,
        sum_sq,
        down_sq,
        drawdown,
        ..
    } = stats;
    let (max_dd, dd_span) = drawdown.finish();
    let nf = n as f64;
    let mean = ratio_or_zero(sum, nf);
    let var = if n > 1 {
        (sum_sq - nf * mean * mean) / (nf - 1.0)
    } else {
        0.0
    };
    let sharpe = ratio_or_zero(mean, var.max(0.0).sqrt()) * ppy.sqrt();
    let downside = ratio_or_zero(down_sq, nf).sqrt();
    let sortino = ratio_or_zero(mean, downside) * ppy.sqrt();
    let cagr = Some(cagr).filter(|c| c.is_finite());
    let calmar = cagr.map(|c| ratio_or_zero(c, max_dd));

    let pnls = &closed.pnls;
    let split = WinsAndLosses::of(pnls);
    let (gross_win, gross_loss) = (split.win_sum, -split.loss_sum);
    let profit_factor = (gross_loss > 0.0).then(|| gross_win / gross_loss);

    let (dd_start, dd_end) = match dd_span {
        Some((a, b)) => (input.times.get(a), input.times.get(b)),
        None => (None, None),
    };
    Metrics {
        initial_equity: initial,
        final_equity,
        total_return_pct: total_return * 100.0,
        cagr_pct: cagr.map(|c| c * 100.0),
        sharpe,
        sortino,
        calmar,
        max_drawdown_pct: max_dd * 100.0,
        max_drawdown_start: dd_start,
        max_drawdown_end: dd_end,
        trades: input.trades.len(),
        closed_trades: pnls.len(),
        win_rate_pct: ratio_or_zero(split.wins as f64, pnls.len() as f64) * 100.0,
        profit_factor,
        expectancy: ratio_or_zero(split.sum, pnls.len() as f64),
        avg_win: ratio_or_zero(gross_win, split.wins as f64),
        avg_loss: ratio_or_zero(-gross_loss, split.losses as f64),
        largest_win: split.largest_win,
        largest_loss: split.largest_loss,
        exposure_pct: ratio_or_zero(input.candles_in_market as f64, nf) * 100.0,
        avg_trade_duration_hours: ratio_or_zero(
            closed.hours.iter().sum(),
            closed.hours.len() as f64,
        ),
        fees_paid: input.fees_paid.to_f64(),
        buy_and_hold_return_pct: (ratio_or_zero(input.last_close, input.first_open) - 1.0) * 100.0,
        candles: n,
        start: input.times.first(),
        end: input.times.last(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    /// The drawdown as defined: every point's `1 - e / peak so far`, the first deepest.
    fn drawdown_by_definition(initial: f64, curve: &[f64]) -> (f64, Option<(usize, usize)>) {
        let (mut peak, mut peak_at) = (initial, 0);
        let (mut max_dd, mut span) = (0.0, None);
        for (i, &e) in curve.iter().enumerate() {
            if e > peak {
                (peak, peak_at) = (e, i);
            }
            if peak > 0.0 {
                let dd = 1.0 - e / peak;
                if dd > max_dd {
                    (max_dd, span) = (dd, Some((peak_at, i)));
                }
            }
        }
        (max_dd, span)
    }

    proptest! {
        /// Dividing only each peak's lowest point finds the same deepest drawdown, bit for bit,
        /// and the same stretch, as dividing every point.
        #[test]
        fn the_drawdown_matches_its_definition(
            initial in 1.0f64..1e6,
            steps in prop::collection::vec(-0.05f64..0.05, 0..400),
        ) {
            let mut e = initial;
            let curve: Vec<f64> = steps.iter().map(|s| { e *= 1.0 + s; e }).collect();
            let mut d = Drawdown::new(initial);
            for (i, &x) in curve.iter().enumerate() {
                d.push(x, i);
            }
            let (got, span) = d.finish();
            let (want, want_span) = drawdown_by_definition(initial, &curve);
            prop_assert_eq!(got.to_bits(), want.to_bits());
            prop_assert_eq!(span, want_span);
        }
    }

    proptest! {
        /// The one pass gives what a walk per figure over the filtered PnLs gives, bit for bit
        /// (zeros of either sign and NaN included).
        #[test]
        fn wins_and_losses_in_one_pass_match_a_walk_per_figure(
            pnls in prop::collection::vec(
                prop_oneof![
                    -1e6f64..1e6,
                    Just(0.0),
                    Just(-0.0),
                    Just(f64::NAN),
                    Just(1e300),
                    Just(-1e-300),
                ],
                0..200,
            ),
        ) {
            let wins = || pnls.iter().copied().filter(|p| *p > 0.0);
            let losses = || pnls.iter().copied().filter(|p| *p <= 0.0);
            let got = WinsAndLosses::of(&pnls);
            prop_assert_eq!(got.wins, wins().count());
            prop_assert_eq!(got.losses, losses().count());
            let bits = |x: f64| x.to_bits();
            prop_assert_eq!(bits(got.win_sum), bits(wins().sum::<f64>()));
            prop_assert_eq!(bits(got.loss_sum), bits(losses().sum::<f64>()));
            prop_assert_eq!(bits(got.largest_win), bits(wins().fold(0.0, f64::max)));
            prop_assert_eq!(bits(got.largest_loss), bits(losses().fold(0.0, f64::min)));
            prop_assert_eq!(bits(got.sum), bits(pnls.iter().sum::<f64>()));
        }
    }

    fn trade(pnl: rust_decimal::Decimal, entry: i64, exit: Option<i64>) -> TradeRecord {
        TradeRecord {
            entry_time: entry,
            entry_price: Price(dec!(100)),
            qty: Qty(dec!(1)),
            entry_fee: Quote(dec!(0.1)),
            exit_time: exit,
            exit_price: exit.map(|_| Price(dec!(100))),
            exit_fee: Quote(dec!(0.1)),
            exit_reason: exit.map(|_| ExitReason::Signal),
            pnl: Quote(pnl),
            return_pct: 0.0,
            scaled_out: None,
        }
    }

    #[test]
    fn drawdown_returns_and_trade_statistics_by_hand() {
        // equity 100 -> 120 -> 90 -> 108 -> 132 (hourly)
        let equity = [120.0, 90.0, 108.0, 132.0];
        let times = Times::of(&[0, 3_600_000, 7_200_000, 10_800_000]);
        let trades = vec![
            trade(dec!(30), 0, Some(7_200_000)),
            trade(dec!(-10), 7_200_000, Some(10_800_000)),
            trade(dec!(20), 10_800_000, Some(14_400_000)),
            trade(dec!(5), 14_400_000, None),
        ];
        let m = compute(&MetricsInput {
            interval: Interval::H1,
            initial_equity: 100.0,
            equity: &equity,
            times: &times,
            trades: &trades,
            candles_in_market: 3,
            fees_paid: Quote(dec!(0.7)),
            first_open: 50.0,
            last_close: 60.0,
        });
        assert!((m.total_return_pct - 32.0).abs() < 1e-12);
        // peak 120 at t1 -> trough 90 at t2: 25 %
        assert!((m.max_drawdown_pct - 25.0).abs() < 1e-12);
        assert_eq!(m.max_drawdown_start, Some(0));
        assert_eq!(m.max_drawdown_end, Some(3_600_000));
        assert_eq!(m.trades, 4);
        assert_eq!(m.closed_trades, 3);
        assert!((m.win_rate_pct - 200.0 / 3.0).abs() < 1e-9);
        // 50 won / 10 lost
        assert!((m.profit_factor.unwrap() - 5.0).abs() < 1e-12);
        assert!((m.expectancy - 40.0 / 3.0).abs() < 1e-9);
        assert!((m.avg_win - 25.0).abs() < 1e-12);
        assert!((m.avg_loss + 10.0).abs() < 1e-12);
        assert!((m.largest_win - 30.0).abs() < 1e-12);
        assert!((m.largest_loss + 10.0).abs() < 1e-12);
        assert!((m.exposure_pct - 75.0).abs() < 1e-12);
        // (2 + 1 + 1) h / 3
        assert!((m.avg_trade_duration_hours - 4.0 / 3.0).abs() < 1e-12);
        assert!((m.buy_and_hold_return_pct - 20.0).abs() < 1e-12);
        // returns 0.2, -0.25, 0.2, 0.2222..: mean 0.09305.., sample sd 0.2282..
        let r = [0.2, -0.25, 0.2, 132.0 / 108.0 - 1.0];
        let mean = r.iter().sum::<f64>() / 4.0;
        let sd = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 3.0).sqrt();
        assert!((m.sharpe - mean / sd * 8760f64.sqrt()).abs() < 1e-9);
        let dd = (0.0625f64 / 4.0).sqrt();
        assert!((m.sortino - mean / dd * 8760f64.sqrt()).abs() < 1e-9);
        // 4 hours = 4/8760 year: CAGR = 1.32^(2190) - 1, huge but finite
        let cagr = 1.32f64.powf(8760.0 / 4.0) - 1.0;
        assert!((m.cagr_pct.unwrap() / 100.0 / cagr - 1.0).abs() < 1e-9);
    }
}
