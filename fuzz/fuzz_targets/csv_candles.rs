//! Any bytes as a candle CSV file (Binance dumps, CryptoDataDownload, the plain format): the
//! importer returns candles or a line-numbered error, never panics, and every candle it accepts
//! is consistent (low <= open, close <= high, strictly ascending open times).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trademind::domain::market::Interval;
use trademind::services::market_data::import::parse_candles;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for interval in [Interval::M1, Interval::H1, Interval::D1] {
        for skip_bad in [false, true] {
            if let Ok(parsed) = parse_candles(text, interval, skip_bad) {
                for c in &parsed.candles {
                    assert!(c.low <= c.open && c.low <= c.close, "{c:?}");
                    assert!(c.high >= c.open && c.high >= c.close, "{c:?}");
                }
                for w in parsed.candles.windows(2) {
                    assert!(w[0].open_time < w[1].open_time, "{w:?}");
                }
            }
        }
    }
});
