//! Where a run marks its equity at each candle's close: the whole curve with its statistics (a
//! single run's result), the statistics only (a sweep's runs), or the last point only (a sweep
//! ranked by return).

use super::equity_curve::EquityCurve;
use super::metrics::EquityStats;

/// Where a run marks its equity at each candle's close.
pub(super) trait Curve {
    /// The candle closed at `close` with the account at `cash` and `qty`: its equity is
    /// `cash + qty * close` (what [`Engine::equity_f64`](super::Engine::equity_f64) gives).
    fn mark(&mut self, cash: f64, qty: f64, close: f64);
    /// A stretch over which cash and quantity do not change: `cash + qty * close` at each of
    /// `closes`.
    fn mark_stretch(&mut self, cash: f64, qty: f64, closes: &[f64]);
    /// The points (none when not kept) and their statistics.
    fn finish(self) -> (EquityCurve, EquityStats);
}

/// The equity at every candle (a run's result keeps it for charts), with its statistics.
///
/// The points are written as they are marked (a flat stretch as one value and its length, see
/// [`EquityCurve`]), into room for the whole run taken up front. Keeping only the stretches of
/// unchanged cash and quantity and writing the points out after the run was measured slower:
/// the stores then ran as a pass of their own, bound by the memory's write bandwidth, where
/// inside the loop they overlap its arithmetic.
pub(super) struct KeptCurve {
    points: EquityCurve,
    stats: EquityStats,
}

impl KeptCurve {
    /// Room for `len` points (the candles the run marks).
    pub(super) fn new(initial_equity: f64, len: usize) -> Self {
        KeptCurve {
            points: EquityCurve::with_capacity(len),
            stats: EquityStats::new(initial_equity),
        }
    }
}

impl Curve for KeptCurve {
    #[inline(always)]
    fn mark(&mut self, cash: f64, qty: f64, close: f64) {
        let e = cash + qty * close;
        self.points.push(e);
        self.stats.push(e);
    }

    #[inline]
    fn mark_stretch(&mut self, cash: f64, qty: f64, closes: &[f64]) {
        if let Some(e) = flat_equity(cash, qty) {
            self.points.push_same(e, closes.len());
            self.stats.push_repeat(e, closes.len());
        } else {
            let points = self
                .points
                .extend_listed(closes.iter().map(|&c| cash + qty * c));
            self.stats.push_all(points);
        }
    }

    fn finish(self) -> (EquityCurve, EquityStats) {
        (self.points, self.stats)
    }
}

/// Only the statistics of the curve (a sweep's runs).
impl Curve for EquityStats {
    #[inline(always)]
    fn mark(&mut self, cash: f64, qty: f64, close: f64) {
        self.push(cash + qty * close);
    }

    #[inline]
    fn mark_stretch(&mut self, cash: f64, qty: f64, closes: &[f64]) {
        if let Some(e) = flat_equity(cash, qty) {
            self.push_repeat(e, closes.len());
        } else {
            self.push_mapped(closes, |c| cash + qty * c);
        }
    }

    fn finish(self) -> (EquityCurve, EquityStats) {
        (EquityCurve::default(), self)
    }
}

/// Only the last point of the curve and how many there were: what the total return needs.
/// The statistics it finishes with hold nothing else (no returns, no drawdown), so only the
/// total return of the metrics made from them means anything.
pub(super) struct LastPoint {
    initial: f64,
    last: Option<f64>,
    len: usize,
}

impl LastPoint {
    pub(super) fn new(initial_equity: f64) -> Self {
        LastPoint {
            initial: initial_equity,
            last: None,
            len: 0,
        }
    }
}

impl Curve for LastPoint {
    #[inline(always)]
    fn mark(&mut self, cash: f64, qty: f64, close: f64) {
        self.last = Some(cash + qty * close);
        self.len += 1;
    }

    #[inline]
    fn mark_stretch(&mut self, cash: f64, qty: f64, closes: &[f64]) {
        // The point the full curve would mark last, by the same arithmetic.
        if let Some(&c) = closes.last() {
            self.last = Some(flat_equity(cash, qty).unwrap_or(cash + qty * c));
            self.len += closes.len();
        }
    }

    fn finish(self) -> (EquityCurve, EquityStats) {
        (
            EquityCurve::default(),
            EquityStats::last_point(self.initial, self.last, self.len),
        )
    }
}

/// The equity of a flat account at any close: `cash + 0 * close` is `cash` itself for a
/// positive, finite cash (the closes are finite prices). `None` otherwise.
#[inline]
fn flat_equity(cash: f64, qty: f64) -> Option<f64> {
    (qty == 0.0 && cash > 0.0 && cash.is_finite()).then_some(cash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How a run marks a few candles: one at a time, or as a quiet stretch.
    #[derive(Debug, Clone)]
    enum Marking {
        One(f64),
        Stretch(Vec<f64>),
    }

    /// Account terms as a run holds them: often flat (zero quantity), often unchanged from the
    /// step before, sometimes dust or a negative (bled) cash.
    fn terms() -> impl Strategy<Value = (f64, f64)> {
        let cash = prop_oneof![Just(100_000.0), Just(0.0), Just(-3.5), 1e-9..1e6f64,];
        let qty = prop_oneof![Just(0.0), Just(-0.0), 1e-12..50.0f64];
        (cash, qty)
    }

    fn steps() -> impl Strategy<Value = Vec<((f64, f64), Marking)>> {
        let close = 0.01..1e5f64;
        let marking = prop_oneof![
            close.clone().prop_map(Marking::One),
            prop::collection::vec(close, 0..20).prop_map(Marking::Stretch),
        ];
        prop::collection::vec((terms(), marking), 0..60)
    }

    proptest! {
        /// The kept curve's points are `cash + qty * close` at each candle, as marked, to the
        /// bit; its statistics are those of that curve taken a point at a time.
        #[test]
        fn the_kept_curve_is_each_candles_equity(steps in steps(), repeat in 0..3usize) {
            let mut curve = KeptCurve::new(100_000.0, 0);
            let mut expected = Vec::new();
            for ((cash, qty), marking) in &steps {
                // The same terms again over the next steps, as a held position keeps them.
                for _ in 0..=repeat {
                    match marking {
                        Marking::One(c) => {
                            curve.mark(*cash, *qty, *c);
                            expected.push(cash + qty * c);
                        }
                        Marking::Stretch(cs) => {
                            curve.mark_stretch(*cash, *qty, cs);
                            expected.extend(cs.iter().map(|c| cash + qty * c));
                        }
                    }
                }
            }
            let (points, stats) = curve.finish();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&points.to_vec()), bits(&expected));
            let naive = EquityStats::of(100_000.0, &expected);
            prop_assert_eq!(format!("{stats:?}"), format!("{naive:?}"));
        }
    }
}
