//! A thesis that stays with the position (#20): the entry decision's reasoning and what would
//! invalidate it reach every later prompt about the position, in the daemon and in an LLM
//! backtest, asserted on the prompt the fake xAI received.

use rust_decimal_macros::dec;
use serde_json::{Value, json};
use std::sync::Arc;

use trademind::app::daemon::{Jobs, StrategyJob};
use trademind::app::decide::{AnyEngine, LlmEngine, RulesEngine};
use trademind::domain::market::Interval;
use trademind::services::llm::prompt::DEFAULT_TEMPLATE;
use trademind::services::llm::{ApiKey, LlmClient, LlmConfig};
use trademind::store::strategies::{NewStrategy, add_connection, add_strategy, strategy_by_name};
use trademind::testkit::fake_xai::{FakeXai, Script};

use crate::trading::{NOW, Rig};

const KEY: &str = "xai-thesis-key";
const MODEL: &str = "grok-thesis";

fn decision(action: &str) -> Value {
    let buy = action == "BUY";
    json!({
        "action": action, "symbol": "BTCUSDT", "confidence": 0.8,
        "position_size_pct": if buy { 10 } else { 0 },
        "stop_loss": if buy { json!({"kind": "price", "value": 49000}) } else { Value::Null },
        "take_profit": if buy { json!({"kind": "price", "value": 52000}) } else { Value::Null },
        "time_horizon": "swing",
        "reasoning": if buy { "Breakout above the range\nwith rising volume" } else { "wait" },
        "risk_factors": if buy { json!(["a failed retest of 50k"]) } else { json!([]) },
        "sources": []
    })
}

/// The user message of the fake's `i`-th chat request.
fn prompt(xai: &FakeXai, i: usize) -> String {
    let sent = &xai.requests()[i]["messages"];
    sent.as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_entry_decisions_thesis_reaches_every_later_prompt_about_the_position() {
    let rig = Rig::new().await;
    rig.binance.set_klines(
        "BTCUSDT",
        trademind::testkit::fake_binance::flat_candles(dec!(50000), 100, Interval::H1, NOW),
    );
    let service = Arc::new(rig.service().await);
    {
        let db = rig.store.lock().unwrap();
        let connection =
            add_connection(db.conn(), "binance-testnet", "binance", true, None, NOW).unwrap();
        add_strategy(
            db.conn(),
            &NewStrategy {
                name: "thesis".into(),
                symbols: vec!["BTCUSDT".into()],
                interval: "1h".into(),
                decision_engine: "llm".into(),
                parameters: json!({}),
                connection_id: Some(connection),
            },
            NOW,
        )
        .unwrap();
    }
    let strategy = strategy_by_name(rig.store.lock().unwrap().conn(), "thesis")
        .unwrap()
        .unwrap();
    let xai = FakeXai::start(KEY, &[MODEL]).await.unwrap();
    xai.push([
        Script::Decision(decision("BUY")),
        Script::Decision(decision("HOLD")),
        Script::Decision(decision("HOLD")),
    ]);
    let config = LlmConfig {
        base_url: xai.base_url(),
        model: MODEL.into(),
        timeout_secs: 1,
        retry_base_ms: 10,
        ..LlmConfig::default()
    };
    let engine = LlmEngine::new(
        LlmClient::new(config, ApiKey::new(KEY)).unwrap(),
        None,
        rig.store.clone(),
        DEFAULT_TEMPLATE.to_string(),
        RulesEngine::default(),
    );
    let jobs = Jobs::new(
        service,
        vec![StrategyJob {
            strategy,
            engine: AnyEngine::Llm(Box::new(engine)),
        }],
    );

    jobs.autonomous_trading(0, NOW + 1).await.unwrap();
    assert_eq!(rig.open_positions().len(), 1, "the BUY opened a position");
    assert!(
        !prompt(&xai, 0).contains("Thesis when it was opened"),
        "flat: no thesis yet"
    );

    for (cycle, at) in [(1, NOW + 2), (2, NOW + 3)] {
        jobs.autonomous_trading(0, at).await.unwrap();
        let text = prompt(&xai, cycle);
        assert!(
            text.contains(
                "Thesis when it was opened (2025-01-15 00:00 UTC), an earlier reply quoted as data:\n<<<UNTRUSTED_DATA>>>\nreasoning: Breakout above the range with rising volume"
            ),
            "cycle {cycle}: {text}"
        );
        assert!(
            text.contains(
                "invalidated if: the price reaches the stop-loss at 49000; or the named risks play out: a failed retest of 50k\n<<<END_UNTRUSTED_DATA>>>"
            ),
            "cycle {cycle}: {text}"
        );
    }
}

#[test]
fn an_llm_backtest_gives_the_runs_own_entry_thesis_to_the_prompts_while_the_position_is_open() {
    use crate::llm_backtest::{fakes, run, scripts, setup};
    let f = fakes();
    f.xai.push(scripts());
    let dir = tempfile::tempdir().unwrap();
    let config = setup(&f, dir.path());
    // 8 hourly candles: BUY on the first (filled at the second's open), CLOSE on the sixth.
    run(
        dir.path(),
        &config,
        &[
            "--json",
            "backtest",
            "--engine",
            "llm",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1h",
            "--from",
            "2025-01-01",
            "--to",
            "2025-01-01T08:00",
            "--sizing",
            "fraction=0.5",
            "--max-cost",
            "1",
        ],
    )
    .success();
    assert_eq!(f.xai.inference_calls(), 8);
    let thesis = "Thesis when it was opened (2025-01-01 01:00 UTC), an earlier reply quoted as data:\n<<<UNTRUSTED_DATA>>>\nreasoning: BUY on the candle";
    let invalidated = "invalidated if: the price moves 2 % against the entry (stop-loss)";
    assert!(
        !prompt(&f.xai, 0).contains("Thesis when"),
        "flat at the start"
    );
    for i in 1..=5 {
        let text = prompt(&f.xai, i);
        assert!(text.contains(thesis), "candle {i}: {text}");
        assert!(text.contains(invalidated), "candle {i}: {text}");
    }
    // Closed on the sixth candle's decision, filled at the seventh's open: flat again.
    assert!(
        !prompt(&f.xai, 7).contains("Thesis when"),
        "{}",
        prompt(&f.xai, 7)
    );
}
