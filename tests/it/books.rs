//! A book per strategy (#19, symptom 3): each strategy holds its own position in a symbol,
//! protected on the exchange for its own quantity, with its own PnL; a close sells only that
//! book's quantity; reconciliation compares the exchange's balance with the sum of the books
//! and reports the surplus as unmanaged.
//!
//! Numbers (paper: 10 000 USDT, BTCUSDT at 50 000, fee 0.1 % taken in BTC on a buy, no
//! slippage): each BUY asks 10 % with the stop at 45 000 and the target at 60 000; the 10 %
//! position cap (of the equity at the time) sizes it.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::{Arc, Mutex};

use trademind::app::bus::EventBus;
use trademind::app::decide::EngineOutput;
use trademind::app::trading::{
    ExecutionOutcome, ExecutionReport, TradingDeps, TradingError, TradingService,
};
use trademind::config::Settings;
use trademind::domain::decision::{
    DecisionInput, IndicatorSnapshot, RiskSnapshot, ValidationLimits, parse_and_validate,
};
use trademind::domain::market::Interval;
use trademind::domain::trading::order::OrderPurpose;
use trademind::domain::trading::{SymbolFilters, TradingMode};
use trademind::domain::{Price, Symbol};
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::services::exchange::{Exchange, balance_of};
use trademind::store::strategies::{NewStrategy, add_strategy};
use trademind::store::{Store, orders, positions};

/// 2025-01-15 01:00 UTC.
pub(crate) const START: i64 = 1_736_899_200_000 + 3_600_000;

pub(crate) struct Rig {
    pub(crate) service: TradingService<PaperExchange>,
    paper: Arc<PaperExchange>,
    pub(crate) store: Arc<Mutex<Store>>,
    pub(crate) btc: Symbol,
}

/// A paper account with `btc_held` BTC bought outside TradeMind besides its 10 000 USDT.
fn rig_holding(btc_held: Decimal) -> Rig {
    let mut balances = vec![("USDT".to_string(), dec!(10000))];
    if !btc_held.is_zero() {
        balances.push(("BTC".to_string(), btc_held));
    }
    let config = PaperConfig {
        slippage_bps: Decimal::ZERO,
        initial_balances: balances.into_iter().collect(),
        symbols: vec![],
        ..PaperConfig::default()
    };
    let paper = Arc::new(PaperExchange::in_memory(&config));
    let btc = Symbol::new("BTCUSDT").unwrap();
    paper
        .add_symbol(btc.clone(), SymbolFilters::permissive("BTC", "USDT"))
        .unwrap();
    paper.on_price(&btc, Price(dec!(50000))).unwrap();
    let mut settings = Settings::default();
    settings.trading.symbols = vec!["BTCUSDT".into()];
    // Three books at 10 % each in one symbol: the account-wide symbol cap is not the subject.
    settings.risk.max_symbol_exposure_pct = dec!(50);
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let service = TradingService::new(TradingDeps {
        exchange: paper.clone(),
        store: store.clone(),
        connection: "paper".into(),
        mode: TradingMode::Paper,
        settings: Arc::new(settings),
        bus: EventBus::new(256),
        mailer: None,
    });
    Rig {
        service,
        paper,
        store,
        btc,
    }
}

pub(crate) fn rig() -> Rig {
    rig_holding(Decimal::ZERO)
}

impl Rig {
    /// A strategy trading BTCUSDT with `engine` ("strategy" for sma-cross, "llm").
    pub(crate) fn strategy(&self, name: &str, engine: &str) -> i64 {
        let parameters = if engine == "strategy" {
            serde_json::json!({"strategy": "sma-cross", "fast": 10, "slow": 30})
        } else {
            serde_json::json!({})
        };
        add_strategy(
            self.store.lock().unwrap().conn(),
            &NewStrategy {
                name: name.into(),
                symbols: vec!["BTCUSDT".into()],
                interval: "1h".into(),
                decision_engine: engine.into(),
                parameters,
                connection_id: None,
            },
            START,
        )
        .unwrap()
    }

    /// A BUY of `strategy` (None: without one) executed at `now`.
    pub(crate) async fn buy(&self, strategy: Option<i64>, now: i64) -> ExecutionReport {
        let input = input(&self.btc, now);
        let report = self
            .service
            .execute_decision(&input, &buy_decision(&input), strategy, now)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::Executed,
            "{}",
            report.message
        );
        report
    }

    pub(crate) fn open(&self) -> Vec<positions::PositionRow> {
        positions::open_positions(self.store.lock().unwrap().conn()).unwrap()
    }

    fn open_of(&self, strategy: Option<i64>) -> positions::PositionRow {
        self.open()
            .into_iter()
            .find(|r| r.strategy_id == strategy)
            .unwrap_or_else(|| panic!("no open position of book {strategy:?}"))
    }

    /// The live protection legs of a position: (purpose, quantity).
    fn live_legs(&self, position_id: i64) -> Vec<(OrderPurpose, Decimal)> {
        orders::of_position(self.store.lock().unwrap().conn(), position_id)
            .unwrap()
            .into_iter()
            .filter(|o| o.purpose.is_protection() && o.order.status.is_open())
            .map(|o| (o.purpose, o.order.quantity.get()))
            .collect()
    }

    async fn btc_on_exchange(&self) -> Decimal {
        balance_of(&self.paper.balances().await.unwrap(), "BTC").total()
    }
}

/// `q` rounded down to the paper symbol's lot step (what an order can sell).
fn sellable(q: Decimal) -> Decimal {
    SymbolFilters::permissive("BTC", "USDT")
        .round_qty_down(trademind::domain::Qty(q))
        .get()
}

fn input(symbol: &Symbol, now_ms: i64) -> DecisionInput {
    DecisionInput {
        symbol: symbol.clone(),
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

/// BUY 10 % with the stop at 45 000 and the target at 60 000.
fn buy_decision(input: &DecisionInput) -> EngineOutput {
    let text = serde_json::json!({
        "action": "BUY", "symbol": input.symbol.as_str(), "confidence": 0.8,
        "position_size_pct": 10,
        "stop_loss": {"kind": "price", "value": 45000},
        "take_profit": {"kind": "price", "value": 60000},
        "time_horizon": "swing", "reasoning": "books test", "risk_factors": [], "sources": []
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

#[tokio::test]
async fn two_strategies_on_one_symbol_hold_two_positions_each_protected_for_its_own_quantity() {
    let rig = rig();
    let fast = rig.strategy("fast", "strategy");
    let trend = rig.strategy("trend", "strategy");
    let llm = rig.strategy("grok", "llm");
    assert!(rig.service.reconcile(START).await.unwrap().reconciled);

    rig.buy(Some(fast), START).await;
    let fast_before = rig.open_of(Some(fast));
    // `trend` enters while `fast` holds BTCUSDT: its own position, not an add to fast's.
    rig.buy(Some(trend), START + 60_000).await;
    // An LLM strategy's BUY is not added to fast's position either.
    rig.buy(Some(llm), START + 120_000).await;

    let open = rig.open();
    assert_eq!(open.len(), 3, "one position per book: {open:#?}");
    let fast_after = rig.open_of(Some(fast));
    assert_eq!(fast_after.id, fast_before.id);
    assert_eq!(
        fast_after.position.quantity, fast_before.position.quantity,
        "fast's position is untouched by the other strategies' entries"
    );
    let mut held = Decimal::ZERO;
    for book in [fast, trend, llm] {
        let row = rig.open_of(Some(book));
        let q = row.position.quantity.get();
        assert!(q > Decimal::ZERO);
        held += q;
        // Its own OCO for its own quantity (down to the lot step), from its own entry's stop
        // and target.
        let lot = sellable(q);
        let mut legs = rig.live_legs(row.id);
        legs.sort_by_key(|(p, _)| p.as_str());
        assert_eq!(
            legs,
            vec![
                (OrderPurpose::StopLoss, lot),
                (OrderPurpose::TakeProfit, lot)
            ],
            "protection of book {book}"
        );
        assert_eq!(row.position.stop_loss, Some(Price(dec!(45000))));
        assert_eq!(row.position.take_profit, Some(Price(dec!(60000))));
    }
    // The exchange holds exactly what the three books hold.
    assert_eq!(rig.btc_on_exchange().await, held);
}

#[tokio::test]
async fn closing_one_book_sells_only_its_own_quantity_and_leaves_the_others_protected() {
    let rig = rig();
    let fast = rig.strategy("fast", "strategy");
    let trend = rig.strategy("trend", "strategy");
    rig.service.reconcile(START).await.unwrap();
    rig.buy(Some(fast), START).await;
    rig.buy(Some(trend), START + 60_000).await;
    let fast_row = rig.open_of(Some(fast));
    let trend_row = rig.open_of(Some(trend));

    // Two books hold BTCUSDT: a close must say which.
    let e = rig
        .service
        .close_position(&rig.btc, None, START + 120_000)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, TradingError::SeveralBooks { books, .. } if books == "fast, trend"),
        "{e}"
    );

    let report = rig
        .service
        .close_position(&rig.btc, Some(Some(trend)), START + 180_000)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
    assert_eq!(report.position_id, Some(trend_row.id));
    let open = rig.open();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, fast_row.id);
    let q = fast_row.position.quantity.get();
    let trend_dust =
        trend_row.position.quantity.get() - sellable(trend_row.position.quantity.get());
    assert_eq!(
        rig.btc_on_exchange().await,
        q + trend_dust,
        "fast's BTC was not sold, only trend's sellable quantity"
    );
    let mut legs = rig.live_legs(fast_row.id);
    legs.sort_by_key(|(p, _)| p.as_str());
    let lot = sellable(q);
    assert_eq!(
        legs,
        vec![
            (OrderPurpose::StopLoss, lot),
            (OrderPurpose::TakeProfit, lot)
        ]
    );
    // trend's PnL is its own: its entry fee and its exit fee, nothing of fast's.
    let closed = positions::get(rig.store.lock().unwrap().conn(), trend_row.id)
        .unwrap()
        .unwrap();
    assert!(closed.position.closed_at.is_some());
    assert_eq!(
        closed.position.realized_pnl.get(),
        -closed.position.fees_paid.get(),
        "bought and sold at 50 000: the fees are all trend realised"
    );
}

#[tokio::test]
async fn a_strategy_decides_on_its_own_book_not_on_another_strategys_position() {
    let rig = rig();
    let fast = rig.strategy("fast", "strategy");
    let trend = rig.strategy("trend", "strategy");
    rig.service.reconcile(START).await.unwrap();
    rig.buy(Some(fast), START).await;

    let mut seen_by_trend = input(&rig.btc, START + 60_000);
    rig.service
        .complete_input(&mut seen_by_trend, Some(trend))
        .unwrap();
    assert_eq!(
        seen_by_trend.position, None,
        "trend is flat: an entry signal is not 'already long'"
    );
    let mut seen_by_fast = input(&rig.btc, START + 60_000);
    rig.service
        .complete_input(&mut seen_by_fast, Some(fast))
        .unwrap();
    assert_eq!(
        seen_by_fast.position.map(|p| p.quantity),
        Some(rig.open_of(Some(fast)).position.quantity)
    );
}

#[tokio::test]
async fn btc_held_beyond_the_books_is_reported_unmanaged_and_never_sold() {
    let rig = rig_holding(dec!(0.5));
    let fast = rig.strategy("fast", "strategy");
    let report = rig.service.reconcile(START).await.unwrap();
    assert!(report.reconciled, "{:?}", report.unresolved);
    assert_eq!(report.unmanaged.len(), 1);
    assert_eq!(report.unmanaged[0].surplus().get(), dec!(0.5));

    rig.buy(Some(fast), START).await;
    let q = rig.open_of(Some(fast)).position.quantity.get();
    let report = rig.service.reconcile(START + 60_000).await.unwrap();
    assert!(report.reconciled, "{:?}", report.unresolved);
    let h = &report.unmanaged[0];
    assert_eq!(
        (
            h.asset.as_str(),
            h.exchange_total.get(),
            h.books_total.get()
        ),
        // The books count what their positions hold, sub-step dust from a base-asset fee
        // included (it is the position's, shown as its dust): what belongs to no book is
        // exactly the 0.5 BTC that was there before.
        ("BTC", dec!(0.5) + q, q)
    );
    assert_eq!(h.surplus().get(), dec!(0.5));
    // The faces read the same figure, and the owning book by name.
    let view = trademind::store::account::load(
        rig.store.lock().unwrap().conn(),
        &trademind::store::account::AccountQuery {
            connection: "paper",
            now_ms: START + 60_000,
            day_start_ms: trademind::store::account::utc_day_start(START),
            paper_starting_balance: None,
            unresolved: Vec::new(),
        },
    )
    .unwrap();
    assert_eq!(view.unmanaged, report.unmanaged);
    assert_eq!(view.positions[0].row.book(), "fast");

    // Closing fast's position sells fast's (sellable) quantity; the unmanaged 0.5 BTC stays.
    rig.service
        .close_position(&rig.btc, Some(Some(fast)), START + 120_000)
        .await
        .unwrap();
    assert_eq!(rig.btc_on_exchange().await, dec!(0.5) + q - sellable(q));
}

#[tokio::test]
async fn books_holding_more_than_the_exchange_is_a_discrepancy_that_keeps_trading_paused() {
    let rig = rig();
    // The default book says 0.01 BTC is open (sold behind TradeMind's back, say); the exchange
    // holds none.
    {
        let db = rig.store.lock().unwrap();
        let p = trademind::domain::trading::Position {
            symbol: rig.btc.clone(),
            side: trademind::domain::trading::PositionSide::Long,
            quantity: trademind::domain::Qty(dec!(0.01)),
            entry_price: Price(dec!(50000)),
            stop_loss: None,
            take_profit: None,
            realized_pnl: trademind::domain::Quote::ZERO,
            fees_paid: trademind::domain::Quote::ZERO,
            opened_at: START,
            closed_at: None,
        };
        positions::insert(db.conn(), "paper", None, &p, START).unwrap();
    }
    let report = rig.service.reconcile(START + 60_000).await.unwrap();
    assert!(!report.reconciled);
    assert!(
        report.unresolved.iter().any(|l| l
            == "the exchange holds 0 BTC but the books' open positions in BTCUSDT add up to 0.01"),
        "{:?}",
        report.unresolved
    );
    assert!(report.unmanaged.is_empty());
}

/// Execute a BUY of `strategy` at `now` and return the report whatever its outcome.
pub(crate) async fn try_buy(rig: &Rig, strategy: Option<i64>, now: i64) -> ExecutionReport {
    let input = input(&rig.btc, now);
    rig.service
        .execute_decision(&input, &buy_decision(&input), strategy, now)
        .await
        .unwrap()
}

pub(crate) fn allocate(rig: &Rig, name: &str, allocation: &str) {
    trademind::store::strategies::set_allocation(
        rig.store.lock().unwrap().conn(),
        name,
        Some(allocation.parse().unwrap()),
        START,
    )
    .unwrap();
}

#[tokio::test]
async fn a_strategy_is_sized_on_its_allocation_of_the_account() {
    let rig = rig();
    let fast = rig.strategy("fast", "strategy");
    let trend = rig.strategy("trend", "strategy");
    allocate(&rig, "fast", "10%");
    rig.service.reconcile(START).await.unwrap();
    rig.buy(Some(fast), START).await;
    rig.buy(Some(trend), START + 60_000).await;
    // fast's book is 10 % of 10 000 = 1 000, trend sizes on the whole account (9 999.9 after
    // fast's 0.1 fee). The fee-true size is linear in the equity it is sized on (1 % of it over
    // the same per-unit loss at the stop; that formula has its own tests in domain::risk), so
    // the two quantities stand in the ratio of their equities, up to the 0.00000001 step.
    let fast_qty = rig.open_of(Some(fast)).position.quantity.get();
    let trend_qty = rig.open_of(Some(trend)).position.quantity.get();
    let ratio = fast_qty / trend_qty;
    let expected = dec!(1000) / dec!(9999.9);
    assert!(
        ((ratio - expected) / expected).abs() < dec!(0.00001),
        "fast {fast_qty} / trend {trend_qty} = {ratio}, expected {expected}"
    );
}

#[tokio::test]
async fn a_strategy_past_its_own_daily_loss_is_refused_while_the_others_trade() {
    let rig = rig();
    let fast = rig.strategy("fast", "strategy");
    let trend = rig.strategy("trend", "strategy");
    allocate(&rig, "fast", "1000");
    // fast lost 40 today: 4 % of its 1 000, past the 3 % daily limit; the account lost 0.4 %.
    {
        let db = rig.store.lock().unwrap();
        let p = trademind::domain::trading::Position {
            symbol: rig.btc.clone(),
            side: trademind::domain::trading::PositionSide::Long,
            quantity: trademind::domain::Qty::ZERO,
            entry_price: Price(dec!(50000)),
            stop_loss: None,
            take_profit: None,
            realized_pnl: trademind::domain::Quote(dec!(-40)),
            fees_paid: trademind::domain::Quote::ZERO,
            opened_at: START - 60_000,
            closed_at: Some(START - 30_000),
        };
        positions::insert(db.conn(), "paper", Some(fast), &p, START).unwrap();
    }
    rig.service.reconcile(START).await.unwrap();
    let refused = try_buy(&rig, Some(fast), START).await;
    assert_ne!(refused.outcome, ExecutionOutcome::Executed);
    let reasons = match refused.risk_verdict {
        Some(trademind::domain::risk::RiskVerdict::Refused { reasons, .. }) => reasons,
        other => panic!("not refused: {other:?}"),
    };
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("strategy fast's book:") && r.contains("daily")),
        "{reasons:?}"
    );
    rig.buy(Some(trend), START + 60_000).await;
    assert_eq!(rig.open().len(), 1);
}

/// The TUI's close goes through the control channel: the selected row's book travels with the
/// symbol, so closing one of two books in BTCUSDT closes that book's position, not a refusal
/// ("several books hold BTCUSDT") and not the other book's.
#[tokio::test]
async fn a_close_from_the_interface_closes_the_selected_rows_book_when_two_books_hold_the_symbol() {
    use trademind::app::control::{ControlHandle, ControlOp};
    use trademind::app::daemon::{backtest_queue, serve_control};
    use trademind::app::scheduler::{MemoryRecorder, TokioClock};

    let rig = rig();
    let fast = rig.strategy("fast", "strategy");
    let trend = rig.strategy("trend", "strategy");
    rig.service.reconcile(START).await.unwrap();
    rig.buy(Some(fast), START).await;
    rig.buy(Some(trend), START + 60_000).await;
    let (fast_row, trend_row) = (rig.open_of(Some(fast)), rig.open_of(Some(trend)));
    let Rig {
        service,
        paper,
        store,
        btc,
    } = rig;

    let cancel = tokio_util::sync::CancellationToken::new();
    let clock = Arc::new(TokioClock::new(START + 120_000));
    let (backtests, _worker) = backtest_queue(
        Store::open_in_memory().unwrap(),
        clock.clone(),
        Arc::new(MemoryRecorder::default()),
        EventBus::new(16),
        1,
        cancel.clone(),
    );
    let (handle, requests) = ControlHandle::channel(4);
    let server = tokio::spawn(serve_control(
        Arc::new(service),
        requests,
        backtests,
        Arc::new(Settings::default()),
        clock,
        cancel.clone(),
    ));

    // The snapshot row the TUI closes names its book as the trading service does.
    let view = trademind::store::account::load(
        store.lock().unwrap().conn(),
        &trademind::store::account::AccountQuery {
            connection: "paper",
            now_ms: START + 120_000,
            day_start_ms: trademind::store::account::utc_day_start(START),
            paper_starting_balance: None,
            unresolved: Vec::new(),
        },
    )
    .unwrap();
    let trend_view = view
        .positions
        .iter()
        .find(|p| p.row.book() == "trend")
        .expect("trend's row");
    let reply = handle
        .request(ControlOp::ClosePosition {
            symbol: btc.clone(),
            book: trend_view.row.strategy_id,
        })
        .await;
    assert!(reply.is_ok(), "{reply:?}");

    let open = positions::open_positions(store.lock().unwrap().conn()).unwrap();
    assert_eq!(
        open.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![fast_row.id],
        "trend's position closed, fast's still open"
    );
    let closed = positions::get(store.lock().unwrap().conn(), trend_row.id)
        .unwrap()
        .unwrap();
    assert!(closed.position.closed_at.is_some());
    let held = balance_of(&paper.balances().await.unwrap(), "BTC").total();
    let trend_q = trend_row.position.quantity.get();
    assert_eq!(
        held,
        fast_row.position.quantity.get() + trend_q - sellable(trend_q),
        "only trend's sellable quantity was sold"
    );
    cancel.cancel();
    server.await.unwrap();
}

#[test]
fn strategy_list_and_risk_show_say_each_books_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = crate::daemon::trademind_command(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "strategy",
        "add",
        "fast",
        "--symbol",
        "BTCUSDT",
        "--allocation",
        "25%",
    ]);
    run(&["strategy", "add", "trend", "--symbol", "BTCUSDT"]);
    run(&["strategy", "allocate", "trend", "1500"]);
    run(&["strategy", "add", "whole", "--symbol", "BTCUSDT"]);

    let list = run(&["strategy", "list"]);
    let row = |name: &str| {
        list.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in:\n{list}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert!(row("fast").contains(&"25%"), "{list}");
    assert!(row("trend").contains(&"1500"), "{list}");
    assert!(row("whole").contains(&"account"), "{list}");

    let shown = run(&["risk", "show", "--strategy", "fast"]);
    let line = shown
        .lines()
        .find(|l| l.trim_start().starts_with("allocation"))
        .unwrap_or_else(|| panic!("no allocation line in:\n{shown}"));
    assert!(line.trim_end().ends_with("25%"), "{shown}");
    let shown = run(&["risk", "show", "--strategy", "whole"]);
    assert!(shown.contains("the whole account"), "{shown}");
    let json: serde_json::Value =
        serde_json::from_str(&run(&["--json", "risk", "show", "--strategy", "trend"])).unwrap();
    assert!(!json["allocation"].is_null(), "{json}");
}
