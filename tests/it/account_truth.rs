//! One truth about the account (#17): random sequences of buys, closes, marks, pauses, kills,
//! resumes and daily-loss trips on a paper account, driven through the trading service, after
//! which the TUI snapshot, `status --json`, `positions --json` and the decision prompt's account
//! block must agree with each other and with a hand model kept here in plain Decimal
//! arithmetic.
//!
//! The paper exchange charges 0.1 %: a buy pays it in the base asset (it holds less BTC than it
//! bought), a sell in USDT, so both kinds of fee are in every round trip. The hand model reads
//! nothing the engine books: it knows the prices it set, the fee rate, and how much USDT the
//! exchange took for a buy (the risk layer sized it).

use proptest::prelude::*;
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::Value;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use trademind::app::bus::EventBus;
use trademind::app::decide::EngineOutput;
use trademind::app::snapshot::{self, LoadRequest};
use trademind::app::trading::{ExecutionOutcome, TradingDeps, TradingService};
use trademind::config::Settings;
use trademind::domain::decision::{
    DecisionInput, IndicatorSnapshot, RiskSnapshot, ValidationLimits, parse_and_validate,
};
use trademind::domain::market::Interval;
use trademind::domain::risk::{BreakerInputs, BreakerState};
use trademind::domain::trading::{SymbolFilters, TradingMode};
use trademind::domain::{Price, Quote, Symbol};
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::services::exchange::{Exchange, balance_of};
use trademind::services::llm::prompt::{DEFAULT_TEMPLATE, PromptParts, build_prompt};
use trademind::store::Store;
use trademind::store::account::{Protection, utc_day_start};
use trademind::store::risk::{self as risk_store, GLOBAL_SCOPE};

/// 2025-01-15 01:00 UTC; every step is a minute later, so a case stays within one day.
const START: i64 = 1_736_899_200_000 + 3_600_000;
const CONNECTION: &str = "paper";
const FEE_RATE: Decimal = dec!(0.001);
const STARTING_CASH: Decimal = dec!(10000);

#[derive(Debug, Clone)]
enum Op {
    /// A BUY decision at this price (only when flat: adding is another story).
    Buy(Decimal),
    /// Close the open position at market at this price.
    Close(Decimal),
    /// The engine marks the position (and writes the equity) at this price.
    Mark(Decimal),
    Pause,
    Kill,
    Resume,
    /// The daily-loss rule fires (as `evaluate_breaker` would on a loss past the limit).
    TripDailyLoss,
}

/// Prices between 48 000 and 52 000: always between a buy's stop (−10 %) and target (+20 %),
/// so the exchange-side protection never fills behind the model's back.
fn price() -> impl Strategy<Value = Decimal> {
    (4_800_000i64..=5_200_000).prop_map(|cents| Decimal::new(cents, 2))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => price().prop_map(Op::Buy),
        2 => price().prop_map(Op::Close),
        3 => price().prop_map(Op::Mark),
        1 => Just(Op::Pause),
        1 => Just(Op::Kill),
        2 => Just(Op::Resume),
        1 => Just(Op::TripDailyLoss),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandState {
    Active,
    Paused,
    Killed,
    Halted,
}

impl HandState {
    fn label(self) -> &'static str {
        match self {
            HandState::Active => "ACTIVE",
            HandState::Paused => "PAUSED",
            HandState::Killed => "KILLED",
            HandState::Halted => "HALTED",
        }
    }
}

#[derive(Debug, Clone)]
struct HandPosition {
    /// What is held: bought minus the fee taken in BTC.
    qty: Decimal,
    entry: Decimal,
    /// The engine's last mark (the entry until it marks).
    mark: Decimal,
    /// The entry's fee in USDT: all this position has realised while open.
    entry_fee: Decimal,
    /// The live stop leg's trigger.
    stop: Decimal,
}

/// The account by hand.
#[derive(Debug, Clone)]
struct Hand {
    cash: Decimal,
    position: Option<HandPosition>,
    /// Net of every fee, both currencies.
    realised: Decimal,
    /// The last equity the engine wrote (`None` before the first mark).
    snapshot: Option<Decimal>,
    price: Decimal,
    state: HandState,
    /// Value of the fee dust the engine booked as sold but the exchange could not sell.
    dust: Decimal,
}

impl Hand {
    fn unrealised(&self) -> Decimal {
        self.position
            .as_ref()
            .map_or(Decimal::ZERO, |p| (p.mark - p.entry) * p.qty)
    }

    /// Equity on the paper account: the engine's last snapshot, else cash + PnL.
    fn equity(&self) -> Decimal {
        self.snapshot
            .unwrap_or(STARTING_CASH + self.realised + self.unrealised())
    }

    /// Portfolio heat: what the live stop risks, percent of equity.
    fn heat_pct(&self) -> f64 {
        let risk = self
            .position
            .as_ref()
            .map_or(Decimal::ZERO, |p| (p.entry - p.stop) * p.qty);
        let pct = risk / self.equity() * Decimal::ONE_HUNDRED;
        pct.to_string().parse().unwrap()
    }

    /// Every step is on one day: today's PnL is all of it.
    fn day_pnl(&self) -> Decimal {
        self.realised + self.unrealised()
    }
}

struct Rig {
    service: TradingService<PaperExchange>,
    paper: Arc<PaperExchange>,
    store: Arc<Mutex<Store>>,
    settings: Settings,
    btc: Symbol,
}

fn rig() -> Rig {
    rig_on(Store::open_in_memory().unwrap())
}

fn rig_on(store: Store) -> Rig {
    let config = PaperConfig {
        fee_rate: FEE_RATE,
        slippage_bps: Decimal::ZERO,
        initial_balances: [("USDT".to_string(), STARTING_CASH)].into_iter().collect(),
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
    settings.trading.connection = CONNECTION.into();
    settings.trading.paper_starting_balance = STARTING_CASH.to_string();
    // A losing streak would trip the breaker on its own; the model trips it explicitly.
    settings.risk.consecutive_losses_limit = 0;
    let store = Arc::new(Mutex::new(store));
    let service = TradingService::new(TradingDeps {
        exchange: paper.clone(),
        store: store.clone(),
        connection: CONNECTION.into(),
        mode: TradingMode::Paper,
        settings: Arc::new(settings.clone()),
        bus: EventBus::new(256),
        mailer: None,
    });
    Rig {
        service,
        paper,
        store,
        settings,
        btc,
    }
}

fn input(symbol: &Symbol, price: Decimal, now_ms: i64) -> DecisionInput {
    DecisionInput {
        symbol: symbol.clone(),
        interval: Interval::H1,
        now_ms,
        price: Price(price),
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

/// BUY 10 % with the stop 10 % below and the target 20 % above `price`.
/// Reconcile the rig's service, then execute a BUY at 50 000 at START.
async fn reconciled_and_bought(rig: &Rig) {
    rig.service.reconcile(START).await.unwrap();
    let input = input(&rig.btc, dec!(50000), START);
    let report = rig
        .service
        .execute_decision(&input, &buy_decision(&input), None, START)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
}

fn buy_decision(input: &DecisionInput) -> EngineOutput {
    let p = input.price.get();
    // The schema wants JSON numbers (a Decimal serialises as a string).
    let level = |factor: Decimal| -> f64 { (p * factor).round_dp(2).to_string().parse().unwrap() };
    let text = serde_json::json!({
        "action": "BUY", "symbol": input.symbol.as_str(), "confidence": 0.8,
        "position_size_pct": 10,
        "stop_loss": {"kind": "price", "value": level(dec!(0.9))},
        "take_profit": {"kind": "price", "value": level(dec!(1.2))},
        "time_horizon": "swing", "reasoning": "property test", "risk_factors": [], "sources": []
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

async fn usdt(paper: &PaperExchange) -> Decimal {
    balance_of(&paper.balances().await.unwrap(), "USDT").total()
}

/// Carry out one step on the service and on the hand model.
async fn step(rig: &Rig, hand: &mut Hand, op: &Op, now: i64) -> Result<(), TestCaseError> {
    let s = &rig.service;
    match *op {
        Op::Buy(p) => {
            if hand.position.is_some() {
                return Ok(());
            }
            rig.paper.on_price(&rig.btc, Price(p)).unwrap();
            hand.price = p;
            let input = input(&rig.btc, p, now);
            let out = buy_decision(&input);
            let before = usdt(&rig.paper).await;
            let report = s.execute_decision(&input, &out, None, now).await.unwrap();
            let spent = before - usdt(&rig.paper).await;
            if hand.state == HandState::Active {
                prop_assert_eq!(
                    report.outcome,
                    ExecutionOutcome::Executed,
                    "{}",
                    report.message
                );
                let bought = spent / p;
                let fee_btc = bought * FEE_RATE;
                hand.cash -= spent;
                hand.realised -= fee_btc * p;
                hand.position = Some(HandPosition {
                    qty: bought - fee_btc,
                    entry: p,
                    mark: p,
                    entry_fee: fee_btc * p,
                    stop: (p * dec!(0.9)).round_dp(2),
                });
            } else {
                prop_assert_ne!(report.outcome, ExecutionOutcome::Executed);
                prop_assert_eq!(
                    spent,
                    Decimal::ZERO,
                    "nothing bought while {:?}",
                    hand.state
                );
            }
        }
        Op::Close(p) => {
            let Some(pos) = hand.position.take() else {
                return Ok(());
            };
            rig.paper.on_price(&rig.btc, Price(p)).unwrap();
            hand.price = p;
            let report = s.close_position(&rig.btc, None, now).await.unwrap();
            prop_assert_eq!(
                report.outcome,
                ExecutionOutcome::Executed,
                "{}",
                report.message
            );
            // The exchange sells whole lot steps (1e-8 BTC here); the fee's dust below one
            // step stays in the BTC balance and the engine closes it at the exit price
            // (`book_exit`), so the books count a value the USDT balance never receives.
            let sold = pos.qty.trunc_with_scale(8);
            let proceeds = sold * p;
            let fee_usdt = proceeds * FEE_RATE;
            hand.cash += proceeds - fee_usdt;
            hand.realised += (p - pos.entry) * pos.qty - fee_usdt;
            hand.dust += (pos.qty - sold) * p;
            prop_assert_eq!(usdt(&rig.paper).await, hand.cash, "the exchange's cash");
        }
        Op::Mark(p) => {
            rig.paper.on_price(&rig.btc, Price(p)).unwrap();
            hand.price = p;
            s.apply_marks(&[(rig.btc.clone(), Price(p))], now)
                .await
                .unwrap();
            let mut held = Decimal::ZERO;
            if let Some(pos) = hand.position.as_mut() {
                pos.mark = p;
                held = pos.qty;
            }
            let equity = hand.cash + held * p;
            // Every fee is in the PnL: cash + holdings is where the starting cash and the PnL
            // say it is.
            prop_assert_eq!(
                equity,
                STARTING_CASH + hand.realised + hand.unrealised() - hand.dust,
                "the hand model's own books balance"
            );
            hand.snapshot = Some(equity);
        }
        Op::Pause => {
            s.pause("property test", now).unwrap();
            hand.state = HandState::Paused;
        }
        Op::Kill => {
            s.kill("property test", now).unwrap();
            hand.state = HandState::Killed;
        }
        Op::Resume => {
            s.resume(now).unwrap();
            hand.state = HandState::Active;
        }
        Op::TripDailyLoss => {
            // What `evaluate_breaker` does with a day's loss past the limit: the stored breaker
            // evaluated by the domain's rules, the transition recorded.
            let db = rig.store.lock().unwrap();
            let c = db.conn();
            let (config, _) = risk_store::load_config(c, None, &rig.settings.risk).unwrap();
            let mut breaker = risk_store::load_breaker(c, GLOBAL_SCOPE).unwrap();
            let inputs = BreakerInputs {
                daily_loss_pct: config.max_daily_loss_pct + Decimal::ONE,
                drawdown_pct: Decimal::ZERO,
                closed_trades: &[],
            };
            for t in breaker.evaluate(&inputs, &config, now) {
                risk_store::record_transition(c, GLOBAL_SCOPE, &t).unwrap();
            }
            // A loss rule trips only an active breaker; an operator's stop stays as it is.
            if hand.state == HandState::Active {
                hand.state = HandState::Halted;
            }
        }
    }
    Ok(())
}

fn dec_of(v: &Value) -> Decimal {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Decimal::from_str(&text).unwrap_or_else(|e| panic!("{v} is not a decimal: {e}"))
}

/// Every face against the hand model (and so against each other).
fn check_faces(rig: &Rig, hand: &Hand, now: i64) -> Result<(), TestCaseError> {
    let (equity, day, realised, unrealised) = (
        hand.equity(),
        hand.day_pnl(),
        hand.realised,
        hand.unrealised(),
    );
    let label = hand.state.label();
    let db = rig.store.lock().unwrap();
    let c = db.conn();

    // (a) The TUI snapshot.
    let snap = snapshot::load(
        c,
        &LoadRequest {
            mode: TradingMode::Paper,
            now_ms: now,
            symbol: rig.btc.clone(),
            interval: Interval::H1,
            connection: CONNECTION.into(),
            paper_starting_balance: Some(Quote(STARTING_CASH)),
            symbols: vec![rig.btc.clone()],
            default_risk_config: Vec::new(),
            stale_after_ms: 3_600_000,
        },
    )
    .unwrap();
    prop_assert_eq!(snap.account.equity.get(), equity, "TUI equity");
    prop_assert_eq!(snap.account.daily_pnl.get(), day, "TUI day PnL");
    prop_assert_eq!(snap.trading.label(), label, "TUI trading state");
    prop_assert_eq!(
        snap.trading_paused,
        matches!(hand.state, HandState::Paused | HandState::Killed),
        "TUI: `p` offers to resume exactly when an operator stopped trading"
    );
    prop_assert_eq!(snap.positions.len(), usize::from(hand.position.is_some()));
    if let (Some(p), Some(v)) = (&hand.position, snap.positions.first()) {
        prop_assert_eq!(v.qty.get(), p.qty, "TUI quantity");
        prop_assert_eq!(v.entry.get(), p.entry, "TUI entry");
        prop_assert_eq!(v.mark.get(), p.mark, "TUI mark");
        prop_assert_eq!(v.unrealised_pnl.get(), unrealised, "TUI unrealised");
        prop_assert_eq!(v.protection, Protection::BothLegs, "TUI protection");
        prop_assert_eq!(v.stop.map(|s| s.get()), Some(p.stop), "TUI live stop");
    }
    let heat = hand.heat_pct();
    prop_assert!(
        (snap.account.heat_pct - heat).abs() < 1e-9,
        "TUI heat {} vs hand {heat}",
        snap.account.heat_pct
    );

    // (b) `status --json`.
    let status =
        serde_json::to_value(trademind::cli::status::build(c, &rig.settings, now).unwrap())
            .unwrap();
    prop_assert_eq!(dec_of(&status["equity"]), equity, "status equity");
    prop_assert_eq!(dec_of(&status["day_pnl"]), day, "status day PnL");
    prop_assert_eq!(dec_of(&status["realised_pnl"]), realised, "status realised");
    prop_assert_eq!(
        dec_of(&status["unrealised_pnl"]),
        unrealised,
        "status unrealised"
    );
    prop_assert_eq!(
        status["trading"]["state"].as_str().unwrap(),
        label.to_lowercase().replace(' ', "_"),
        "status trading state"
    );
    let breaker_active = status["breaker"]["state"] == "active";
    prop_assert_eq!(breaker_active, hand.state == HandState::Active);
    prop_assert_eq!(
        snap.breaker.state == BreakerState::Active,
        breaker_active,
        "TUI breaker panel"
    );

    // (c) `positions --json`, and `status`'s own position list.
    let positions =
        serde_json::to_value(trademind::cli::trading::positions_report(c, false, 50).unwrap())
            .unwrap();
    for (face, list) in [("positions", &positions), ("status", &status["positions"])] {
        let list = list.as_array().unwrap();
        prop_assert_eq!(list.len(), usize::from(hand.position.is_some()), "{}", face);
        if let (Some(p), Some(row)) = (&hand.position, list.first()) {
            prop_assert_eq!(dec_of(&row["position"]["quantity"]), p.qty, "{} qty", face);
            prop_assert_eq!(dec_of(&row["position"]["entry_price"]), p.entry, "{}", face);
            prop_assert_eq!(dec_of(&row["mark"]), p.mark, "{} mark", face);
            prop_assert_eq!(
                dec_of(&row["unrealized_pnl"]),
                unrealised,
                "{} unrealised",
                face
            );
            prop_assert_eq!(row["protection"].as_str(), Some("both_legs"), "{}", face);
            prop_assert_eq!(
                dec_of(&row["position"]["realized_pnl"]),
                -p.entry_fee,
                "{} the open position's own realised (its entry fee)",
                face
            );
        }
    }
    // `positions --closed`: what the closed positions realised, nothing unrealised left.
    let closed =
        serde_json::to_value(trademind::cli::trading::positions_report(c, true, 1000).unwrap())
            .unwrap();
    let mut closed_realised = Decimal::ZERO;
    for row in closed.as_array().unwrap() {
        prop_assert_eq!(
            dec_of(&row["unrealized_pnl"]),
            Decimal::ZERO,
            "closed: {}",
            row
        );
        prop_assert_eq!(
            dec_of(&row["position"]["quantity"]),
            Decimal::ZERO,
            "closed: {}",
            row
        );
        closed_realised += dec_of(&row["position"]["realized_pnl"]);
    }
    let open_realised = hand
        .position
        .as_ref()
        .map_or(Decimal::ZERO, |p| -p.entry_fee);
    prop_assert_eq!(
        closed_realised + open_realised,
        realised,
        "closed + open realised"
    );
    drop(db);

    // (d) The decision prompt's account block.
    let mut input = input(&rig.btc, hand.price, now);
    rig.service.complete_input(&mut input, None).unwrap();
    prop_assert_eq!(input.risk.daily_pnl.get(), day, "prompt daily PnL");
    prop_assert!(
        (input.risk.heat_pct - heat).abs() < 1e-9,
        "prompt heat {} vs hand {heat}",
        input.risk.heat_pct
    );
    prop_assert_eq!(
        input.risk.breaker.as_str(),
        label.to_lowercase(),
        "prompt state"
    );
    match (&hand.position, &input.position) {
        (None, None) => {}
        (Some(p), Some(v)) => {
            prop_assert_eq!(v.quantity.get(), p.qty, "prompt quantity");
            prop_assert_eq!(v.entry_price.get(), p.entry, "prompt entry");
            prop_assert_eq!(v.unrealized_pnl.get(), unrealised, "prompt unrealised");
        }
        (hand, prompt) => prop_assert!(false, "position: hand {hand:?}, prompt {prompt:?}"),
    }
    let text = build_prompt(
        DEFAULT_TEMPLATE,
        &input,
        &PromptParts {
            news: &[],
            max_position_pct: 10.0,
        },
    );
    let risk_line = format!(
        "daily PnL {} · circuit breaker {}",
        input.risk.daily_pnl,
        label.to_lowercase()
    );
    prop_assert!(text.contains(&risk_line), "{risk_line} not in {text}");
    let position_line = match &input.position {
        None => "flat".to_string(),
        Some(p) => format!("quantity {} at entry {}", p.quantity, p.entry_price),
    };
    prop_assert!(
        text.contains(&position_line),
        "{position_line} not in {text}"
    );
    Ok(())
}

fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rig = rig();
        rig.service.reconcile(START).await.unwrap();
        let mut hand = Hand {
            cash: STARTING_CASH,
            position: None,
            realised: Decimal::ZERO,
            snapshot: None,
            price: dec!(50000),
            state: HandState::Active,
            dust: Decimal::ZERO,
        };
        check_faces(&rig, &hand, START)?;
        for (i, op) in ops.iter().enumerate() {
            let now = START + (i as i64 + 1) * 60_000;
            step(&rig, &mut hand, op, now).await?;
            check_faces(&rig, &hand, now)?;
        }
        // The breaker's stored state says the same as the model.
        let stored = {
            let db = rig.store.lock().unwrap();
            risk_store::load_breaker(db.conn(), GLOBAL_SCOPE).unwrap()
        };
        prop_assert_eq!(
            stored.state == BreakerState::Active,
            hand.state == HandState::Active
        );
        prop_assert!(utc_day_start(START + ops.len() as i64 * 60_000) <= START);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_face_tells_the_account_the_hand_model_computes(
        ops in proptest::collection::vec(op(), 1..16)
    ) {
        run_case(&ops)?;
    }
}

/// `trademind positions` read the position rows directly: the stop and target the position was
/// opened with, even after its protection was cancelled. It now shows what protects each
/// position from its live orders, as the TUI and `status` do.
#[tokio::test]
async fn positions_shows_a_position_unprotected_once_its_protection_is_cancelled() {
    use crate::exchange_cli::trademind;
    let dir = tempfile::tempdir().unwrap();
    let rig = rig_on(Store::open(&dir.path().join("trademind.db")).unwrap());
    reconciled_and_bought(&rig).await;
    let positions = |json: bool| {
        let mut cmd = trademind(dir.path());
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .arg("positions")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    let shown: Value = serde_json::from_str(&positions(true)).unwrap();
    assert_eq!(shown[0]["protection"], "both_legs", "{shown}");
    assert_eq!(shown[0]["live_stop"], "45000", "{shown}");
    assert_eq!(shown[0]["live_target"], "60000", "{shown}");
    assert!(positions(false).contains("stop+target"));

    // Cancelling one OCO leg cancels its sibling: nothing protects the position now.
    let leg = {
        let db = rig.store.lock().unwrap();
        trademind::store::orders::all(db.conn())
            .unwrap()
            .into_iter()
            .find(|o| {
                o.purpose == trademind::domain::trading::order::OrderPurpose::StopLoss
                    && o.order.status.is_open()
            })
            .expect("a live stop leg")
    };
    rig.service
        .cancel_order(&leg.order.client_order_id, START + 60_000)
        .await
        .unwrap();
    let shown: Value = serde_json::from_str(&positions(true)).unwrap();
    assert_eq!(shown[0]["protection"], "unprotected", "{shown}");
    assert_eq!(shown[0]["live_stop"], Value::Null, "{shown}");
    // The row still carries the level it was opened with; it protects nothing.
    assert_eq!(shown[0]["position"]["stop_loss"], "45000", "{shown}");
    let text = positions(false);
    assert!(
        text.contains("PROTECTION") && text.contains("UNPROTECTED"),
        "{text}"
    );
}

/// Alerts told what happened but not where the account stood; the mail now ends with the
/// account read model's summary as of the alert, the figures the TUI and `status` show.
#[tokio::test]
async fn a_stop_hit_alert_ends_with_the_account_as_every_face_shows_it() {
    use trademind::store::account::{AccountQuery, load};
    let rig = rig();
    reconciled_and_bought(&rig).await;
    // Through the stop (45 000): the paper exchange fills the stop leg, the monitor books it.
    rig.paper.on_price(&rig.btc, Price(dec!(44900))).unwrap();
    let then = START + 60_000;
    let monitored = rig.service.monitor_orders(then).await.unwrap();
    assert_eq!(monitored.closed.len(), 1, "the stop closed the position");

    let db = rig.store.lock().unwrap();
    let c = db.conn();
    let body: String = c
        .query_row(
            "SELECT body FROM alerts WHERE kind = 'stop_or_target_hit'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let view = load(
        c,
        &AccountQuery {
            connection: CONNECTION,
            now_ms: then,
            day_start_ms: utc_day_start(then),
            paper_starting_balance: Some(Quote(STARTING_CASH)),
            unresolved: Vec::new(),
        },
    )
    .unwrap();
    assert!(view.positions.is_empty());
    assert!(view.realised_pnl.get() < Decimal::ZERO);
    assert!(
        body.ends_with(&view.summary()),
        "{body}\n---\n{}",
        view.summary()
    );
    assert!(body.contains(&format!("today {}", view.day_pnl)), "{body}");
}
