//! Binance REST request signing: HMAC-SHA256 over the percent-encoded payload, hex encoded.
//! Credentials redact themselves in `Debug`, so a stray `{:?}` cannot leak them.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// An API key and its secret. `Debug` never prints either.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    api_key: String,
    api_secret: String,
}

impl Credentials {
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Credentials {
        Credentials {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
        }
    }

    /// The key sent in `X-MBX-APIKEY` (it identifies, it does not authenticate).
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The secret itself, for the WebSocket API's own signing (`user_data::ws_api_signature`);
    /// crate-only so it cannot leak through the public API.
    pub(crate) fn api_secret(&self) -> &str {
        &self.api_secret
    }

    /// Hex HMAC-SHA256 of `payload` with the secret.
    pub fn sign(&self, payload: &str) -> String {
        hmac_sha256_hex(&self.api_secret, payload)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"<redacted>")
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

pub fn hmac_sha256_hex(secret: &str, payload: &str) -> String {
    // HMAC accepts keys of any length, so this never fails in practice; an empty signature
    // would simply be refused by the server with -1022.
    match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(payload.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Percent-encode one query value the way `application/x-www-form-urlencoded` does for
/// unreserved characters (RFC 3986 unreserved set kept, everything else `%XX` of UTF-8 bytes).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&k=v` with every value percent-encoded, in the given order.
pub fn encode_query(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Constant-time-ish comparison of two hex signatures, case-insensitive (Binance accepts both).
pub fn signatures_match(expected_hex: &str, given_hex: &str) -> bool {
    let a = expected_hex.to_ascii_lowercase();
    let b = given_hex.to_ascii_lowercase();
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    fn official_params(symbol: &str) -> Vec<(&'static str, String)> {
        vec![
            ("symbol", symbol.to_string()),
            ("side", "BUY".into()),
            ("type", "LIMIT".into()),
            ("timeInForce", "GTC".into()),
            ("quantity", "1".into()),
            ("price", "0.1".into()),
            ("recvWindow", "5000".into()),
            ("timestamp", "1499827319559".into()),
        ]
    }

    #[test]
    fn reproduces_official_ascii_example() {
        let payload = encode_query(&official_params("LTCBTC"));
        assert_eq!(
            payload,
            "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
        );
        let creds = Credentials::new("k", SECRET);
        assert_eq!(
            creds.sign(&payload),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn reproduces_official_non_ascii_example_after_percent_encoding() {
        let payload = encode_query(&official_params("１２３４５６"));
        assert!(
            payload.starts_with("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&")
        );
        assert_eq!(
            hmac_sha256_hex(SECRET, &payload),
            "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
        );
    }

    #[test]
    fn debug_redacts_key_and_secret() {
        let shown = format!("{:?}", Credentials::new("my-key-123", SECRET));
        assert!(!shown.contains("my-key-123"));
        assert!(!shown.contains(SECRET));
    }

    #[test]
    fn signature_comparison_ignores_case_only() {
        assert!(signatures_match("abcdef", "ABCDEF"));
        assert!(!signatures_match("abcdef", "abcdee"));
        assert!(!signatures_match("abcdef", "abcde"));
    }
}
