//! Test-support fake servers (built only with the `fake-servers` feature): they bind
//! 127.0.0.1:0, are written from the providers' specs, and reject what the real services reject.

pub mod fake_binance;
pub mod fake_binance_ws;
pub mod fake_klines;
pub mod fake_resend;
pub mod fake_tavily;
pub mod fake_telegram;
pub mod fake_webhook;
pub mod fake_xai;
pub mod http;
