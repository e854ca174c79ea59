//! Shadow decisions (#20): a strategy's challenger decides in the daemon on the primary's input;
//! its decisions are recorded and filled on a virtual book, and the exchange never sees them.

use rust_decimal_macros::dec;
use serde_json::{Value, json};
use std::sync::Arc;

use trademind::app::daemon::{Jobs, StrategyJob};
use trademind::app::decide::{AnyEngine, LlmEngine, RulesEngine};
use trademind::app::shadow::ShadowJob;
use trademind::domain::decision::shadow::ShadowSide;
use trademind::domain::market::Interval;
use trademind::domain::{Price, Quote};
use trademind::services::llm::prompt::DEFAULT_TEMPLATE;
use trademind::services::llm::{ApiKey, LlmClient, LlmConfig};
use trademind::store::strategies::{NewStrategy, add_connection, add_strategy, strategy_by_name};
use trademind::store::{decisions as recorder, shadow as fills};
use trademind::testkit::fake_xai::{FakeXai, Script};

use crate::trading::{NOW, OCO, ORDER, Rig, buy};

const KEY: &str = "xai-shadow-key";
const PRIMARY: &str = "grok-primary";
const CHALLENGER: &str = "grok-challenger";

fn llm(xai: &FakeXai, model: &str, rig: &Rig) -> LlmEngine {
    let config = LlmConfig {
        base_url: xai.base_url(),
        model: model.into(),
        timeout_secs: 1,
        retry_base_ms: 10,
        ..LlmConfig::default()
    };
    LlmEngine::new(
        LlmClient::new(config, ApiKey::new(KEY)).unwrap(),
        None,
        rig.store.clone(),
        DEFAULT_TEMPLATE.to_string(),
        RulesEngine::default(),
    )
}

fn hold() -> Value {
    json!({
        "action": "HOLD", "symbol": "BTCUSDT", "confidence": 0.5, "position_size_pct": 0,
        "stop_loss": null, "take_profit": null, "time_horizon": "swing",
        "reasoning": "no edge", "risk_factors": [], "sources": []
    })
}

#[tokio::test]
async fn a_challenger_decides_in_the_daemon_on_the_same_input_and_never_reaches_the_exchange() {
    let rig = Rig::new().await;
    rig.binance.set_klines(
        "BTCUSDT",
        trademind::testkit::fake_binance::flat_candles(dec!(50000), 100, Interval::H1, NOW),
    );
    let service = Arc::new(rig.service().await);
    let strategy_id = {
        let db = rig.store.lock().unwrap();
        let connection =
            add_connection(db.conn(), "binance-testnet", "binance", true, None, NOW).unwrap();
        add_strategy(
            db.conn(),
            &NewStrategy {
                name: "duel".into(),
                symbols: vec!["BTCUSDT".into()],
                interval: "1h".into(),
                decision_engine: "llm".into(),
                parameters: json!({"challenger": {"model": CHALLENGER}}),
                connection_id: Some(connection),
            },
            NOW,
        )
        .unwrap()
    };
    let strategy = strategy_by_name(rig.store.lock().unwrap().conn(), "duel")
        .unwrap()
        .unwrap();
    let primary_xai = FakeXai::start(KEY, &[PRIMARY]).await.unwrap();
    let challenger_xai = FakeXai::start(KEY, &[CHALLENGER]).await.unwrap();
    // The primary holds; the challenger would buy.
    primary_xai.push([Script::Decision(hold()), Script::Decision(hold())]);
    challenger_xai.push([Script::Decision(buy(0.8)), Script::Decision(buy(0.8))]);
    let shadow = ShadowJob {
        engine: AnyEngine::Llm(Box::new(llm(&challenger_xai, CHALLENGER, &rig))),
        store: rig.store.clone(),
        starting_cash: Quote(dec!(10000)),
        fee_rate: dec!(0.001),
    };
    let jobs = Jobs::new(
        service,
        vec![StrategyJob {
            strategy,
            engine: AnyEngine::Llm(Box::new(llm(&primary_xai, PRIMARY, &rig))),
        }],
    )
    .with_challenger(0, shadow);

    jobs.autonomous_trading(0, NOW + 1).await.unwrap();

    let rows = recorder::recent(rig.store.lock().unwrap().conn(), 10).unwrap();
    assert_eq!(
        challenger_xai.inference_calls(),
        1,
        "the challenger was asked: {rows:#?}"
    );
    let rows = recorder::recent(rig.store.lock().unwrap().conn(), 10).unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let primary = rows.iter().find(|r| r.fields.outcome == "hold").unwrap();
    let shadow = rows.iter().find(|r| r.fields.outcome == "shadow").unwrap();
    assert_eq!(shadow.fields.action, "BUY");
    assert_eq!(shadow.fields.model.as_deref(), Some(CHALLENGER));
    assert_eq!(shadow.fields.strategy_id, Some(strategy_id));
    assert_eq!(primary.fields.model.as_deref(), Some(PRIMARY));
    // The same input: the challenger's recorded snapshot is the primary's.
    let a: Value = serde_json::from_str(&primary.fields.input_snapshot).unwrap();
    let b: Value = serde_json::from_str(&shadow.fields.input_snapshot).unwrap();
    assert_eq!(a, b);

    // Filled on the virtual book only: the fake exchange received no order.
    let book = fills::fills_of(rig.store.lock().unwrap().conn(), strategy_id).unwrap();
    assert_eq!(book.len(), 1);
    assert_eq!(book[0].decision_id, shadow.id);
    assert_eq!(book[0].fill.side, ShadowSide::Buy);
    assert_eq!(book[0].fill.price, Price(dec!(50000)));
    assert!(rig.binance.orders().is_empty());
    assert_eq!(rig.binance.requests(ORDER), 0);
    assert_eq!(rig.binance.requests(OCO), 0);
    assert!(rig.open_positions().is_empty());

    // The next cycle: the primary's history leaves the shadow BUY out, and the challenger,
    // already holding on its book, buys nothing more.
    jobs.autonomous_trading(0, NOW + 2).await.unwrap();
    let rows = recorder::recent(rig.store.lock().unwrap().conn(), 10).unwrap();
    let second = rows
        .iter()
        .find(|r| r.fields.outcome == "hold" && r.fields.decided_at == NOW + 2)
        .unwrap();
    let input: Value = serde_json::from_str(&second.fields.input_snapshot).unwrap();
    let recent = input["recent_decisions"].as_array().unwrap();
    assert!(!recent.is_empty(), "the primary's own HOLD is its history");
    assert!(
        recent.iter().all(|d| d["outcome"] != "shadow"),
        "{recent:?}"
    );
    assert_eq!(
        fills::fills_of(rig.store.lock().unwrap().conn(), strategy_id)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(rig.binance.requests(ORDER), 0);
}
