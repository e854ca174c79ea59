//! The trading flow end to end against the fake Binance, a fake LLM (fake xAI + fake Tavily
//! behind the real `LlmEngine`) and the fake Resend: execution with exchange-side protection,
//! a stop filling on the exchange, protection failure, risk refusal, the kill switch,
//! restart reconciliation and the live guard.
//!
//! Numbers (fake: 10 000 USDT, price 50 000, fee 0.1 %; default risk limits):
//! the decision asks 10 % of equity with the stop at 49 000 and the target at 52 000. Risk
//! budget 1 % of 10 000 = 100 over a 1 000 stop distance allows 0.1 BTC, but the 10 % position
//! cap (1 000 USDT) allows 0.02 BTC: the entry is a MARKET BUY of 0.02 at 50 000. Its fee is
//! 0.00002 BTC, so 0.01998 BTC is held, entry 50 000, fee worth 1 USDT (realised −1).

use rust_decimal_macros::dec;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use trademind::app::bus::EventBus;
use trademind::app::decide::{DecisionEngine, EngineOutput, LlmEngine, RulesEngine};
use trademind::app::trading::{
    ExecutionOutcome, ExecutionReport, ProtectionLeg, TradingDeps, TradingError, TradingService,
    build_risk_context,
};
use trademind::config::Settings;
use trademind::domain::decision::{DecisionInput, IndicatorSnapshot, RiskSnapshot};
use trademind::domain::market::Interval;
use trademind::domain::trading::order::{OrderRequest, OrderStatus, OrderType, Side};
use trademind::domain::trading::{Position, PositionSide, SymbolFilters, TradingMode};
use trademind::domain::{Price, Qty, Quote, Symbol};
use trademind::services::exchange::binance::BinanceClient;
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::services::llm::prompt::DEFAULT_TEMPLATE;
use trademind::services::llm::{ApiKey, LlmClient, LlmConfig, TavilyClient, TavilyConfig};
use trademind::services::notification::{NotificationConfig, ResendClient};
use trademind::store::{Store, decisions as recorder, orders, positions};
use trademind::testkit::fake_binance::FakeBinance;
use trademind::testkit::fake_resend::FakeResend;
use trademind::testkit::fake_tavily::FakeTavily;
use trademind::testkit::fake_xai::{FakeXai, Script};

use crate::exchange_common::{client_config, client_for, executor_config, fake};

const MODEL: &str = "grok-test";
const XAI_KEY: &str = "xai-test-key";
const TAVILY_KEY: &str = "tvly-test-key";
const RESEND_KEY: &str = "re_test_0123456789";
/// 2025-01-15T00:00:00Z
pub(crate) const NOW: i64 = 1_736_899_200_000;
pub(crate) const ORDER: &str = "POST /api/v3/order";
pub(crate) const OCO: &str = "POST /api/v3/orderList/oco";

pub(crate) struct Rig {
    pub(crate) binance: FakeBinance,
    pub(crate) xai: FakeXai,
    pub(crate) tavily: FakeTavily,
    pub(crate) resend: FakeResend,
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) bus: EventBus,
}

impl Rig {
    pub(crate) async fn new() -> Rig {
        Rig {
            binance: fake().await,
            xai: FakeXai::start(XAI_KEY, &[MODEL]).await.unwrap(),
            tavily: FakeTavily::start(TAVILY_KEY).await.unwrap(),
            resend: FakeResend::start(RESEND_KEY).await.unwrap(),
            store: Arc::new(Mutex::new(Store::open_in_memory().unwrap())),
            bus: EventBus::new(256),
        }
    }

    pub(crate) fn settings(&self, live: bool) -> Settings {
        let mut s = Settings::default();
        s.trading.live = live;
        s.exchange.executor = executor_config();
        s.notifications = NotificationConfig {
            enabled: true,
            base_url: self.resend.url(),
            from: "TradeMind <alerts@example.com>".into(),
            to: vec!["me@example.com".into()],
            ..NotificationConfig::default()
        };
        s
    }

    pub(crate) fn service_with(
        &self,
        mode: TradingMode,
        live: bool,
    ) -> TradingService<BinanceClient> {
        self.service_custom(
            mode,
            self.settings(live),
            client_config(&self.binance),
            self.store.clone(),
        )
    }

    /// A service with these settings, client and database (another process's view).
    pub(crate) fn service_custom(
        &self,
        mode: TradingMode,
        settings: Settings,
        client: trademind::services::exchange::binance::BinanceConfig,
        store: Arc<Mutex<Store>>,
    ) -> TradingService<BinanceClient> {
        let mailer = ResendClient::new(
            &settings.notifications.base_url,
            RESEND_KEY,
            Duration::from_secs(5),
        )
        .unwrap();
        TradingService::new(TradingDeps {
            exchange: Arc::new(client_for(&self.binance, client)),
            store,
            connection: "binance-testnet".into(),
            mode,
            settings: Arc::new(settings),
            bus: self.bus.clone(),
            mailer: Some(mailer),
        })
    }

    /// A reconciled testnet service that has executed the LLM's BUY (0.8) at NOW: the entry
    /// and its OCO.
    async fn bought(&self) -> (TradingService<BinanceClient>, ExecutionReport) {
        let service = self.service().await;
        let (input, out) = self.decide(buy(0.8)).await;
        let report = service
            .execute_decision(&input, &out, None, NOW)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::Executed,
            "{}",
            report.message
        );
        assert_eq!(report.order_ids.len(), 3, "entry + two OCO legs");
        (service, report)
    }

    /// A testnet service, reconciled (nothing to reconcile on a fresh database).
    pub(crate) async fn service(&self) -> TradingService<BinanceClient> {
        let service = self.service_with(TradingMode::Testnet, false);
        assert!(service.reconcile(NOW).await.unwrap().reconciled);
        service
    }

    fn engine(&self) -> LlmEngine {
        let config = LlmConfig {
            base_url: self.xai.base_url(),
            model: MODEL.into(),
            timeout_secs: 1,
            retry_base_ms: 10,
            tavily: TavilyConfig {
                base_url: self.tavily.base_url(),
                ..TavilyConfig::default()
            },
            ..LlmConfig::default()
        };
        let tavily = TavilyClient::new(config.tavily.clone(), ApiKey::new(TAVILY_KEY)).unwrap();
        LlmEngine::new(
            LlmClient::new(config, ApiKey::new(XAI_KEY)).unwrap(),
            Some(tavily),
            self.store.clone(),
            DEFAULT_TEMPLATE.to_string(),
            RulesEngine::default(),
        )
    }

    /// The fake LLM answers `decision`; the real engine parses and validates it.
    pub(crate) async fn decide(&self, decision: Value) -> (DecisionInput, EngineOutput) {
        self.decide_on(input(), decision).await
    }

    /// As `decide`, on another snapshot (the LLM cache answers a repeated prompt itself).
    pub(crate) async fn decide_on(
        &self,
        input: DecisionInput,
        decision: Value,
    ) -> (DecisionInput, EngineOutput) {
        self.xai.push([Script::Decision(decision)]);
        let out = self.engine().decide(&input).await;
        assert!(out.validated.is_valid(), "{:?}", out.validated.verdict);
        (input, out)
    }

    pub(crate) fn mails_with(&self, needle: &str) -> usize {
        mails_with(&self.resend, needle)
    }

    pub(crate) fn open_positions(&self) -> Vec<positions::PositionRow> {
        positions::open_positions(self.store.lock().unwrap().conn()).unwrap()
    }

    fn decision(&self, id: i64) -> recorder::DecisionRow {
        recorder::get(self.store.lock().unwrap().conn(), id)
            .unwrap()
            .unwrap()
    }
}

/// Mails sent through `resend` whose subject contains `needle`.
pub(crate) fn mails_with(resend: &FakeResend, needle: &str) -> usize {
    resend
        .sent()
        .iter()
        .filter(|m| m.body["subject"].as_str().unwrap_or("").contains(needle))
        .count()
}

pub(crate) fn input() -> DecisionInput {
    DecisionInput {
        symbol: Symbol::new("BTCUSDT").unwrap(),
        interval: Interval::H1,
        now_ms: NOW,
        price: Price::new(dec!(50000)),
        change_24h_pct: 1.0,
        indicators: IndicatorSnapshot {
            rsi: Some(55.0),
            ..Default::default()
        },
        higher_indicators: None,
        order_book: None,
        position: None,
        risk: RiskSnapshot::default(),
        recent_decisions: vec![],
        reflections: vec![],
        closed_candles: Vec::new(),
    }
}

pub(crate) fn buy(confidence: f64) -> Value {
    json!({
        "action": "BUY", "symbol": "BTCUSDT", "confidence": confidence, "position_size_pct": 10,
        "stop_loss": {"kind": "price", "value": 49000}, "take_profit": {"kind": "price", "value": 52000},
        "time_horizon": "swing", "reasoning": "breakout", "risk_factors": [], "sources": []
    })
}

#[tokio::test]
async fn a_buy_is_protected_by_an_oco_and_the_stop_fill_closes_it_with_pnl_and_one_mail() {
    let rig = Rig::new().await;
    let (service, report) = rig.bought().await;

    // The exchange holds the entry and the OCO list: a LIMIT_MAKER at 52 000 and a
    // STOP_LOSS_LIMIT triggering at 49 000 with its limit 0.5 % lower (48 755).
    let on_exchange = rig.binance.orders();
    assert_eq!(on_exchange.len(), 3);
    assert_eq!(on_exchange[0].order_type, OrderType::Market);
    assert_eq!(on_exchange[0].quantity, Qty(dec!(0.02)));
    let stop = on_exchange
        .iter()
        .find(|o| o.order_type == OrderType::StopLossLimit)
        .unwrap();
    let target = on_exchange
        .iter()
        .find(|o| o.order_type == OrderType::LimitMaker)
        .unwrap();
    assert_eq!(stop.stop_price, Some(Price(dec!(49000))));
    assert_eq!(stop.price, Some(Price(dec!(48755))));
    assert_eq!(target.price, Some(Price(dec!(52000))));
    assert_eq!(stop.quantity, Qty(dec!(0.01998)));
    assert_eq!(rig.binance.requests(OCO), 1);

    let open = rig.open_positions();
    assert_eq!(open.len(), 1);
    let p = &open[0].position;
    assert_eq!(p.quantity, Qty(dec!(0.01998)));
    assert_eq!(p.entry_price, Price(dec!(50000)));
    assert_eq!(p.fees_paid, Quote(dec!(1)));
    assert_eq!(p.stop_loss, Some(Price(dec!(49000))));
    assert_eq!(p.take_profit, Some(Price(dec!(52000))));
    let row = rig.decision(report.decision_id.unwrap());
    assert_eq!(row.fields.outcome, "executed");
    assert_eq!(row.fields.order_ids, report.order_ids);
    assert!(row.fields.risk_verdict.unwrap().contains("approved"));
    assert_eq!(rig.mails_with("bought"), 1);

    // The price falls through the stop on the exchange: it fills at 48 900 (taker).
    rig.binance.set_price("BTCUSDT", dec!(48900));
    let first = service.monitor_orders(NOW + 30_000).await.unwrap();
    assert_eq!(first.closed.len(), 1);
    assert_eq!(first.closed[0].leg, ProtectionLeg::StopLoss);
    assert_eq!(first.closed[0].exit_price, Price(dec!(48900)));
    // Exit: (48 900 − 50 000) × 0.01998 = −21.978 gross, fee 0.01998 × 48 900 × 0.001 =
    // 0.977022; with the entry fee (1): −1 − 21.978 − 0.977022 = −23.955022.
    assert_eq!(first.closed[0].realized_pnl, Quote(dec!(-23.955022)));
    assert!(rig.open_positions().is_empty());
    let closed = positions::closed_positions(rig.store.lock().unwrap().conn(), 5).unwrap();
    assert_eq!(closed[0].position.realized_pnl, Quote(dec!(-23.955022)));
    assert_eq!(closed[0].position.fees_paid, Quote(dec!(1.977022)));
    // The take-profit leg was expired by the exchange, and is marked so locally.
    let tp_row = orders::get(rig.store.lock().unwrap().conn(), &target.client_order_id)
        .unwrap()
        .unwrap();
    assert_eq!(tp_row.order.status, OrderStatus::Expired);

    let second = service.monitor_orders(NOW + 60_000).await.unwrap();
    assert!(second.closed.is_empty());
    assert_eq!(rig.mails_with("stop hit"), 1, "exactly one stop-hit mail");
}

#[tokio::test]
async fn a_rejected_oco_closes_the_position_at_market_and_alerts() {
    let rig = Rig::new().await;
    let service = rig.service().await;
    rig.binance.faults(|f| f.oco_insufficient_balance_next = 1);
    let (input, out) = rig.decide(buy(0.8)).await;
    let report = service
        .execute_decision(&input, &out, None, NOW)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::ProtectionFailed,
        "{}",
        report.message
    );
    assert!(report.message.contains("insufficient balance"));
    assert!(
        rig.open_positions().is_empty(),
        "no unprotected position left"
    );
    // Entry then the market sell of 0.01998 at 50 000 (fee 0.999): −1 − 0.999.
    let closed = positions::closed_positions(rig.store.lock().unwrap().conn(), 5).unwrap();
    assert_eq!(closed[0].position.realized_pnl, Quote(dec!(-1.999)));
    assert_eq!(rig.binance.requests(ORDER), 2);
    let exit = rig.binance.orders().pop().unwrap();
    assert_eq!((exit.side, exit.status), (Side::Sell, OrderStatus::Filled));
    assert_eq!(rig.mails_with("could not protect"), 1);
    assert_eq!(
        rig.decision(report.decision_id.unwrap()).fields.outcome,
        "protection_failed"
    );
}

#[tokio::test]
async fn a_risk_refusal_sends_no_order_and_records_the_verdict() {
    let rig = Rig::new().await;
    let service = rig.service().await;
    // Confidence 0.5 is under the 0.6 minimum.
    let (input, out) = rig.decide(buy(0.5)).await;
    let report = service
        .execute_decision(&input, &out, None, NOW)
        .await
        .unwrap();
    assert_eq!(report.outcome, ExecutionOutcome::Refused);
    assert!(report.message.contains("confidence"), "{}", report.message);
    assert_eq!(rig.binance.requests(ORDER), 0);
    assert_eq!(rig.binance.requests(OCO), 0);
    let row = rig.decision(report.decision_id.unwrap());
    assert_eq!(row.fields.outcome, "refused");
    let verdict: Value = serde_json::from_str(&row.fields.risk_verdict.unwrap()).unwrap();
    assert_eq!(verdict["verdict"]["verdict"], "refused");
}

#[tokio::test]
async fn paused_trading_sends_nothing_until_resumed() {
    let rig = Rig::new().await;
    let service = rig.service().await;
    service.pause("maintenance", NOW).unwrap();
    assert!(service.is_paused().unwrap());
    let (input, out) = rig.decide(buy(0.8)).await;
    let report = service
        .execute_decision(&input, &out, None, NOW)
        .await
        .unwrap();
    assert_eq!(report.outcome, ExecutionOutcome::Paused);
    assert_eq!(rig.binance.requests(ORDER), 0);
    // Another process (a second service on the same database) sees the pause.
    assert!(rig.service().await.is_paused().unwrap());

    service.resume(NOW + 1).unwrap();
    assert!(!service.is_paused().unwrap());
    let report = service
        .execute_decision(&input, &out, None, NOW + 2)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
}

#[tokio::test]
async fn a_stop_filled_while_down_is_reconciled_and_trading_waits_for_it() {
    let rig = Rig::new().await;
    {
        let service = rig.service().await;
        let (input, out) = rig.decide(buy(0.8)).await;
        let r = service
            .execute_decision(&input, &out, None, NOW)
            .await
            .unwrap();
        assert_eq!(r.outcome, ExecutionOutcome::Executed);
    } // the service stops
    rig.binance.set_price("BTCUSDT", dec!(48900));
    // An order row written just before a crash, never sent: the exchange does not know it.
    let lost = OrderRequest {
        client_order_id: "tm-e-lost".into(),
        symbol: Symbol::new("BTCUSDT").unwrap(),
        side: Side::Buy,
        order_type: OrderType::Market,
        quantity: Qty(dec!(0.001)),
        price: None,
        stop_price: None,
        time_in_force: None,
        trailing_delta: None,
    };
    orders::insert_pending(
        rig.store.lock().unwrap().conn(),
        &lost,
        "binance-testnet",
        NOW,
    )
    .unwrap();

    let restarted = rig.service_with(TradingMode::Testnet, false);
    let (input, out) = rig.decide(buy(0.8)).await;
    let before = restarted
        .execute_decision(&input, &out, None, NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        before.outcome,
        ExecutionOutcome::Paused,
        "nothing trades before reconciliation"
    );
    assert_eq!(rig.binance.requests(ORDER), 1);

    let report = restarted.reconcile(NOW + 2).await.unwrap();
    assert!(report.reconciled, "{:?}", report.unresolved);
    assert!(
        report.resolved.iter().any(|r| r.contains("stop_loss")),
        "{:?}",
        report.resolved
    );
    assert!(rig.open_positions().is_empty());
    let closed = positions::closed_positions(rig.store.lock().unwrap().conn(), 5).unwrap();
    assert_eq!(closed[0].position.realized_pnl, Quote(dec!(-23.955022)));
    let lost_row = orders::get(rig.store.lock().unwrap().conn(), "tm-e-lost")
        .unwrap()
        .unwrap();
    assert_eq!(lost_row.order.status, OrderStatus::Rejected);
    assert!(lost_row.error.unwrap().contains("never reached"));
    assert_eq!(rig.mails_with("stop hit"), 1);
}

#[tokio::test]
async fn an_unprotected_position_keeps_trading_paused_and_is_alerted() {
    let rig = Rig::new().await;
    let position = Position {
        symbol: Symbol::new("BTCUSDT").unwrap(),
        side: PositionSide::Long,
        quantity: Qty(dec!(0.01)),
        entry_price: Price(dec!(50000)),
        stop_loss: None,
        take_profit: None,
        realized_pnl: Quote::ZERO,
        fees_paid: Quote::ZERO,
        opened_at: NOW,
        closed_at: None,
    };
    positions::insert(
        rig.store.lock().unwrap().conn(),
        "binance-testnet",
        None,
        &position,
        NOW,
    )
    .unwrap();
    let service = rig.service_with(TradingMode::Testnet, false);
    let report = service.reconcile(NOW).await.unwrap();
    assert!(!report.reconciled);
    assert!(report.unresolved[0].contains("no protective order"));
    assert!(!service.is_reconciled());
    assert_eq!(rig.mails_with("discrepanc"), 1);
    let (input, out) = rig.decide(buy(0.8)).await;
    let r = service
        .execute_decision(&input, &out, None, NOW)
        .await
        .unwrap();
    assert_eq!(r.outcome, ExecutionOutcome::Paused);
    assert_eq!(rig.binance.requests(ORDER), 0);
}

#[tokio::test]
async fn production_with_live_false_refuses_to_send_anything() {
    let rig = Rig::new().await;
    let service = rig.service_with(TradingMode::Live, false);
    assert!(service.reconcile(NOW).await.unwrap().reconciled);
    let (input, out) = rig.decide(buy(0.8)).await;
    let requests_before: u32 = rig.binance.stats().requests.values().sum();
    let err = service
        .execute_decision(&input, &out, None, NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, TradingError::LiveGuard(_)));
    let text = err.to_string();
    assert!(text.contains("live = false"), "{text}");
    assert!(text.contains("refusing to send an order"), "{text}");
    let requests_after: u32 = rig.binance.stats().requests.values().sum();
    assert_eq!(requests_before, requests_after, "not a single request");
    let row = recorder::recent(rig.store.lock().unwrap().conn(), 1).unwrap();
    assert_eq!(row[0].fields.outcome, "blocked");
}

mod cli {
    use super::*;
    use crate::exchange_cli::trademind;
    use trademind::domain::trading::order::Order;

    fn json_of(cmd: &mut assert_cmd::Command) -> Value {
        let out = cmd.assert().success().get_output().stdout.clone();
        serde_json::from_slice(&out).unwrap()
    }

    /// A protected position as the trading service leaves it: the position and its stop leg.
    fn seed(db: &std::path::Path) {
        let store = Store::open(db).unwrap();
        let c = store.conn();
        let p = Position {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: PositionSide::Long,
            quantity: Qty(dec!(0.01998)),
            entry_price: Price(dec!(50000)),
            stop_loss: Some(Price(dec!(49000))),
            take_profit: None,
            realized_pnl: Quote(dec!(-1)),
            fees_paid: Quote(dec!(1)),
            opened_at: NOW,
            closed_at: None,
        };
        let id = positions::insert(c, "paper", None, &p, NOW).unwrap();
        let stop = OrderRequest {
            client_order_id: "tm-sl-cli".into(),
            symbol: p.symbol.clone(),
            side: Side::Sell,
            order_type: OrderType::StopLossLimit,
            quantity: Qty(dec!(0.01998)),
            price: Some(Price(dec!(48755))),
            stop_price: Some(Price(dec!(49000))),
            time_in_force: None,
            trailing_delta: None,
        };
        let links = orders::OrderLinks {
            purpose: trademind::domain::trading::order::OrderPurpose::StopLoss,
            position_id: Some(id),
            ..Default::default()
        };
        orders::insert_pending_linked(c, &stop, "paper", &links, NOW).unwrap();
        let placed = Order {
            client_order_id: stop.client_order_id.clone(),
            exchange_order_id: Some("7".into()),
            symbol: stop.symbol.clone(),
            side: Side::Sell,
            order_type: OrderType::StopLossLimit,
            status: OrderStatus::New,
            price: stop.price,
            stop_price: stop.stop_price,
            quantity: stop.quantity,
            filled_quantity: Qty::ZERO,
            cumulative_quote: Quote::ZERO,
            created_at: NOW,
            updated_at: NOW,
        };
        orders::update_from_exchange(c, &placed, NOW).unwrap();
    }

    #[test]
    fn positions_orders_and_trades_list_what_the_database_holds() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(
            json_of(trademind(d).args(["--json", "positions"])),
            json!([])
        );
        assert_eq!(json_of(trademind(d).args(["--json", "trades"])), json!([]));
        seed(&d.join("trademind.db"));

        let open = json_of(trademind(d).args(["--json", "positions"]));
        assert_eq!(open.as_array().unwrap().len(), 1);
        assert_eq!(open[0]["position"]["symbol"], "BTCUSDT");
        assert_eq!(open[0]["position"]["quantity"], "0.01998");
        assert_eq!(open[0]["position"]["stop_loss"], "49000");
        assert_eq!(
            json_of(trademind(d).args(["--json", "positions", "--closed"])),
            json!([])
        );
        let orders =
            json_of(trademind(d).args(["--json", "orders", "--open", "--symbol", "BTCUSDT"]));
        assert_eq!(orders[0]["order"]["client_order_id"], "tm-sl-cli");
        assert_eq!(orders[0]["purpose"], "stop_loss");
        assert_eq!(orders[0]["order"]["status"], "NEW");
        assert_eq!(
            json_of(trademind(d).args(["--json", "orders", "--symbol", "ETHUSDT"])),
            json!([])
        );
        let text = trademind(d).args(["positions"]).assert().success();
        let text = String::from_utf8(text.get_output().stdout.clone()).unwrap();
        // Prices at the symbol's tick with thousands separators (issue #18).
        assert!(
            text.contains("BTCUSDT") && text.contains("49,000.00"),
            "{text}"
        );
    }

    #[test]
    fn pause_is_a_manual_pause_apart_from_the_kill_switch_and_resume_lifts_both() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let paused = json_of(trademind(d).args(["--json", "pause", "--reason", "news"]));
        assert_eq!(paused["paused"], true);
        assert_eq!(paused["transition"]["to"], "halted");
        // `pause` is the operator's pause, kept apart from the kill switch (issue #17).
        assert_eq!(paused["transition"]["reason"], "manual_pause");
        let shown = json_of(trademind(d).args(["--json", "risk", "show"]));
        assert_eq!(shown["breaker"]["state"], "halted");
        assert_eq!(shown["breaker"]["reason"], "manual_pause");
        let resumed = json_of(trademind(d).args(["--json", "resume"]));
        assert_eq!(resumed["paused"], false);
        assert_eq!(resumed["transition"]["to"], "active");
        let again = json_of(trademind(d).args(["--json", "resume"]));
        assert_eq!(again["transition"], Value::Null);
        // `risk kill` stays the kill switch, and `resume` lifts it too.
        trademind(d).args(["risk", "kill"]).assert().success();
        let shown = json_of(trademind(d).args(["--json", "risk", "show"]));
        assert_eq!(shown["breaker"]["reason"], "manual_kill");
        let resumed = json_of(trademind(d).args(["--json", "resume"]));
        assert_eq!(resumed["paused"], false);
        assert_eq!(resumed["transition"]["to"], "active");
    }

    #[test]
    fn execute_on_paper_decides_offline_and_records_the_decision() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let v = json_of(trademind(d).args(["--json", "execute", "BTCUSDT"]));
        assert_eq!(v["engine"], "rules");
        // On the bundled candles' last hour neither the buy nor the sell rule fires: HOLD.
        assert_eq!(v["report"]["outcome"], "hold");
        let id = v["report"]["decision_id"].as_i64().unwrap();
        let decisions = json_of(trademind(d).args(["--json", "decisions"]));
        assert_eq!(decisions["decisions"][0]["id"], id);
        assert_eq!(decisions["decisions"][0]["outcome"], v["report"]["outcome"]);
        trademind(d).args(["cancel", "tm-nope"]).assert().failure();
        let failed = trademind(d).args(["close", "BTCUSDT"]).assert().failure();
        let stderr = String::from_utf8(failed.get_output().stderr.clone()).unwrap();
        assert!(stderr.contains("no open position in BTCUSDT"), "{stderr}");
    }
}

#[tokio::test]
async fn an_oco_whose_response_is_lost_is_found_by_querying_its_legs_not_resent() {
    use trademind::services::exchange::OcoRequest;
    use trademind::services::exchange::executor::OrderExecutor;
    let rig = Rig::new().await;
    rig.binance.faults(|f| f.oco_5xx_after_accept = 1);
    let client = Arc::new(client_for(&rig.binance, client_config(&rig.binance)));
    let executor = OrderExecutor::new(client, rig.store.clone(), "t", executor_config());
    let request = OcoRequest {
        list_client_order_id: "tm-oco-1".into(),
        symbol: Symbol::new("BTCUSDT").unwrap(),
        side: Side::Sell,
        quantity: Qty(dec!(0.01)),
        take_profit_client_order_id: "tm-tp-1".into(),
        take_profit_price: Price(dec!(52000)),
        stop_client_order_id: "tm-sl-1".into(),
        stop_price: Price(dec!(49000)),
        stop_limit_price: Price(dec!(48755)),
    };
    let list = executor
        .place_oco(&request, &orders::OrderLinks::default(), NOW)
        .await
        .unwrap();
    assert_eq!(list.orders.len(), 2);
    assert_eq!(rig.binance.requests(OCO), 1, "never sent twice");
    assert_eq!(rig.binance.requests("GET /api/v3/order"), 2);
    let db = rig.store.lock().unwrap();
    for (cid, purpose) in [("tm-tp-1", "take_profit"), ("tm-sl-1", "stop_loss")] {
        let row = orders::get(db.conn(), cid).unwrap().unwrap();
        assert_eq!(row.order.status, OrderStatus::New);
        assert_eq!(row.purpose.as_str(), purpose);
        assert_eq!(row.order_list_id.as_deref(), Some("tm-oco-1"));
    }
}

#[tokio::test]
async fn a_strategy_cycle_decides_on_closed_candles_and_marks_update_equity() {
    use trademind::store::strategies::{NewStrategy, add_strategy, strategy_by_name};
    let rig = Rig::new().await;
    // 100 hourly candles ending with one still open at NOW (it must not be used): its price
    // differs, so using it would show in the snapshot.
    let mut candles =
        trademind::testkit::fake_binance::flat_candles(dec!(50000), 100, Interval::H1, NOW);
    let open = Price(dec!(60000));
    let last = candles.last_mut().unwrap();
    (last.open, last.high, last.low, last.close) = (open, open, open, open);
    rig.binance.set_klines("BTCUSDT", candles);
    let service = rig.service().await;
    let id = {
        let db = rig.store.lock().unwrap();
        // The strategy is given the service's connection: it trades on no other.
        let connection = trademind::store::strategies::add_connection(
            db.conn(),
            "binance-testnet",
            "binance",
            true,
            None,
            NOW,
        )
        .unwrap();
        add_strategy(
            db.conn(),
            &NewStrategy {
                name: "s1".into(),
                symbols: vec!["BTCUSDT".into()],
                interval: "1h".into(),
                decision_engine: "llm".into(),
                parameters: json!({}),
                connection_id: Some(connection),
            },
            NOW,
        )
        .unwrap()
    };
    let strategy = strategy_by_name(rig.store.lock().unwrap().conn(), "s1")
        .unwrap()
        .unwrap();
    rig.xai.push([Script::Decision(buy(0.8))]);
    let engine = rig.engine();
    let report = service
        .run_cycle(&strategy, &engine, NOW + 1)
        .await
        .unwrap();
    assert_eq!(report.skipped, None);
    assert_eq!(report.executions.len(), 1, "{:?}", report.errors);
    let r = &report.executions[0];
    assert_eq!(r.outcome, ExecutionOutcome::Executed, "{}", r.message);
    let row = rig.decision(r.decision_id.unwrap());
    assert_eq!(row.fields.strategy_id, Some(id));
    let snapshot: Value = serde_json::from_str(&row.fields.input_snapshot).unwrap();
    // The candle opening at NOW closes an hour later: the snapshot ends with the one before.
    assert_eq!(snapshot["now_ms"], NOW + 1);
    assert_eq!(snapshot["price"], "50000");

    // Marks: 0.01998 BTC entered at 50 000 marked at 51 000 → unrealised +19.98. Equity:
    // 10 000 − 1 000 paid + 0.01998 × 51 000 = 9 000 + 1 018.98 = 10 018.98.
    rig.binance.set_price("BTCUSDT", dec!(51000));
    service.update_prices(NOW + 2).await.unwrap();
    let open = rig.open_positions();
    assert_eq!(open[0].unrealized_pnl, Quote(dec!(19.98)));
    assert_eq!(open[0].mark_price, Some(Price(dec!(51000))));
    let (equity, unrealised, _) =
        trademind::store::equity::latest(rig.store.lock().unwrap().conn(), "binance-testnet")
            .unwrap()
            .unwrap();
    assert_eq!(unrealised, Quote(dec!(19.98)));
    assert_eq!(equity, Quote(dec!(10018.98)));
    // A WebSocket mark seconds later reuses the balances: no second account request.
    let account_requests = rig.binance.requests("GET /api/v3/account");
    service
        .apply_marks(
            &[(Symbol::new("BTCUSDT").unwrap(), Price(dec!(52000)))],
            NOW + 3,
        )
        .await
        .unwrap();
    assert_eq!(
        rig.binance.requests("GET /api/v3/account"),
        account_requests
    );
    assert_eq!(rig.open_positions()[0].unrealized_pnl, Quote(dec!(39.96)));

    service.pause("test", NOW + 3).unwrap();
    let skipped = service
        .run_cycle(&strategy, &engine, NOW + 4)
        .await
        .unwrap();
    assert!(skipped.skipped.unwrap().contains("paused"));
}

#[tokio::test]
async fn a_sell_decision_cancels_the_protection_and_closes_at_market() {
    let rig = Rig::new().await;
    let service = Arc::new(rig.service().await);
    let (input, out) = rig.decide(buy(0.8)).await;
    let entry = service
        .execute_decision(&input, &out, None, NOW)
        .await
        .unwrap();
    assert_eq!(entry.outcome, ExecutionOutcome::Executed);
    rig.binance.set_price("BTCUSDT", dec!(51000));
    let later = DecisionInput {
        price: Price(dec!(51000)),
        now_ms: NOW + 1,
        ..input
    };
    let (input, out) = rig
        .decide_on(later, json!({
            "action": "SELL", "symbol": "BTCUSDT", "confidence": 0.8, "position_size_pct": 10,
            "stop_loss": {"kind": "price", "value": 52000}, "take_profit": {"kind": "price", "value": 48000},
            "time_horizon": "swing", "reasoning": "momentum faded", "risk_factors": [], "sources": []
        }))
        .await;
    // The service runs on spawned tasks in the daemon: its futures must be Send.
    let task = {
        let service = service.clone();
        tokio::spawn(async move { service.execute_decision(&input, &out, None, NOW + 1).await })
    };
    let report = task.await.unwrap().unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
    assert!(rig.open_positions().is_empty());
    // Both OCO legs are cancelled on the exchange before the market sell.
    let on_exchange = rig.binance.orders();
    let legs: Vec<_> = on_exchange
        .iter()
        .filter(|o| o.order_type != OrderType::Market)
        .collect();
    assert_eq!(legs.len(), 2);
    assert!(legs.iter().all(|o| o.status == OrderStatus::Canceled));
    // Sold 0.01998 at 51 000: +19.98 gross, fee 1.01898; with the entry fee 1: 17.96102.
    let closed = positions::closed_positions(rig.store.lock().unwrap().conn(), 5).unwrap();
    assert_eq!(closed[0].position.realized_pnl, Quote(dec!(17.96102)));
    let trades = orders::trades(rig.store.lock().unwrap().conn(), 10).unwrap();
    assert_eq!(trades[0].purpose.as_str(), "exit");
    assert_eq!(trades[0].realized_pnl, Some(Quote(dec!(18.96102))));
}

#[tokio::test]
async fn a_daily_loss_past_the_limit_trips_the_breaker_and_mails_once() {
    let rig = Rig::new().await;
    let service = rig.service().await;
    // The day started at 10 400 of equity and a trade closed today lost 400: 3.85 % of the
    // start-of-day equity, past the 3 % daily loss limit.
    {
        let db = rig.store.lock().unwrap();
        trademind::store::equity::insert(
            db.conn(),
            "binance-testnet",
            Quote(dec!(10400)),
            Quote::ZERO,
            NOW - 10,
        )
        .unwrap();
        let lost = Position {
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: PositionSide::Long,
            quantity: Qty::ZERO,
            entry_price: Price(dec!(50000)),
            stop_loss: None,
            take_profit: None,
            realized_pnl: Quote(dec!(-400)),
            fees_paid: Quote::ZERO,
            opened_at: NOW + 5,
            closed_at: Some(NOW + 10),
        };
        positions::insert(db.conn(), "binance-testnet", None, &lost, NOW + 10).unwrap();
    }
    // NOW is midnight UTC: the loss closed today, the 10 400 was the equity at midnight.
    let report = service.monitor_orders(NOW + 20).await.unwrap();
    assert_eq!(report.breaker.len(), 1);
    assert_eq!(report.breaker[0].reason.to_string(), "daily_loss_limit");
    let again = service.monitor_orders(NOW + 30_000).await.unwrap();
    assert!(again.breaker.is_empty(), "already halted");
    assert_eq!(rig.mails_with("circuit breaker tripped"), 1);
    let (input, out) = rig.decide(buy(0.8)).await;
    let r = service
        .execute_decision(&input, &out, None, NOW + 60_000)
        .await
        .unwrap();
    assert_eq!(
        r.outcome,
        ExecutionOutcome::Refused,
        "the breaker refuses new entries"
    );
    assert_eq!(rig.binance.requests(ORDER), 0);
}

#[tokio::test]
async fn adding_to_a_position_replaces_its_protection_with_one_for_the_whole_quantity() {
    let rig = Rig::new().await;
    let service = rig.service().await;
    let (input, out) = rig.decide(buy(0.8)).await;
    let first = service
        .execute_decision(&input, &out, None, NOW)
        .await
        .unwrap();
    assert_eq!(
        first.outcome,
        ExecutionOutcome::Executed,
        "{}",
        first.message
    );
    let later = DecisionInput {
        now_ms: NOW + 1,
        ..input
    };
    let (input, out) = rig.decide_on(later, buy(0.8)).await;
    let second = service
        .execute_decision(&input, &out, None, NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        second.outcome,
        ExecutionOutcome::Executed,
        "{}",
        second.message
    );
    // One position holding both entries: 0.01998 from the first, and 0.01999 bought less the
    // 0.1 % base-asset fee (0.00001999) = 0.01997001 from the second (sized on the equity left).
    let open = rig.open_positions();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].position.quantity, Qty(dec!(0.03995001)));
    // The first OCO's legs were cancelled; the live protection covers the whole quantity.
    let on_exchange = rig.binance.orders();
    let legs: Vec<_> = on_exchange
        .iter()
        .filter(|o| o.order_type != OrderType::Market)
        .collect();
    assert_eq!(legs.len(), 4, "two OCO lists");
    let live: Vec<_> = legs
        .iter()
        .filter(|o| o.status == OrderStatus::New)
        .collect();
    assert_eq!(live.len(), 2);
    // Rounded down to the 0.00001 lot step.
    assert!(live.iter().all(|o| o.quantity == Qty(dec!(0.03995))));
    assert_eq!(
        legs.iter()
            .filter(|o| o.status == OrderStatus::Canceled)
            .count(),
        2
    );
}

/// A paper account quoted in EUR (a quote asset the symbol-splitting fallback does not know)
/// that also holds USDT: 1 000 EUR, 5 000 USDT; ETHEUR at 2 000, BTCUSDT at 50 000.
fn eur_account() -> (TradingService<PaperExchange>, Arc<Mutex<Store>>) {
    let config = PaperConfig {
        slippage_bps: rust_decimal::Decimal::ZERO,
        initial_balances: [
            ("EUR".to_string(), dec!(1000)),
            ("USDT".to_string(), dec!(5000)),
        ]
        .into_iter()
        .collect(),
        symbols: vec![],
        ..PaperConfig::default()
    };
    let paper = PaperExchange::in_memory(&config);
    let etheur = Symbol::new("ETHEUR").unwrap();
    let btcusdt = Symbol::new("BTCUSDT").unwrap();
    paper
        .add_symbol(etheur.clone(), SymbolFilters::permissive("ETH", "EUR"))
        .unwrap();
    paper
        .add_symbol(btcusdt.clone(), SymbolFilters::permissive("BTC", "USDT"))
        .unwrap();
    paper.on_price(&etheur, Price(dec!(2000))).unwrap();
    paper.on_price(&btcusdt, Price(dec!(50000))).unwrap();
    let mut settings = Settings::default();
    settings.trading.symbols = vec!["ETHEUR".into(), "BTCUSDT".into()];
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let service = TradingService::new(TradingDeps {
        exchange: Arc::new(paper),
        store: store.clone(),
        connection: "paper".into(),
        mode: TradingMode::Paper,
        settings: Arc::new(settings),
        bus: EventBus::new(16),
        mailer: None,
    });
    (service, store)
}

async fn risk_equity(
    service: &TradingService<PaperExchange>,
    store: &Mutex<Store>,
    symbol: &str,
) -> Quote {
    let mut settings = Settings::default();
    settings.trading.symbols = vec!["ETHEUR".into(), "BTCUSDT".into()];
    build_risk_context(
        service.exchange().as_ref(),
        store,
        &settings,
        service.connection(),
        &Symbol::new(symbol).unwrap(),
        None,
        None,
        NOW,
    )
    .await
    .unwrap()
    .equity
}

fn recorded_equity(store: &Mutex<Store>) -> (Quote, Quote) {
    let (equity, unrealised, _) =
        trademind::store::equity::latest(store.lock().unwrap().conn(), "paper")
            .unwrap()
            .unwrap();
    (equity, unrealised)
}

#[tokio::test]
async fn equity_is_measured_in_the_connections_quote_currency_whatever_symbol_is_decided() {
    let (service, store) = eur_account();
    // Flat: the EUR balance alone, not the 5 000 USDT, for either symbol and for the series.
    assert_eq!(
        risk_equity(&service, &store, "ETHEUR").await,
        Quote(dec!(1000))
    );
    assert_eq!(
        risk_equity(&service, &store, "BTCUSDT").await,
        Quote(dec!(1000))
    );
    service.update_prices(NOW).await.unwrap();
    assert_eq!(recorded_equity(&store), (Quote(dec!(1000)), Quote::ZERO));

    // 0.5 ETH bought at 1 800 (booked directly), marked at 2 000: worth 1 000 EUR, +100 open.
    let fill = trademind::domain::trading::PositionFill {
        symbol: Symbol::new("ETHEUR").unwrap(),
        side: Side::Buy,
        price: Price(dec!(1800)),
        quantity: Qty(dec!(0.5)),
        fee: Quote::ZERO,
        time: NOW,
    };
    let position =
        trademind::domain::trading::PositionService::open(&fill, PositionSide::Long).unwrap();
    positions::insert(store.lock().unwrap().conn(), "paper", None, &position, NOW).unwrap();
    // Deciding ETHEUR marks it at its ticker: 1 000 EUR + 0.5 × 2 000 = 2 000 EUR. Deciding
    // BTCUSDT leaves it at its entry (no mark stored yet): 1 000 + 0.5 × 1 800 = 1 900 EUR.
    assert_eq!(
        risk_equity(&service, &store, "ETHEUR").await,
        Quote(dec!(2000))
    );
    assert_eq!(
        risk_equity(&service, &store, "BTCUSDT").await,
        Quote(dec!(1900))
    );
    // The equity series records the same 2 000 EUR, with +100 open; the stored mark then
    // prices it for any symbol's decision.
    service.update_prices(NOW + 1).await.unwrap();
    assert_eq!(
        recorded_equity(&store),
        (Quote(dec!(2000)), Quote(dec!(100)))
    );
    assert_eq!(
        risk_equity(&service, &store, "BTCUSDT").await,
        Quote(dec!(2000))
    );
}

#[tokio::test]
async fn order_rows_are_stamped_with_the_callers_clock_not_the_wall_clock() {
    let rig = Rig::new().await;
    let (service, _) = rig.bought().await;
    // NOW is 2025-01-15: a replay (the demo) passes its candle time, and the rows keep it.
    let rows = orders::all(rig.store.lock().unwrap().conn()).unwrap();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(
            (row.order.created_at, row.order.updated_at),
            (NOW, NOW),
            "{}",
            row.order.client_order_id
        );
    }
    // The stop fills; the monitor pass at NOW + 30 s settles both legs at that time.
    rig.binance.set_price("BTCUSDT", dec!(48900));
    service.monitor_orders(NOW + 30_000).await.unwrap();
    let rows = orders::all(rig.store.lock().unwrap().conn()).unwrap();
    let legs: Vec<_> = rows
        .iter()
        .filter(|r| r.purpose.as_str() != "entry")
        .collect();
    assert_eq!(legs.len(), 2);
    for leg in legs {
        assert_eq!(leg.order.updated_at, NOW + 30_000, "{}", leg.purpose);
        assert_eq!(leg.order.created_at, NOW);
    }
}
