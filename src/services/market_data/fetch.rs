//! Kline download from Binance's `GET /api/v3/klines`: pages of up to 1000 candles, resumed from
//! the last stored candle, paced by request weight (2 per call), honouring 429/418
//! `Retry-After`, and never storing the candle that is still open. "Still open" is judged by
//! Binance's clock (`GET /api/v3/time`, once per download), not ours: a local clock that is
//! off by an hour would otherwise store a half-formed 1h candle as final.

use super::MarketDataConfig;
use crate::domain::Symbol;
use crate::domain::market::{Candle, Interval, TimestampMs};
use crate::domain::money::{Price, Qty};
use crate::store::candles::{insert_candles, last_open_time};
use crate::store::{Store, StoreError};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use serde::de::IgnoredAny;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

/// Request weight of one `GET /api/v3/klines` call.
pub const KLINES_WEIGHT: u32 = 2;

/// Request weight of one `GET /api/v3/time` call.
pub const TIME_WEIGHT: u32 = 1;

/// Times one page is retried after a 429/418 before giving up.
const MAX_THROTTLE_RETRIES: u32 = 5;

/// Longest `Retry-After` we are willing to sleep through.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid market data settings: {0}")]
    Config(String),
    #[error("cannot reach Binance at {url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("Binance answered HTTP {status} (code {code}): {msg}")]
    Api { status: u16, code: i64, msg: String },
    #[error("Binance is rate limiting us (HTTP {status}); retry after {retry_after_secs} s")]
    RateLimited { status: u16, retry_after_secs: u64 },
    #[error("unexpected kline from Binance: {0}")]
    BadKline(String),
    #[error("unexpected server time from Binance: {0}")]
    BadServerTime(String),
    #[error("cannot store candles: {0}")]
    Store(#[from] StoreError),
    #[error("--from ({from}) must be before --to ({to})")]
    EmptyRange { from: TimestampMs, to: TimestampMs },
}

/// A Binance kline row: 12 values, of which we keep the first seven.
#[derive(Debug, serde::Deserialize)]
struct WireKline(
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
);

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireServerTime {
    server_time: TimestampMs,
}

#[derive(Debug, serde::Deserialize)]
struct WireError {
    code: i64,
    msg: String,
}

fn parse_kline(k: WireKline) -> Result<(Candle, TimestampMs), FetchError> {
    let dec = |name: &str, v: &str| {
        Price::from_str(v)
            .map_err(|_| FetchError::BadKline(format!("{name} {v:?} at open time {}", k.0)))
    };
    let volume = Qty::from_str(&k.5)
        .map_err(|_| FetchError::BadKline(format!("volume {:?} at open time {}", k.5, k.0)))?;
    Ok((
        Candle {
            open_time: k.0,
            open: dec("open", &k.1)?,
            high: dec("high", &k.2)?,
            low: dec("low", &k.3)?,
            close: dec("close", &k.4)?,
            volume,
        },
        k.6,
    ))
}

/// A kline client paced by request weight.
pub struct KlineClient {
    http: reqwest::Client,
    base_url: String,
    page_size: u32,
    limiter: DefaultDirectRateLimiter,
}

impl std::fmt::Debug for KlineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KlineClient")
            .field("base_url", &self.base_url)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl KlineClient {
    pub fn new(config: &MarketDataConfig) -> Result<KlineClient, FetchError> {
        config
            .validate()
            .map_err(|(key, msg)| FetchError::Config(format!("{key}: {msg}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .build()
            .map_err(|source| FetchError::Http {
                url: config.rest_base_url.clone(),
                source,
            })?;
        let per_minute = NonZeroU32::new(config.weight_per_minute).unwrap_or(NonZeroU32::MIN);
        // Burst of one request: spread the calls evenly over the minute.
        let burst = NonZeroU32::new(KLINES_WEIGHT).unwrap_or(NonZeroU32::MIN);
        Ok(KlineClient {
            http,
            base_url: config.rest_base_url.trim_end_matches('/').to_string(),
            page_size: config.page_size,
            limiter: RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst)),
        })
    }

    /// One page: candles with `start <= open_time <= end`, oldest first, each with its close
    /// time. Waits for the weight budget and retries after 429/418 `Retry-After`.
    pub async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start: TimestampMs,
        end: TimestampMs,
    ) -> Result<Vec<(Candle, TimestampMs)>, FetchError> {
        let query = [
            ("symbol", symbol.as_str().to_string()),
            ("interval", interval.as_str().to_string()),
            ("startTime", start.to_string()),
            ("endTime", end.to_string()),
            ("limit", self.page_size.to_string()),
        ];
        let body = self.get("/api/v3/klines", &query, KLINES_WEIGHT).await?;
        let rows: Vec<WireKline> = serde_json::from_str(&body)
            .map_err(|e| FetchError::BadKline(format!("response is not a kline array: {e}")))?;
        rows.into_iter().map(parse_kline).collect()
    }

    /// Binance's clock (`GET /api/v3/time`), in ms since the epoch.
    pub async fn server_time(&self) -> Result<TimestampMs, FetchError> {
        let body = self.get("/api/v3/time", &[], TIME_WEIGHT).await?;
        serde_json::from_str::<WireServerTime>(&body)
            .map(|t| t.server_time)
            .map_err(|e| FetchError::BadServerTime(format!("{e}: {}", preview(&body))))
    }

    /// The body of a successful GET of `path`, after waiting for `weight` in the budget and
    /// sleeping through up to [`MAX_THROTTLE_RETRIES`] 429/418 `Retry-After`s.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        weight: u32,
    ) -> Result<String, FetchError> {
        let url = format!("{}{path}", self.base_url);
        let weight = NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN);
        let mut throttled = 0;
        loop {
            // The budget is at least one request (validated), so this cannot be refused.
            let _ = self.limiter.until_n_ready(weight).await;
            let response = self
                .http
                .get(&url)
                .query(query)
                .send()
                .await
                .map_err(|source| FetchError::Http {
                    url: url.clone(),
                    source,
                })?;
            let status = response.status().as_u16();
            if status == 429 || status == 418 {
                let retry_after_secs = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                throttled += 1;
                let wait = Duration::from_secs(retry_after_secs);
                if throttled > MAX_THROTTLE_RETRIES || wait > MAX_RETRY_AFTER {
                    return Err(FetchError::RateLimited {
                        status,
                        retry_after_secs,
                    });
                }
                tracing::warn!(
                    status,
                    retry_after_secs,
                    path,
                    "throttled by Binance; waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let body = response.text().await.map_err(|source| FetchError::Http {
                url: url.clone(),
                source,
            })?;
            if status != 200 {
                let (code, msg) = serde_json::from_str::<WireError>(&body)
                    .map(|e| (e.code, e.msg))
                    .unwrap_or((0, preview(&body)));
                return Err(FetchError::Api { status, code, msg });
            }
            return Ok(body);
        }
    }
}

/// The start of a response body, for an error message.
fn preview(body: &str) -> String {
    body.chars().take(200).collect()
}

/// What to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    pub symbol: Symbol,
    pub interval: Interval,
    /// First open time wanted (inclusive).
    pub from: TimestampMs,
    /// Open times before this (exclusive); `None` means up to Binance's current time.
    pub to: Option<TimestampMs>,
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct FetchSummary {
    /// Binance's clock when the download started: a candle whose close time is not before it
    /// was still open and is not stored.
    pub server_time: TimestampMs,
    /// Where the download started (after resuming from the store).
    pub started_at: TimestampMs,
    pub requests: usize,
    pub received: usize,
    pub inserted: usize,
    pub already_present: usize,
    /// Whether the still-open candle was received and left out.
    pub skipped_open_candle: bool,
    pub first_open_time: Option<TimestampMs>,
    pub last_open_time: Option<TimestampMs>,
}

/// Where a download should start: `from`, or just after the last stored candle when the store
/// already reaches past `from`.
pub fn resume_point(
    from: TimestampMs,
    last_stored: Option<TimestampMs>,
    interval: Interval,
) -> TimestampMs {
    match last_stored {
        Some(last) if last >= from => last + interval.millis(),
        _ => from,
    }
}

/// Download the requested range into the store, page by page, after asking Binance for its
/// time (which decides which candle is still open). `progress(done_ms, total_ms)` reports how
/// far through the time range the download is.
pub async fn fetch_into_store(
    client: &KlineClient,
    store: &Store,
    request: &FetchRequest,
    progress: &mut dyn FnMut(i64, i64),
) -> Result<FetchSummary, FetchError> {
    let FetchRequest {
        symbol,
        interval,
        from,
        to,
    } = request;
    if let Some(to) = to
        && to <= from
    {
        return Err(FetchError::EmptyRange {
            from: *from,
            to: *to,
        });
    }
    let now = client.server_time().await?;
    let end = to.unwrap_or(now).min(now);
    let last = last_open_time(store.conn(), symbol, *interval)?;
    let mut start = resume_point(*from, last, *interval);
    let mut summary = FetchSummary {
        server_time: now,
        started_at: start,
        ..FetchSummary::default()
    };
    let total = (end - start).max(0);
    progress(0, total);
    while start < end {
        let page = client.klines(symbol, *interval, start, end - 1).await?;
        summary.requests += 1;
        summary.received += page.len();
        let full_page = page.len() >= client.page_size as usize;
        let mut closed = Vec::with_capacity(page.len());
        let mut reached_open = false;
        for (candle, close_time) in page {
            if candle.open_time < start || candle.open_time >= end {
                return Err(FetchError::BadKline(format!(
                    "open time {} outside the requested {start}..{end}",
                    candle.open_time
                )));
            }
            if let Some(prev) = closed.last().map(|c: &Candle| c.open_time)
                && candle.open_time <= prev
            {
                return Err(FetchError::BadKline(format!(
                    "open time {} not after {prev}",
                    candle.open_time
                )));
            }
            if close_time >= now {
                summary.skipped_open_candle = true;
                reached_open = true;
                break;
            }
            closed.push(candle);
        }
        let Some(last_candle) = closed.last() else {
            break;
        };
        let next = last_candle.open_time + interval.millis();
        let report = insert_candles(store.conn(), symbol, *interval, &closed)?;
        summary.inserted += report.inserted;
        summary.already_present += report.already_present;
        summary.first_open_time.get_or_insert(closed[0].open_time);
        summary.last_open_time = Some(last_candle.open_time);
        progress((next - summary.started_at).min(total), total);
        if reached_open || !full_page {
            break;
        }
        start = next;
    }
    progress(total, total);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_starts_after_the_last_stored_candle_only_when_it_covers_from() {
        let h = Interval::H1;
        assert_eq!(resume_point(0, None, h), 0);
        assert_eq!(resume_point(0, Some(7_200_000), h), 10_800_000);
        assert_eq!(resume_point(36_000_000, Some(7_200_000), h), 36_000_000);
    }

    #[test]
    fn a_kline_row_parses_exactly_and_ignores_the_extra_columns() {
        let row: WireKline = serde_json::from_str(
            r#"[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]"#,
        )
        .unwrap();
        let (c, close) = parse_kline(row).unwrap();
        assert_eq!(c.open_time, 1_499_040_000_000);
        assert_eq!(close, 1_499_644_799_999);
        assert_eq!(c.high.to_string(), "0.8");
        assert_eq!(c.volume.get(), rust_decimal_macros::dec!(148976.11427815));
    }
}
