//! The two public REST calls the stream needs: the depth snapshot that seeds the local book and
//! the klines that back-fill candles missed while disconnected. Unsigned, weight 250 and 2.

use std::future::Future;
use std::time::Duration;

use crate::domain::market::{Candle, Interval};
use crate::domain::symbol::Symbol;
use crate::services::market_stream::sync::{DepthSnapshotSource, SnapshotError};
use crate::services::market_stream::wire::{DepthDiff, decode_depth_snapshot, decode_klines};

/// Where missed closed klines come from (`GET /api/v3/klines`).
pub trait KlineSource: Send + Sync {
    /// Up to `limit` klines with open time >= `start_ms`, oldest first (the last may be open).
    fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Candle>, SnapshotError>> + Send;
}

/// Public market-data REST client against `rest_base_url`.
#[derive(Debug, Clone)]
pub struct RestMarketData {
    http: reqwest::Client,
    base_url: String,
}

impl RestMarketData {
    pub fn new(base_url: &str) -> Result<Self, SnapshotError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("trademind/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SnapshotError {
                symbol: String::new(),
                reason: format!("cannot build HTTP client: {e}"),
            })?;
        Ok(RestMarketData {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    async fn get(
        &self,
        symbol: &Symbol,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<String, SnapshotError> {
        let fail = |reason: String| SnapshotError {
            symbol: symbol.to_string(),
            reason,
        };
        let response = self
            .http
            .get(format!("{}{path}", self.base_url))
            .query(query)
            .send()
            .await
            .map_err(|e| fail(format!("GET {path}: {e}")))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| fail(format!("GET {path} body: {e}")))?;
        if !status.is_success() {
            return Err(fail(format!("GET {path} answered {status}: {body}")));
        }
        Ok(body)
    }
}

impl DepthSnapshotSource for RestMarketData {
    async fn depth_snapshot(
        &self,
        symbol: &Symbol,
        limit: u32,
    ) -> Result<DepthDiff, SnapshotError> {
        let body = self
            .get(
                symbol,
                "/api/v3/depth",
                &[("symbol", symbol.to_string()), ("limit", limit.to_string())],
            )
            .await?;
        decode_depth_snapshot(&body).map_err(|e| SnapshotError {
            symbol: symbol.to_string(),
            reason: e.to_string(),
        })
    }
}

impl KlineSource for RestMarketData {
    async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_ms: i64,
        limit: u32,
    ) -> Result<Vec<Candle>, SnapshotError> {
        let body = self
            .get(
                symbol,
                "/api/v3/klines",
                &[
                    ("symbol", symbol.to_string()),
                    ("interval", interval.to_string()),
                    ("startTime", start_ms.to_string()),
                    ("limit", limit.to_string()),
                ],
            )
            .await?;
        decode_klines(&body).map_err(|e| SnapshotError {
            symbol: symbol.to_string(),
            reason: e.to_string(),
        })
    }
}
