//! Issue #19, symptom 4: the rules engine added 5 % on every cycle while its signal lasted,
//! replacing the protection each time. A strategy enters once per position unless its
//! parameters set `max_entries` above 1.

use rust_decimal_macros::dec;
use serde_json::json;

use trademind::app::decide::RulesEngine;
use trademind::app::trading::ExecutionOutcome;
use trademind::domain::decision::RulesConfig;
use trademind::domain::market::Interval;
use trademind::domain::trading::order::Side;
use trademind::store::strategies::{NewStrategy, add_connection, add_strategy, strategy_by_name};
use trademind::testkit::fake_binance::rebound_candles;

use crate::trading::{NOW, Rig};

/// A rules strategy on the rig's connection whose signal is on at every cycle.
fn rules_strategy(
    rig: &Rig,
    parameters: serde_json::Value,
) -> trademind::store::strategies::StrategyRow {
    let candles = rebound_candles(dec!(50000), Interval::H1, NOW);
    rig.binance
        .set_price("BTCUSDT", candles.last().unwrap().close.get());
    rig.binance.set_klines("BTCUSDT", candles);
    let db = rig.store.lock().unwrap();
    let connection =
        add_connection(db.conn(), "binance-testnet", "binance", true, None, NOW).unwrap();
    add_strategy(
        db.conn(),
        &NewStrategy {
            name: "swing".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            decision_engine: "rules".into(),
            parameters,
            connection_id: Some(connection),
        },
        NOW,
    )
    .unwrap();
    strategy_by_name(db.conn(), "swing").unwrap().unwrap()
}

fn engine() -> RulesEngine {
    RulesEngine {
        config: RulesConfig {
            oversold: 99.0,
            overbought: 99.5,
            ..RulesConfig::default()
        },
        ..RulesEngine::default()
    }
}

fn entries_sent(rig: &Rig) -> usize {
    rig.binance
        .orders()
        .iter()
        .filter(|o| o.side == Side::Buy)
        .count()
}

#[tokio::test]
async fn the_rules_engine_with_its_signal_on_for_several_cycles_enters_once() {
    let rig = Rig::new().await;
    let service = rig.service().await;
    let strategy = rules_strategy(&rig, json!({}));
    let engine = engine();
    let mut outcomes = Vec::new();
    for cycle in 1..=4 {
        let report = service
            .run_cycle(&strategy, &engine, NOW + cycle)
            .await
            .unwrap();
        assert_eq!(report.executions.len(), 1, "{report:?}");
        outcomes.push((
            report.executions[0].outcome,
            report.executions[0].message.clone(),
        ));
    }
    assert_eq!(outcomes[0].0, ExecutionOutcome::Executed, "{outcomes:?}");
    for (outcome, message) in &outcomes[1..] {
        assert_eq!(*outcome, ExecutionOutcome::NothingToDo, "{outcomes:?}");
        assert!(message.contains("no pyramiding"), "{message}");
    }
    assert_eq!(entries_sent(&rig), 1, "{outcomes:?}");
}

#[tokio::test]
async fn a_strategy_with_max_entries_two_adds_once_and_then_stops() {
    let rig = Rig::new().await;
    let service = rig.service().await;
    let strategy = rules_strategy(&rig, json!({"max_entries": 2}));
    let engine = engine();
    for cycle in 1..=4 {
        service
            .run_cycle(&strategy, &engine, NOW + cycle)
            .await
            .unwrap();
    }
    assert_eq!(entries_sent(&rig), 2);
    // One protection, for the whole quantity.
    let open_stops = rig
        .binance
        .orders()
        .into_iter()
        .filter(|o| o.stop_price.is_some() && o.status.is_open())
        .count();
    assert_eq!(open_stops, 1);
}
