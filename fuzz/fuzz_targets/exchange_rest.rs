//! Any bytes as a Binance REST response body: every wire model either fails to parse or
//! converts into domain types, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trademind::services::exchange::binance::models::{
    Account, Depth, ErrorBody, ExchangeInfo, Ticker24hr, TickerPrice, WireOrder, WireOrderList,
    WireTrade, kline_to_candle,
};
use trademind::services::market_stream::wire::{decode_depth_snapshot, decode_klines};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ErrorBody>(data);
    let _ = serde_json::from_slice::<TickerPrice>(data);
    if let Ok(info) = serde_json::from_slice::<ExchangeInfo>(data) {
        for s in &info.symbols {
            let _ = s.to_filters();
        }
    }
    if let Ok(t) = serde_json::from_slice::<Ticker24hr>(data) {
        let _ = t.to_domain();
    }
    if let Ok(d) = serde_json::from_slice::<Depth>(data) {
        let _ = d.to_domain();
    }
    if let Ok(a) = serde_json::from_slice::<Account>(data) {
        let _ = a.to_domain();
    }
    if let Ok(o) = serde_json::from_slice::<WireOrder>(data) {
        let _ = o.to_domain();
        let _ = o.fills_to_domain();
    }
    if let Ok(l) = serde_json::from_slice::<WireOrderList>(data) {
        let _ = l.to_domain();
    }
    if let Ok(trades) = serde_json::from_slice::<Vec<WireTrade>>(data) {
        for t in &trades {
            let _ = t.to_domain();
        }
    }
    if let Ok(rows) = serde_json::from_slice::<Vec<Vec<serde_json::Value>>>(data) {
        for row in &rows {
            let _ = kline_to_candle(row);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_klines(text);
        let _ = decode_depth_snapshot(text);
    }
});
