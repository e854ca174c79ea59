//! Protections per strategy and symbol (issue #19): after a stop-loss exit the strategy waits
//! `cooldown_candles_after_stop` candles before it enters the symbol again, and after
//! `stop_lock_count` stops within `stop_lock_window_candles` candles the symbol is locked for
//! `stop_lock_candles` candles. Pure: the caller passes the stop exits of one book in one
//! symbol, the time now on its clock and the candle length. Live trading (through
//! `validate`) and the backtest engine ask this same function.

use serde::Serialize;

use super::config::RiskConfig;
use crate::domain::market::candle::TimestampMs;

/// Why entries into a symbol wait, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StopProtection {
    /// Within `candles` candles of the stop at `stop_at`; `elapsed` whole candles have passed.
    Cooldown {
        stop_at: TimestampMs,
        elapsed: u32,
        candles: u32,
        until: TimestampMs,
    },
    /// `stops` stops within `window` candles, the last at `last_stop_at`: locked for `candles`
    /// candles from it.
    Lock {
        stops: u32,
        window: u32,
        last_stop_at: TimestampMs,
        candles: u32,
        until: TimestampMs,
    },
}

impl StopProtection {
    /// When entries may resume.
    pub fn until(&self) -> TimestampMs {
        match self {
            StopProtection::Cooldown { until, .. } | StopProtection::Lock { until, .. } => *until,
        }
    }

    /// The check's name in a verdict.
    pub fn name(&self) -> &'static str {
        match self {
            StopProtection::Cooldown { .. } => "cooldown",
            StopProtection::Lock { .. } => "locked",
        }
    }

    /// In plain words: "cooldown: 2 of 3 candles after the stop at 2025-01-15 10:00 UTC; …".
    pub fn describe(&self) -> String {
        format!("{}: {}", self.name(), self.detail())
    }

    /// `describe` without the name (a verdict's check detail).
    pub fn detail(&self) -> String {
        match *self {
            StopProtection::Cooldown {
                stop_at,
                elapsed,
                candles,
                until,
            } => format!(
                "{elapsed} of {candles} candles after the stop at {}; entries resume at {}",
                utc(stop_at),
                utc(until)
            ),
            StopProtection::Lock {
                stops,
                window,
                last_stop_at,
                candles,
                until,
            } => format!(
                "{stops} stops within {window} candles, the last at {}; locked for {candles} \
                 candles, until {}",
                utc(last_stop_at),
                utc(until)
            ),
        }
    }
}

/// The stop-loss exits of one book in one symbol, with the caller's clock: what `validate`
/// needs to apply the cooldown and the lock to an entry. Empty (the default) applies nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StopExits {
    /// When each stop-loss exit happened, on the caller's clock.
    pub stops: Vec<TimestampMs>,
    /// Now, on the same clock.
    pub now_ms: TimestampMs,
    /// The length of the candle the strategy decides on.
    pub candle_ms: i64,
}

impl StopExits {
    /// What keeps the entry out under `config`, if anything.
    pub fn protection(&self, config: &RiskConfig) -> Option<StopProtection> {
        stop_protection(config, &self.stops, self.now_ms, self.candle_ms)
    }
}

fn utc(ms: TimestampMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn after(at: TimestampMs, candles: u32, candle_ms: i64) -> TimestampMs {
    at.saturating_add(i64::from(candles).saturating_mul(candle_ms))
}

/// What keeps one book out of one symbol at `now_ms`, if anything: the lock when both apply
/// (it ends later or is the harder rule), else the cooldown. `stops` are the times of that
/// book's stop-loss exits in that symbol, in any order; `candle_ms` is the trading interval.
pub fn stop_protection(
    config: &RiskConfig,
    stops: &[TimestampMs],
    now_ms: TimestampMs,
    candle_ms: i64,
) -> Option<StopProtection> {
    if candle_ms <= 0 {
        return None;
    }
    let mut sorted: Vec<TimestampMs> = stops.iter().copied().filter(|s| *s <= now_ms).collect();
    sorted.sort_unstable();
    let lock = lock_at(config, &sorted, now_ms, candle_ms);
    let cooldown = sorted.last().and_then(|&stop_at| {
        let candles = config.cooldown_candles_after_stop;
        let until = after(stop_at, candles, candle_ms);
        (candles > 0 && now_ms < until).then(|| StopProtection::Cooldown {
            stop_at,
            elapsed: u32::try_from((now_ms - stop_at) / candle_ms).unwrap_or(u32::MAX),
            candles,
            until,
        })
    });
    match (lock, cooldown) {
        (Some(l), Some(c)) if c.until() > l.until() => Some(c),
        (Some(l), _) => Some(l),
        (None, c) => c,
    }
}

/// The lock in force at `now_ms`: the latest stop that completed `stop_lock_count` stops
/// within the window and whose lock has not ended.
fn lock_at(
    config: &RiskConfig,
    sorted: &[TimestampMs],
    now_ms: TimestampMs,
    candle_ms: i64,
) -> Option<StopProtection> {
    let count = usize::try_from(config.stop_lock_count).ok()?;
    if count == 0 || config.stop_lock_candles == 0 || sorted.len() < count {
        return None;
    }
    let window_ms = i64::from(config.stop_lock_window_candles).saturating_mul(candle_ms);
    (count - 1..sorted.len()).rev().find_map(|i| {
        let last = sorted[i];
        let first = sorted[i + 1 - count];
        let until = after(last, config.stop_lock_candles, candle_ms);
        (last - first <= window_ms && now_ms < until).then_some(StopProtection::Lock {
            stops: config.stop_lock_count,
            window: config.stop_lock_window_candles,
            last_stop_at: last,
            candles: config.stop_lock_candles,
            until,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    /// 2025-01-15 00:00 UTC.
    const T0: i64 = 1_736_899_200_000;

    fn config(cooldown: u32, count: u32, window: u32, lock: u32) -> RiskConfig {
        RiskConfig {
            cooldown_candles_after_stop: cooldown,
            stop_lock_count: count,
            stop_lock_window_candles: window,
            stop_lock_candles: lock,
            ..RiskConfig::default()
        }
    }

    #[test]
    fn a_stop_starts_a_cooldown_of_n_candles() {
        let c = config(3, 0, 0, 0);
        // Stop at 10:00; 1h candles; cooldown 3 candles → until 13:00.
        let stop = T0 + 10 * HOUR;
        let at = |h: i64| stop_protection(&c, &[stop], T0 + h * HOUR + HOUR / 2, HOUR);
        assert_eq!(
            at(12),
            Some(StopProtection::Cooldown {
                stop_at: stop,
                elapsed: 2,
                candles: 3,
                until: T0 + 13 * HOUR,
            })
        );
        assert_eq!(
            at(12).unwrap().describe(),
            "cooldown: 2 of 3 candles after the stop at 2025-01-15 10:00 UTC; entries resume \
             at 2025-01-15 13:00 UTC"
        );
        assert_eq!(at(10).map(|p| p.name()), Some("cooldown"));
        assert_eq!(stop_protection(&c, &[stop], T0 + 13 * HOUR, HOUR), None);
        // Off at 0, and a stop "after now" (another clock) does not count.
        assert_eq!(
            stop_protection(&config(0, 0, 0, 0), &[stop], stop + 1, HOUR),
            None
        );
        assert_eq!(stop_protection(&c, &[stop], stop - 1, HOUR), None);
    }

    #[test]
    fn k_stops_within_the_window_lock_the_symbol() {
        // 3 stops within 10 candles lock for 24 candles.
        let c = config(0, 3, 10, 24);
        let stops = [T0, T0 + 4 * HOUR, T0 + 9 * HOUR];
        let p = stop_protection(&c, &stops, T0 + 20 * HOUR, HOUR).unwrap();
        assert_eq!(
            p,
            StopProtection::Lock {
                stops: 3,
                window: 10,
                last_stop_at: T0 + 9 * HOUR,
                candles: 24,
                until: T0 + 33 * HOUR,
            }
        );
        assert_eq!(p.name(), "locked");
        assert_eq!(
            p.describe(),
            "locked: 3 stops within 10 candles, the last at 2025-01-15 09:00 UTC; locked for 24 \
             candles, until 2025-01-16 09:00 UTC"
        );
        assert_eq!(stop_protection(&c, &stops, T0 + 33 * HOUR, HOUR), None);
        // Spread over 11 candles: no lock.
        let spread = [T0, T0 + 4 * HOUR, T0 + 11 * HOUR];
        assert_eq!(stop_protection(&c, &spread, T0 + 12 * HOUR, HOUR), None);
        // Two stops are not three.
        assert_eq!(stop_protection(&c, &stops[..2], T0 + 5 * HOUR, HOUR), None);
    }

    #[test]
    fn the_later_of_a_lock_and_a_cooldown_is_shown() {
        // Cooldown 5 candles, lock 2 stops within 3 candles for 2 candles.
        let c = config(5, 2, 3, 2);
        let stops = [T0, T0 + HOUR];
        // At +2h the lock runs to +3h, the cooldown to +6h: the cooldown is what waits longer.
        let p = stop_protection(&c, &stops, T0 + 2 * HOUR, HOUR).unwrap();
        assert_eq!(p.until(), T0 + 6 * HOUR);
        assert_eq!(p.name(), "cooldown");
        // A long lock beats a short cooldown.
        let c = config(1, 2, 3, 48);
        let p = stop_protection(&c, &stops, T0 + 2 * HOUR, HOUR).unwrap();
        assert_eq!(p.until(), T0 + 49 * HOUR);
        assert_eq!(p.name(), "locked");
    }
}
