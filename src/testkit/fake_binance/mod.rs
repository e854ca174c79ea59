//! A fake Binance Spot REST server for tests and end-to-end runs: real HMAC signature and
//! recvWindow checks, symbol filters from `tests/fixtures/binance/exchangeInfo_BTCUSDT.json`,
//! balances, the shared matching engine against a scripted price path, OCO lists, Binance's
//! error codes and messages, the `X-MBX-USED-WEIGHT-1M` / `X-MBX-ORDER-COUNT-*` headers with a
//! weight limit that answers 429 (and 418 to a client that keeps going), and fault knobs.

pub mod http;
pub mod ws;

use crate::domain::market::candle::{Candle, Interval};
use crate::domain::money::{Price, Qty};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{
    Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce, TrailingDelta,
};
use crate::services::exchange::binance::endpoints::weight_of_path;
use crate::services::exchange::binance::models::{
    ErrorBody, ExchangeInfo, OrderFill, WireOrder, WireOrderList, WireTrade,
};
use crate::services::exchange::binance::signing::{Credentials, signatures_match};
use crate::services::exchange::engine::Engine;
use crate::services::exchange::{Balance, ExchangeError, OcoRequest};
use http::Request;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The exchange-info fixture the fake serves (see `tests/fixtures/binance/README.md`).
pub const EXCHANGE_INFO_FIXTURE: &str =
    include_str!("../../../tests/fixtures/binance/exchangeInfo_BTCUSDT.json");

/// `count` candles of `interval` at one flat `price` (volume 1), the last one opening at
/// `last_open`: klines to give the fake with [`FakeBinance::set_klines`].
pub fn flat_candles(price: Decimal, count: i64, interval: Interval, last_open: i64) -> Vec<Candle> {
    let p = Price(price);
    (0..count)
        .map(|i| Candle {
            open_time: last_open - (count - 1 - i) * interval.millis(),
            open: p,
            high: p,
            low: p,
            close: p,
            volume: Qty(Decimal::ONE),
        })
        .collect()
}

/// 70 closed candles of `interval` up to the one open at `now_ms`: a slow decline from
/// `start`, then ten rising closes. MACD's histogram turns positive and RSI sits near 80, so
/// the rules engine with `oversold = 99` buys on them.
pub fn rebound_candles(start: Decimal, interval: Interval, now_ms: i64) -> Vec<Candle> {
    let step = interval.millis();
    let last_open = now_ms - now_ms.rem_euclid(step) - step;
    let unit = start / Decimal::from(1000);
    let closes: Vec<Decimal> = (0..60)
        .map(|i| start - unit * Decimal::from(i))
        .chain((1..=10).map(|i| start - unit * Decimal::from(59) + unit * Decimal::from(2 * i)))
        .collect();
    let n = closes.len() as i64;
    closes
        .iter()
        .enumerate()
        .map(|(i, close)| {
            let open = if i == 0 { *close } else { closes[i - 1] };
            Candle {
                open_time: last_open - (n - 1 - i as i64) * step,
                open: Price(open),
                high: Price(open.max(*close) + unit / Decimal::from(5)),
                low: Price(open.min(*close) - unit / Decimal::from(5)),
                close: Price(*close),
                volume: Qty(Decimal::from(5)),
            }
        })
        .collect()
}

/// How the fake is set up.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub api_key: String,
    pub api_secret: String,
    /// Request weight allowed per window (Binance: 6000 per minute).
    pub weight_limit: u32,
    pub weight_window: Duration,
    /// Requests tolerated after a 429 (before the window resets) until the IP is banned.
    pub ban_after_violations: u32,
    pub ban_duration: Duration,
    pub fee_rate: Decimal,
    pub balances: Vec<(String, Decimal)>,
    /// First price of BTCUSDT.
    pub price: Decimal,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            api_key: "fake-api-key".into(),
            api_secret: "fake-api-secret".into(),
            weight_limit: 6000,
            weight_window: Duration::from_secs(60),
            ban_after_violations: 5,
            ban_duration: Duration::from_secs(120),
            fee_rate: Decimal::new(1, 3),
            balances: vec![
                ("USDT".into(), Decimal::from(10_000)),
                ("BTC".into(), Decimal::ONE),
            ],
            price: Decimal::from(50_000),
        }
    }
}

/// Fault knobs. Counters apply to the next N matching requests and count down.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Delay before every request is handled.
    pub latency: Duration,
    /// Added to the fake's clock (server time and the timestamp check).
    pub clock_skew_ms: i64,
    /// Any request: answer 503 without handling it.
    pub http_5xx_next: u32,
    /// Any request: answer 200 with a body that is not JSON.
    pub malformed_next: u32,
    /// Order placement: 429 with `Retry-After`, order not processed.
    pub orders_429_next: u32,
    /// Order placement: 418 with `Retry-After`, order not processed.
    pub orders_418_next: u32,
    /// `Retry-After` seconds for the two knobs above.
    pub retry_after_secs: u64,
    /// Order placement: accept the order, then answer 503.
    pub orders_5xx_after_accept: u32,
    /// Order placement: answer 503 without processing the order.
    pub orders_5xx_before_accept: u32,
    /// Order placement: accept the order, then close the connection without answering.
    pub orders_drop_after_accept: u32,
    /// Order placement: accept the order, then wait `accept_delay` before answering.
    pub orders_slow_after_accept: u32,
    pub accept_delay: Duration,
    /// OCO placement: refuse the list as Binance does when the base asset is short
    /// (-2010 "Account has insufficient balance for requested action."), nothing placed.
    pub oco_insufficient_balance_next: u32,
    /// OCO placement: accept the list, then answer 503 (the outcome is unknown to the client).
    pub oco_5xx_after_accept: u32,
    /// `GET /api/v3/myTrades`: answer 503 without handling it.
    pub my_trades_5xx_next: u32,
    /// OCO placement: 429 with `Retry-After`, list not processed.
    pub oco_429_next: u32,
    /// Order placement: hold the request `accept_delay` BEFORE handling it (a request late on
    /// the network: status queries meanwhile find no such order; it is handled afterwards as
    /// Binance would, within its recvWindow).
    pub orders_late: u32,
}

impl Faults {
    /// Set one knob by name, as `POST /fake/faults?name=value&…` does: counters take a count,
    /// `latency_ms` / `accept_delay_ms` milliseconds, `clock_skew_ms` a signed offset,
    /// `retry_after_secs` seconds.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let count = || {
            value
                .parse::<u32>()
                .map_err(|_| format!("{name}: expected a count"))
        };
        let ms = || {
            value
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{name}: expected milliseconds"))
        };
        match name {
            "latency_ms" => self.latency = ms()?,
            "accept_delay_ms" => self.accept_delay = ms()?,
            "clock_skew_ms" => {
                self.clock_skew_ms = value
                    .parse()
                    .map_err(|_| format!("{name}: expected milliseconds"))?;
            }
            "retry_after_secs" => {
                self.retry_after_secs = value
                    .parse()
                    .map_err(|_| format!("{name}: expected seconds"))?;
            }
            "http_5xx_next" => self.http_5xx_next = count()?,
            "malformed_next" => self.malformed_next = count()?,
            "orders_429_next" => self.orders_429_next = count()?,
            "orders_418_next" => self.orders_418_next = count()?,
            "orders_5xx_after_accept" => self.orders_5xx_after_accept = count()?,
            "orders_5xx_before_accept" => self.orders_5xx_before_accept = count()?,
            "orders_drop_after_accept" => self.orders_drop_after_accept = count()?,
            "orders_slow_after_accept" => self.orders_slow_after_accept = count()?,
            "orders_late" => self.orders_late = count()?,
            "oco_insufficient_balance_next" => self.oco_insufficient_balance_next = count()?,
            "oco_5xx_after_accept" => self.oco_5xx_after_accept = count()?,
            "my_trades_5xx_next" => self.my_trades_5xx_next = count()?,
            "oco_429_next" => self.oco_429_next = count()?,
            other => return Err(format!("unknown fault knob {other:?}")),
        }
        Ok(())
    }

    /// The knobs as JSON (what `GET /fake/faults` answers).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "latency_ms": self.latency.as_millis(),
            "accept_delay_ms": self.accept_delay.as_millis(),
            "clock_skew_ms": self.clock_skew_ms,
            "retry_after_secs": self.retry_after_secs,
            "http_5xx_next": self.http_5xx_next,
            "malformed_next": self.malformed_next,
            "orders_429_next": self.orders_429_next,
            "orders_418_next": self.orders_418_next,
            "orders_5xx_after_accept": self.orders_5xx_after_accept,
            "orders_5xx_before_accept": self.orders_5xx_before_accept,
            "orders_drop_after_accept": self.orders_drop_after_accept,
            "orders_slow_after_accept": self.orders_slow_after_accept,
            "orders_late": self.orders_late,
            "oco_insufficient_balance_next": self.oco_insufficient_balance_next,
            "oco_5xx_after_accept": self.oco_5xx_after_accept,
            "my_trades_5xx_next": self.my_trades_5xx_next,
            "oco_429_next": self.oco_429_next,
        })
    }
}

/// Counters a test can assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeStats {
    /// Requests received per `METHOD /path`.
    pub requests: BTreeMap<String, u32>,
    /// Highest weight used in any window.
    pub max_window_weight: u32,
    pub responses_429: u32,
    pub responses_418: u32,
}

struct State {
    config: FakeConfig,
    engine: Engine,
    info: ExchangeInfo,
    faults: Faults,
    stats: FakeStats,
    window_index: i64,
    window_used: u32,
    violations: u32,
    cooldown_until: Option<Instant>,
    ban_until: Option<Instant>,
    klines: HashMap<Symbol, Vec<Candle>>,
    price_history: Vec<(i64, Price)>,
    order_times: Vec<i64>,
    key_permissions: KeyPermissions,
    /// What the WebSocket clients are sent (see [`ws`]).
    feed: tokio::sync::broadcast::Sender<ws::FeedEvent>,
    /// Update id of the book around the price: the REST snapshot's `lastUpdateId`, one more
    /// per `depthUpdate`, so a client can chain the diffs onto the snapshot as on Binance.
    depth_id: u64,
    /// `a` of the last `aggTrade`.
    agg_trade_id: u64,
    /// Fills already sent as `executionReport`, per symbol.
    reported_fills: HashMap<Symbol, usize>,
    /// Order statuses already sent as `executionReport`, by client order id.
    reported_status: HashMap<String, OrderStatus>,
    /// The market is held (`POST /fake/market?paused=true`): `fake-binance` closes no candle
    /// and moves no price until it is released, so a test can compare a settled ledger.
    market_paused: bool,
}

/// Levels per side of the fake's book: one lot at every tick around the price.
const BOOK_LEVELS: usize = 50;

/// The fake's book around `last`: `BOOK_LEVELS` bids below and asks above, one tick apart.
fn ladder(last: Decimal, tick: Decimal) -> (Vec<Decimal>, Vec<Decimal>) {
    let bids = (1..=BOOK_LEVELS)
        .map(|i| last - tick * Decimal::from(i))
        .collect();
    let asks = (1..=BOOK_LEVELS)
        .map(|i| last + tick * Decimal::from(i))
        .collect();
    (bids, asks)
}

/// What the fake's API key may do, as `GET /sapi/v1/account/apiRestrictions` reports it.
/// Default: reading and spot trading, no withdrawals or transfers (a well-made trading key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPermissions {
    pub reading: bool,
    pub spot_trading: bool,
    pub withdrawals: bool,
    pub internal_transfer: bool,
    pub ip_restrict: bool,
}

impl Default for KeyPermissions {
    fn default() -> Self {
        KeyPermissions {
            reading: true,
            spot_trading: true,
            withdrawals: false,
            internal_transfer: false,
            ip_restrict: false,
        }
    }
}

/// What a handler decided to send back.
enum Reply {
    Json {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Close the connection without answering (after the order was accepted).
    Drop,
    /// Answer, but only after a delay (after the order was accepted).
    Slow(Duration, Box<Reply>),
}

fn json(status: u16, body: String) -> Reply {
    Reply::Json {
        status,
        body,
        headers: Vec::new(),
    }
}

fn error(status: u16, code: i64, msg: &str) -> Reply {
    let body = serde_json::to_string(&ErrorBody {
        code,
        msg: msg.to_string(),
    })
    .unwrap_or_default();
    json(status, body)
}

fn ok<T: serde::Serialize>(value: &T) -> Reply {
    match serde_json::to_string(value) {
        Ok(body) => json(200, body),
        Err(e) => error(500, -1000, &format!("An unknown error occurred: {e}")),
    }
}

fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Binance's message for an engine error.
fn engine_error(e: &ExchangeError) -> Reply {
    match e {
        ExchangeError::FilterFailure { filter, .. } => {
            error(400, -1013, &format!("Filter failure: {filter}"))
        }
        ExchangeError::InsufficientBalance(m) | ExchangeError::OrderRejected(m) => {
            error(400, -2010, m)
        }
        ExchangeError::UnknownOrder { code: -2011, .. } => error(400, -2011, "Unknown order sent."),
        ExchangeError::UnknownOrder { .. } => error(400, -2013, "Order does not exist."),
        ExchangeError::BadSymbol(_) => error(400, -1121, "Invalid symbol."),
        ExchangeError::Api { code, msg } => error(400, *code, msg),
        ExchangeError::Unsupported(m) => error(400, -1116, m),
        other => error(400, -1013, &other.to_string()),
    }
}

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, Reply> {
    param(params, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            error(
                400,
                -1102,
                &format!(
                    "Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                ),
            )
        })
}

fn decimal(params: &Params, name: &str) -> Result<Option<Decimal>, Reply> {
    match param(params, name) {
        None => Ok(None),
        Some(v) => Decimal::from_str_exact(v).map(Some).map_err(|_| {
            error(
                400,
                -1100,
                &format!("Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."),
            )
        }),
    }
}

fn valid_client_id(id: &str) -> bool {
    (1..=36).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '_' | '-'))
}

impl State {
    fn server_ms(&self) -> i64 {
        wall_ms() + self.faults.clock_skew_ms
    }

    fn symbol(&self, params: &Params) -> Result<Symbol, Reply> {
        let raw = required(params, "symbol")?;
        let symbol = Symbol::new(raw).map_err(|_| error(400, -1121, "Invalid symbol."))?;
        self.engine
            .filters(&symbol)
            .map_err(|_| error(400, -1121, "Invalid symbol."))?;
        Ok(symbol)
    }

    /// Weight accounting; `Some(reply)` when the request must be refused (429/418).
    fn charge(&mut self, weight: u32, now: Instant) -> Option<Reply> {
        if let Some(until) = self.ban_until.filter(|u| *u > now) {
            return Some(self.banned(until - now));
        }
        let window_ms = i64::try_from(self.config.weight_window.as_millis())
            .unwrap_or(60_000)
            .max(1);
        let server = self.server_ms();
        let index = server.div_euclid(window_ms);
        if index != self.window_index {
            self.window_index = index;
            self.window_used = 0;
            self.cooldown_until = None;
            self.violations = 0;
        }
        let until_reset = Duration::from_millis(
            u64::try_from(window_ms - server.rem_euclid(window_ms)).unwrap_or(1),
        );
        if self.cooldown_until.is_some_and(|u| u > now) {
            self.violations += 1;
            if self.violations > self.config.ban_after_violations {
                let ban = self.config.ban_duration;
                self.ban_until = Some(now + ban);
                return Some(self.banned(ban));
            }
            return Some(self.too_many(until_reset));
        }
        if self.window_used + weight > self.config.weight_limit {
            self.cooldown_until = Some(now + until_reset);
            return Some(self.too_many(until_reset));
        }
        self.window_used += weight;
        self.stats.max_window_weight = self.stats.max_window_weight.max(self.window_used);
        None
    }

    fn too_many(&mut self, retry_after: Duration) -> Reply {
        self.stats.responses_429 += 1;
        let secs = retry_after.as_millis().div_ceil(1000).max(1);
        let limit = self.config.weight_limit;
        let msg = format!(
            "Too much request weight used; current limit is {limit} request weight per {} MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            (self.config.weight_window.as_secs() / 60).max(1)
        );
        let Reply::Json { status, body, .. } = error(429, -1003, &msg) else {
            return error(429, -1003, &msg);
        };
        Reply::Json {
            status,
            body,
            headers: vec![("Retry-After".into(), secs.to_string())],
        }
    }

    fn banned(&mut self, remaining: Duration) -> Reply {
        self.stats.responses_418 += 1;
        let until = wall_ms() + i64::try_from(remaining.as_millis()).unwrap_or(0);
        let msg = format!(
            "Way too much request weight used; IP banned until {until}. Please use WebSocket Streams for live updates to avoid bans."
        );
        let secs = remaining.as_millis().div_ceil(1000).max(1);
        let Reply::Json { body, .. } = error(418, -1003, &msg) else {
            return error(418, -1003, &msg);
        };
        Reply::Json {
            status: 418,
            body,
            headers: vec![("Retry-After".into(), secs.to_string())],
        }
    }

    /// API key, HMAC signature over query + body (minus `signature`), timestamp/recvWindow.
    fn authenticate(&self, req: &Request, params: &Params) -> Result<(), Reply> {
        match req.header("X-MBX-APIKEY") {
            None => return Err(error(401, -2014, "API-key format invalid.")),
            Some(k) if k != self.config.api_key => {
                return Err(error(
                    401,
                    -2015,
                    "Invalid API-key, IP, or permissions for action.",
                ));
            }
            Some(_) => {}
        }
        let signature = required(params, "signature")?;
        let strip = |raw: &str| {
            raw.split('&')
                .filter(|p| !p.starts_with("signature="))
                .collect::<Vec<_>>()
                .join("&")
        };
        let payload = format!("{}{}", strip(&req.raw_query), strip(&req.raw_body));
        let creds = Credentials::new(&self.config.api_key, &self.config.api_secret);
        if !signatures_match(&creds.sign(&payload), signature) {
            return Err(error(
                400,
                -1022,
                "Signature for this request is not valid.",
            ));
        }
        let timestamp: i64 = required(params, "timestamp")?.parse().map_err(|_| {
            error(
                400,
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
            )
        })?;
        let recv_window: Decimal = decimal(params, "recvWindow")?.unwrap_or(Decimal::from(5000));
        if recv_window > Decimal::from(60_000) || recv_window <= Decimal::ZERO {
            return Err(error(400, -1131, "recvWindow must be less than 60000"));
        }
        let server = self.server_ms();
        if timestamp >= server + 1000 {
            return Err(error(
                400,
                -1021,
                "Timestamp for this request was 1000ms ahead of the server's time.",
            ));
        }
        if Decimal::from(server - timestamp) > recv_window {
            return Err(error(
                400,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ));
        }
        Ok(())
    }

    fn wire_order(&self, order: &Order, fills: Option<Vec<OrderFill>>) -> WireOrder {
        let list_id = self
            .engine
            .list_of(&order.client_order_id)
            .and_then(|(id, _)| i64::try_from(id).ok())
            .unwrap_or(-1);
        WireOrder::from_domain(order, list_id, fills)
    }

    fn order_count_headers(&mut self) -> Vec<(String, String)> {
        let now = self.server_ms();
        self.order_times.retain(|t| now - *t < 86_400_000);
        let last_10s = self
            .order_times
            .iter()
            .filter(|t| now - **t < 10_000)
            .count();
        vec![
            ("X-MBX-ORDER-COUNT-10S".into(), last_10s.to_string()),
            (
                "X-MBX-ORDER-COUNT-1D".into(),
                self.order_times.len().to_string(),
            ),
        ]
    }

    fn new_order(&mut self, params: &Params) -> Result<Reply, Reply> {
        let symbol = self.symbol(params)?;
        let side: Side = required(params, "side")?
            .parse()
            .map_err(|_| error(400, -1117, "Invalid side."))?;
        let order_type: OrderType = required(params, "type")?
            .parse()
            .map_err(|_| error(400, -1116, "Invalid orderType."))?;
        let quantity = decimal(params, "quantity")?.ok_or_else(|| {
            error(
                400,
                -1102,
                "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
            )
        })?;
        let price = decimal(params, "price")?;
        let stop_price = decimal(params, "stopPrice")?;
        // A LONG on the wire; a value too large for any filter is kept out of range, not wrapped.
        let trailing_delta = match param(params, "trailingDelta") {
            None => None,
            Some(v) => {
                let bips: u64 = v.parse().map_err(|_| {
                    error(
                        400,
                        -1100,
                        "Illegal characters found in parameter 'trailingDelta'; legal range is '^[0-9]{1,20}$'.",
                    )
                })?;
                Some(TrailingDelta(u32::try_from(bips).unwrap_or(u32::MAX)))
            }
        };
        let time_in_force = match param(params, "timeInForce") {
            Some(t) => Some(
                t.parse::<TimeInForce>()
                    .map_err(|_| error(400, -1115, "Invalid timeInForce."))?,
            ),
            None => None,
        };
        if matches!(
            order_type,
            OrderType::Limit | OrderType::StopLossLimit | OrderType::TakeProfitLimit
        ) && time_in_force.is_none()
        {
            return Err(error(
                400,
                -1102,
                "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.",
            ));
        }
        let client_order_id = match param(params, "newClientOrderId") {
            Some(id) if !valid_client_id(id) => {
                return Err(error(
                    400,
                    -1100,
                    "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
                ));
            }
            Some(id) => id.to_string(),
            None => format!("fake{}", self.engine.all_orders().len() + 1),
        };
        let request = OrderRequest {
            client_order_id,
            symbol,
            side,
            order_type,
            quantity: Qty(quantity),
            price: price.map(Price),
            stop_price: stop_price.map(Price),
            time_in_force,
            trailing_delta,
        };
        let now = self.server_ms();
        let placed = self
            .engine
            .place(&request, now)
            .map_err(|e| engine_error(&e))?;
        self.order_times.push(now);
        let fills = placed
            .fills
            .iter()
            .map(|f| OrderFill {
                price: f.price.get(),
                qty: f.quantity.get(),
                commission: f.fee.get(),
                commission_asset: f.fee_asset.clone(),
                trade_id: f
                    .trade_id
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
            })
            .collect();
        let mut wire = self.wire_order(&placed.order, Some(fills));
        wire.time = None;
        wire.update_time = None;
        let Reply::Json { status, body, .. } = ok(&wire) else {
            return Ok(ok(&wire));
        };
        Ok(Reply::Json {
            status,
            body,
            headers: self.order_count_headers(),
        })
    }

    fn new_oco(&mut self, params: &Params) -> Result<Reply, Reply> {
        let symbol = self.symbol(params)?;
        let side: Side = required(params, "side")?
            .parse()
            .map_err(|_| error(400, -1117, "Invalid side."))?;
        let quantity = decimal(params, "quantity")?.ok_or_else(|| {
            error(
                400,
                -1102,
                "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
            )
        })?;
        let leg =
            |prefix: &str| -> Result<(String, String, Option<Decimal>, Option<Decimal>), Reply> {
                let t = required(params, &format!("{prefix}Type"))?.to_string();
                let cid = param(params, &format!("{prefix}ClientOrderId"))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{prefix}{}", wall_ms()));
                Ok((
                    t,
                    cid,
                    decimal(params, &format!("{prefix}Price"))?,
                    decimal(params, &format!("{prefix}StopPrice"))?,
                ))
            };
        // Binance takes a trailing delta on an OCO's stop leg; this fake's lists do not trail, so
        // it refuses one rather than place a stop that would not trail.
        if ["aboveTrailingDelta", "belowTrailingDelta"]
            .iter()
            .any(|p| param(params, p).is_some())
        {
            return Err(error(
                400,
                -1116,
                "This fake does not support trailingDelta on OCO legs.",
            ));
        }
        let (above, below) = (leg("above")?, leg("below")?);
        let (tp, sl) = if above.0 == "LIMIT_MAKER" {
            (above, below)
        } else {
            (below, above)
        };
        if tp.0 != "LIMIT_MAKER" || sl.0 != "STOP_LOSS_LIMIT" {
            return Err(error(
                400,
                -1116,
                "This fake supports OCO lists of LIMIT_MAKER + STOP_LOSS_LIMIT only.",
            ));
        }
        let missing = |what: &str| {
            error(
                400,
                -1102,
                &format!(
                    "Mandatory parameter '{what}' was not sent, was empty/null, or malformed."
                ),
            )
        };
        let request = OcoRequest {
            list_client_order_id: param(params, "listClientOrderId")
                .map(str::to_string)
                .unwrap_or_else(|| format!("list{}", wall_ms())),
            symbol: symbol.clone(),
            side,
            quantity: Qty(quantity),
            take_profit_client_order_id: tp.1,
            take_profit_price: Price(tp.2.ok_or_else(|| missing("price"))?),
            stop_client_order_id: sl.1,
            stop_price: Price(sl.3.ok_or_else(|| missing("stopPrice"))?),
            stop_limit_price: Price(sl.2.ok_or_else(|| missing("price"))?),
        };
        let now = self.server_ms();
        let list = self
            .engine
            .place_oco(&request, now)
            .map_err(|e| engine_error(&e))?;
        self.order_times.push(now);
        self.order_times.push(now);
        let reports = list
            .orders
            .iter()
            .map(|o| self.wire_order(o, None))
            .collect();
        Ok(ok(&WireOrderList {
            order_list_id: list
                .exchange_list_id
                .as_deref()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0),
            contingency_type: "OCO".into(),
            list_status_type: "EXEC_STARTED".into(),
            list_order_status: "EXECUTING".into(),
            list_client_order_id: list.list_client_order_id,
            transaction_time: now,
            symbol: symbol.to_string(),
            order_reports: reports,
        }))
    }

    fn order_lookup(&self, params: &Params) -> Result<(Symbol, String), Reply> {
        let symbol = self.symbol(params)?;
        if let Some(cid) = param(params, "origClientOrderId") {
            return Ok((symbol, cid.to_string()));
        }
        let id = required(params, "orderId")?;
        let order = self
            .engine
            .all_orders()
            .into_iter()
            .find(|o| o.exchange_order_id.as_deref() == Some(id))
            .ok_or_else(|| error(400, -2013, "Order does not exist."))?;
        Ok((symbol, order.client_order_id))
    }

    fn ticker_24h(&self, symbol: &Symbol) -> Result<Reply, Reply> {
        let last = self
            .engine
            .last_price(symbol)
            .ok_or_else(|| error(400, -1121, "Invalid symbol."))?;
        let since = self.server_ms() - 86_400_000;
        let prices: Vec<Price> = self
            .price_history
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, p)| *p)
            .collect();
        let open = prices.first().copied().unwrap_or(last);
        let high = prices.iter().copied().max().unwrap_or(last);
        let low = prices.iter().copied().min().unwrap_or(last);
        let change = if open.is_zero() {
            Decimal::ZERO
        } else {
            ((last.get() - open.get()) / open.get() * Decimal::from(100)).round_dp(3)
        };
        Ok(ok(&serde_json::json!({
            "symbol": symbol.as_str(),
            "priceChange": (last.get() - open.get()).to_string(),
            "priceChangePercent": change.to_string(),
            "weightedAvgPrice": last.get().to_string(),
            "prevClosePrice": open.get().to_string(),
            "lastPrice": last.get().to_string(),
            "lastQty": "0",
            "bidPrice": last.get().to_string(),
            "bidQty": "1",
            "askPrice": last.get().to_string(),
            "askQty": "1",
            "openPrice": open.get().to_string(),
            "highPrice": high.get().to_string(),
            "lowPrice": low.get().to_string(),
            "volume": "0",
            "quoteVolume": "0",
            "openTime": since,
            "closeTime": self.server_ms(),
            "firstId": 0,
            "lastId": 0,
            "count": 0
        })))
    }

    fn route(&mut self, req: &Request) -> Result<Reply, Reply> {
        let params = req.params();
        let signed = matches!(
            (req.method.as_str(), req.path.as_str()),
            ("GET", "/api/v3/account")
                | ("GET", "/sapi/v1/account/apiRestrictions")
                | ("POST", "/api/v3/order")
                | ("GET", "/api/v3/order")
                | ("DELETE", "/api/v3/order")
                | ("POST", "/api/v3/orderList/oco")
                | ("GET", "/api/v3/openOrders")
                | ("GET", "/api/v3/myTrades")
        );
        if signed {
            self.authenticate(req, &params)?;
        }
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/api/v3/ping") => Ok(json(200, "{}".into())),
            ("GET", "/api/v3/time") => {
                Ok(ok(&serde_json::json!({ "serverTime": self.server_ms() })))
            }
            ("GET", "/api/v3/exchangeInfo") => {
                let mut info = self.info.clone();
                info.server_time = self.server_ms();
                if let Some(s) = param(&params, "symbol") {
                    info.symbols.retain(|i| i.symbol == s);
                    if info.symbols.is_empty() {
                        return Err(error(400, -1121, "Invalid symbol."));
                    }
                }
                Ok(ok(&info))
            }
            ("GET", "/api/v3/klines") => {
                let symbol = self.symbol(&params)?;
                let interval: Interval = required(&params, "interval")?
                    .parse()
                    .map_err(|_| error(400, -1120, "Invalid interval."))?;
                let start = param(&params, "startTime").and_then(|s| s.parse::<i64>().ok());
                let end = param(&params, "endTime").and_then(|s| s.parse::<i64>().ok());
                let limit: usize = param(&params, "limit")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500)
                    .min(1000);
                let candles: Vec<&Candle> = self
                    .klines
                    .get(&symbol)
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                let selected: Vec<&Candle> = candles
                    .into_iter()
                    .filter(|c| {
                        start.is_none_or(|s| c.open_time >= s)
                            && end.is_none_or(|e| c.open_time <= e)
                    })
                    .collect();
                let skip = if start.is_some() {
                    0
                } else {
                    selected.len().saturating_sub(limit)
                };
                let rows: Vec<serde_json::Value> = selected
                    .into_iter()
                    .skip(skip)
                    .take(limit)
                    .map(|c| {
                        serde_json::json!([
                            c.open_time,
                            c.open.get().to_string(),
                            c.high.get().to_string(),
                            c.low.get().to_string(),
                            c.close.get().to_string(),
                            c.volume.get().to_string(),
                            c.open_time + interval.millis() - 1,
                            (c.volume.get() * c.close.get()).round_dp(8).to_string(),
                            1,
                            "0",
                            "0",
                            "0"
                        ])
                    })
                    .collect();
                Ok(ok(&rows))
            }
            ("GET", "/api/v3/ticker/price") => {
                let symbol = self.symbol(&params)?;
                let price = self.engine.last_price(&symbol).unwrap_or_default();
                Ok(ok(
                    &serde_json::json!({ "symbol": symbol.as_str(), "price": price.get().to_string() }),
                ))
            }
            ("GET", "/api/v3/ticker/24hr") => {
                let symbol = self.symbol(&params)?;
                self.ticker_24h(&symbol)
            }
            ("GET", "/api/v3/depth") => {
                let symbol = self.symbol(&params)?;
                let filters = self.engine.filters(&symbol).map_err(|e| engine_error(&e))?;
                let last = self.engine.last_price(&symbol).unwrap_or_default().get();
                let limit: usize = param(&params, "limit")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(100)
                    .min(5000);
                let (bids, asks) = ladder(last, filters.tick_size);
                let level = |p: &Decimal| serde_json::json!([p.to_string(), "1.00000000"]);
                let bids: Vec<_> = bids.iter().take(limit).map(level).collect();
                let asks: Vec<_> = asks.iter().take(limit).map(level).collect();
                Ok(ok(
                    &serde_json::json!({ "lastUpdateId": self.depth_id, "bids": bids, "asks": asks }),
                ))
            }
            ("GET", "/sapi/v1/account/apiRestrictions") => {
                let k = self.key_permissions;
                Ok(ok(&serde_json::json!({
                    "ipRestrict": k.ip_restrict,
                    "createTime": 1_623_840_271_000i64,
                    "enableInternalTransfer": k.internal_transfer,
                    "enableFutures": false,
                    "enablePortfolioMarginTrading": false,
                    "enableVanillaOptions": false,
                    "permitsUniversalTransfer": k.internal_transfer,
                    "enableReading": k.reading,
                    "enableSpotAndMarginTrading": k.spot_trading,
                    "enableWithdrawals": k.withdrawals,
                    "enableMargin": false,
                    "tradingAuthorityExpirationTime": 1_628_985_600_000i64
                })))
            }
            ("GET", "/api/v3/account") => {
                let balances: Vec<_> = self
                    .engine
                    .balances()
                    .into_iter()
                    .filter(|b| !b.total().is_zero())
                    .map(|b| serde_json::json!({ "asset": b.asset, "free": b.free.to_string(), "locked": b.locked.to_string() }))
                    .collect();
                Ok(ok(&serde_json::json!({
                    "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                    "canTrade": true, "canWithdraw": false, "canDeposit": false, "brokered": false,
                    "requireSelfTradePrevention": false, "preventSor": false, "updateTime": self.server_ms(),
                    "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 1
                })))
            }
            ("POST", "/api/v3/order") => self.new_order(&params),
            ("POST", "/api/v3/orderList/oco") => self.new_oco(&params),
            ("GET", "/api/v3/order") => {
                let (symbol, cid) = self.order_lookup(&params)?;
                let order = self
                    .engine
                    .query(&symbol, &cid)
                    .map_err(|e| engine_error(&e))?;
                Ok(ok(&self.wire_order(&order, None)))
            }
            ("DELETE", "/api/v3/order") => {
                let (symbol, cid) = self.order_lookup(&params)?;
                let now = self.server_ms();
                let order = self
                    .engine
                    .cancel(&symbol, &cid, now)
                    .map_err(|e| engine_error(&e))?;
                let mut wire = self.wire_order(&order, None);
                wire.orig_client_order_id = Some(cid);
                wire.client_order_id = format!("cancel{now}");
                Ok(ok(&wire))
            }
            ("GET", "/api/v3/openOrders") => {
                let symbol = self.symbol(&params)?;
                let orders: Vec<WireOrder> = self
                    .engine
                    .open_orders(&symbol)
                    .iter()
                    .map(|o| self.wire_order(o, None))
                    .collect();
                Ok(ok(&orders))
            }
            ("GET", "/api/v3/myTrades") => {
                let symbol = self.symbol(&params)?;
                let orders = self.engine.all_orders();
                let trades: Vec<WireTrade> = self
                    .engine
                    .fills(&symbol)
                    .iter()
                    .map(|f| WireTrade {
                        symbol: f.symbol.to_string(),
                        id: f
                            .trade_id
                            .as_deref()
                            .and_then(|t| t.parse().ok())
                            .unwrap_or(0),
                        order_id: orders
                            .iter()
                            .rev()
                            .find(|o| o.client_order_id == f.client_order_id)
                            .and_then(|o| o.exchange_order_id.as_deref())
                            .and_then(|id| id.parse().ok())
                            .unwrap_or(0),
                        price: f.price.get(),
                        qty: f.quantity.get(),
                        quote_qty: (f.price * f.quantity).get(),
                        commission: f.fee.get(),
                        commission_asset: f.fee_asset.clone(),
                        time: f.time,
                        is_buyer: f.side == Side::Buy,
                        is_maker: f.is_maker,
                    })
                    .collect();
                Ok(ok(&trades))
            }
            ("GET", "/fake/faults") => Ok(ok(&self.faults.to_json())),
            ("POST", "/fake/faults") => {
                for (name, value) in &params {
                    self.faults
                        .set(name, value)
                        .map_err(|m| error(400, -1102, &m))?;
                }
                Ok(ok(&self.faults.to_json()))
            }
            ("POST", "/fake/market") => {
                match param(&params, "paused") {
                    Some("true") => self.market_paused = true,
                    Some("false") => self.market_paused = false,
                    _ => return Err(error(400, -1102, "paused must be true or false")),
                }
                Ok(json(200, format!(r#"{{"paused":{}}}"#, self.market_paused)))
            }
            ("POST", "/fake/price") => {
                let symbol = self.symbol(&params)?;
                let price = decimal(&params, "price")?.ok_or_else(|| error(400, -1102, "price"))?;
                self.set_price(&symbol, Price(price));
                Ok(json(200, "{}".into()))
            }
            _ => Err(error(404, -1000, "Unknown endpoint.")),
        }
    }

    fn set_price(&mut self, symbol: &Symbol, price: Price) {
        self.trade(symbol, price, None);
    }

    /// A trade at `price` of at most `quantity` (see `Engine::trade`).
    fn trade(&mut self, symbol: &Symbol, price: Price, quantity: Option<Qty>) {
        let now = self.server_ms();
        let before = self.engine.last_price(symbol);
        self.price_history.push((now, price));
        self.engine.trade(symbol, price, quantity, now);
        self.publish_market(symbol, before, price, now);
        self.publish_user_events();
    }

    fn publish(&self, stream: String, frame: String) {
        // No subscriber is no error: nobody is watching yet.
        let _ = self.feed.send(ws::FeedEvent::Market { stream, frame });
    }

    /// The price moved from `before` to `price`: a trade at the new price, the new best bid
    /// and ask, and the book diff that moves the ladder there.
    fn publish_market(&mut self, symbol: &Symbol, before: Option<Price>, price: Price, now: i64) {
        let Ok(filters) = self.engine.filters(symbol) else {
            return;
        };
        let tick = filters.tick_size;
        let lower = symbol.as_str().to_ascii_lowercase();
        let name = symbol.as_str();
        self.agg_trade_id += 1;
        let id = self.agg_trade_id;
        self.publish(
            format!("{lower}@aggTrade"),
            format!(
                r#"{{"stream":"{lower}@aggTrade","data":{{"e":"aggTrade","E":{now},"s":"{name}","a":{id},"p":"{price}","q":"1.00000000","f":{id},"l":{id},"T":{now},"m":false,"M":true}}}}"#
            ),
        );
        let (new_bids, new_asks) = ladder(price.get(), tick);
        let (old_bids, old_asks) = before.map(|b| ladder(b.get(), tick)).unwrap_or_default();
        let side = |old: &[Decimal], new: &[Decimal]| -> Vec<(Price, Qty)> {
            old.iter()
                .filter(|p| !new.contains(p))
                .map(|p| (Price(*p), Qty(Decimal::ZERO)))
                .chain(new.iter().map(|p| (Price(*p), Qty(Decimal::ONE))))
                .collect()
        };
        let bids = side(&old_bids, &new_bids);
        let asks = side(&old_asks, &new_asks);
        self.depth_id += 1;
        let depth = self.depth_id;
        self.publish(
            format!("{lower}@depth@100ms"),
            crate::testkit::fake_binance_ws::depth_frame(name, depth, depth, &bids, &asks),
        );
        if let (Some(bid), Some(ask)) = (new_bids.first(), new_asks.first()) {
            self.publish(
                format!("{lower}@bookTicker"),
                format!(
                    r#"{{"stream":"{lower}@bookTicker","data":{{"u":{depth},"s":"{name}","b":"{bid}","B":"1.00000000","a":"{ask}","A":"1.00000000"}}}}"#
                ),
            );
        }
    }

    /// `executionReport`s for what changed in the fake's orders since the last call: a
    /// `TRADE` per new fill, then `NEW`, `CANCELED`, `EXPIRED` or `REJECTED` for a status
    /// reached without a fill.
    fn publish_user_events(&mut self) {
        let orders: HashMap<String, Order> = self
            .engine
            .all_orders()
            .into_iter()
            .map(|o| (o.client_order_id.clone(), o))
            .collect();
        let mut traded: Vec<String> = Vec::new();
        for symbol in self.engine.symbols() {
            let fills = self.engine.fills(&symbol);
            let seen = self.reported_fills.get(&symbol).copied().unwrap_or(0);
            for (index, fill) in fills.iter().enumerate().skip(seen) {
                let Some(order) = orders.get(&fill.client_order_id) else {
                    continue;
                };
                // Cumulative as of this fill: the order's earlier fills plus this one.
                let (qty, quote) = fills[..=index]
                    .iter()
                    .filter(|f| f.client_order_id == fill.client_order_id)
                    .fold((Decimal::ZERO, Decimal::ZERO), |(q, z), f| {
                        (q + f.quantity.get(), z + f.quantity.get() * f.price.get())
                    });
                let status = if qty >= order.quantity.get() {
                    OrderStatus::Filled
                } else {
                    OrderStatus::PartiallyFilled
                };
                let trade_id = fill
                    .trade_id
                    .as_deref()
                    .and_then(|t| t.parse::<i64>().ok())
                    .unwrap_or(index as i64 + 1);
                self.send_execution(order, "TRADE", status, Some((fill, trade_id)), qty, quote);
                self.reported_status
                    .insert(order.client_order_id.clone(), status);
                traded.push(order.client_order_id.clone());
            }
            self.reported_fills.insert(symbol, fills.len());
        }
        let mut changed: Vec<&Order> = orders
            .values()
            .filter(|o| self.reported_status.get(&o.client_order_id) != Some(&o.status))
            .filter(|o| !traded.contains(&o.client_order_id) || !o.status.is_open())
            .collect();
        changed.sort_by_key(|o| o.created_at);
        let mut sent = Vec::new();
        for order in changed {
            let execution = match order.status {
                OrderStatus::Canceled => "CANCELED",
                OrderStatus::Expired => "EXPIRED",
                OrderStatus::Rejected => "REJECTED",
                OrderStatus::Filled | OrderStatus::PartiallyFilled => {
                    // Reached by fills just reported above.
                    sent.push((order.client_order_id.clone(), order.status));
                    continue;
                }
                _ => "NEW",
            };
            self.send_execution(
                order,
                execution,
                order.status,
                None,
                order.filled_quantity.get(),
                order.cumulative_quote.get(),
            );
            sent.push((order.client_order_id.clone(), order.status));
        }
        self.reported_status.extend(sent);
    }

    fn send_execution(
        &self,
        order: &Order,
        execution: &str,
        status: OrderStatus,
        fill: Option<(&crate::domain::trading::order::Fill, i64)>,
        cumulative_qty: Decimal,
        cumulative_quote: Decimal,
    ) {
        let now = self.server_ms();
        let order_id = order
            .exchange_order_id
            .as_deref()
            .and_then(|i| i.parse::<i64>().ok())
            .unwrap_or(-1);
        let (last_qty, last_price, fee, fee_asset, maker, trade_id, time) = match fill {
            Some((f, id)) => (
                f.quantity.get(),
                f.price.get(),
                f.fee.get(),
                serde_json::Value::from(f.fee_asset.clone()),
                f.is_maker,
                id,
                f.time,
            ),
            None => (
                Decimal::ZERO,
                Decimal::ZERO,
                Decimal::ZERO,
                serde_json::Value::Null,
                false,
                -1,
                now,
            ),
        };
        let event = serde_json::json!({
            "e": "executionReport",
            "E": now,
            "s": order.symbol.as_str(),
            "c": order.client_order_id,
            "S": order.side.as_str(),
            "o": order.order_type.as_str(),
            "f": "GTC",
            "q": order.quantity.get().to_string(),
            "p": order.price.map(|p| p.get()).unwrap_or_default().to_string(),
            "P": order.stop_price.map(|p| p.get()).unwrap_or_default().to_string(),
            "C": "",
            "x": execution,
            "X": status.as_str(),
            "r": "NONE",
            "i": order_id,
            "l": last_qty.to_string(),
            "z": cumulative_qty.to_string(),
            "L": last_price.to_string(),
            "n": fee.to_string(),
            "N": fee_asset,
            "T": time,
            "t": trade_id,
            "m": maker,
            "O": order.created_at,
            "Z": cumulative_quote.to_string(),
        });
        let _ = self.feed.send(ws::FeedEvent::User(event.to_string()));
    }
}

/// A running fake Binance; stops when dropped.
pub struct FakeBinance {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for FakeBinance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBinance")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeBinance {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeBinance {
    /// Start on 127.0.0.1:0 (a free port).
    pub async fn start(config: FakeConfig) -> std::io::Result<FakeBinance> {
        Self::start_on_port(config, 0).await
    }

    pub async fn start_on_port(config: FakeConfig, port: u16) -> std::io::Result<FakeBinance> {
        let info: ExchangeInfo = serde_json::from_str(EXCHANGE_INFO_FIXTURE)
            .map_err(|e| std::io::Error::other(format!("exchangeInfo fixture: {e}")))?;
        let mut engine = Engine::new(config.fee_rate);
        for s in &info.symbols {
            let symbol = Symbol::new(&s.symbol).map_err(std::io::Error::other)?;
            let filters = s.to_filters().map_err(std::io::Error::other)?;
            engine.add_symbol(symbol, filters);
        }
        for (asset, amount) in &config.balances {
            engine.deposit(asset, *amount);
        }
        let btcusdt = Symbol::new("BTCUSDT").map_err(std::io::Error::other)?;
        let mut state = State {
            engine,
            info,
            faults: Faults {
                retry_after_secs: 1,
                ..Faults::default()
            },
            stats: FakeStats::default(),
            window_index: 0,
            window_used: 0,
            violations: 0,
            market_paused: false,
            cooldown_until: None,
            ban_until: None,
            klines: HashMap::new(),
            price_history: Vec::new(),
            order_times: Vec::new(),
            key_permissions: KeyPermissions::default(),
            feed: tokio::sync::broadcast::channel(4096).0,
            depth_id: 1,
            agg_trade_id: 0,
            reported_fills: HashMap::new(),
            reported_status: HashMap::new(),
            config,
        };
        let first = Price(state.config.price);
        state.set_price(&btcusdt, first);
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(state));
        let shutdown = CancellationToken::new();
        let (task_state, task_shutdown) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = task_shutdown.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (s, c) = (task_state.clone(), task_shutdown.clone());
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = c.cancelled() => {}
                                _ = serve_connection(stream, s) => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(FakeBinance {
            addr,
            state,
            shutdown,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The key pair the fake accepts.
    pub fn credentials(&self) -> Credentials {
        let s = self.lock();
        Credentials::new(&s.config.api_key, &s.config.api_secret)
    }

    /// Move the scripted price: resting orders it crosses fill.
    pub fn set_price(&self, symbol: &str, price: Decimal) {
        if let Ok(symbol) = Symbol::new(symbol) {
            self.lock().set_price(&symbol, Price(price));
        }
    }

    /// A trade of `quantity` at `price`: resting orders it crosses fill only up to that
    /// quantity, so a larger limit order fills in part (PARTIALLY_FILLED) and rests on.
    pub fn trade(&self, symbol: &str, price: Decimal, quantity: Decimal) {
        if let Ok(symbol) = Symbol::new(symbol) {
            self.lock()
                .trade(&symbol, Price(price), Some(Qty(quantity)));
        }
    }

    /// What the API key may do, as `apiRestrictions` will report it.
    pub fn set_key_permissions(&self, permissions: KeyPermissions) {
        self.lock().key_permissions = permissions;
    }

    pub fn set_klines(&self, symbol: &str, candles: Vec<Candle>) {
        if let Ok(symbol) = Symbol::new(symbol) {
            self.lock().klines.insert(symbol, candles);
        }
    }

    /// A candle of `interval` closed: it joins the klines (the oldest beyond `keep` go), the
    /// price moves to its close (resting orders it crosses fill), and `<symbol>@kline_<interval>`
    /// subscribers get it with `x: true`.
    /// Whether the market is held (`POST /fake/market?paused=true`).
    pub fn market_paused(&self) -> bool {
        self.lock().market_paused
    }

    pub fn close_candle(&self, symbol: &str, interval: Interval, candle: Candle, keep: usize) {
        let Ok(symbol) = Symbol::new(symbol) else {
            return;
        };
        let mut s = self.lock();
        s.set_price(&symbol, candle.close);
        let lower = symbol.as_str().to_ascii_lowercase();
        let frame =
            crate::testkit::fake_binance_ws::kline_frame(symbol.as_str(), interval, &candle, true);
        let served = s.klines.entry(symbol).or_default();
        served.push(candle);
        if served.len() > keep {
            let excess = served.len() - keep;
            served.drain(..excess);
        }
        s.publish(format!("{lower}@kline_{interval}"), frame);
    }

    pub fn deposit(&self, asset: &str, amount: Decimal) {
        self.lock().engine.deposit(asset, amount);
    }

    /// Change the fault knobs.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.lock().faults);
    }

    /// Every order the exchange accepted, oldest first.
    pub fn orders(&self) -> Vec<Order> {
        self.lock().engine.all_orders()
    }

    pub fn balances(&self) -> Vec<Balance> {
        self.lock().engine.balances()
    }

    pub fn stats(&self) -> FakeStats {
        self.lock().stats.clone()
    }

    /// Requests received for `METHOD /path`.
    pub fn requests(&self, method_path: &str) -> u32 {
        self.lock()
            .stats
            .requests
            .get(method_path)
            .copied()
            .unwrap_or(0)
    }
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

/// Handle one request, then tell the user-data subscribers what it did to the orders.
fn handle(state: &Mutex<State>, req: &Request) -> Reply {
    let reply = handle_request(state, req);
    state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .publish_user_events();
    reply
}

/// Handle one request under the lock; faults that wrap an accepted order are applied here.
fn handle_request(state: &Mutex<State>, req: &Request) -> Reply {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let key = format!("{} {}", req.method, req.path);
    *s.stats.requests.entry(key).or_default() += 1;
    if req.path.starts_with("/fake/") {
        return s.route(req).unwrap_or_else(|e| e);
    }
    let params = req.params();
    let has_symbol = param(&params, "symbol").is_some();
    let limit = param(&params, "limit").and_then(|l| l.parse().ok());
    let weight = weight_of_path(&req.method, &req.path, has_symbol, limit);
    if let Some(refused) = s.charge(weight, Instant::now()) {
        return refused;
    }
    if take(&mut s.faults.http_5xx_next) {
        return error(503, -1000, "Service Unavailable.");
    }
    if req.method == "GET"
        && req.path == "/api/v3/myTrades"
        && take(&mut s.faults.my_trades_5xx_next)
    {
        return error(503, -1000, "Service Unavailable.");
    }
    let is_order = req.method == "POST" && req.path == "/api/v3/order";
    let retry_after = vec![(
        "Retry-After".to_string(),
        s.faults.retry_after_secs.to_string(),
    )];
    let is_oco = req.method == "POST" && req.path == "/api/v3/orderList/oco";
    if (is_order && take(&mut s.faults.orders_429_next))
        || (is_oco && take(&mut s.faults.oco_429_next))
    {
        s.stats.responses_429 += 1;
        let Reply::Json { body, .. } = error(429, -1003, "Too many requests queued.") else {
            return error(429, -1003, "Too many requests queued.");
        };
        return Reply::Json {
            status: 429,
            body,
            headers: retry_after,
        };
    }
    if req.method == "POST"
        && req.path == "/api/v3/orderList/oco"
        && take(&mut s.faults.oco_insufficient_balance_next)
    {
        return error(
            400,
            -2010,
            "Account has insufficient balance for requested action.",
        );
    }
    if is_order && take(&mut s.faults.orders_5xx_before_accept) {
        return error(503, -1000, "Service Unavailable.");
    }
    if is_order && take(&mut s.faults.orders_418_next) {
        s.stats.responses_418 += 1;
        let Reply::Json { body, .. } =
            error(418, -1003, "Way too much request weight used; IP banned.")
        else {
            return error(418, -1003, "banned");
        };
        return Reply::Json {
            status: 418,
            body,
            headers: retry_after,
        };
    }
    let mut reply = s.route(req).unwrap_or_else(|e| e);
    if let Reply::Json { headers, .. } = &mut reply {
        headers.push(("X-MBX-USED-WEIGHT-1M".into(), s.window_used.to_string()));
    }
    if take(&mut s.faults.malformed_next) {
        return json(200, "{\"symbol\":\"BTCUSDT\",\"orderId\":".into());
    }
    if req.method == "POST"
        && req.path == "/api/v3/orderList/oco"
        && matches!(reply, Reply::Json { status: 200, .. })
        && take(&mut s.faults.oco_5xx_after_accept)
    {
        return error(503, -1000, "Service Unavailable.");
    }
    let accepted = is_order && matches!(reply, Reply::Json { status: 200, .. });
    if accepted {
        if take(&mut s.faults.orders_drop_after_accept) {
            return Reply::Drop;
        }
        if take(&mut s.faults.orders_5xx_after_accept) {
            return error(503, -1000, "Service Unavailable.");
        }
        if take(&mut s.faults.orders_slow_after_accept) {
            return Reply::Slow(s.faults.accept_delay, Box::new(reply));
        }
    }
    reply
}

async fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buffer = Vec::new();
    while let Some(req) = http::read_request(&mut stream, &mut buffer).await {
        if ws::is_upgrade(&req) {
            // The market streams and the WebSocket API live on the REST address, as
            // `exchange.binance.base_url` derives them.
            return ws::serve(stream, req, state).await;
        }
        let latency = state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .faults
            .latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let late = (req.method == "POST" && req.path == "/api/v3/order")
            .then(|| {
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                take(&mut s.faults.orders_late).then_some(s.faults.accept_delay)
            })
            .flatten();
        if let Some(delay) = late {
            // Late on the network: handled after the delay even if the client gave up.
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = handle(&state, &req);
            });
            continue;
        }
        let mut reply = handle(&state, &req);
        loop {
            match reply {
                Reply::Drop => return,
                Reply::Slow(delay, inner) => {
                    tokio::time::sleep(delay).await;
                    reply = *inner;
                }
                Reply::Json {
                    status,
                    body,
                    headers,
                } => {
                    if http::write_response(&mut stream, status, &headers, &body)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    break;
                }
            }
        }
    }
}
