//! The open times of the candles a run covers, one per equity point.

use crate::domain::market::candle::TimestampMs;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Evenly spaced candles (the usual case: no gap in the data) are kept as the first time and
/// the step, not as a copy of a million timestamps; anything else as the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Times(Repr);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    Regular {
        first: TimestampMs,
        step: i64,
        len: usize,
    },
    Listed(Vec<TimestampMs>),
}

impl Times {
    /// `len` times from `first`, `step` apart: what [`of`](Self::of) gives for such a list of
    /// two or more, when the caller already knows it is one (a run checks its times once).
    pub fn regular(first: TimestampMs, step: i64, len: usize) -> Times {
        Times(Repr::Regular { first, step, len })
    }

    /// The times of `times`, kept compactly when they are evenly spaced.
    pub fn of(times: &[TimestampMs]) -> Times {
        match times {
            [] => Times(Repr::Listed(Vec::new())),
            [first] => Times(Repr::Regular {
                first: *first,
                step: 0,
                len: 1,
            }),
            [first, second, ..] => {
                let step = second - first;
                if times.windows(2).all(|w| w[1] - w[0] == step) {
                    Times(Repr::Regular {
                        first: *first,
                        step,
                        len: times.len(),
                    })
                } else {
                    Times(Repr::Listed(times.to_vec()))
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Regular { len, .. } => *len,
            Repr::Listed(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<TimestampMs> {
        match &self.0 {
            Repr::Regular { first, step, len } => {
                (i < *len).then(|| first + step * i as TimestampMs)
            }
            Repr::Listed(v) => v.get(i).copied(),
        }
    }

    pub fn first(&self) -> Option<TimestampMs> {
        self.get(0)
    }

    pub fn last(&self) -> Option<TimestampMs> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    pub fn iter(&self) -> impl Iterator<Item = TimestampMs> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    pub fn to_vec(&self) -> Vec<TimestampMs> {
        self.iter().collect()
    }

    /// These times followed by `more` (walk-forward windows stitched end to end).
    pub fn extend(&mut self, more: &Times) {
        let mut all = self.to_vec();
        all.extend(more.iter());
        *self = Times::of(&all);
    }
}

impl Default for Times {
    fn default() -> Self {
        Times(Repr::Listed(Vec::new()))
    }
}

impl From<Vec<TimestampMs>> for Times {
    fn from(v: Vec<TimestampMs>) -> Self {
        Times::of(&v)
    }
}

/// As the plain list of times, whatever the representation.
impl Serialize for Times {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Times {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<TimestampMs>::deserialize(deserializer).map(Times::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spaced_times_are_kept_as_first_and_step() {
        let t = Times::of(&[100, 160, 220, 280]);
        assert_eq!(
            t.0,
            Repr::Regular {
                first: 100,
                step: 60,
                len: 4
            }
        );
        assert_eq!(t.to_vec(), vec![100, 160, 220, 280]);
        assert_eq!(
            (t.first(), t.last(), t.get(4)),
            (Some(100), Some(280), None)
        );
    }

    #[test]
    fn a_gap_keeps_the_list() {
        let t = Times::of(&[100, 160, 280]);
        assert!(matches!(t.0, Repr::Listed(_)));
        assert_eq!(t.to_vec(), vec![100, 160, 280]);
        assert_eq!(t.get(2), Some(280));
    }

    #[test]
    fn serialises_as_the_list_and_back() {
        let t = Times::of(&[0, 10, 20]);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "[0,10,20]");
        assert_eq!(serde_json::from_str::<Times>(&json).unwrap(), t);
    }

    #[test]
    fn extending_stitches_two_runs() {
        let mut t = Times::of(&[0, 10]);
        t.extend(&Times::of(&[20, 30]));
        assert_eq!(t.to_vec(), vec![0, 10, 20, 30]);
        t.extend(&Times::of(&[45]));
        assert_eq!(t.to_vec(), vec![0, 10, 20, 30, 45]);
        assert_eq!(Times::default().first(), None);
    }
}
