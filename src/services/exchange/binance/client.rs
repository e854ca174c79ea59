//! The Binance Spot REST client: signs requests, keeps a server-time offset (re-synced on
//! -1021), spends request weight through the limiter, trips a circuit breaker per endpoint
//! group, and retries reads (never writes) with exponential backoff and jitter.

use super::endpoints::{self, Endpoint, HttpMethod};
use super::models::{ErrorBody, kline_to_candle};
use super::signing::{Credentials, encode_query};
use crate::domain::market::candle::{Candle, Interval, TimestampMs};
use crate::domain::money::Price;
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::{Fill, Order, OrderRequest};
use crate::services::exchange::resilience::{
    Admission, CircuitBreaker, EndpointGroup, EndpointState, WeightLimiter,
};
use crate::services::exchange::{
    Balance, Exchange, ExchangeError, OcoRequest, OrderBook, OrderList, Placed, Ticker24h,
};
use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Which Binance deployment to talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinanceEnvironment {
    Production,
    Testnet,
}

/// `[exchange.binance]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BinanceConfig {
    /// `production` or `testnet`: the deployment of connections added without `--testnet` /
    /// `--production`. Default: testnet, so a fresh setup cannot trade real money.
    pub environment: BinanceEnvironment,
    /// One address for everything a Binance connection reaches (REST, market streams,
    /// WebSocket API), e.g. the fake Binance on 127.0.0.1. Default: none, Binance's own hosts
    /// for the connection's environment (`config::endpoints`).
    pub base_url: Option<String>,
    /// `recvWindow` in ms sent with signed requests (1..=60000). Default 5000.
    pub recv_window_ms: u64,
    /// Per-request timeout in ms. Default 10000.
    pub request_timeout_ms: u64,
    /// Request weight we allow ourselves per window (Binance allows 6000/min). Default 4800.
    pub weight_limit: u32,
    /// Length of the weight window in ms (Binance: one minute). Default 60000.
    pub weight_window_ms: u64,
    /// Retries for reads after transient failures. Default 3.
    pub max_read_retries: usize,
    /// Consecutive failures that open an endpoint group's circuit breaker. Default 5.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker waits before one probe, in ms. Default 30000.
    pub breaker_cool_down_ms: u64,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        BinanceConfig {
            environment: BinanceEnvironment::Testnet,
            base_url: None,
            recv_window_ms: 5000,
            request_timeout_ms: 10_000,
            weight_limit: 4800,
            weight_window_ms: 60_000,
            max_read_retries: 3,
            breaker_failure_threshold: 5,
            breaker_cool_down_ms: 30_000,
        }
    }
}

impl BinanceConfig {
    /// Range checks; the error names the key (`exchange.binance.<key>`) and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("exchange.binance.{k}");
        if !(1..=60_000).contains(&self.recv_window_ms) {
            return Err((key("recv_window_ms"), "must be between 1 and 60000".into()));
        }
        if !(100..=120_000).contains(&self.request_timeout_ms) {
            return Err((
                key("request_timeout_ms"),
                "must be between 100 and 120000".into(),
            ));
        }
        if self.weight_limit == 0 {
            return Err((key("weight_limit"), "must be at least 1".into()));
        }
        if self.weight_window_ms == 0 {
            return Err((key("weight_window_ms"), "must be at least 1".into()));
        }
        if self.max_read_retries > 10 {
            return Err((key("max_read_retries"), "must be between 0 and 10".into()));
        }
        if self.breaker_failure_threshold == 0 {
            return Err((
                key("breaker_failure_threshold"),
                "must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("https://") || url.starts_with("http://127.0.0.1"))
        {
            return Err((
                key("base_url"),
                format!("{url:?} must be https:// (or http://127.0.0.1 for the fake Binance)"),
            ));
        }
        Ok(())
    }

    /// The REST base URL in use, without a trailing slash.
    pub fn base_url(&self) -> String {
        let url = match (&self.base_url, self.environment) {
            (Some(url), _) => url.as_str(),
            (None, BinanceEnvironment::Production) => crate::config::endpoints::PRODUCTION_REST,
            (None, BinanceEnvironment::Testnet) => crate::config::endpoints::TESTNET_REST,
        };
        url.trim_end_matches('/').to_string()
    }
}

/// Result of `ping`: round trip, clock skew and weight used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PingReport {
    pub base_url: String,
    pub latency_ms: u64,
    /// Server time minus local time, ms (positive: the local clock is behind).
    pub clock_offset_ms: i64,
    pub used_weight: u32,
    pub weight_limit: u32,
}

pub struct BinanceClient {
    http: reqwest::Client,
    config: BinanceConfig,
    base_url: String,
    credentials: Option<Credentials>,
    limiter: WeightLimiter,
    breakers: [CircuitBreaker; 3],
    time_offset_ms: AtomicI64,
    last_used_weight: AtomicU32,
    filters: Mutex<HashMap<Symbol, SymbolFilters>>,
}

impl std::fmt::Debug for BinanceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinanceClient")
            .field("base_url", &self.base_url)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn local_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn group_index(group: EndpointGroup) -> usize {
    match group {
        EndpointGroup::MarketData => 0,
        EndpointGroup::Account => 1,
        EndpointGroup::Trading => 2,
    }
}

fn header_u32(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u32> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl BinanceClient {
    pub fn new(
        config: BinanceConfig,
        credentials: Option<Credentials>,
    ) -> Result<BinanceClient, ExchangeError> {
        config
            .validate()
            .map_err(|(key, msg)| ExchangeError::Config(format!("{key}: {msg}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .connect_timeout(Duration::from_millis(config.request_timeout_ms.min(5_000)))
            .user_agent(concat!("trademind/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ExchangeError::Config(format!("HTTP client: {e}")))?;
        let breaker = || {
            CircuitBreaker::new(
                config.breaker_failure_threshold,
                Duration::from_millis(config.breaker_cool_down_ms),
            )
        };
        Ok(BinanceClient {
            http,
            base_url: config.base_url(),
            credentials,
            limiter: WeightLimiter::new(
                config.weight_limit,
                Duration::from_millis(config.weight_window_ms),
            ),
            breakers: [breaker(), breaker(), breaker()],
            time_offset_ms: AtomicI64::new(0),
            last_used_weight: AtomicU32::new(0),
            filters: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// The key pair requests are signed with, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Circuit breaker state per endpoint group, for the TUI's health view.
    pub fn breaker_states(&self) -> Vec<(EndpointGroup, EndpointState)> {
        let now = Instant::now();
        EndpointGroup::ALL
            .iter()
            .map(|g| (*g, self.breakers[group_index(*g)].state(now)))
            .collect()
    }

    /// The last `X-MBX-USED-WEIGHT-1M` the exchange reported.
    pub fn used_weight(&self) -> u32 {
        self.last_used_weight.load(Ordering::Relaxed)
    }

    pub fn clock_offset_ms(&self) -> i64 {
        self.time_offset_ms.load(Ordering::Relaxed)
    }

    /// Remaining IP ban, if the exchange answered 418.
    pub fn banned_for(&self) -> Option<Duration> {
        self.limiter.banned_for(Instant::now())
    }

    fn server_now_ms(&self) -> i64 {
        local_now_ms() + self.time_offset_ms.load(Ordering::Relaxed)
    }

    /// Measure the offset between the exchange clock and ours (midpoint of the round trip).
    /// What this API key may do (reading, spot trading, withdrawals): production only, the spot
    /// testnet has no `/sapi` endpoints.
    pub async fn api_restrictions(&self) -> Result<super::models::ApiRestrictions, ExchangeError> {
        self.send(&endpoints::GetApiRestrictions).await
    }

    pub async fn sync_time(&self) -> Result<i64, ExchangeError> {
        let before = local_now_ms();
        let t = self.send_once(&endpoints::Time).await?;
        let after = local_now_ms();
        let offset = t.server_time - (before + after) / 2;
        self.time_offset_ms.store(offset, Ordering::Relaxed);
        Ok(offset)
    }

    pub async fn ping(&self) -> Result<PingReport, ExchangeError> {
        let started = Instant::now();
        self.send_once(&endpoints::Ping).await?;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let clock_offset_ms = self.sync_time().await?;
        Ok(PingReport {
            base_url: self.base_url.clone(),
            latency_ms,
            clock_offset_ms,
            used_weight: self.used_weight(),
            weight_limit: self.limiter.limit(),
        })
    }

    async fn acquire(&self, weight: u32) -> Result<(), ExchangeError> {
        loop {
            match self
                .limiter
                .try_acquire(weight, self.server_now_ms(), Instant::now())
            {
                Admission::Go => return Ok(()),
                Admission::Wait(d) => tokio::time::sleep(d).await,
                Admission::Banned(d) => {
                    return Err(ExchangeError::Banned {
                        until: chrono::Utc::now()
                            + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero()),
                    });
                }
            }
        }
    }

    /// One HTTP exchange: breaker, weight, signing, status mapping. No retries.
    async fn send_once<E: Endpoint>(&self, endpoint: &E) -> Result<E::Response, ExchangeError> {
        let breaker = &self.breakers[group_index(E::GROUP)];
        breaker
            .allow(Instant::now())
            .map_err(|retry_in| ExchangeError::CircuitOpen {
                group: E::GROUP.as_str().to_string(),
                retry_in,
            })?;
        self.acquire(endpoint.weight()).await?;
        let result = self.exchange_http(endpoint).await;
        match &result {
            Err(e) if e.is_infrastructure() => breaker.on_failure(Instant::now()),
            _ => breaker.on_success(),
        }
        result
    }

    async fn exchange_http<E: Endpoint>(&self, endpoint: &E) -> Result<E::Response, ExchangeError> {
        let is_write = E::METHOD != HttpMethod::Get;
        let mut params = endpoint.params();
        let mut query = encode_query(&params);
        if E::SIGNED {
            let creds = self.credentials.as_ref().ok_or_else(|| {
                ExchangeError::Config(
                    "this request needs an API key: configure a Binance connection".into(),
                )
            })?;
            params.push(("recvWindow", self.config.recv_window_ms.to_string()));
            params.push(("timestamp", self.server_now_ms().to_string()));
            query = encode_query(&params);
            let signature = creds.sign(&query);
            query.push_str("&signature=");
            query.push_str(&signature);
        }
        let url = if query.is_empty() {
            format!("{}{}", self.base_url, E::PATH)
        } else {
            format!("{}{}?{}", self.base_url, E::PATH, query)
        };
        let method = match E::METHOD {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.http.request(method, &url);
        if let Some(creds) = &self.credentials {
            request = request.header("X-MBX-APIKEY", creds.api_key());
        }
        tracing::debug!(
            method = E::METHOD.as_str(),
            path = E::PATH,
            "binance request"
        );
        let response = match request.send().await {
            Ok(r) => r,
            // A connect error means nothing left this machine; anything later may have arrived.
            Err(e) if e.is_connect() => {
                return Err(ExchangeError::Unavailable(format!(
                    "cannot connect to {}: {}",
                    self.base_url,
                    e.without_url()
                )));
            }
            // A read changes nothing on the exchange: its failure is plain unavailability, not
            // the "order status unknown" an order's lost reply is.
            Err(e) if !is_write => {
                let what = if e.is_timeout() {
                    format!(
                        "no answer from Binance within {}s",
                        Duration::from_millis(self.config.request_timeout_ms).as_secs_f64()
                    )
                } else {
                    "the connection to Binance dropped".to_string()
                };
                return Err(ExchangeError::Unavailable(format!(
                    "{what} on {} {} ({})",
                    E::METHOD.as_str(),
                    E::PATH,
                    e.without_url()
                )));
            }
            Err(e) => {
                let what = if e.is_timeout() {
                    "a timeout"
                } else {
                    "a dropped connection"
                };
                return Err(ExchangeError::StatusUnknown {
                    reason: format!(
                        "{what} on {} {} ({})",
                        E::METHOD.as_str(),
                        E::PATH,
                        e.without_url()
                    ),
                });
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(used) = header_u32(&headers, "x-mbx-used-weight-1m") {
            self.last_used_weight.store(used, Ordering::Relaxed);
            self.limiter.observe_used_weight(used, self.server_now_ms());
        }
        let retry_after =
            Duration::from_secs(header_u32(&headers, "retry-after").unwrap_or(1).into());
        if status.as_u16() == 429 {
            tracing::warn!(
                path = E::PATH,
                ?retry_after,
                "rate limited by Binance (429); backing off"
            );
            self.limiter.on_rate_limited(retry_after, Instant::now());
            return Err(ExchangeError::RateLimited { retry_after });
        }
        if status.as_u16() == 418 {
            self.limiter.on_banned(retry_after, Instant::now());
            let until = chrono::Utc::now()
                + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::zero());
            tracing::error!(%until, "IP banned by Binance (418); no requests until the ban lifts");
            return Err(ExchangeError::Banned { until });
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) if is_write => {
                return Err(ExchangeError::StatusUnknown {
                    reason: format!("the response body was cut off ({})", e.without_url()),
                });
            }
            Err(e) => return Err(ExchangeError::Unavailable(e.without_url().to_string())),
        };
        if status.is_server_error() {
            return Err(if is_write {
                ExchangeError::StatusUnknown {
                    reason: format!("HTTP {status} from {}", E::PATH),
                }
            } else {
                ExchangeError::Unavailable(format!("HTTP {status} from {}", E::PATH))
            });
        }
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(err) => {
                    let e =
                        ExchangeError::from_binance(err.code, &err.msg, endpoint.client_order_id());
                    match e {
                        ExchangeError::BadSymbol(_) => ExchangeError::BadSymbol(
                            params.first().map(|p| p.1.clone()).unwrap_or_default(),
                        ),
                        // -1006/-1007 (no reply from the matching engine) on a read: nothing
                        // was being executed, so there is no order status to be unsure of.
                        ExchangeError::StatusUnknown { reason } if !is_write => {
                            ExchangeError::Unavailable(format!("{reason} on {}", E::PATH))
                        }
                        other => other,
                    }
                }
                Err(_) => ExchangeError::Api {
                    code: i64::from(status.as_u16()),
                    msg: format!("HTTP {status} from {}", E::PATH),
                },
            });
        }
        serde_json::from_slice::<E::Response>(&body).map_err(|e| {
            if is_write {
                ExchangeError::StatusUnknown {
                    reason: format!("an unreadable response from {} ({e})", E::PATH),
                }
            } else {
                ExchangeError::Malformed(format!("{}: {e}", E::PATH))
            }
        })
    }

    /// Reads: retried with exponential backoff and jitter. Writes: sent once; only a -1021
    /// rejection (refused before reaching the matching engine) is re-signed and sent again.
    pub async fn send<E: Endpoint>(&self, endpoint: &E) -> Result<E::Response, ExchangeError> {
        if E::METHOD == HttpMethod::Get {
            let attempt = || async {
                match self.send_once(endpoint).await {
                    Err(ExchangeError::Timestamp) => {
                        let _ = self.sync_time().await;
                        Err(ExchangeError::Timestamp)
                    }
                    other => other,
                }
            };
            attempt
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_millis(50))
                        .with_max_delay(Duration::from_secs(5))
                        .with_max_times(self.config.max_read_retries)
                        .with_jitter(),
                )
                .when(ExchangeError::is_retryable_read)
                .notify(|e, delay| {
                    tracing::warn!(path = E::PATH, error = %e, ?delay, "retrying Binance read");
                })
                .await
        } else {
            match self.send_once(endpoint).await {
                Err(ExchangeError::Timestamp) => {
                    self.sync_time().await?;
                    self.send_once(endpoint).await
                }
                other => other,
            }
        }
    }
}

impl Exchange for BinanceClient {
    fn name(&self) -> &str {
        match (&self.config.base_url, self.config.environment) {
            (Some(_), _) => "binance-custom",
            (None, BinanceEnvironment::Production) => "binance",
            (None, BinanceEnvironment::Testnet) => "binance-testnet",
        }
    }

    async fn server_time(&self) -> Result<TimestampMs, ExchangeError> {
        Ok(self.send(&endpoints::Time).await?.server_time)
    }

    async fn symbol_filters(&self, symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        if let Some(f) = self
            .filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(symbol)
        {
            return Ok(f.clone());
        }
        let info = self
            .send(&endpoints::GetExchangeInfo {
                symbol: symbol.clone(),
            })
            .await?;
        let s = info
            .symbols
            .iter()
            .find(|s| s.symbol == symbol.as_str())
            .ok_or_else(|| ExchangeError::BadSymbol(symbol.to_string()))?;
        let filters = s.to_filters()?;
        self.filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(symbol.clone(), filters.clone());
        Ok(filters)
    }

    async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_time: Option<TimestampMs>,
        limit: u16,
    ) -> Result<Vec<Candle>, ExchangeError> {
        let rows = self
            .send(&endpoints::Klines {
                symbol: symbol.clone(),
                interval,
                start_time,
                limit,
            })
            .await?;
        rows.iter().map(|r| kline_to_candle(r)).collect()
    }

    async fn ticker_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        let t = self
            .send(&endpoints::GetTickerPrice {
                symbol: symbol.clone(),
            })
            .await?;
        Ok(Price(t.price))
    }

    async fn ticker_24h(&self, symbol: &Symbol) -> Result<Ticker24h, ExchangeError> {
        self.send(&endpoints::GetTicker24h {
            symbol: symbol.clone(),
        })
        .await?
        .to_domain()
    }

    async fn order_book(&self, symbol: &Symbol, limit: u16) -> Result<OrderBook, ExchangeError> {
        Ok(self
            .send(&endpoints::GetDepth {
                symbol: symbol.clone(),
                limit,
            })
            .await?
            .to_domain())
    }

    async fn balances(&self) -> Result<Vec<Balance>, ExchangeError> {
        Ok(self.send(&endpoints::GetAccount).await?.to_domain())
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<Placed, ExchangeError> {
        let wire = self
            .send(&endpoints::NewOrder {
                request: request.clone(),
            })
            .await?;
        Ok(Placed {
            order: wire.to_domain()?,
            fills: wire.fills_to_domain()?,
        })
    }

    async fn place_oco(&self, request: &OcoRequest) -> Result<OrderList, ExchangeError> {
        self.send(&endpoints::NewOco {
            request: request.clone(),
        })
        .await?
        .to_domain()
    }

    async fn query_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Order, ExchangeError> {
        self.send(&endpoints::QueryOrder {
            symbol: symbol.clone(),
            client_order_id: client_order_id.to_string(),
        })
        .await?
        .to_domain()
    }

    async fn cancel_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Order, ExchangeError> {
        self.send(&endpoints::CancelOrder {
            symbol: symbol.clone(),
            client_order_id: client_order_id.to_string(),
        })
        .await?
        .to_domain()
    }

    async fn open_orders(&self, symbol: &Symbol) -> Result<Vec<Order>, ExchangeError> {
        self.send(&endpoints::OpenOrders {
            symbol: symbol.clone(),
        })
        .await?
        .iter()
        .map(|o| o.to_domain())
        .collect()
    }

    async fn my_trades(&self, symbol: &Symbol) -> Result<Vec<Fill>, ExchangeError> {
        self.send(&endpoints::MyTrades {
            symbol: symbol.clone(),
        })
        .await?
        .iter()
        .map(|t| t.to_domain())
        .collect()
    }
}
