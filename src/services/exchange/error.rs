//! Exchange errors: Binance error codes and transport failures mapped to typed errors whose
//! messages say what to do. No message ever contains a key, a secret or a signature.

use crate::domain::trading::filters::FilterViolation;
use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExchangeError {
    #[error("insufficient balance for this order (Binance -2010): {0}; deposit or reduce the size")]
    InsufficientBalance(String),
    #[error(
        "order breaks the symbol's {filter} filter (Binance -1013): {detail}; round price/quantity to the exchange filters"
    )]
    FilterFailure { filter: String, detail: String },
    #[error("order refused before sending: {0}")]
    LocalFilter(#[from] FilterViolation),
    #[error("order rejected by the exchange (Binance -2010): {0}")]
    OrderRejected(String),
    #[error("unknown order {client_order_id} (Binance {code}): the exchange has no such order")]
    UnknownOrder { code: i64, client_order_id: String },
    #[error(
        "rate limited (HTTP 429 / Binance -1003); retry after {retry_after:?}. Use fewer requests or WebSocket streams"
    )]
    RateLimited { retry_after: Duration },
    #[error(
        "IP banned by the exchange (HTTP 418) until {until}; no requests will be sent before then"
    )]
    Banned { until: DateTime<Utc> },
    #[error(
        "request timestamp outside recvWindow (Binance -1021): the local clock is off; the offset was re-synced, check NTP if this repeats"
    )]
    Timestamp,
    #[error(
        "invalid signature (Binance -1022): check the API secret configured for this connection"
    )]
    BadSignature,
    #[error("invalid API key, IP or permissions (Binance {0}): check the key and its IP whitelist")]
    BadApiKey(i64),
    #[error("invalid symbol {0} (Binance -1121): check the symbol spelling, e.g. BTCUSDT")]
    BadSymbol(String),
    #[error(
        "order status unknown after {reason}: it may have been executed; resolve by querying the order, never by resending"
    )]
    StatusUnknown { reason: String },
    #[error(
        "the {group} endpoints are paused by the circuit breaker after repeated failures; retry after {retry_in:?}"
    )]
    CircuitOpen { group: String, retry_in: Duration },
    #[error("exchange unavailable: {0}")]
    Unavailable(String),
    #[error("unexpected response from the exchange: {0}")]
    Malformed(String),
    #[error("exchange error {code}: {msg}")]
    Api { code: i64, msg: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("local order store failed: {0}")]
    Store(String),
    #[error("exchange configuration invalid: {0}")]
    Config(String),
}

impl ExchangeError {
    /// Map a Binance `{code, msg}` error body to a typed error.
    pub fn from_binance(code: i64, msg: &str, client_order_id: Option<&str>) -> ExchangeError {
        match code {
            -2010 if msg.to_ascii_lowercase().contains("insufficient balance") => {
                ExchangeError::InsufficientBalance(msg.to_string())
            }
            -2010 => ExchangeError::OrderRejected(msg.to_string()),
            -1013 => {
                let filter = msg
                    .strip_prefix("Filter failure: ")
                    .map(|f| f.trim().to_string())
                    .unwrap_or_else(|| "unknown".to_string());
                ExchangeError::FilterFailure {
                    filter,
                    detail: msg.to_string(),
                }
            }
            -2011 | -2013 => ExchangeError::UnknownOrder {
                code,
                client_order_id: client_order_id.unwrap_or("?").to_string(),
            },
            -1003 => ExchangeError::RateLimited {
                retry_after: Duration::from_secs(1),
            },
            -1021 => ExchangeError::Timestamp,
            -1022 => ExchangeError::BadSignature,
            -2014 | -2015 => ExchangeError::BadApiKey(code),
            -1121 => ExchangeError::BadSymbol(msg.to_string()),
            -1006 | -1007 => ExchangeError::StatusUnknown {
                reason: format!("Binance {code} ({msg})"),
            },
            _ => ExchangeError::Api {
                code,
                msg: msg.to_string(),
            },
        }
    }

    /// The Binance code a faithful server answers with for this error (for the fake and paper).
    pub fn binance_code(&self) -> i64 {
        match self {
            ExchangeError::InsufficientBalance(_) | ExchangeError::OrderRejected(_) => -2010,
            ExchangeError::FilterFailure { .. } | ExchangeError::LocalFilter(_) => -1013,
            ExchangeError::UnknownOrder { code, .. } => *code,
            ExchangeError::RateLimited { .. } | ExchangeError::Banned { .. } => -1003,
            ExchangeError::Timestamp => -1021,
            ExchangeError::BadSignature => -1022,
            ExchangeError::BadApiKey(code) => *code,
            ExchangeError::BadSymbol(_) => -1121,
            ExchangeError::Api { code, .. } => *code,
            _ => -1000,
        }
    }

    /// Failures of the transport or the server (count towards the circuit breaker).
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            ExchangeError::StatusUnknown { .. }
                | ExchangeError::Unavailable(_)
                | ExchangeError::Malformed(_)
        )
    }

    /// A read may be retried after this error.
    pub fn is_retryable_read(&self) -> bool {
        matches!(
            self,
            ExchangeError::StatusUnknown { .. }
                | ExchangeError::Unavailable(_)
                | ExchangeError::Malformed(_)
                | ExchangeError::RateLimited { .. }
                | ExchangeError::Timestamp
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binance_codes_map_to_actionable_errors() {
        assert!(matches!(
            ExchangeError::from_binance(
                -2010,
                "Account has insufficient balance for requested action.",
                None
            ),
            ExchangeError::InsufficientBalance(_)
        ));
        let e = ExchangeError::from_binance(-1013, "Filter failure: LOT_SIZE", None);
        assert_eq!(
            e,
            ExchangeError::FilterFailure {
                filter: "LOT_SIZE".into(),
                detail: "Filter failure: LOT_SIZE".into()
            }
        );
        assert!(e.to_string().contains("LOT_SIZE"));
        assert!(matches!(
            ExchangeError::from_binance(-2013, "Order does not exist.", Some("x")),
            ExchangeError::UnknownOrder { code: -2013, .. }
        ));
        assert!(matches!(
            ExchangeError::from_binance(-2011, "Unknown order sent.", Some("x")),
            ExchangeError::UnknownOrder { code: -2011, .. }
        ));
        assert!(matches!(
            ExchangeError::from_binance(-1003, "Too many requests", None),
            ExchangeError::RateLimited { .. }
        ));
        assert_eq!(
            ExchangeError::from_binance(-1021, "x", None),
            ExchangeError::Timestamp
        );
        assert_eq!(
            ExchangeError::from_binance(-1022, "x", None),
            ExchangeError::BadSignature
        );
        assert!(matches!(
            ExchangeError::from_binance(-1121, "Invalid symbol.", None),
            ExchangeError::BadSymbol(_)
        ));
        for e in [
            ExchangeError::from_binance(-2010, "Duplicate order sent.", None),
            ExchangeError::from_binance(-1121, "Invalid symbol.", None),
        ] {
            assert_eq!(
                ExchangeError::from_binance(e.binance_code(), "Invalid symbol.", None)
                    .binance_code(),
                e.binance_code()
            );
        }
    }
}
