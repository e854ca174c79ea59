//! A minimal fake of Binance's `GET /api/v3/klines` (and `GET /api/v3/time`) on 127.0.0.1:0,
//! for the kline downloader's tests: it serves a scripted candle series up to a settable "now"
//! (the candle containing "now" is served as still open, as Binance does), validates the
//! parameters the way Binance does (unknown symbol -1121, bad interval -1120, limit > 1000
//! -1130), counts request weight in `X-MBX-USED-WEIGHT-1M`, and can answer 429 with
//! `Retry-After` on demand.

use crate::domain::market::{Candle, Interval, TimestampMs};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One request the fake received (for assertions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct State {
    symbol: String,
    interval: Option<Interval>,
    candles: Vec<Candle>,
    now: TimestampMs,
    seen: Vec<SeenRequest>,
    used_weight: u32,
    throttle_next: u32,
    retry_after_secs: u32,
}

/// Handle to a running fake; dropping it stops the server.
#[derive(Debug)]
pub struct FakeKlines {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl Drop for FakeKlines {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeKlines {
    /// Serve `candles` (ascending) of `symbol`/`interval`, with the clock at `now`.
    pub async fn start(
        symbol: &str,
        interval: Interval,
        candles: Vec<Candle>,
        now: TimestampMs,
    ) -> std::io::Result<FakeKlines> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            symbol: symbol.to_string(),
            interval: Some(interval),
            candles,
            now,
            ..State::default()
        }));
        let stop = CancellationToken::new();
        let (st, token) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (st, token) = (st.clone(), token.clone());
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = token.cancelled() => {}
                                _ = serve(stream, st) => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(FakeKlines { addr, state, stop })
    }

    /// Base URL to give the client, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Move the fake's clock (new candles become closed).
    pub fn set_now(&self, now: TimestampMs) {
        self.state().now = now;
    }

    /// Answer the next `n` klines requests with 429 and `Retry-After: secs`.
    pub fn throttle_next(&self, n: u32, retry_after_secs: u32) {
        let mut s = self.state();
        s.throttle_next = n;
        s.retry_after_secs = retry_after_secs;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state().seen.clone()
    }

    /// Total request weight charged so far.
    pub fn used_weight(&self) -> u32 {
        self.state().used_weight
    }
}

fn error_body(code: i32, msg: &str) -> String {
    serde_json::json!({ "code": code, "msg": msg }).to_string()
}

fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

/// Status, extra headers, body.
fn respond(
    state: &Mutex<State>,
    path: &str,
    query: Vec<(String, String)>,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
    let req = SeenRequest {
        path: path.to_string(),
        query,
    };
    s.seen.push(req.clone());
    match path {
        "/api/v3/time" => {
            s.used_weight += 1;
            (
                200,
                vec![],
                serde_json::json!({ "serverTime": s.now }).to_string(),
            )
        }
        "/api/v3/klines" => {
            if s.throttle_next > 0 {
                s.throttle_next -= 1;
                let retry = s.retry_after_secs.to_string();
                return (
                    429,
                    vec![("Retry-After".into(), retry)],
                    error_body(
                        -1003,
                        "Too many requests; current limit is 6000 request weight per 1 MINUTE.",
                    ),
                );
            }
            s.used_weight += 2;
            let weight = vec![(
                "X-MBX-USED-WEIGHT-1M".to_string(),
                s.used_weight.to_string(),
            )];
            let Some(symbol) = req.param("symbol") else {
                return (
                    400,
                    weight,
                    error_body(
                        -1102,
                        "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
                    ),
                );
            };
            if symbol != s.symbol {
                return (400, weight, error_body(-1121, "Invalid symbol."));
            }
            let interval = req
                .param("interval")
                .and_then(|i| i.parse::<Interval>().ok());
            if interval.is_none() || interval != s.interval {
                return (400, weight, error_body(-1120, "Invalid interval."));
            }
            let int = |name: &str| req.param(name).map(|v| v.parse::<i64>());
            let limit = match int("limit") {
                None => 500,
                Some(Ok(l)) if (1..=1000).contains(&l) => l,
                Some(_) => {
                    return (
                        400,
                        weight,
                        error_body(-1130, "Invalid data sent for a parameter."),
                    );
                }
            };
            let (start, end) = match (int("startTime"), int("endTime")) {
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    return (
                        400,
                        weight,
                        error_body(-1100, "Illegal characters found in a parameter."),
                    );
                }
                (s, e) => (s.and_then(Result::ok), e.and_then(Result::ok)),
            };
            if let (Some(a), Some(b)) = (start, end)
                && a > b
            {
                return (
                    400,
                    weight,
                    error_body(-1023, "Start time is greater than end time."),
                );
            }
            let step = interval.map_or(1, Interval::millis);
            let now = s.now;
            let rows: Vec<_> = s
                .candles
                .iter()
                .filter(|c| c.open_time <= now)
                .filter(|c| start.is_none_or(|a| c.open_time >= a))
                .filter(|c| end.is_none_or(|b| c.open_time <= b))
                .take(usize::try_from(limit).unwrap_or(1000))
                .map(|c| {
                    serde_json::json!([
                        c.open_time,
                        c.open.to_string(),
                        c.high.to_string(),
                        c.low.to_string(),
                        c.close.to_string(),
                        c.volume.to_string(),
                        c.open_time + step - 1,
                        "0",
                        1,
                        "0",
                        "0",
                        "0"
                    ])
                })
                .collect();
            (200, weight, serde_json::Value::Array(rows).to_string())
        }
        _ => (404, vec![], error_body(-1000, "Unknown path.")),
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            if buffer.len() > 64 * 1024 {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        // GET requests only: no body to read.
        buffer.drain(..head_end + 4);
        let mut first = head.lines().next().unwrap_or("").split_whitespace();
        let method = first.next().unwrap_or("");
        let target = first.next().unwrap_or("/");
        let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        let (status, headers, body) = if method == "GET" {
            respond(&state, path, parse_query(raw_query))
        } else {
            (405, vec![], error_body(-1000, "Method not allowed."))
        };
        let mut out = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        if stream.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A seeded random walk of candles, for the `fake-binance` binary's market: the same seed gives
/// the same market, so a run against it can be repeated. Each candle opens at the previous
/// close and moves by at most `max_step_bps` basis points per step (four steps a candle).
#[derive(Debug, Clone)]
pub struct RandomWalk {
    state: u64,
    price: rust_decimal::Decimal,
    max_step_bps: i64,
}

impl RandomWalk {
    pub fn new(seed: u64, start: rust_decimal::Decimal) -> RandomWalk {
        RandomWalk {
            // xorshift has no zero state.
            state: seed ^ 0x9E37_79B9_7F4A_7C15,
            price: start,
            max_step_bps: 40,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// The next candle, opening at `open_time`.
    pub fn next_candle(&mut self, open_time: TimestampMs) -> Candle {
        use crate::domain::money::{Price, Qty};
        use rust_decimal::Decimal;
        let open = self.price;
        let (mut high, mut low) = (open, open);
        for _ in 0..4 {
            let span = (2 * self.max_step_bps + 1) as u64;
            let bps = (self.next_u64() % span) as i64 - self.max_step_bps;
            let moved = (self.price * (Decimal::from(10_000 + bps)) / Decimal::from(10_000))
                .round_dp(2)
                .max(Decimal::new(1, 2));
            self.price = moved;
            high = high.max(moved);
            low = low.min(moved);
        }
        let volume = Decimal::from(1 + self.next_u64() % 50);
        Candle {
            open_time,
            open: Price(open),
            high: Price(high),
            low: Price(low),
            close: Price(self.price),
            volume: Qty(volume),
        }
    }

    /// `count` candles, the last one opening at `last_open`.
    pub fn history(
        &mut self,
        count: i64,
        interval: Interval,
        last_open: TimestampMs,
    ) -> Vec<Candle> {
        (0..count)
            .map(|i| self.next_candle(last_open - (count - 1 - i) * interval.millis()))
            .collect()
    }
}

/// `candles` moved in time, spacing kept at `interval`, so that the last one opens at
/// `last_open` (a recorded market replayed as if it were happening now).
pub fn restamp(candles: &[Candle], interval: Interval, last_open: TimestampMs) -> Vec<Candle> {
    let n = candles.len() as i64;
    candles
        .iter()
        .enumerate()
        .map(|(i, c)| Candle {
            open_time: last_open - (n - 1 - i as i64) * interval.millis(),
            ..c.clone()
        })
        .collect()
}

#[cfg(test)]
mod walk_tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn a_seeded_walk_repeats_and_every_candle_is_consistent_and_chained() {
        let a = RandomWalk::new(7, Decimal::from(50_000)).history(300, Interval::M1, 600_000_000);
        let b = RandomWalk::new(7, Decimal::from(50_000)).history(300, Interval::M1, 600_000_000);
        let c = RandomWalk::new(8, Decimal::from(50_000)).history(300, Interval::M1, 600_000_000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.last().unwrap().open_time, 600_000_000);
        for pair in a.windows(2) {
            assert_eq!(pair[1].open_time - pair[0].open_time, 60_000);
            assert_eq!(pair[1].open, pair[0].close);
        }
        for k in &a {
            assert!(k.low <= k.open && k.low <= k.close && k.high >= k.open && k.high >= k.close);
        }
        let closes: std::collections::BTreeSet<_> = a.iter().map(|k| k.close).collect();
        assert!(closes.len() > 100, "the price moves");
    }

    #[test]
    fn restamp_keeps_prices_and_spacing_and_ends_at_the_given_open() {
        let walk = RandomWalk::new(1, Decimal::from(100)).history(5, Interval::H1, 0);
        let moved = restamp(&walk, Interval::H1, 10 * 3_600_000);
        assert_eq!(moved.last().unwrap().open_time, 10 * 3_600_000);
        assert_eq!(moved[0].open_time, 6 * 3_600_000);
        assert_eq!(moved[2].close, walk[2].close);
    }
}
