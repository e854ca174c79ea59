//! Candles of a longer interval built from stored shorter ones (2h/4h/1d from 1h), as the
//! exchange builds them: buckets aligned to UTC (weeks start on Monday, as Binance's do),
//! open of the first candle, high and low over the bucket, close of the last, volumes summed.

use super::candle::{Candle, Interval, TimestampMs};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    #[error("cannot build {to} candles from {from} ones: {to} is not a whole multiple of {from}")]
    NotAMultiple { from: Interval, to: Interval },
}

/// 1970-01-05, the first Monday after the epoch: weekly buckets start there.
const FIRST_MONDAY_MS: TimestampMs = 4 * 86_400_000;

/// Open time of the `to` bucket holding `t`.
pub fn bucket_start(t: TimestampMs, to: Interval) -> TimestampMs {
    let len = to.millis();
    let origin = if to == Interval::W1 {
        FIRST_MONDAY_MS
    } else {
        0
    };
    t - (t - origin).rem_euclid(len)
}

/// Aggregate `candles` (of interval `from`, oldest first) into `to` candles.
///
/// A leading bucket whose first `from` candle is missing is dropped (its open would be wrong);
/// the last bucket may still be forming and is kept, as the exchange shows its current candle.
/// Missing candles inside a bucket are skipped: the bucket aggregates what is stored.
pub fn resample(
    candles: &[Candle],
    from: Interval,
    to: Interval,
) -> Result<Vec<Candle>, ResampleError> {
    if to.millis() % from.millis() != 0 || to.millis() < from.millis() {
        return Err(ResampleError::NotAMultiple { from, to });
    }
    let mut out: Vec<Candle> = Vec::with_capacity(candles.len() / 2 + 1);
    for c in candles {
        let start = bucket_start(c.open_time, to);
        match out.last_mut() {
            Some(b) if b.open_time == start => {
                if c.high > b.high {
                    b.high = c.high;
                }
                if c.low < b.low {
                    b.low = c.low;
                }
                b.close = c.close;
                b.volume += c.volume;
            }
            _ => {
                if out.is_empty() && start != c.open_time {
                    // Joined mid-bucket: skip until the next bucket begins.
                    continue;
                }
                out.push(Candle {
                    open_time: start,
                    ..c.clone()
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Price, Qty};
    use rust_decimal_macros::dec;

    const H: i64 = 3_600_000;
    /// 2025-01-01 00:00 UTC (a Wednesday).
    const DAY: i64 = 1_735_689_600_000;

    fn c(open_time: i64, o: i64, h: i64, l: i64, cl: i64, v: i64) -> Candle {
        Candle {
            open_time,
            open: Price(o.into()),
            high: Price(h.into()),
            low: Price(l.into()),
            close: Price(cl.into()),
            volume: Qty(v.into()),
        }
    }

    #[test]
    fn four_hourly_candles_take_the_first_open_extremes_last_close_and_summed_volume() {
        let hourly = [
            c(DAY, 100, 110, 95, 105, 1),
            c(DAY + H, 105, 120, 100, 101, 2),
            c(DAY + 2 * H, 101, 102, 90, 99, 3),
            c(DAY + 3 * H, 99, 104, 98, 103, 4),
            c(DAY + 4 * H, 103, 106, 102, 104, 5),
        ];
        let four = resample(&hourly, Interval::H1, Interval::H4).unwrap();
        assert_eq!(
            four,
            vec![
                c(DAY, 100, 120, 90, 103, 10),
                // The forming bucket is kept with what it has.
                c(DAY + 4 * H, 103, 106, 102, 104, 5),
            ]
        );
    }

    #[test]
    fn buckets_align_to_utc_and_a_partial_leading_bucket_is_dropped() {
        // Starts at 01:00: the 00:00-04:00 bucket would open at the wrong price.
        let hourly: Vec<Candle> = (1..10)
            .map(|i| c(DAY + i * H, 100 + i, 200, 50, 100 + i, 1))
            .collect();
        let two = resample(&hourly, Interval::H1, Interval::H2).unwrap();
        let opens: Vec<i64> = two.iter().map(|c| (c.open_time - DAY) / H).collect();
        assert_eq!(opens, vec![2, 4, 6, 8]);
        assert_eq!(two[0].open, Price(dec!(102)));
        assert_eq!(two[0].close, Price(dec!(103)));
        let daily = resample(&hourly, Interval::H1, Interval::D1).unwrap();
        assert!(daily.is_empty(), "the only day started at 01:00");
    }

    #[test]
    fn daily_buckets_start_at_midnight_utc_and_weeks_on_monday() {
        assert_eq!(bucket_start(DAY + 13 * H, Interval::D1), DAY);
        // 2025-01-01 is a Wednesday: its week began on Monday 2024-12-30.
        assert_eq!(bucket_start(DAY + 13 * H, Interval::W1), DAY - 2 * 24 * H);
        assert_eq!(bucket_start(DAY + 5 * H, Interval::H4), DAY + 4 * H);
    }

    #[test]
    fn an_interval_that_is_not_a_whole_multiple_is_refused() {
        for (from, to) in [(Interval::M3, Interval::M5), (Interval::H4, Interval::H2)] {
            assert_eq!(
                resample(&[], from, to),
                Err(ResampleError::NotAMultiple { from, to })
            );
        }
    }
}
