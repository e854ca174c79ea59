//! The execution path's own cost: one decision executed on the in-memory paper exchange (risk
//! context from the store, market entry through the executor, OCO protection, bookkeeping,
//! decision record) and the position closed again (OCO cancelled, market sell, PnL booked).
//! The exchange answers in microseconds, so this is TradeMind's overhead per trade.
//! Run with `cargo bench --bench trading`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rust_decimal_macros::dec;
use trademind::app::bus::EventBus;
use trademind::app::decide::RulesEngine;
use trademind::app::trading::{TradingDeps, TradingService};
use trademind::config::Settings;
use trademind::domain::decision::{DecisionInput, IndicatorSnapshot, RiskSnapshot};
use trademind::domain::market::Interval;
use trademind::domain::trading::TradingMode;
use trademind::domain::{Price, Symbol};
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::store::Store;

const ROUND_TRIPS: usize = 300;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let symbol = Symbol::new("BTCUSDT").unwrap();
    // No fees or slippage: 300 losing round trips would otherwise hit the daily loss limit.
    let config = PaperConfig {
        fee_rate: dec!(0),
        slippage_bps: dec!(0),
        initial_balances: [("USDT".to_string(), dec!(1000000))].into_iter().collect(),
        ..PaperConfig::default()
    };
    let paper = PaperExchange::in_memory(&config);
    paper.on_price(&symbol, Price(dec!(50000))).unwrap();
    let service = TradingService::new(TradingDeps {
        exchange: Arc::new(paper),
        store: Arc::new(Mutex::new(Store::open_in_memory().unwrap())),
        connection: "paper".into(),
        mode: TradingMode::Paper,
        settings: Arc::new(Settings::default()),
        bus: EventBus::new(1024),
        mailer: None,
    });
    assert!(service.reconcile(0).await.unwrap().reconciled);
    // RSI under 30 with a positive MACD histogram: the rules engine says BUY (stop −2 %,
    // target +4 %, confidence 0.75).
    let input = DecisionInput {
        symbol: symbol.clone(),
        interval: Interval::H1,
        now_ms: 0,
        price: Price(dec!(50000)),
        change_24h_pct: 0.0,
        indicators: IndicatorSnapshot {
            rsi: Some(15.0),
            macd_hist: Some(5.0),
            ..Default::default()
        },
        higher_indicators: None,
        order_book: None,
        position: None,
        risk: RiskSnapshot::default(),
        recent_decisions: vec![],
        reflections: vec![],
        closed_candles: Vec::new(),
    };
    let out = RulesEngine::default().decide_now(&input);
    let started = Instant::now();
    for i in 0..ROUND_TRIPS {
        let now = i64::try_from(i).unwrap() * 1000;
        let report = service
            .execute_decision(&input, &out, None, now)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            trademind::app::trading::ExecutionOutcome::Executed,
            "{}",
            report.message
        );
        service
            .close_position(&symbol, None, now + 1)
            .await
            .unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "trading: {ROUND_TRIPS} round trips (decision -> risk -> entry -> OCO -> record, then cancel OCO -> market close) \
         in {:.1} ms: {:.0} µs per round trip",
        elapsed.as_secs_f64() * 1000.0,
        elapsed.as_secs_f64() * 1e6 / ROUND_TRIPS as f64
    );
}
