//! Test-support fake servers (built only with the `fake-servers` feature): they bind
//! 127.0.0.1:0 and reject what the real services reject.

pub mod fake_binance;
pub mod fake_binance_ws;
pub mod fake_klines;
