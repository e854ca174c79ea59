//! Limit and post-only entries live (issue #19): a strategy with `entry_limit_bps` enters with a
//! resting limit buy under the decision's price on the paper exchange and on the fake Binance
//! through the real REST client; a part that fills is booked and protected for exactly what
//! filled, the protection is replaced once for the total when more fills, an order past its
//! time-out is cancelled, and a post-only order that would take is refused by the exchange.
//!
//! Numbers (10 000 USDT, BTCUSDT decided at 50 000, fee 0.1 % in BTC on a buy, default risk
//! limits): the decision asks 10 % of equity with the stop at 49 000 and the target at 52 000. `entry_limit_bps = 25` puts the limit at 50 000 × 0.9975 = 49 875.00. The 10 %
//! position cap (1 000 USDT) binds over the 1 % risk budget, and the entry is sized at its
//! limit as a market entry would be at that price: 1 000 / 49 875 = 0.020050125.. BTC, floored
//! to the lot: 0.02005012 on paper (lot 0.00000001), 0.02005 on the fake (lot 0.00001).

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::{Arc, Mutex};

use trademind::app::bus::EventBus;
use trademind::app::decide::EngineOutput;
use trademind::app::trading::{ExecutionOutcome, TradingDeps, TradingService};
use trademind::config::Settings;
use trademind::domain::decision::{
    DecisionInput, IndicatorSnapshot, RiskSnapshot, ValidationLimits, parse_and_validate,
};
use trademind::domain::market::Interval;
use trademind::domain::trading::order::{OrderPurpose, OrderStatus, OrderType};
use trademind::domain::trading::{SymbolFilters, TradingMode};
use trademind::domain::{Price, Qty, Symbol};
use trademind::services::exchange::Exchange;
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::store::strategies::{NewStrategy, add_connection, add_strategy};
use trademind::store::{Store, orders, positions};

/// 2025-01-15 01:00 UTC.
const START: i64 = 1_736_899_200_000 + 3_600_000;
const HOUR: i64 = 3_600_000;
const LIMIT: Decimal = dec!(49875);
/// The paper entry: 1 000 / 49 875 on the lot of 0.00000001.
const PAPER_QTY: Decimal = dec!(0.02005012);
const FEE: Decimal = dec!(0.001);

fn strategy_on(
    store: &Mutex<Store>,
    parameters: serde_json::Value,
    connection_id: Option<i64>,
) -> i64 {
    add_strategy(
        store.lock().unwrap().conn(),
        &NewStrategy {
            name: "dipper".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            decision_engine: "llm".into(),
            parameters,
            connection_id,
        },
        START,
    )
    .unwrap()
}

fn input(now_ms: i64) -> DecisionInput {
    DecisionInput {
        symbol: Symbol::new("BTCUSDT").unwrap(),
        interval: Interval::H1,
        now_ms,
        price: Price(dec!(50000)),
        change_24h_pct: 0.0,
        indicators: IndicatorSnapshot::default(),
        higher_indicators: None,
        order_book: None,
        position: None,
        risk: RiskSnapshot::default(),
        recent_decisions: vec![],
        reflections: vec![],
        closed_candles: Vec::new(),
    }
}

/// BUY 10 % with the stop at `stop` and the target at `target`.
fn buy_decision(input: &DecisionInput, stop: u32, target: u32) -> EngineOutput {
    let text = serde_json::json!({
        "action": "BUY", "symbol": "BTCUSDT", "confidence": 0.8,
        "position_size_pct": 10,
        "stop_loss": {"kind": "price", "value": stop},
        "take_profit": {"kind": "price", "value": target},
        "time_horizon": "swing", "reasoning": "limit entry test", "risk_factors": [], "sources": []
    });
    let validated = parse_and_validate(
        &text.to_string(),
        &input.symbol,
        input.price,
        &ValidationLimits::default(),
    );
    assert!(validated.is_valid(), "{:?}", validated.verdict);
    EngineOutput::new("rules", validated)
}

/// Open protection legs of a position: (purpose, quantity, stop price, limit price).
fn live_legs(
    store: &Mutex<Store>,
    position_id: i64,
) -> Vec<(OrderPurpose, Decimal, Option<Price>, Option<Price>)> {
    let mut legs: Vec<_> = orders::of_position(store.lock().unwrap().conn(), position_id)
        .unwrap()
        .into_iter()
        .filter(|o| o.purpose.is_protection() && o.order.status.is_open())
        .map(|o| {
            (
                o.purpose,
                o.order.quantity.get(),
                o.order.stop_price,
                o.order.price,
            )
        })
        .collect();
    legs.sort_by_key(|l| l.0.as_str());
    legs
}

/// Every order row of the test's database that is an entry.
fn entries(store: &Mutex<Store>) -> Vec<orders::StoredOrder> {
    orders::all(store.lock().unwrap().conn())
        .unwrap()
        .into_iter()
        .filter(|o| o.purpose == OrderPurpose::Entry)
        .collect()
}

fn open_positions(store: &Mutex<Store>) -> Vec<positions::PositionRow> {
    positions::open_positions(store.lock().unwrap().conn()).unwrap()
}

/// Paper: 10 000 USDT, BTCUSDT at 50 000, fee 0.1 %, permissive filters (lot 0.00000001,
/// tick 0.01), no slippage.
fn paper_service() -> (
    TradingService<PaperExchange>,
    Arc<PaperExchange>,
    Arc<Mutex<Store>>,
    Symbol,
) {
    let config = PaperConfig {
        slippage_bps: Decimal::ZERO,
        initial_balances: [("USDT".to_string(), dec!(10000))].into_iter().collect(),
        symbols: vec![],
        ..PaperConfig::default()
    };
    let paper = Arc::new(PaperExchange::in_memory(&config));
    let btc = Symbol::new("BTCUSDT").unwrap();
    paper
        .add_symbol(btc.clone(), SymbolFilters::permissive("BTC", "USDT"))
        .unwrap();
    paper.on_price(&btc, Price(dec!(50000))).unwrap();
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    (service_on(&paper, &store), paper, store, btc)
}

fn paper_settings() -> Settings {
    let mut settings = Settings::default();
    settings.trading.symbols = vec!["BTCUSDT".into()];
    settings
}

/// A trading service (one process's) on this paper account and database.
fn service_on(
    paper: &Arc<PaperExchange>,
    store: &Arc<Mutex<Store>>,
) -> TradingService<PaperExchange> {
    TradingService::new(TradingDeps {
        exchange: paper.clone(),
        store: store.clone(),
        connection: "paper".into(),
        mode: TradingMode::Paper,
        settings: Arc::new(paper_settings()),
        bus: EventBus::new(256),
        mailer: None,
    })
}

/// The strategy's BUY on the paper service (stop 49 000, target 52 000).
async fn paper_buy(
    service: &TradingService<PaperExchange>,
    strategy: i64,
    now: i64,
) -> trademind::app::trading::ExecutionReport {
    let input = input(now);
    service
        .execute_decision(
            &input,
            &buy_decision(&input, 49000, 52000),
            Some(strategy),
            now,
        )
        .await
        .unwrap()
}

/// The OCO protecting `qty`: stop 49 000 with its limit 0.5 % lower (48 755), target 52 000.
fn oco(qty: Decimal) -> Vec<(OrderPurpose, Decimal, Option<Price>, Option<Price>)> {
    vec![
        (
            OrderPurpose::StopLoss,
            qty,
            Some(Price(dec!(49000))),
            Some(Price(dec!(48755))),
        ),
        (
            OrderPurpose::TakeProfit,
            qty,
            None,
            Some(Price(dec!(52000))),
        ),
    ]
}

/// The paper OCO protecting `held` BTC on the lot (0.00000001; what is under it is dust).
fn paper_oco(held: Decimal) -> Vec<(OrderPurpose, Decimal, Option<Price>, Option<Price>)> {
    let step = dec!(0.00000001);
    oco((held / step).floor() * step)
}

/// The entry rests at 49 875 (nothing bought, nothing protected, a second BUY refused while it
/// rests); the next candle trades down to 49 875 and it fills there as the maker: 0.02005012
/// BTC bought, fee 0.02005012 × 0.001 = 0.00002005012 BTC, 0.02003006988 held at 49 875, cost
/// 0.02005012 × 49 875 = 999.99973500 USDT; the OCO protects all 0.02003006988 held.
#[tokio::test]
async fn paper_limit_entry_rests_then_fills_at_its_limit_and_is_protected() {
    let (service, paper, store, btc) = paper_service();
    let id = strategy_on(&store, serde_json::json!({"entry_limit_bps": 25}), None);
    assert!(service.reconcile(START).await.unwrap().reconciled);
    let report = paper_buy(&service, id, START).await;
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Resting,
        "{}",
        report.message
    );
    assert!(report.message.contains("rests"), "{}", report.message);
    let entry = &entries(&store)[0];
    assert_eq!(
        (
            entry.order.order_type,
            entry.order.price,
            entry.order.quantity.get(),
            entry.order.status
        ),
        (
            OrderType::Limit,
            Some(Price(LIMIT)),
            PAPER_QTY,
            OrderStatus::New
        )
    );
    let on_paper = paper.query_order(&btc, &entry.order.client_order_id).await;
    assert_eq!(on_paper.unwrap().status, OrderStatus::New);
    assert!(open_positions(&store).is_empty(), "nothing filled yet");

    // A second BUY while the entry rests does not stack another entry.
    let again = paper_buy(&service, id, START + 1_000).await;
    assert_eq!(
        again.outcome,
        ExecutionOutcome::NothingToDo,
        "{}",
        again.message
    );
    assert!(again.message.contains("rests"), "{}", again.message);
    assert_eq!(entries(&store).len(), 1);

    // The next candle: 49 900 does not reach the limit, 49 875 does.
    assert!(paper.on_price(&btc, Price(dec!(49900))).unwrap().is_empty());
    let fills = paper.on_price(&btc, Price(LIMIT)).unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(
        (
            fills[0].price.get(),
            fills[0].quantity.get(),
            fills[0].is_maker
        ),
        (LIMIT, PAPER_QTY, true)
    );
    assert_eq!(fills[0].fee.get(), dec!(0.00002005012));
    service.monitor_orders(START + HOUR).await.unwrap();
    let rows = open_positions(&store);
    assert_eq!(rows.len(), 1);
    let held = dec!(0.02003006988);
    assert_eq!(rows[0].position.quantity.get(), held);
    assert_eq!(rows[0].position.entry_price.get(), LIMIT);
    assert_eq!(rows[0].strategy_id, Some(id));
    assert_eq!(live_legs(&store, rows[0].id), paper_oco(held));
    let usdt = trademind::services::exchange::balance_of(&paper.balances().await.unwrap(), "USDT");
    assert_eq!(usdt.total(), dec!(10000) - dec!(999.999735));
}

/// `entry_timeout_candles = 2`: a candle later the entry still rests; two candles after it was
/// placed the monitor cancels it: no position, no protection, no fill, no fee, the 10 000 USDT
/// whole and free again.
#[tokio::test]
async fn paper_limit_entry_never_reached_is_cancelled_at_its_time_out() {
    let (service, paper, store, btc) = paper_service();
    let id = strategy_on(
        &store,
        serde_json::json!({"entry_limit_bps": 25, "entry_timeout_candles": 2}),
        None,
    );
    assert!(service.reconcile(START).await.unwrap().reconciled);
    let report = paper_buy(&service, id, START).await;
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Resting,
        "{}",
        report.message
    );
    let cid = entries(&store)[0].order.client_order_id.clone();
    paper.on_price(&btc, Price(dec!(49900))).unwrap();
    service.monitor_orders(START + HOUR).await.unwrap();
    assert_eq!(entries(&store)[0].order.status, OrderStatus::New);
    paper.on_price(&btc, Price(dec!(50100))).unwrap();
    service.monitor_orders(START + 2 * HOUR).await.unwrap();
    let entry = &entries(&store)[0];
    assert_eq!(entry.order.status, OrderStatus::Canceled);
    assert_eq!(entry.order.filled_quantity, Qty::ZERO);
    assert_eq!(
        paper.query_order(&btc, &cid).await.unwrap().status,
        OrderStatus::Canceled
    );
    assert!(open_positions(&store).is_empty());
    assert!(
        paper.my_trades(&btc).await.unwrap().is_empty(),
        "no fill, no fee"
    );
    let balances = paper.balances().await.unwrap();
    let usdt = trademind::services::exchange::balance_of(&balances, "USDT");
    assert_eq!((usdt.free, usdt.locked), (dec!(10000), Decimal::ZERO));
    assert_eq!(
        trademind::services::exchange::balance_of(&balances, "BTC").total(),
        Decimal::ZERO
    );
    // Once it is gone the strategy may enter again.
    let again = paper_buy(&service, id, START + 2 * HOUR).await;
    assert_eq!(
        again.outcome,
        ExecutionOutcome::Resting,
        "{}",
        again.message
    );
}

/// `post_only`: the price has fallen to 49 800 by the time the entry is sent, so a
/// LIMIT_MAKER at 49 875 would take: the exchange refuses it, nothing is bought, the decision
/// says so, and no market order follows.
#[tokio::test]
async fn paper_post_only_entry_that_would_take_is_refused_and_not_sent_at_market() {
    let (service, paper, store, btc) = paper_service();
    let id = strategy_on(
        &store,
        serde_json::json!({"entry_limit_bps": 25, "post_only": true}),
        None,
    );
    assert!(service.reconcile(START).await.unwrap().reconciled);
    paper.on_price(&btc, Price(dec!(49800))).unwrap();
    let report = paper_buy(&service, id, START).await;
    assert_eq!(
        report.outcome,
        ExecutionOutcome::NotFilled,
        "{}",
        report.message
    );
    assert!(
        report.message.contains("would immediately match and take")
            && report.message.contains("nothing bought"),
        "{}",
        report.message
    );
    let rows = entries(&store);
    assert_eq!(rows.len(), 1, "no retry at market");
    assert_eq!(rows[0].order.order_type, OrderType::LimitMaker);
    assert_eq!(rows[0].order.status, OrderStatus::Rejected);
    assert!(open_positions(&store).is_empty());
    assert!(paper.my_trades(&btc).await.unwrap().is_empty());
    // The decision is stored with what happened.
    let decision = report.decision_id.unwrap();
    let row = trademind::store::decisions::get(store.lock().unwrap().conn(), decision)
        .unwrap()
        .unwrap();
    assert_eq!(row.fields.outcome, "not_filled");
    assert!(
        row.fields
            .risk_verdict
            .as_deref()
            .is_some_and(|v| v.contains("nothing bought")),
        "{:?}",
        row.fields.risk_verdict
    );

    // At 50 000 the same post-only entry rests under the price.
    paper.on_price(&btc, Price(dec!(50000))).unwrap();
    let report = paper_buy(&service, id, START + HOUR).await;
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Resting,
        "{}",
        report.message
    );
    assert!(report.message.contains("rests"), "{}", report.message);
    assert_eq!(entries(&store)[1].order.status, OrderStatus::New);
}

/// A trade of 0.008 BTC at 49 875 fills the entry in part: the position holds 0.008 × 0.999 =
/// 0.007992 BTC and the OCO protects exactly that. A second trade fills the rest (0.01205012):
/// the OCO is replaced once, for the whole 0.02003006988 (0.02003006 on the lot). A strategy whose entry fills in part
/// and then times out keeps (and protects) the part: see the next test.
#[tokio::test]
async fn paper_partly_filled_entry_is_protected_for_what_filled_then_for_the_total() {
    let (service, paper, store, btc) = paper_service();
    let id = strategy_on(&store, serde_json::json!({"entry_limit_bps": 25}), None);
    assert!(service.reconcile(START).await.unwrap().reconciled);
    paper_buy(&service, id, START).await;
    let fills = paper
        .on_trade(&btc, Price(LIMIT), Qty(dec!(0.008)))
        .unwrap();
    assert_eq!(fills.len(), 1);
    service.monitor_orders(START + 60_000).await.unwrap();
    let entry = &entries(&store)[0];
    assert_eq!(entry.order.status, OrderStatus::PartiallyFilled);
    assert_eq!(entry.order.filled_quantity.get(), dec!(0.008));
    let rows = open_positions(&store);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].position.quantity.get(), dec!(0.007992));
    assert_eq!(live_legs(&store, rows[0].id), paper_oco(dec!(0.007992)));
    // What filled is the strategy's: nothing is unmanaged while the rest rests.
    let report = service.reconcile(START + 90_000).await.unwrap();
    assert!(report.reconciled, "{report:?}");
    assert!(report.unmanaged.is_empty(), "{:?}", report.unmanaged);
    let first_oco: Vec<String> = orders::of_position(store.lock().unwrap().conn(), rows[0].id)
        .unwrap()
        .into_iter()
        .filter(|o| o.purpose.is_protection())
        .map(|o| o.order.client_order_id)
        .collect();
    // A pass with nothing new changes nothing.
    service.monitor_orders(START + 120_000).await.unwrap();
    assert_eq!(live_legs(&store, rows[0].id), paper_oco(dec!(0.007992)));

    // The rest fills: one position, protected once for the new total.
    paper.on_price(&btc, Price(dec!(49870))).unwrap();
    service.monitor_orders(START + 180_000).await.unwrap();
    let rows = open_positions(&store);
    assert_eq!(rows.len(), 1);
    let held = PAPER_QTY * (Decimal::ONE - FEE);
    assert_eq!(rows[0].position.quantity.get(), held);
    assert_eq!(rows[0].position.entry_price.get(), LIMIT);
    assert_eq!(live_legs(&store, rows[0].id), paper_oco(held));
    let legs = orders::of_position(store.lock().unwrap().conn(), rows[0].id).unwrap();
    for cid in &first_oco {
        let old = legs
            .iter()
            .find(|o| &o.order.client_order_id == cid)
            .unwrap();
        assert!(!old.order.status.is_open(), "the first OCO was taken down");
    }
    assert_eq!(
        legs.iter().filter(|o| o.purpose.is_protection()).count(),
        4,
        "one OCO per fill learnt of: replaced once"
    );
    assert_eq!(entries(&store)[0].booked_quantity.get(), PAPER_QTY);
}

/// A part fills (0.005 BTC), then the time-out (one candle) passes: the rest is cancelled, the
/// position keeps 0.005 × 0.999 = 0.004995 BTC under its OCO, and only the part was paid for.
#[tokio::test]
async fn paper_partly_filled_entry_timed_out_keeps_and_protects_the_part() {
    let (service, paper, store, btc) = paper_service();
    let id = strategy_on(&store, serde_json::json!({"entry_limit_bps": 25}), None);
    assert!(service.reconcile(START).await.unwrap().reconciled);
    paper_buy(&service, id, START).await;
    paper
        .on_trade(&btc, Price(LIMIT), Qty(dec!(0.005)))
        .unwrap();
    service.monitor_orders(START + HOUR).await.unwrap();
    let entry = &entries(&store)[0];
    assert_eq!(entry.order.status, OrderStatus::Canceled);
    assert_eq!(entry.order.filled_quantity.get(), dec!(0.005));
    let rows = open_positions(&store);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].position.quantity.get(), dec!(0.004995));
    assert_eq!(live_legs(&store, rows[0].id), paper_oco(dec!(0.004995)));
    let balances = paper.balances().await.unwrap();
    let usdt = trademind::services::exchange::balance_of(&balances, "USDT");
    assert_eq!(usdt.total(), dec!(10000) - dec!(0.005) * LIMIT);
    // Nothing more fills once it is cancelled (49 500: under the limit, over the stop).
    assert!(paper.on_price(&btc, Price(dec!(49500))).unwrap().is_empty());
}

/// While it rests, the entry counts for the risk layer as the position it would open (0.02005012
/// at 49 875 with its stop at 49 000); once a part fills, the position holds that part and the
/// rest still counts as resting.
#[tokio::test]
async fn a_resting_entry_counts_toward_risk_as_if_filled() {
    use trademind::app::trading::build_risk_context;
    use trademind::domain::risk::OpenPosition;
    let (service, paper, store, btc) = paper_service();
    let id = strategy_on(&store, serde_json::json!({"entry_limit_bps": 25}), None);
    assert!(service.reconcile(START).await.unwrap().reconciled);
    paper_buy(&service, id, START).await;
    let context = |now| {
        let (paper, store, btc) = (paper.clone(), store.clone(), btc.clone());
        async move {
            build_risk_context(
                paper.as_ref(),
                &store,
                &paper_settings(),
                "paper",
                &btc,
                None,
                None,
                now,
            )
            .await
            .unwrap()
            .open_positions
        }
    };
    let resting = |qty| OpenPosition {
        symbol: btc.clone(),
        quantity: Qty(qty),
        entry: Price(LIMIT),
        stop: Some(Price(dec!(49000))),
    };
    assert_eq!(context(START).await, [resting(PAPER_QTY)]);
    paper
        .on_trade(&btc, Price(LIMIT), Qty(dec!(0.008)))
        .unwrap();
    service.monitor_orders(START + 60_000).await.unwrap();
    assert_eq!(
        context(START + 60_000).await,
        [
            OpenPosition {
                quantity: Qty(dec!(0.007992)),
                ..resting(Decimal::ZERO)
            },
            resting(PAPER_QTY - dec!(0.008)),
        ]
    );
}

/// Restart: one process places the entry and stops; while it is down the price trades through
/// the limit. The next process's start-up reconciliation finds the order filled, books the
/// 0.02005012 (0.02003006988 held) and protects it. A second entry left resting across a
/// restart is still followed: the next process cancels it once its time-out, counted from its
/// stored creation, has passed.
#[tokio::test]
async fn paper_entries_left_by_a_stopped_process_are_settled_and_timed_out_by_the_next() {
    let (first, paper, store, btc) = paper_service();
    let id = strategy_on(&store, serde_json::json!({"entry_limit_bps": 25}), None);
    assert!(first.reconcile(START).await.unwrap().reconciled);
    paper_buy(&first, id, START).await;
    drop(first);
    paper.on_price(&btc, Price(dec!(49800))).unwrap();
    let second = service_on(&paper, &store);
    let report = second.reconcile(START + 600_000).await.unwrap();
    assert!(report.reconciled, "{report:?}");
    assert!(
        report
            .resolved
            .iter()
            .any(|r| r.contains("filled while down")),
        "{:?}",
        report.resolved
    );
    let rows = open_positions(&store);
    assert_eq!(rows.len(), 1);
    let held = PAPER_QTY * (Decimal::ONE - FEE);
    assert_eq!(rows[0].position.quantity.get(), held);
    assert_eq!(live_legs(&store, rows[0].id), paper_oco(held));
    // Beyond the books' sellable quantity the exchange holds only the dust under the lot.
    let step = dec!(0.00000001);
    assert!(
        report
            .unmanaged
            .iter()
            .all(|u| u.exchange_total.get() == held
                && u.books_total.get() == (held / step).floor() * step),
        "{:?}",
        report.unmanaged
    );

    // A second strategy's entry rests when that process stops.
    paper.on_price(&btc, Price(dec!(50000))).unwrap();
    let other = add_strategy(
        store.lock().unwrap().conn(),
        &NewStrategy {
            name: "patient".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            decision_engine: "llm".into(),
            parameters: serde_json::json!({"entry_limit_bps": 25}),
            connection_id: None,
        },
        START,
    )
    .unwrap();
    let placed_at = START + HOUR;
    let report = paper_buy(&second, other, placed_at).await;
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Resting,
        "{}",
        report.message
    );
    drop(second);
    let third = service_on(&paper, &store);
    third.reconcile(placed_at + HOUR - 60_000).await.unwrap();
    let resting = entries(&store)
        .into_iter()
        .find(|o| o.strategy_id == Some(other));
    assert_eq!(
        resting.unwrap().order.status,
        OrderStatus::New,
        "not timed out yet"
    );
    third.monitor_orders(placed_at + HOUR).await.unwrap();
    let gone = entries(&store)
        .into_iter()
        .find(|o| o.strategy_id == Some(other));
    assert_eq!(gone.unwrap().order.status, OrderStatus::Canceled);
    assert_eq!(
        open_positions(&store).len(),
        1,
        "the first strategy's position only"
    );
}

/// A SELL while the entry rests with a part filled: the rest is cancelled first (it buys no
/// more), then the part's position is sold at market; nothing rests and nothing is held after.
#[tokio::test]
async fn paper_sell_decision_cancels_the_resting_rest_and_closes_the_part() {
    let (service, paper, store, btc) = paper_service();
    let id = strategy_on(&store, serde_json::json!({"entry_limit_bps": 25}), None);
    assert!(service.reconcile(START).await.unwrap().reconciled);
    paper_buy(&service, id, START).await;
    paper
        .on_trade(&btc, Price(LIMIT), Qty(dec!(0.008)))
        .unwrap();
    service.monitor_orders(START + 60_000).await.unwrap();
    assert_eq!(open_positions(&store).len(), 1);
    let input = input(START + 120_000);
    let text = serde_json::json!({
        "action": "SELL", "symbol": "BTCUSDT", "confidence": 0.8, "position_size_pct": 10,
        "stop_loss": {"kind": "price", "value": 52000}, "take_profit": {"kind": "price", "value": 48000},
        "time_horizon": "swing", "reasoning": "exit", "risk_factors": [], "sources": []
    });
    let validated = parse_and_validate(
        &text.to_string(),
        &input.symbol,
        input.price,
        &ValidationLimits::default(),
    );
    assert!(validated.is_valid(), "{:?}", validated.verdict);
    let report = service
        .execute_decision(
            &input,
            &EngineOutput::new("rules", validated),
            Some(id),
            START + 120_000,
        )
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
    let entry = &entries(&store)[0];
    assert_eq!(entry.order.status, OrderStatus::Canceled);
    assert_eq!(entry.order.filled_quantity.get(), dec!(0.008));
    assert!(open_positions(&store).is_empty());
    assert!(
        paper.open_orders(&btc).await.unwrap().is_empty(),
        "nothing rests on the book"
    );
}

mod fake_binance {
    //! The same entry live through the real REST client against the fake Binance (lot
    //! 0.00001): LIMIT GTC at 49 875 for 0.02005, parts protected, time-out cancel, and a
    //! LIMIT_MAKER that would take refused with -2010 as Binance refuses it.

    use super::*;
    use crate::trading::{NOW, ORDER, Rig};

    const QTY: Decimal = dec!(0.02005);

    fn binance_strategy(rig: &Rig, parameters: serde_json::Value) -> i64 {
        let connection = add_connection(
            rig.store.lock().unwrap().conn(),
            "binance-testnet",
            "binance",
            true,
            None,
            START,
        )
        .unwrap();
        strategy_on(&rig.store, parameters, Some(connection))
    }

    /// A trade of 0.008 at 49 875 fills the entry in part: 0.007992 held, 0.00799 on the lot
    /// protected (0.000002 is dust). The price then falls through the limit and the rest fills:
    /// 0.02005 × 0.999 = 0.02002995 held, the OCO replaced for 0.02002 (0.00000995 dust).
    #[tokio::test]
    async fn limit_entry_fills_in_parts_on_the_fake_binance_each_part_protected() {
        let rig = Rig::new().await;
        let service = rig.service().await;
        let id = binance_strategy(&rig, serde_json::json!({"entry_limit_bps": 25}));
        let input = input(NOW);
        let report = service
            .execute_decision(&input, &buy_decision(&input, 49000, 52000), Some(id), NOW)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::Resting,
            "{}",
            report.message
        );
        let on_exchange = rig.binance.orders();
        assert_eq!(on_exchange.len(), 1);
        assert_eq!(
            (
                on_exchange[0].order_type,
                on_exchange[0].price,
                on_exchange[0].quantity.get(),
                on_exchange[0].status
            ),
            (OrderType::Limit, Some(Price(LIMIT)), QTY, OrderStatus::New)
        );
        assert_eq!(entries(&rig.store)[0].order.order_type, OrderType::Limit);
        assert!(rig.open_positions().is_empty());

        rig.binance.trade("BTCUSDT", LIMIT, dec!(0.008));
        service.monitor_orders(NOW + 60_000).await.unwrap();
        let entry = &entries(&rig.store)[0];
        assert_eq!(entry.order.status, OrderStatus::PartiallyFilled);
        let rows = rig.open_positions();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].position.quantity.get(), dec!(0.007992));
        assert_eq!(live_legs(&rig.store, rows[0].id), oco(dec!(0.00799)));

        rig.binance.set_price("BTCUSDT", dec!(49870));
        service.monitor_orders(NOW + 120_000).await.unwrap();
        let rows = rig.open_positions();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].position.quantity.get(), dec!(0.02002995));
        assert_eq!(live_legs(&rig.store, rows[0].id), oco(dec!(0.02002)));
        let open_on_exchange: Vec<_> = rig
            .binance
            .orders()
            .into_iter()
            .filter(|o| o.status.is_open())
            .map(|o| (o.order_type, o.quantity.get()))
            .collect();
        assert_eq!(open_on_exchange.len(), 2, "{open_on_exchange:?}");
        assert!(open_on_exchange.iter().all(|(_, q)| *q == dec!(0.02002)));
    }

    /// The user-data stream reports each part as it fills (`PARTIALLY_FILLED`, then `FILLED`):
    /// each report books and protects the part at once, with no monitor pass: 0.007992 held
    /// (0.00799 protected), then 0.02002995 (the OCO replaced once, for 0.02002).
    #[tokio::test]
    async fn each_part_reported_on_the_user_data_stream_is_booked_and_protected() {
        use trademind::services::market_stream::user_data::{ExecutionFill, ExecutionReport};
        let rig = Rig::new().await;
        let service = rig.service().await;
        let id = binance_strategy(&rig, serde_json::json!({"entry_limit_bps": 25}));
        let input = input(NOW);
        service
            .execute_decision(&input, &buy_decision(&input, 49000, 52000), Some(id), NOW)
            .await
            .unwrap();
        let entry = rig.binance.orders()[0].clone();
        let report =
            |trade: &trademind::domain::trading::order::Fill, status, cumulative| ExecutionReport {
                event_time: NOW + 1,
                symbol: "BTCUSDT".into(),
                client_order_id: entry.client_order_id.clone(),
                original_client_order_id: None,
                side: entry.side,
                order_type: "LIMIT".into(),
                execution_type: "TRADE".into(),
                status,
                reject_reason: "NONE".into(),
                order_id: entry
                    .exchange_order_id
                    .as_deref()
                    .and_then(|id| id.parse().ok())
                    .unwrap(),
                order_qty: Qty(QTY),
                order_price: Price(LIMIT),
                fill: Some(ExecutionFill {
                    trade_id: trade.trade_id.as_deref().unwrap().parse().unwrap(),
                    qty: trade.quantity,
                    price: trade.price,
                    commission: trade.fee.get(),
                    commission_asset: Some("BTC".into()),
                    is_maker: true,
                }),
                cumulative_qty: Qty(cumulative),
                cumulative_quote: cumulative * LIMIT,
                transaction_time: NOW + 1,
            };
        let btc = Symbol::new("BTCUSDT").unwrap();
        rig.binance.trade("BTCUSDT", LIMIT, dec!(0.008));
        let trades = service.exchange().my_trades(&btc).await.unwrap();
        service
            .book_stream_execution(
                &report(&trades[0], OrderStatus::PartiallyFilled, dec!(0.008)),
                NOW + 1,
            )
            .await
            .unwrap();
        let rows = rig.open_positions();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].position.quantity.get(), dec!(0.007992));
        assert_eq!(live_legs(&rig.store, rows[0].id), oco(dec!(0.00799)));

        rig.binance.set_price("BTCUSDT", dec!(49870));
        let trades = service.exchange().my_trades(&btc).await.unwrap();
        let rest = trades
            .iter()
            .find(|t| t.side == entry.side && t.quantity.get() == QTY - dec!(0.008));
        service
            .book_stream_execution(&report(rest.unwrap(), OrderStatus::Filled, QTY), NOW + 2)
            .await
            .unwrap();
        let rows = rig.open_positions();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].position.quantity.get(), dec!(0.02002995));
        assert_eq!(live_legs(&rig.store, rows[0].id), oco(dec!(0.02002)));
        assert_eq!(
            rig.binance.requests(crate::trading::OCO),
            2,
            "replaced once"
        );
    }

    /// One candle (the default time-out) after it was placed, the resting entry is cancelled
    /// through DELETE /api/v3/order: nothing bought, nothing protected.
    #[tokio::test]
    async fn limit_entry_times_out_and_is_cancelled_on_the_fake_binance() {
        let rig = Rig::new().await;
        let service = rig.service().await;
        let id = binance_strategy(&rig, serde_json::json!({"entry_limit_bps": 25}));
        let input = input(NOW);
        service
            .execute_decision(&input, &buy_decision(&input, 49000, 52000), Some(id), NOW)
            .await
            .unwrap();
        service.monitor_orders(NOW + HOUR - 60_000).await.unwrap();
        assert_eq!(rig.binance.orders()[0].status, OrderStatus::New);
        service.monitor_orders(NOW + HOUR).await.unwrap();
        assert_eq!(rig.binance.requests("DELETE /api/v3/order"), 1);
        let on_exchange = rig.binance.orders();
        assert_eq!(on_exchange.len(), 1);
        assert_eq!(on_exchange[0].status, OrderStatus::Canceled);
        assert_eq!(entries(&rig.store)[0].order.status, OrderStatus::Canceled);
        assert!(rig.open_positions().is_empty());
        assert_eq!(rig.binance.requests(ORDER), 1, "no other order was sent");
    }

    /// `post_only` with the price already under the limit: the fake refuses the LIMIT_MAKER
    /// as Binance does (-2010 "Order would immediately match and take."); nothing is bought
    /// and nothing else is sent.
    #[tokio::test]
    async fn post_only_entry_that_would_take_is_refused_by_the_fake_binance() {
        let rig = Rig::new().await;
        let service = rig.service().await;
        let id = binance_strategy(
            &rig,
            serde_json::json!({"entry_limit_bps": 25, "post_only": true}),
        );
        rig.binance.set_price("BTCUSDT", dec!(49800));
        let input = input(NOW);
        let report = service
            .execute_decision(&input, &buy_decision(&input, 49000, 52000), Some(id), NOW)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::NotFilled,
            "{}",
            report.message
        );
        assert!(
            report.message.contains("-2010")
                && report
                    .message
                    .contains("Order would immediately match and take."),
            "{}",
            report.message
        );
        assert_eq!(rig.binance.requests(ORDER), 1, "no retry at market");
        assert!(rig.binance.orders().is_empty());
        let rows = entries(&rig.store);
        assert_eq!(
            (rows[0].order.order_type, rows[0].order.status),
            (OrderType::LimitMaker, OrderStatus::Rejected)
        );
        assert!(rig.open_positions().is_empty());
    }
}
