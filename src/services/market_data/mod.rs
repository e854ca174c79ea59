//! Market data adapters: CSV import into the candle store and the Binance kline downloader.

pub mod csv_columns;
pub mod fetch;
pub mod import;
mod import_rows;
#[cfg(test)]
mod import_store_tests;

use serde::{Deserialize, Serialize};

/// The `[market_data]` settings section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarketDataConfig {
    /// Override of the REST base URL `data fetch` downloads klines from. Empty (the default):
    /// the connection's REST endpoint (`config::endpoints`).
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
            rest_base_url: String::new(),
            weight_per_minute: 6000,
            page_size: 1000,
            timeout_secs: 10,
        }
    }
}

impl MarketDataConfig {
    /// Range checks; the error names the key (`market_data.<key>`) and says what is allowed.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, msg: String| Err((format!("market_data.{key}"), msg));
        // Empty: not overridden, the connection's REST endpoint is used.
        let url = &self.rest_base_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return err(
                "rest_base_url",
                format!(
                    "{:?} must start with http:// or https://",
                    self.rest_base_url
                ),
            );
        }
        if !(1..=1000).contains(&self.page_size) {
            return err(
                "page_size",
                format!("{} must be between 1 and 1000", self.page_size),
            );
        }
        if !(2..=1_000_000).contains(&self.weight_per_minute) {
            return err(
                "weight_per_minute",
                format!(
                    "{} must be between 2 (one klines request) and 1000000",
                    self.weight_per_minute
                ),
            );
        }
        if !(1..=300).contains(&self.timeout_secs) {
            return err(
                "timeout_secs",
                format!("{} must be between 1 and 300", self.timeout_secs),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_each_range_is_checked() {
        MarketDataConfig::default().validate().unwrap();
        let bad = |c: MarketDataConfig| c.validate().unwrap_err().0;
        let d = MarketDataConfig::default;
        assert_eq!(
            bad(MarketDataConfig {
                rest_base_url: "api.binance.com".into(),
                ..d()
            }),
            "market_data.rest_base_url"
        );
        assert_eq!(
            bad(MarketDataConfig {
                page_size: 1001,
                ..d()
            }),
            "market_data.page_size"
        );
        assert_eq!(
            bad(MarketDataConfig {
                weight_per_minute: 1,
                ..d()
            }),
            "market_data.weight_per_minute"
        );
        assert_eq!(
            bad(MarketDataConfig {
                timeout_secs: 0,
                ..d()
            }),
            "market_data.timeout_secs"
        );
    }
}
