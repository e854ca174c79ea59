//! Any bytes as an LLM server's reply: the HTTP body decoder (both APIs) and the decision
//! parser/validator give a reply, an error or an invalid HOLD, never a panic, and whatever is
//! marked valid obeys the size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;
use trademind::domain::decision::{ValidationLimits, parse_and_validate};
use trademind::domain::{Price, Symbol};
use trademind::services::llm::LlmConfig;
use trademind::services::llm::client::parse_reply;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for search in [false, true] {
        let config = LlmConfig {
            use_grok_search: search,
            ..LlmConfig::default()
        };
        if let Ok(reply) = parse_reply(&config, text.to_string(), 1) {
            check(&reply.content);
        }
    }
    check(text);
});

fn check(content: &str) {
    let Ok(symbol) = Symbol::new("BTCUSDT") else {
        return;
    };
    let limits = ValidationLimits::default();
    let v = parse_and_validate(content, &symbol, Price::new(Decimal::from(100_000)), &limits);
    if v.is_valid() {
        assert!(v.decision.position_size_pct <= limits.max_position_pct);
        assert!(v.decision.confidence.is_finite());
    }
}
