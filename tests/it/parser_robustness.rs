//! The parsers of everything remote services and users hand us never panic: Binance REST bodies
//! and WebSocket frames, LLM replies and decisions, CSV candle files. Inputs are valid documents
//! with random edits (so most get past the first `{`), plus arbitrary bytes. The cargo-fuzz
//! targets in `fuzz/` run the same parsers for longer; this keeps a fast net in every test run.

use proptest::prelude::*;
use rust_decimal::Decimal;

use trademind::domain::decision::{ValidationLimits, parse_and_validate};
use trademind::domain::market::Interval;
use trademind::domain::{Price, Symbol};
use trademind::services::exchange::binance::models::{
    Account, Depth, ExchangeInfo, Ticker24hr, WireOrder, WireOrderList, WireTrade, kline_to_candle,
};
use trademind::services::llm::LlmConfig;
use trademind::services::llm::client::parse_reply;
use trademind::services::market_data::import::parse_candles;
use trademind::services::market_stream::user_data::decode_user_event;
use trademind::services::market_stream::wire::{
    DepthDiff, decode_depth_snapshot, decode_depth_update, decode_klines, decode_message,
};

const ORDER: &str = r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"c1","transactTime":1507725176595,"price":"0.00000000","origQty":"10.00000000","executedQty":"10.00000000","cummulativeQuoteQty":"10.00000000","status":"FILLED","timeInForce":"GTC","type":"MARKET","side":"SELL","fills":[{"price":"4000.00000000","qty":"1.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56}]}"#;
const KLINES: &str = r#"[[1499040000000,"0.01634790","0.80000000","0.01575800","0.01577100","148976.11427815",1499644799999,"2434.19055334",308,"1756.87402397","28.46694368","0"]]"#;
const DEPTH_FRAME: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BTCUSDT","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}"#;
const EXECUTION: &str = r#"{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvo","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"NEW","X":"NEW","r":"NONE","i":4293153,"l":"0.00000000","z":"0.00000000","L":"0.00000000","n":"0","N":null,"T":1499405658657,"t":-1,"I":8641984,"w":true,"m":false,"M":false,"O":1499405658657,"Z":"0.00000000","Y":"0.00000000","Q":"0.00000000"}"#;
const CHAT_REPLY: &str = r#"{"choices":[{"message":{"content":"{\"action\":\"BUY\",\"symbol\":\"BTCUSDT\",\"confidence\":0.72,\"position_size_pct\":5,\"stop_loss\":{\"kind\":\"percent\",\"value\":2},\"take_profit\":{\"kind\":\"price\",\"value\":105000},\"time_horizon\":\"swing\",\"reasoning\":\"r\",\"risk_factors\":[],\"sources\":[]}"}}],"usage":{"prompt_tokens":10,"completion_tokens":5,"cost_in_usd_ticks":37756000}}"#;
const DECISION: &str = r#"{"action":"SELL","symbol":"BTCUSDT","confidence":0.6,"position_size_pct":50,"stop_loss":{"kind":"price","value":101000},"take_profit":{"kind":"percent","value":3},"time_horizon":"swing","reasoning":"r","risk_factors":["a"],"sources":["s"]}"#;
const CSV: &str = "open_time,open,high,low,close,volume\n1735689600000000,93576.0,94509.42,93489.03,94401.14,755.9901\n1735693200000000,94401.13,94408.72,93578.77,93607.74,586.53456\n";
const CDD_CSV: &str = "https://www.CryptoDataDownload.com\ndate,symbol,open,high,low,close,volume_btc,volume\n2025-01-02 00:00:00,BTC/USDT,2,3,1,2.5,10,25\n2025-01-01 23:00:00,BTC/USDT,1,2.5,0.5,2,10,20\n";

/// A seed with up to 6 random edits: replace, insert or delete one byte at a random place.
fn edited(seeds: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec((0usize..3, any::<prop::sample::Index>(), any::<u8>()), 0..6);
    (prop::sample::select(seeds), edits).prop_map(|(seed, edits)| {
        let mut bytes = seed.as_bytes().to_vec();
        for (kind, at, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => {}
            }
        }
        bytes
    })
}

fn input(seeds: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => edited(seeds),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn binance_rest(data: &[u8]) {
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
    if let Ok(t) = serde_json::from_slice::<WireTrade>(data) {
        let _ = t.to_domain();
    }
    if let Ok(rows) = serde_json::from_slice::<Vec<Vec<serde_json::Value>>>(data) {
        for row in &rows {
            let _ = kline_to_candle(row);
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = decode_klines(&text);
    let _ = decode_depth_snapshot(&text);
}

fn check_decision(content: &str) {
    let symbol = Symbol::new("BTCUSDT").unwrap();
    let limits = ValidationLimits::default();
    let v = parse_and_validate(
        content,
        &symbol,
        Price::new(Decimal::from(100_000)),
        &limits,
    );
    if v.is_valid() {
        assert!(v.decision.position_size_pct <= limits.max_position_pct);
        assert!((0.0..=1.0).contains(&v.decision.confidence));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn binance_rest_bodies_never_panic(data in input(&[ORDER, KLINES, r#"{"makerCommission":15,"canTrade":true,"balances":[{"asset":"BTC","free":"4723846.89208129","locked":"0.00000000"}]}"#])) {
        binance_rest(&data);
    }

    #[test]
    fn binance_websocket_frames_never_panic(data in input(&[DEPTH_FRAME, EXECUTION])) {
        let text = String::from_utf8_lossy(&data);
        let mut scratch = DepthDiff::default();
        let _ = decode_message(&text, &mut scratch);
        let _ = decode_depth_update(&text, &mut scratch);
        let _ = decode_user_event(&text);
    }

    #[test]
    fn llm_replies_and_decisions_never_panic_and_valid_ones_obey_limits(data in input(&[CHAT_REPLY, DECISION])) {
        let text = String::from_utf8_lossy(&data).into_owned();
        for search in [false, true] {
            let config = LlmConfig { use_grok_search: search, ..LlmConfig::default() };
            if let Ok(reply) = parse_reply(&config, text.clone(), 1) {
                check_decision(&reply.content);
            }
        }
        check_decision(&text);
    }

    #[test]
    fn csv_candle_files_never_panic_and_accepted_candles_are_consistent(data in input(&[CSV, CDD_CSV])) {
        let text = String::from_utf8_lossy(&data);
        for skip_bad in [false, true] {
            if let Ok(parsed) = parse_candles(&text, Interval::H1, skip_bad) {
                for c in &parsed.candles {
                    prop_assert!(c.low <= c.open && c.low <= c.close && c.high >= c.open && c.high >= c.close);
                }
                for w in parsed.candles.windows(2) {
                    prop_assert!(w[0].open_time < w[1].open_time);
                }
            }
        }
    }
}
