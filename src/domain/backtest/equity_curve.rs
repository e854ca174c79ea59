//! A run's equity at each candle's close, one point per candle, kept compactly.

use serde::{Serialize, Serializer};

/// The equity at each candle's close. A flat account's equity is its cash, the same at every
/// candle until the next trade, so a stretch of equal points is kept as the value and where it
/// starts; the points of a held position, which move with the price, are kept one by one. On a
/// run that is flat more than half the time this spares writing most of a million points (8 MB
/// of stores at memory speed) for values that are all the same.
///
/// Read it as the list it stands for: [`get`](Self::get), [`iter`](Self::iter),
/// [`to_vec`](Self::to_vec); two curves are equal when their points are, however they are kept.
#[derive(Clone, Default)]
pub struct EquityCurve {
    /// In order; each covers the points from its `from` up to the next one's (or the end).
    runs: Vec<Run>,
    /// The points of the `Listed` runs, end to end.
    listed: Vec<f64>,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    from: usize,
    kind: Kind,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Every point of the run is this value.
    Same(f64),
    /// The run's points are `listed[at..]`, one per point.
    Listed { at: usize },
}

impl EquityCurve {
    /// An empty curve with room for `points` points kept one by one, and for a run every 16
    /// points (a trade every 32 candles; more grow the list). Grown from nothing, the list of
    /// runs of a 1M-candle run with 15,000 round trips was a measurable share of its time.
    pub fn with_capacity(points: usize) -> Self {
        EquityCurve {
            runs: Vec::with_capacity(points / 16),
            listed: Vec::with_capacity(points),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Point `i`.
    pub fn get(&self, i: usize) -> Option<f64> {
        if i >= self.len {
            return None;
        }
        let k = self.runs.partition_point(|r| r.from <= i) - 1;
        Some(self.point_of(self.runs[k], i))
    }

    pub fn first(&self) -> Option<f64> {
        self.get(0)
    }

    pub fn last(&self) -> Option<f64> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// The points in order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0)
    }

    /// The points from point `from` on, in order (the run holding it found once).
    pub fn iter_from(&self, from: usize) -> Iter<'_> {
        Iter {
            curve: self,
            run: self
                .runs
                .partition_point(|r| r.from <= from)
                .saturating_sub(1),
            i: from,
        }
    }

    pub fn to_vec(&self) -> Vec<f64> {
        self.iter().collect()
    }

    /// Points `from..to` as a list.
    pub fn range_to_vec(&self, from: usize, to: usize) -> Vec<f64> {
        self.iter_from(from)
            .take(to.min(self.len).saturating_sub(from))
            .collect()
    }

    /// The next point.
    #[inline(always)]
    pub fn push(&mut self, e: f64) {
        if !self.last_is_listed() {
            self.start_listed(self.listed.len());
        }
        self.listed.push(e);
        self.len += 1;
    }

    /// `count` points, each `e`.
    #[inline]
    pub fn push_same(&mut self, e: f64, count: usize) {
        if count == 0 {
            return;
        }
        let same_as_last = matches!(
            self.runs.last(),
            Some(Run { kind: Kind::Same(v), .. }) if v.to_bits() == e.to_bits()
        );
        if !same_as_last {
            self.runs.push(Run {
                from: self.len,
                kind: Kind::Same(e),
            });
        }
        self.len += count;
    }

    /// The next points, one by one; returns them as kept.
    #[inline]
    pub fn extend_listed(&mut self, points: impl Iterator<Item = f64>) -> &[f64] {
        let at = self.listed.len();
        self.listed.extend(points);
        let added = self.listed.len() - at;
        // A run is never empty: its points are the ones up to the next run's start.
        if added > 0 && !self.last_is_listed() {
            self.start_listed(at);
        }
        self.len += added;
        &self.listed[at..]
    }

    #[inline(always)]
    fn last_is_listed(&self) -> bool {
        matches!(
            self.runs.last(),
            Some(Run {
                kind: Kind::Listed { .. },
                ..
            })
        )
    }

    #[cold]
    #[inline(never)]
    /// A listed run from the next point, whose points start at `listed[at]`.
    fn start_listed(&mut self, at: usize) {
        self.runs.push(Run {
            from: self.len,
            kind: Kind::Listed { at },
        });
    }

    /// `other`'s points after these, kept as compactly as there.
    pub fn append(&mut self, other: &EquityCurve) {
        for (k, run) in other.runs.iter().enumerate() {
            let to = other.runs.get(k + 1).map_or(other.len, |next| next.from);
            match run.kind {
                Kind::Same(e) => self.push_same(e, to - run.from),
                Kind::Listed { at } => {
                    self.extend_listed(other.listed[at..at + (to - run.from)].iter().copied());
                }
            }
        }
    }

    /// The last point becomes `e` (nothing when there is none).
    pub fn set_last(&mut self, e: f64) {
        let Some(i) = self.len.checked_sub(1) else {
            return;
        };
        let last = self.runs.len() - 1;
        match self.runs[last].kind {
            Kind::Listed { .. } => {
                if let Some(p) = self.listed.last_mut() {
                    *p = e;
                }
            }
            Kind::Same(_) if self.runs[last].from == i => self.runs[last].kind = Kind::Same(e),
            Kind::Same(_) => {
                self.len -= 1;
                self.push(e);
            }
        }
    }

    #[inline]
    fn point_of(&self, run: Run, i: usize) -> f64 {
        match run.kind {
            Kind::Same(e) => e,
            Kind::Listed { at } => self.listed[at + (i - run.from)],
        }
    }
}

impl From<Vec<f64>> for EquityCurve {
    fn from(points: Vec<f64>) -> Self {
        let len = points.len();
        EquityCurve {
            runs: if len == 0 {
                Vec::new()
            } else {
                vec![Run {
                    from: 0,
                    kind: Kind::Listed { at: 0 },
                }]
            },
            listed: points,
            len,
        }
    }
}

impl PartialEq for EquityCurve {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

/// As the list of points, however they are kept.
impl std::fmt::Debug for EquityCurve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// As the list of points.
impl Serialize for EquityCurve {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// The points of an [`EquityCurve`] in order.
pub struct Iter<'a> {
    curve: &'a EquityCurve,
    run: usize,
    i: usize,
}

impl Iterator for Iter<'_> {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        let curve = self.curve;
        if self.i >= curve.len {
            return None;
        }
        while curve
            .runs
            .get(self.run + 1)
            .is_some_and(|r| r.from <= self.i)
        {
            self.run += 1;
        }
        let e = curve.point_of(curve.runs[self.run], self.i);
        self.i += 1;
        Some(e)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.curve.len - self.i.min(self.curve.len);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// How points reach a curve.
    #[derive(Debug, Clone)]
    enum Step {
        One(f64),
        Same(f64, usize),
        Listed(Vec<f64>),
        SetLast(f64),
        Append(Vec<f64>),
    }

    fn value() -> impl Strategy<Value = f64> {
        // Few distinct values, so equal neighbours and merged runs are common; zeros of both
        // signs are different bits.
        prop_oneof![Just(100.0), Just(0.0), Just(-0.0), Just(7.25), -1e6..1e6f64]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            value().prop_map(Step::One),
            (value(), 0..6usize).prop_map(|(e, n)| Step::Same(e, n)),
            prop::collection::vec(value(), 0..6).prop_map(Step::Listed),
            value().prop_map(Step::SetLast),
            prop::collection::vec(value(), 0..6).prop_map(Step::Append),
        ]
    }

    proptest! {
        /// Whatever way its points were added, the curve reads as the list of them: length,
        /// each point, the iteration, the first and last, a range, to the bit.
        #[test]
        fn a_curve_reads_as_its_list(steps in prop::collection::vec(step(), 0..40)) {
            let mut curve = EquityCurve::with_capacity(0);
            let mut list: Vec<f64> = Vec::new();
            for s in &steps {
                match s {
                    Step::One(e) => {
                        curve.push(*e);
                        list.push(*e);
                    }
                    Step::Same(e, n) => {
                        curve.push_same(*e, *n);
                        list.extend(std::iter::repeat_n(*e, *n));
                    }
                    Step::Listed(v) => {
                        let kept = curve.extend_listed(v.iter().copied()).to_vec();
                        prop_assert_eq!(bits(&kept), bits(v));
                        list.extend_from_slice(v);
                    }
                    Step::SetLast(e) => {
                        curve.set_last(*e);
                        if let Some(p) = list.last_mut() {
                            *p = *e;
                        }
                    }
                    Step::Append(v) => {
                        curve.append(&EquityCurve::from(v.clone()));
                        list.extend_from_slice(v);
                    }
                }
            }
            prop_assert_eq!(curve.len(), list.len());
            prop_assert_eq!(curve.iter().len(), list.len());
            prop_assert_eq!(bits(&curve.to_vec()), bits(&list));
            let each: Vec<f64> = (0..list.len()).map(|i| curve.get(i).unwrap()).collect();
            prop_assert_eq!(bits(&each), bits(&list));
            prop_assert_eq!(curve.get(list.len()), None);
            prop_assert_eq!(curve.first().map(f64::to_bits), list.first().map(|e| e.to_bits()));
            prop_assert_eq!(curve.last().map(f64::to_bits), list.last().map(|e| e.to_bits()));
            let (a, b) = (list.len() / 3, list.len() * 2 / 3);
            prop_assert_eq!(bits(&curve.range_to_vec(a, b)), bits(&list[a..b]));
            prop_assert!(curve == EquityCurve::from(list.clone()));
            prop_assert_eq!(
                serde_json::to_string(&curve).unwrap(),
                serde_json::to_string(&list).unwrap()
            );
        }
    }

    fn bits(v: &[f64]) -> Vec<u64> {
        v.iter().map(|e| e.to_bits()).collect()
    }

    #[test]
    fn curves_with_the_same_points_are_equal_however_kept() {
        let mut runs = EquityCurve::with_capacity(0);
        runs.push_same(5.0, 3);
        runs.push(6.0);
        let listed = EquityCurve::from(vec![5.0, 5.0, 5.0, 6.0]);
        assert_eq!(runs, listed);
        assert_ne!(runs, EquityCurve::from(vec![5.0, 5.0, 6.0]));
        assert_ne!(runs, EquityCurve::from(vec![5.0, 5.0, 5.0, 7.0]));
        assert_eq!(
            format!("{runs:?}"),
            format!("{:?}", vec![5.0, 5.0, 5.0, 6.0])
        );
    }
}
