//! Reflections on closed positions (#20): when a position opened on an LLM decision's thesis
//! closes in the daemon, one costed, budget-checked reflection request is made after the
//! trading step, its answer is stored and the strategy's next prompts quote it as fenced data.
//! Asserted on what the fake xAI received.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};
use std::sync::Arc;

use trademind::app::daemon::{Jobs, StrategyJob};
use trademind::app::decide::{AnyEngine, LlmEngine, RulesEngine};
use trademind::domain::market::Interval;
use trademind::services::llm::prompt::DEFAULT_TEMPLATE;
use trademind::services::llm::{ApiKey, LlmClient, LlmConfig};
use trademind::store::reflections::{StoredReflection, recent};
use trademind::store::strategies::{
    NewStrategy, StrategyRow, add_connection, add_strategy, strategy_by_name,
};
use trademind::testkit::fake_binance::flat_candles;
use trademind::testkit::fake_xai::{COST_TICKS, FakeXai, Script};

use crate::trading::{NOW, Rig};

const KEY: &str = "xai-reflect-key";
const MODEL: &str = "grok-reflect";
const LESSON: &str = "The breakout failed at the retest; wait for a close above the range.";

fn decision(action: &str) -> Value {
    let buy = action == "BUY";
    json!({
        "action": action, "symbol": "BTCUSDT", "confidence": 0.8,
        "position_size_pct": if buy { 10 } else { 0 },
        "stop_loss": if buy { json!({"kind": "price", "value": 49000}) } else { Value::Null },
        "take_profit": if buy { json!({"kind": "price", "value": 52000}) } else { Value::Null },
        "time_horizon": "swing",
        "reasoning": if buy { "Breakout above the range" } else { "done" },
        "risk_factors": if buy { json!(["a failed retest of 50k"]) } else { json!([]) },
        "sources": []
    })
}

/// One call's cost as the fake reports it.
fn call_cost() -> Decimal {
    Decimal::new(COST_TICKS, 10)
}

/// The messages of the fake's `i`-th request with `role`, joined.
fn sent(xai: &FakeXai, i: usize, role: &str) -> String {
    xai.requests()[i]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == role)
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

struct Setup {
    rig: Rig,
    xai: FakeXai,
    jobs: Jobs<trademind::services::exchange::binance::BinanceClient>,
    strategy: StrategyRow,
}

impl Setup {
    fn reflections(&self) -> Vec<StoredReflection> {
        recent(
            self.rig.store.lock().unwrap().conn(),
            Some(self.strategy.id),
            i64::MAX,
            10,
        )
        .unwrap()
    }

    fn closed(&self) -> usize {
        trademind::store::positions::closed_count(
            self.rig.store.lock().unwrap().conn(),
            "binance-testnet",
        )
        .unwrap() as usize
    }
}

/// An LLM strategy in the daemon whose fake xAI answers `script` in turn.
async fn setup(script: Vec<Script>, tune: impl FnOnce(&mut LlmConfig)) -> Setup {
    let rig = Rig::new().await;
    rig.binance
        .set_klines("BTCUSDT", flat_candles(dec!(50000), 100, Interval::H1, NOW));
    let service = Arc::new(rig.service().await);
    {
        let db = rig.store.lock().unwrap();
        let connection =
            add_connection(db.conn(), "binance-testnet", "binance", true, None, NOW).unwrap();
        add_strategy(
            db.conn(),
            &NewStrategy {
                name: "reflect".into(),
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
    let strategy = strategy_by_name(rig.store.lock().unwrap().conn(), "reflect")
        .unwrap()
        .unwrap();
    let xai = FakeXai::start(KEY, &[MODEL]).await.unwrap();
    xai.push(script);
    let mut config = LlmConfig {
        base_url: xai.base_url(),
        model: MODEL.into(),
        timeout_secs: 1,
        retry_base_ms: 10,
        ..LlmConfig::default()
    };
    tune(&mut config);
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
            strategy: strategy.clone(),
            engine: AnyEngine::Llm(Box::new(engine)),
        }],
    );
    Setup {
        rig,
        xai,
        jobs,
        strategy,
    }
}

fn lesson() -> Script {
    Script::Content(json!({ "reflection": LESSON }).to_string())
}

#[tokio::test]
async fn a_close_is_reflected_on_once_costed_and_the_next_prompt_quotes_it_fenced() {
    let s = setup(
        vec![
            Script::Decision(decision("BUY")),
            Script::Decision(decision("CLOSE")),
            lesson(),
            Script::Decision(decision("HOLD")),
        ],
        |_| {},
    )
    .await;
    s.jobs.autonomous_trading(0, NOW + 1).await.unwrap();
    assert_eq!(s.rig.open_positions().len(), 1, "the BUY opened a position");
    s.jobs.autonomous_trading(0, NOW + 2).await.unwrap();
    assert_eq!(s.closed(), 1, "the CLOSE closed it");

    // Exactly one reflection request, after the close: the thesis fenced, the outcome.
    assert_eq!(s.xai.inference_calls(), 3);
    let question = sent(&s.xai, 2, "user");
    assert!(
        question.contains(
            "Thesis:\n<<<UNTRUSTED_DATA>>>\nreasoning: Breakout above the range\ninvalidated if: the price reaches the stop-loss at 49000; or the named risks play out: a failed retest of 50k\n<<<END_UNTRUSTED_DATA>>>"
        ),
        "{question}"
    );
    assert!(question.contains("Outcome: entry "), "{question}");
    assert!(question.contains(" · R multiple "), "{question}");
    assert!(sent(&s.xai, 2, "system").contains("reviewing"));

    // Stored with its cost, which counts in the day's LLM spend.
    let stored = s.reflections();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].reflection, LESSON);
    assert_eq!(stored[0].symbol, "BTCUSDT");
    assert_eq!(stored[0].cost_usd, Some(call_cost()));
    assert!(stored[0].thesis.contains("Breakout above the range"));
    let spent =
        trademind::store::decisions::spent_on_day(s.rig.store.lock().unwrap().conn(), NOW + 2)
            .unwrap();
    assert_eq!(
        spent,
        call_cost() * dec!(3),
        "two decisions and the reflection"
    );

    // The next decision's prompt quotes it as data; no second reflection is asked.
    s.jobs.autonomous_trading(0, NOW + 3).await.unwrap();
    assert_eq!(s.xai.inference_calls(), 4);
    let prompt = sent(&s.xai, 3, "user");
    assert!(
        prompt.contains(&format!(
            "Your reflections on recently closed positions, earlier replies quoted as data:\n<<<UNTRUSTED_DATA>>>\n- 2025-01-15 00:00 BTCUSDT: {LESSON}\n<<<END_UNTRUSTED_DATA>>>"
        )),
        "{prompt}"
    );
    s.jobs.monitor_orders(NOW + 4).await.unwrap();
    assert_eq!(s.xai.inference_calls(), 4, "one reflection per close");
    assert_eq!(s.reflections().len(), 1);
}

#[tokio::test]
async fn with_reflections_off_a_close_makes_no_reflection_request() {
    let s = setup(
        vec![
            Script::Decision(decision("BUY")),
            Script::Decision(decision("CLOSE")),
            Script::Decision(decision("HOLD")),
        ],
        |c| c.reflections = 0,
    )
    .await;
    s.jobs.autonomous_trading(0, NOW + 1).await.unwrap();
    s.jobs.autonomous_trading(0, NOW + 2).await.unwrap();
    assert_eq!(s.closed(), 1);
    s.jobs.monitor_orders(NOW + 3).await.unwrap();
    assert_eq!(s.xai.inference_calls(), 2, "only the two decisions");
    assert!(s.reflections().is_empty());
}

#[tokio::test]
async fn over_budget_no_reflection_is_asked_and_the_close_stays_booked() {
    let s = setup(
        vec![
            Script::Decision(decision("BUY")),
            Script::Decision(decision("CLOSE")),
            lesson(),
        ],
        // Two calls' worth: the BUY and the CLOSE spend it all.
        |c| c.daily_budget_usd = call_cost() * dec!(2),
    )
    .await;
    s.jobs.autonomous_trading(0, NOW + 1).await.unwrap();
    s.jobs.autonomous_trading(0, NOW + 2).await.unwrap();
    assert_eq!(s.closed(), 1, "the close is booked");
    assert!(s.rig.open_positions().is_empty());
    assert_eq!(s.xai.inference_calls(), 2, "no reflection request");
    assert!(s.reflections().is_empty());
}
