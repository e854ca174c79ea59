//! `[stream]` settings: where the market streams and REST snapshots come from and how the
//! connection is kept alive.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Override of the market streams' WebSocket base (`<ws_base_url>/stream?streams=..`).
    /// Empty (the default): the connection's own, from `exchange.binance.base_url` or its
    /// environment (see `config::endpoints`).
    pub ws_base_url: String,
    /// Override of the REST base for depth snapshots and kline back-fill. Empty: the
    /// connection's REST endpoint.
    pub rest_base_url: String,
    /// Override of the WebSocket API endpoint of the user-data stream (order and balance
    /// events). Empty: the connection's.
    pub ws_api_url: String,
    /// First reconnect delay after a drop, doubled per failed attempt. Default 500 ms.
    pub reconnect_initial_backoff_ms: u64,
    /// Ceiling for the reconnect delay. Default 30 000 ms.
    pub reconnect_max_backoff_ms: u64,
    /// Reconnect proactively after this long, before Binance's 24-hour cut. Default 82 800 s (23 h).
    pub max_connection_age_secs: u64,
    /// No frame (not even a ping) for this long means the connection is dead. Default 60 s.
    pub read_timeout_secs: u64,
    /// Levels requested in the REST depth snapshot (max 5000). Default 5000.
    pub depth_snapshot_limit: u32,
    /// Levels kept per side of the local book. Default 5000.
    pub max_book_levels: usize,
    /// Diffs buffered while a snapshot is fetched. Default 10 000.
    pub max_buffered_diffs: usize,
    /// Snapshot attempts per connection before reconnecting. Default 5.
    pub max_snapshot_attempts: u32,
    /// How often the daemon marks open positions at the newest stream trades (each pass with a
    /// new trade also records an equity snapshot). Default 1000 ms.
    pub marks_interval_ms: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            ws_base_url: String::new(),
            rest_base_url: String::new(),
            ws_api_url: String::new(),
            reconnect_initial_backoff_ms: 500,
            reconnect_max_backoff_ms: 30_000,
            max_connection_age_secs: 23 * 3600,
            read_timeout_secs: 60,
            depth_snapshot_limit: 5000,
            max_book_levels: 5000,
            max_buffered_diffs: 10_000,
            max_snapshot_attempts: 5,
            marks_interval_ms: 1000,
        }
    }
}

impl StreamConfig {
    /// Checks ranges; the error names the offending key (without the `stream.` prefix).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        const WS: [&str; 2] = ["ws://", "wss://"];
        const HTTP: [&str; 2] = ["http://", "https://"];
        for (key, url, schemes) in [
            ("ws_base_url", &self.ws_base_url, WS),
            ("ws_api_url", &self.ws_api_url, WS),
            ("rest_base_url", &self.rest_base_url, HTTP),
        ] {
            // Empty: not overridden, the connection's endpoint is used.
            if !url.is_empty() && !schemes.iter().any(|s| url.starts_with(s)) {
                return Err((
                    key,
                    format!("must start with {}, got {url:?}", schemes.join(" or ")),
                ));
            }
        }
        if self.reconnect_initial_backoff_ms == 0 {
            return Err(("reconnect_initial_backoff_ms", "must be at least 1".into()));
        }
        if self.reconnect_max_backoff_ms < self.reconnect_initial_backoff_ms {
            return Err((
                "reconnect_max_backoff_ms",
                "must be >= reconnect_initial_backoff_ms".into(),
            ));
        }
        if !(1..=24 * 3600).contains(&self.max_connection_age_secs) {
            return Err((
                "max_connection_age_secs",
                "must be between 1 and 86400 (Binance cuts connections at 24 h)".into(),
            ));
        }
        if !(1..=3600).contains(&self.read_timeout_secs) {
            return Err(("read_timeout_secs", "must be between 1 and 3600".into()));
        }
        if !(1..=5000).contains(&self.depth_snapshot_limit) {
            return Err(("depth_snapshot_limit", "must be between 1 and 5000".into()));
        }
        if !(1..=100_000).contains(&self.max_book_levels) {
            return Err(("max_book_levels", "must be between 1 and 100000".into()));
        }
        if !(1..=1_000_000).contains(&self.max_buffered_diffs) {
            return Err(("max_buffered_diffs", "must be between 1 and 1000000".into()));
        }
        if !(1..=100).contains(&self.max_snapshot_attempts) {
            return Err(("max_snapshot_attempts", "must be between 1 and 100".into()));
        }
        if !(100..=60_000).contains(&self.marks_interval_ms) {
            return Err(("marks_interval_ms", "must be between 100 and 60000".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert_eq!(StreamConfig::default().validate(), Ok(()));
        let bad = StreamConfig {
            max_connection_age_secs: 25 * 3600,
            ..StreamConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "max_connection_age_secs");
        let bad = StreamConfig {
            ws_base_url: "http://x".into(),
            ..StreamConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "ws_base_url");
        let bad = StreamConfig {
            ws_api_url: "https://x".into(),
            ..StreamConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "ws_api_url");
    }
}
