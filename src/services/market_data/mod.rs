//! Market data adapters: CSV import into the candle store and the Binance kline downloader.

pub mod fetch;
pub mod import;

use serde::{Deserialize, Serialize};

/// The `[market_data]` settings section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketDataConfig {
    /// Binance REST base URL for klines (default `https://api.binance.com`).
    pub rest_base_url: String,
    /// Request weight allowed per minute (default 6000, Binance spot's limit; we use at most
    /// this, so set it lower to leave room for trading).
    pub weight_per_minute: u32,
    /// Klines per request, 1..=1000 (default 1000, Binance's maximum).
    pub page_size: u32,
    /// Per-request timeout in seconds (default 10).
    pub timeout_secs: u64,
}

impl Default for MarketDataConfig {
    fn default() -> Self {
        MarketDataConfig {
            rest_base_url: "https://api.binance.com".to_string(),
            weight_per_minute: 6000,
            page_size: 1000,
            timeout_secs: 10,
        }
    }
}

impl MarketDataConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rest_base_url.starts_with("http://")
            || self.rest_base_url.starts_with("https://"))
        {
            return Err(format!(
                "market_data.rest_base_url {:?} must start with http:// or https://",
                self.rest_base_url
            ));
        }
        if !(1..=1000).contains(&self.page_size) {
            return Err(format!(
                "market_data.page_size = {} must be in 1..=1000",
                self.page_size
            ));
        }
        if self.weight_per_minute < 2 {
            return Err(
                "market_data.weight_per_minute must be at least 2 (one klines request)".into(),
            );
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return Err(format!(
                "market_data.timeout_secs = {} must be in 1..=300",
                self.timeout_secs
            ));
        }
        Ok(())
    }
}
