//! Any text as a Binance WebSocket frame (market streams and the user-data stream): decoding
//! returns a message or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trademind::services::market_stream::user_data::decode_user_event;
use trademind::services::market_stream::wire::{DepthDiff, decode_depth_update, decode_message};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut scratch = DepthDiff::default();
    let _ = decode_message(text, &mut scratch);
    let _ = decode_depth_update(text, &mut scratch);
    let _ = decode_user_event(text);
});
