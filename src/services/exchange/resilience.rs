//! Resilience for exchange calls: a request-weight limiter synced from `X-MBX-USED-WEIGHT-1M`
//! that honours 429 `Retry-After` and 418 bans, and a circuit breaker per endpoint group.
//! Retries with backoff and jitter live in the client (reads only, via `backon`).

use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Endpoints grouped so one failing area (say, order placement) does not stop market data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EndpointGroup {
    MarketData,
    Account,
    Trading,
}

impl EndpointGroup {
    pub const ALL: [EndpointGroup; 3] = [
        EndpointGroup::MarketData,
        EndpointGroup::Account,
        EndpointGroup::Trading,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointGroup::MarketData => "market-data",
            EndpointGroup::Account => "account",
            EndpointGroup::Trading => "trading",
        }
    }
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Go,
    /// Wait this long, then ask again.
    Wait(Duration),
    /// Banned (HTTP 418): nothing may be sent for this long.
    Banned(Duration),
}

#[derive(Debug)]
struct WindowState {
    window_index: i64,
    used: u32,
    pause_until: Option<Instant>,
    ban_until: Option<Instant>,
    slowdown: bool,
}

/// Request-weight budget per window, aligned to the exchange clock like Binance's 1-minute
/// window. Counts locally before each request and takes the server's `X-MBX-USED-WEIGHT-*`
/// figure when it is higher, so requests made elsewhere from the same IP are accounted for.
#[derive(Debug)]
pub struct WeightLimiter {
    limit: u32,
    window: Duration,
    state: Mutex<WindowState>,
}

impl WeightLimiter {
    /// `limit` is the budget we allow ourselves (already below the exchange's limit).
    pub fn new(limit: u32, window: Duration) -> WeightLimiter {
        WeightLimiter {
            limit: limit.max(1),
            window: window.max(Duration::from_millis(1)),
            state: Mutex::new(WindowState {
                window_index: 0,
                used: 0,
                pause_until: None,
                ban_until: None,
                slowdown: false,
            }),
        }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Try to spend `weight` at exchange time `server_now_ms`.
    pub fn try_acquire(&self, weight: u32, server_now_ms: i64, now: Instant) -> Admission {
        let mut s = self.lock();
        if let Some(until) = s.ban_until {
            if until > now {
                return Admission::Banned(until - now);
            }
            s.ban_until = None;
        }
        if let Some(until) = s.pause_until {
            if until > now {
                return Admission::Wait(until - now);
            }
            s.pause_until = None;
        }
        let window_ms = self.window_ms();
        let index = server_now_ms.div_euclid(window_ms);
        if index != s.window_index {
            // A whole window without a 429 since the pause ended: back to the full budget.
            if s.window_index != 0 && index > s.window_index + 1 {
                s.slowdown = false;
            }
            s.window_index = index;
            s.used = 0;
        }
        // After a 429 we keep a quarter of the budget in reserve until a window passes cleanly.
        let budget = if s.slowdown {
            self.limit - self.limit / 4
        } else {
            self.limit
        };
        if s.used + weight <= budget || (s.used == 0 && weight > budget) {
            s.used += weight;
            return Admission::Go;
        }
        let until_next = window_ms - server_now_ms.rem_euclid(window_ms);
        Admission::Wait(Duration::from_millis(
            u64::try_from(until_next).unwrap_or(1).max(1),
        ))
    }

    /// Sync with the server's used-weight header for the window the response arrived in.
    pub fn observe_used_weight(&self, used: u32, server_now_ms: i64) {
        let mut s = self.lock();
        // A response that arrives after the window rolled over reports the old window's
        // count; only a same-window figure tells us something.
        let index = server_now_ms.div_euclid(self.window_ms());
        if index == s.window_index && used > s.used {
            s.used = used;
        }
    }

    /// HTTP 429: pause for `Retry-After` and keep a reserve afterwards.
    pub fn on_rate_limited(&self, retry_after: Duration, now: Instant) {
        let mut s = self.lock();
        s.pause_until = Some(now + retry_after);
        s.slowdown = true;
    }

    /// HTTP 418: nothing goes out until the ban lifts.
    pub fn on_banned(&self, retry_after: Duration, now: Instant) {
        let mut s = self.lock();
        s.ban_until = Some(now + retry_after);
        s.slowdown = true;
    }

    /// Time left on a ban, if any.
    pub fn banned_for(&self, now: Instant) -> Option<Duration> {
        let s = self.lock();
        s.ban_until.filter(|u| *u > now).map(|u| u - now)
    }

    /// Weight used in the current window as far as we know.
    pub fn used(&self) -> u32 {
        self.lock().used
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// The state of an endpoint group's circuit breaker (closed: requests go out; open: refused
/// until the cool-down; half-open: one probe) — not the risk breaker (`domain::risk::BreakerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct BreakerInner {
    state: EndpointState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// Opens after `failure_threshold` consecutive failures, lets one probe through after
/// `cool_down`, closes when the probe succeeds and re-opens when it fails.
#[derive(Debug)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    cool_down: Duration,
    inner: Mutex<BreakerInner>,
}

impl CircuitBreaker {
    pub fn new(failure_threshold: u32, cool_down: Duration) -> CircuitBreaker {
        CircuitBreaker {
            failure_threshold: failure_threshold.max(1),
            cool_down,
            inner: Mutex::new(BreakerInner {
                state: EndpointState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self, now: Instant) -> EndpointState {
        let s = self.lock();
        match (s.state, s.opened_at) {
            (EndpointState::Open, Some(at)) if now.duration_since(at) >= self.cool_down => {
                EndpointState::HalfOpen
            }
            (state, _) => state,
        }
    }

    /// `Ok` when a call may go out; `Err(retry_in)` while open.
    pub fn allow(&self, now: Instant) -> Result<(), Duration> {
        let mut s = self.lock();
        match s.state {
            EndpointState::Closed => Ok(()),
            EndpointState::Open => {
                let since = s
                    .opened_at
                    .map(|at| now.duration_since(at))
                    .unwrap_or_default();
                if since >= self.cool_down {
                    s.state = EndpointState::HalfOpen;
                    s.probe_in_flight = true;
                    Ok(())
                } else {
                    Err(self.cool_down - since)
                }
            }
            EndpointState::HalfOpen if !s.probe_in_flight => {
                s.probe_in_flight = true;
                Ok(())
            }
            EndpointState::HalfOpen => Err(Duration::from_millis(100)),
        }
    }

    pub fn on_success(&self) {
        let mut s = self.lock();
        s.state = EndpointState::Closed;
        s.consecutive_failures = 0;
        s.opened_at = None;
        s.probe_in_flight = false;
    }

    pub fn on_failure(&self, now: Instant) {
        let mut s = self.lock();
        s.consecutive_failures += 1;
        s.probe_in_flight = false;
        if s.state == EndpointState::HalfOpen || s.consecutive_failures >= self.failure_threshold {
            s.state = EndpointState::Open;
            s.opened_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_waits_for_next_window_when_budget_is_spent() {
        let l = WeightLimiter::new(10, Duration::from_millis(1000));
        let now = Instant::now();
        assert_eq!(l.try_acquire(6, 5_000, now), Admission::Go);
        assert_eq!(l.try_acquire(4, 5_100, now), Admission::Go);
        assert_eq!(
            l.try_acquire(1, 5_400, now),
            Admission::Wait(Duration::from_millis(600))
        );
        assert_eq!(l.try_acquire(1, 6_000, now), Admission::Go);
    }

    #[test]
    fn limiter_takes_the_servers_higher_count() {
        let l = WeightLimiter::new(10, Duration::from_millis(1000));
        let now = Instant::now();
        assert_eq!(l.try_acquire(1, 5_000, now), Admission::Go);
        l.observe_used_weight(9, 5_010);
        assert_eq!(l.used(), 9);
        assert!(matches!(l.try_acquire(2, 5_020, now), Admission::Wait(_)));
    }

    #[test]
    fn limiter_pauses_on_429_and_refuses_during_418_ban() {
        let l = WeightLimiter::new(100, Duration::from_millis(1000));
        let now = Instant::now();
        l.on_rate_limited(Duration::from_secs(2), now);
        assert_eq!(
            l.try_acquire(1, 0, now),
            Admission::Wait(Duration::from_secs(2))
        );
        let later = now + Duration::from_secs(3);
        assert_eq!(l.try_acquire(1, 3_000, later), Admission::Go);
        l.on_banned(Duration::from_secs(120), later);
        assert_eq!(
            l.try_acquire(1, 3_000, later),
            Admission::Banned(Duration::from_secs(120))
        );
    }

    #[test]
    fn breaker_opens_probes_and_closes() {
        let b = CircuitBreaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        for _ in 0..2 {
            b.on_failure(t0);
        }
        assert_eq!(b.state(t0), EndpointState::Closed);
        b.on_failure(t0);
        assert_eq!(b.state(t0), EndpointState::Open);
        assert!(b.allow(t0 + Duration::from_secs(5)).is_err());
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.state(t1), EndpointState::HalfOpen);
        assert!(b.allow(t1).is_ok());
        assert!(b.allow(t1).is_err(), "only one probe at a time");
        b.on_failure(t1);
        assert_eq!(b.state(t1), EndpointState::Open);
        let t2 = t1 + Duration::from_secs(10);
        assert!(b.allow(t2).is_ok());
        b.on_success();
        assert_eq!(b.state(t2), EndpointState::Closed);
    }
}
