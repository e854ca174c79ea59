//! Scale-out (issue #19): part of a position sold at the first target, the rest kept under its
//! own stop: trailed with `trail_bips`, else moved to break-even once the part has sold. The
//! backtest, the paper exchange and the fake Binance each show it with numbers worked out by
//! hand.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::atomic::AtomicBool;
use trademind::domain::backtest::{
    BacktestConfig, BacktestResult, BacktestService, Costs, Engine, ExitReason, FillModel,
    OrderAmount, PartialExit, Rejection, Signal, SizeDecision, Sizer, SizingInput, Strategy,
    StrategyContext,
};
use trademind::domain::market::{Candle, CandleColumns, Interval};
use trademind::domain::money::{Price, Qty, Quote};
use trademind::domain::trading::order::TrailingDelta;
use trademind::domain::trading::scale_out::{ScaleOutShare, Unsplittable};

const HOUR: i64 = 3_600_000;

fn bar(i: i64, open: Decimal, high: Decimal, low: Decimal, close: Decimal) -> Candle {
    Candle {
        open_time: i * HOUR,
        open: Price(open),
        high: Price(high),
        low: Price(low),
        close: Price(close),
        volume: Qty(dec!(1)),
    }
}

/// Enters once, on the first candle's close, with the signal it is given.
struct EnterOnce(Option<Signal>);
impl Strategy for EnterOnce {
    fn name(&self) -> &str {
        "enter-once"
    }
    fn on_candle(&mut self, _ctx: &StrategyContext<'_>) -> Option<Signal> {
        self.0.take()
    }
}

/// Buys exactly `0` units.
struct Units(Decimal);
impl Sizer for Units {
    fn name(&self) -> &str {
        "units"
    }
    fn size(&self, input: &SizingInput<'_>) -> Option<SizeDecision> {
        Some(SizeDecision {
            amount: OrderAmount::Qty(Qty(self.0)),
            stop_loss: input.stop_loss,
        })
    }
}

fn share(pct: Decimal) -> ScaleOutShare {
    ScaleOutShare::from_pct(pct).unwrap()
}

/// Taker 10 bps, maker 2 bps (which one a fill paid shows who it was), fills at the close,
/// lot and tick 0.01, minimum notional `min_notional`.
fn run(
    signal: Signal,
    units: Decimal,
    candles: &[Candle],
    min_notional: Decimal,
) -> BacktestResult {
    let mut config = BacktestConfig::new(Interval::H1);
    config.initial_cash = Quote(dec!(10000));
    config.costs = Costs::from_bps(dec!(10), dec!(2), dec!(0));
    config.fill_model = FillModel::Close;
    config.filters.step_size = dec!(0.01);
    config.filters.tick_size = dec!(0.01);
    config.filters.min_notional = min_notional;
    let engine = Engine::new(
        Box::new(EnterOnce(Some(signal))),
        Box::new(Units(units)),
        config.initial_cash,
    )
    .with_fee_rate(config.costs.taker_fee);
    let cols = CandleColumns::from_candles(candles);
    BacktestService::run(
        &config,
        engine,
        candles,
        &cols,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap()
}

/// Buy 10 at 100 (taker fee 1.00; cost 1001), stop 95, target 110, 40 % out at the target.
/// Candle 1 (100 → 99 → 111 → 108) reaches the target: 4 sell at 110 as the maker, fee
/// 4 × 110 × 0.0002 = 0.088. Its close (108) is above break-even, 100 × 1.001 / 0.999 =
/// 100.2002.. → 100.21 on the tick, so the rest's stop moves there. Candle 2 falls from 107 to
/// 100: the 6 left sell at 100.21, fee 6 × 100.21 × 0.001 = 0.60126.
/// PnL = (440 − 0.088) + (601.26 − 0.60126) − 1001 = 39.57074.
/// Without the scale-out all 10 would sell at 110: 1100 − 0.22 − 1001 = 98.78.
#[test]
fn scale_out_sells_the_part_at_the_target_and_the_rest_at_its_break_even_stop() {
    let signal = Signal::enter_long()
        .with_stop_loss(Price(dec!(95)))
        .with_take_profit(Price(dec!(110)))
        .with_scale_out(share(dec!(40)));
    let candles = [
        bar(0, dec!(100), dec!(100), dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(111), dec!(99), dec!(108)),
        bar(2, dec!(107), dec!(107), dec!(100), dec!(101)),
    ];
    let r = run(signal, dec!(10), &candles, dec!(5));
    assert!(r.rejections.is_empty(), "{:?}", r.rejections);
    assert_eq!(r.trades.len(), 1, "{:#?}", r.trades);
    let t = &r.trades[0];
    assert_eq!(
        (t.qty, t.entry_price, t.entry_fee),
        (Qty(dec!(10)), Price(dec!(100)), Quote(dec!(1)))
    );
    assert_eq!(
        t.scaled_out,
        Some(PartialExit {
            time: HOUR,
            qty: Qty(dec!(4)),
            price: Price(dec!(110)),
            fee: Quote(dec!(0.088)),
            reason: ExitReason::TakeProfit,
        })
    );
    assert_eq!(t.exit_time, Some(2 * HOUR));
    assert_eq!(t.exit_reason, Some(ExitReason::StopLoss));
    // The average of both sells: (440 + 601.26) / 10.
    assert_eq!(t.exit_price, Some(Price(dec!(104.126))));
    assert_eq!(t.exit_fee, Quote(dec!(0.68926)));
    assert_eq!(t.pnl, Quote(dec!(39.57074)));
    assert_eq!(r.final_equity, Quote(dec!(10039.57074)));
}

/// Buy 10 at 100 (fee 1.00), trailing 500 BIPS (5 %) for the rest, the part's stop 95, target
/// 104, half out. Candle 1 (100 → 99 → 106 → 105): the trailing high becomes 106 (trigger
/// 100.7), nothing under it; the target sells 5 at 104, fee 5 × 104 × 0.0002 = 0.104. Candle 2
/// falls (105 → 108 → 99 → 100): 108 is the new high (trigger 102.6), 99 is the first price
/// under it, so the 5 left sell at 99, fee 5 × 99 × 0.001 = 0.495.
/// PnL = (520 − 0.104) + (495 − 0.495) − 1001 = 13.401.
#[test]
fn scale_out_with_a_trailing_stop_trails_only_the_rest() {
    let signal = Signal::enter_long()
        .with_stop_loss(Price(dec!(95)))
        .with_trailing(TrailingDelta(500))
        .with_take_profit(Price(dec!(104)))
        .with_scale_out(share(dec!(50)));
    let candles = [
        bar(0, dec!(100), dec!(100), dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(106), dec!(99), dec!(105)),
        bar(2, dec!(105), dec!(108), dec!(99), dec!(100)),
    ];
    let r = run(signal, dec!(10), &candles, dec!(5));
    let t = &r.trades[0];
    assert_eq!(
        t.scaled_out.map(|p| (p.qty, p.price, p.fee)),
        Some((Qty(dec!(5)), Price(dec!(104)), Quote(dec!(0.104))))
    );
    assert_eq!(t.exit_time, Some(2 * HOUR));
    assert_eq!(t.exit_reason, Some(ExitReason::TrailingStop));
    assert_eq!(t.exit_price, Some(Price(dec!(101.5))));
    assert_eq!(t.exit_fee, Quote(dec!(0.599)));
    assert_eq!(t.pnl, Quote(dec!(13.401)));
}

/// 4 % of 10 is 0.4 at 110 = 44, under a 50 minimum notional: not split. The whole position
/// is protected as one (an OCO live): all 10 sell at the 110 target, fee 10 × 110 × 0.0002 =
/// 0.22, PnL 1100 − 0.22 − 1001 = 98.78, and the run says why it was not scaled out.
#[test]
fn a_part_the_exchange_would_refuse_keeps_the_position_whole_and_says_so() {
    let signal = Signal::enter_long()
        .with_stop_loss(Price(dec!(95)))
        .with_take_profit(Price(dec!(110)))
        .with_scale_out(share(dec!(4)));
    let candles = [
        bar(0, dec!(100), dec!(100), dec!(100), dec!(100)),
        bar(1, dec!(100), dec!(111), dec!(99), dec!(108)),
    ];
    let r = run(signal, dec!(10), &candles, dec!(50));
    let t = &r.trades[0];
    assert_eq!(t.scaled_out, None);
    assert_eq!(t.exit_reason, Some(ExitReason::TakeProfit));
    assert_eq!(
        (t.exit_time, t.exit_price),
        (Some(HOUR), Some(Price(dec!(110))))
    );
    assert_eq!(t.pnl, Quote(dec!(98.78)));
    assert_eq!(r.rejections.len(), 1, "{:?}", r.rejections);
    let (at, why) = &r.rejections[0];
    assert_eq!(*at, 0);
    assert!(
        matches!(why, Rejection::NotScaledOut(Unsplittable::Part { part, .. }) if *part == Qty(dec!(0.4))),
        "{why:?}"
    );
    assert!(why.to_string().contains("protected as one"), "{why}");
}

mod live {
    //! Live trading of a scale-out: on the paper exchange (the part's OCO fills at the target,
    //! the rest's stop moves to break-even at the next monitor pass and fills there) and on the
    //! fake Binance (the two protective orders and their quantities).

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
    use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
    use trademind::store::strategies::{NewStrategy, add_connection, add_strategy};
    use trademind::store::{Store, orders, positions};

    /// 2025-01-15 01:00 UTC.
    const START: i64 = 1_736_899_200_000 + 3_600_000;
    const HOUR: i64 = 3_600_000;

    /// A strategy on the paper exchange (the default connection).
    fn strategy(store: &Mutex<Store>, parameters: serde_json::Value) -> i64 {
        strategy_on(store, parameters, None)
    }

    fn strategy_on(
        store: &Mutex<Store>,
        parameters: serde_json::Value,
        connection_id: Option<i64>,
    ) -> i64 {
        add_strategy(
            store.lock().unwrap().conn(),
            &NewStrategy {
                name: "scaler".into(),
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

    /// A strategy on the fake Binance's connection.
    fn binance_strategy(store: &Mutex<Store>, parameters: serde_json::Value) -> i64 {
        let connection = add_connection(
            store.lock().unwrap().conn(),
            "binance-testnet",
            "binance",
            true,
            None,
            START,
        )
        .unwrap();
        strategy_on(store, parameters, Some(connection))
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

    /// BUY 10 % with the stop at 45 000 and the target at 60 000.
    fn buy_decision(input: &DecisionInput) -> EngineOutput {
        let text = serde_json::json!({
            "action": "BUY", "symbol": "BTCUSDT", "confidence": 0.8,
            "position_size_pct": 10,
            "stop_loss": {"kind": "price", "value": 45000},
            "take_profit": {"kind": "price", "value": 60000},
            "time_horizon": "swing", "reasoning": "scale-out test", "risk_factors": [], "sources": []
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

    /// Open protection legs of a position: (purpose, quantity, stop price, in a list).
    fn live_legs(
        store: &Mutex<Store>,
        position_id: i64,
    ) -> Vec<(OrderPurpose, Decimal, Option<Price>, bool)> {
        let mut legs: Vec<_> = orders::of_position(store.lock().unwrap().conn(), position_id)
            .unwrap()
            .into_iter()
            .filter(|o| o.purpose.is_protection() && o.order.status.is_open())
            .map(|o| {
                (
                    o.purpose,
                    o.order.quantity.get(),
                    o.order.stop_price,
                    o.order_list_id.is_some(),
                )
            })
            .collect();
        legs.sort_by_key(|l| (l.0.as_str(), !l.3));
        legs
    }

    /// The paper account of these tests and a trading service on it.
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
        let mut settings = Settings::default();
        settings.trading.symbols = vec!["BTCUSDT".into()];
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
        (service, paper, store, btc)
    }

    /// The strategy's BUY, executed and booked: its position and the quantity bought.
    async fn bought(
        service: &TradingService<PaperExchange>,
        store: &Mutex<Store>,
        strategy_id: i64,
    ) -> (positions::PositionRow, Decimal) {
        assert!(service.reconcile(START).await.unwrap().reconciled);
        let input = input(START);
        let report = service
            .execute_decision(&input, &buy_decision(&input), Some(strategy_id), START)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::Executed,
            "{}",
            report.message
        );
        let row = positions::open_positions(store.lock().unwrap().conn()).unwrap()[0].clone();
        let entry = orders::of_position(store.lock().unwrap().conn(), row.id)
            .unwrap()
            .into_iter()
            .find(|o| o.purpose == OrderPurpose::Entry)
            .unwrap();
        (row, entry.order.filled_quantity.get())
    }

    /// Paper: 10 000 USDT, BTCUSDT at 50 000, fee 0.1 % (in BTC on a buy), lot 0.00000001,
    /// tick 0.01, no slippage; the strategy sells 40 % at the target.
    ///
    /// The entry buys B BTC at 50 000 and holds q = B × 0.999, of which s (q on the lot) can be
    /// sold. Its protection is an OCO for the part p = 40 % of s on the lot (target 60 000,
    /// stop 45 000) and a stop for the rest r = s − p (45 000). At 60 000 the part sells at its target; the monitor pass books it
    /// (the position keeps r, with no target) and moves the rest's stop to break-even,
    /// 50 000 × 1.001 / 0.999 = 50 100.1001.. → 50 100.11. At 50 100 that stop sells r.
    /// Realised PnL = p × 60 000 × 0.999 + r × 50 100 × 0.999 + dust × 50 100 − B × 50 000
    /// (every fee paid, the BTC fee included as the coins it took; the dust under a lot is
    /// booked at the last price).
    #[tokio::test]
    async fn paper_sells_the_part_at_the_target_and_the_rest_at_break_even() {
        let (service, paper, store, btc) = paper_service();
        let id = strategy(&store, serde_json::json!({"scale_out_pct": 40}));
        let (row, bought) = bought(&service, &store, id).await;
        let held = bought * dec!(0.999);
        assert_eq!(row.position.quantity.get(), held);
        // The sellable quantity is on the lot; what the fee left under one step stays as dust.
        let step = dec!(0.00000001);
        let sellable = (held / step).floor() * step;
        let part = (sellable * dec!(0.4) / step).floor() * step;
        let rest = sellable - part;
        assert!(part > Decimal::ZERO && rest > part);
        let (stop, target) = (Some(Price(dec!(45000))), dec!(60000));
        assert_eq!(
            live_legs(&store, row.id),
            [
                (OrderPurpose::StopLoss, part, stop, true),
                (OrderPurpose::StopLoss, rest, stop, false),
                (OrderPurpose::TakeProfit, part, None, true),
            ],
            "the part's OCO and the rest's stop"
        );

        // The target: only the part sells, at 60 000.
        let fills = paper.on_price(&btc, Price(dec!(60000))).unwrap();
        assert_eq!(
            fills
                .iter()
                .map(|f| (f.quantity.get(), f.price.get()))
                .collect::<Vec<_>>(),
            [(part, target)]
        );
        service.monitor_orders(START + HOUR).await.unwrap();
        let row = positions::get(store.lock().unwrap().conn(), row.id)
            .unwrap()
            .unwrap();
        assert_eq!(row.position.closed_at, None);
        assert_eq!(row.position.quantity.get(), held - part);
        assert_eq!(row.position.take_profit, None);
        let break_even = Price(dec!(50100.11));
        assert_eq!(row.position.stop_loss, Some(break_even));
        assert_eq!(
            live_legs(&store, row.id),
            [(OrderPurpose::StopLoss, rest, Some(break_even), false)],
            "the rest alone, its stop at break-even"
        );

        // Down to 50 100: the rest's stop sells it there.
        let fills = paper.on_price(&btc, Price(dec!(50100))).unwrap();
        assert_eq!(
            fills
                .iter()
                .map(|f| (f.quantity.get(), f.price.get()))
                .collect::<Vec<_>>(),
            [(rest, dec!(50100))]
        );
        service.monitor_orders(START + 2 * HOUR).await.unwrap();
        let closed = positions::get(store.lock().unwrap().conn(), row.id)
            .unwrap()
            .unwrap();
        assert!(closed.position.closed_at.is_some());
        // The dust (held − part − rest) is booked at the last fill's price, fee-free.
        let dust = held - part - rest;
        let pnl =
            part * target * dec!(0.999) + rest * dec!(50100) * dec!(0.999) + dust * dec!(50100)
                - bought * dec!(50000);
        assert_eq!(closed.position.realized_pnl.get(), pnl);
        assert!(pnl > Decimal::ZERO, "the rest could no longer lose: {pnl}");
    }

    /// With `trail_bips = 200` the rest is protected by a trailing stop-limit (no stop price):
    /// half of s (q on the lot) is the part p, the other half r. At 60 000 the part sells at
    /// its target and the trailing stop's high becomes 60 000 (trigger 58 800); the monitor
    /// pass books the part and leaves the rest's stop alone (no break-even move: it trails).
    /// At 58 800 the rest sells. PnL = p × 60 000 × 0.999 + r × 58 800 × 0.999 + dust × 58 800
    /// − B × 50 000.
    #[tokio::test]
    async fn paper_trails_the_rest_after_the_part_sold_at_the_target() {
        let (service, paper, store, btc) = paper_service();
        let id = strategy(
            &store,
            serde_json::json!({"scale_out_pct": 50, "trail_bips": 200}),
        );
        let (row, bought) = bought(&service, &store, id).await;
        let held = bought * dec!(0.999);
        let step = dec!(0.00000001);
        let sellable = (held / step).floor() * step;
        let part = (sellable / dec!(2) / step).floor() * step;
        let rest = sellable - part;
        let stop = Some(Price(dec!(45000)));
        assert_eq!(
            live_legs(&store, row.id),
            [
                (OrderPurpose::StopLoss, part, stop, true),
                (OrderPurpose::StopLoss, rest, None, false),
                (OrderPurpose::TakeProfit, part, None, true),
            ],
            "the part's OCO and the rest's trailing stop (no stop price)"
        );
        let fills = paper.on_price(&btc, Price(dec!(60000))).unwrap();
        assert_eq!(
            fills
                .iter()
                .map(|f| (f.quantity.get(), f.price.get()))
                .collect::<Vec<_>>(),
            [(part, dec!(60000))]
        );
        service.monitor_orders(START + HOUR).await.unwrap();
        assert_eq!(
            live_legs(&store, row.id),
            [(OrderPurpose::StopLoss, rest, None, false)],
            "the rest keeps its trailing stop"
        );
        assert!(paper.on_price(&btc, Price(dec!(58801))).unwrap().is_empty());
        let fills = paper.on_price(&btc, Price(dec!(58800))).unwrap();
        assert_eq!(
            fills
                .iter()
                .map(|f| (f.quantity.get(), f.price.get()))
                .collect::<Vec<_>>(),
            [(rest, dec!(58800))]
        );
        service.monitor_orders(START + 2 * HOUR).await.unwrap();
        let closed = positions::get(store.lock().unwrap().conn(), row.id)
            .unwrap()
            .unwrap();
        assert!(closed.position.closed_at.is_some());
        let dust = held - part - rest;
        let pnl = part * dec!(60000) * dec!(0.999)
            + rest * dec!(58800) * dec!(0.999)
            + dust * dec!(58800)
            - bought * dec!(50000);
        assert_eq!(closed.position.realized_pnl.get(), pnl);
    }

    /// The part's OCO fills on its STOP leg (45 000) while the rest, trailed 15 % from the
    /// entry (trigger 42 500), stays: the first target went with the part it was for. The rest
    /// keeps no target, so protecting it again (after a person cancelled its stop) places one
    /// stop for the rest, not a second split with an OCO at the old target.
    #[tokio::test]
    async fn after_the_parts_stop_fills_the_rest_keeps_no_target_and_is_protected_alone() {
        use trademind::services::exchange::Exchange;
        let (service, paper, store, btc) = paper_service();
        let id = strategy(
            &store,
            serde_json::json!({"scale_out_pct": 50, "trail_bips": 1500}),
        );
        let (row, bought) = bought(&service, &store, id).await;
        let held = bought * dec!(0.999);
        let step = dec!(0.00000001);
        let sellable = (held / step).floor() * step;
        let part = (sellable / dec!(2) / step).floor() * step;
        let rest = sellable - part;
        let fills = paper.on_price(&btc, Price(dec!(45000))).unwrap();
        assert_eq!(
            fills.iter().map(|f| f.quantity.get()).collect::<Vec<_>>(),
            [part],
            "the part's stop alone"
        );
        service.monitor_orders(START + HOUR).await.unwrap();
        let open = positions::get(store.lock().unwrap().conn(), row.id)
            .unwrap()
            .unwrap();
        assert_eq!(open.position.closed_at, None);
        assert_eq!(open.position.take_profit, None, "the first target is gone");
        assert_eq!(
            live_legs(&store, row.id),
            [(OrderPurpose::StopLoss, rest, None, false)],
            "the rest's trailing stop"
        );
        // A person cancels the rest's stop; `trademind protect` puts one stop back, for the
        // rest: nothing sold at the old target.
        let rest_stop = orders::of_position(store.lock().unwrap().conn(), row.id)
            .unwrap()
            .into_iter()
            .find(|o| o.purpose == OrderPurpose::StopLoss && o.order.status.is_open())
            .unwrap();
        paper
            .cancel_order(&btc, &rest_stop.order.client_order_id)
            .await
            .unwrap();
        service.monitor_orders(START + 2 * HOUR).await.unwrap();
        let report = service
            .protect(&btc, Some(Some(id)), START + 3 * HOUR)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::Executed,
            "{}",
            report.message
        );
        assert_eq!(
            live_legs(&store, row.id),
            [(OrderPurpose::StopLoss, rest, None, false)],
            "one trailing stop for the rest"
        );
    }

    /// The fake Binance (BTCUSDT at 50 000, lot 0.00001, minimum notional 5): the trading
    /// test's BUY (0.02 at 50 000, 0.01998 held; stop 49 000, target 52 000) for a strategy
    /// selling half at the target is protected by an OCO for 0.00999 (LIMIT_MAKER at 52 000 +
    /// STOP_LOSS_LIMIT at 49 000) and a STOP_LOSS_LIMIT at 49 000 for the other 0.00999.
    #[tokio::test]
    async fn the_fake_binance_holds_the_parts_oco_and_the_rests_stop_for_their_quantities() {
        use crate::trading::{NOW, Rig, buy};
        let rig = Rig::new().await;
        let service = rig.service().await;
        let id = binance_strategy(&rig.store, serde_json::json!({"scale_out_pct": 50}));
        let (input, out) = rig.decide(buy(0.8)).await;
        let report = service
            .execute_decision(&input, &out, Some(id), NOW)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::Executed,
            "{}",
            report.message
        );
        let mut on_exchange: Vec<_> = rig
            .binance
            .orders()
            .into_iter()
            .filter(|o| o.status == OrderStatus::New)
            .map(|o| (o.order_type, o.quantity, o.price, o.stop_price))
            .collect();
        on_exchange.sort_by_key(|o| (o.0.as_str(), o.2));
        let (half, stop) = (Qty(dec!(0.00999)), Some(Price(dec!(49000))));
        let limit = Some(Price(dec!(48755))); // 49 000 less the 0.5 % stop-limit offset
        assert_eq!(
            on_exchange,
            [
                (OrderType::LimitMaker, half, Some(Price(dec!(52000))), None),
                (OrderType::StopLossLimit, half, limit, stop),
                (OrderType::StopLossLimit, half, limit, stop),
            ]
        );
        let row = rig.open_positions()[0].clone();
        assert_eq!(
            live_legs(&rig.store, row.id),
            [
                (OrderPurpose::StopLoss, dec!(0.00999), stop, true),
                (OrderPurpose::StopLoss, dec!(0.00999), stop, false),
                (OrderPurpose::TakeProfit, dec!(0.00999), None, true),
            ]
        );
        // Together the two stops cover the position: a monitor pass leaves them in place.
        service.monitor_orders(NOW + 60_000).await.unwrap();
        assert!(
            rig.binance
                .orders()
                .iter()
                .all(|o| o.status != OrderStatus::Canceled),
            "{:#?}",
            rig.binance.orders()
        );
        assert_eq!(live_legs(&rig.store, row.id).len(), 3);
    }

    /// At 0.1 % the part is 0.00001 BTC, 0.52 USDT at the target: under the 5 USDT minimum
    /// notional, so the position is not split: one OCO for the whole 0.01998, and the entry's
    /// report says why.
    #[tokio::test]
    async fn the_fake_binance_gets_one_oco_when_the_part_would_be_refused_and_the_report_says_why()
    {
        use crate::trading::{NOW, Rig, buy};
        let rig = Rig::new().await;
        let service = rig.service().await;
        let id = binance_strategy(&rig.store, serde_json::json!({"scale_out_pct": 0.1}));
        let (input, out) = rig.decide(buy(0.8)).await;
        let report = service
            .execute_decision(&input, &out, Some(id), NOW)
            .await
            .unwrap();
        assert_eq!(
            report.outcome,
            ExecutionOutcome::Executed,
            "{}",
            report.message
        );
        assert!(
            report.message.contains("not scaled out") && report.message.contains("NOTIONAL"),
            "{}",
            report.message
        );
        let row = rig.open_positions()[0].clone();
        assert_eq!(
            live_legs(&rig.store, row.id),
            [
                (
                    OrderPurpose::StopLoss,
                    dec!(0.01998),
                    Some(Price(dec!(49000))),
                    true
                ),
                (OrderPurpose::TakeProfit, dec!(0.01998), None, true),
            ]
        );
    }
}

/// A person cancels the part's OCO on the exchange (not through TradeMind): the rest's stop
/// stays, and the next monitor pass does not take it down to put both back behind their back;
/// reconciliation reports the position and `trademind protect` is theirs to run.
#[tokio::test]
async fn a_scale_out_whose_oco_a_person_cancelled_is_not_put_back_behind_their_back() {
    use crate::exchange_common::{client_config, client_for};
    use crate::trading::{NOW, Rig, buy};
    use trademind::app::trading::ExecutionOutcome;
    use trademind::domain::Symbol;
    use trademind::domain::trading::order::{OrderPurpose, OrderStatus};
    use trademind::services::exchange::Exchange;
    use trademind::store::orders;
    let rig = Rig::new().await;
    let service = rig.service().await;
    let connection = trademind::store::strategies::add_connection(
        rig.store.lock().unwrap().conn(),
        "binance-testnet",
        "binance",
        true,
        None,
        NOW,
    )
    .unwrap();
    let id = trademind::store::strategies::add_strategy(
        rig.store.lock().unwrap().conn(),
        &trademind::store::strategies::NewStrategy {
            name: "scaler".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            decision_engine: "llm".into(),
            parameters: serde_json::json!({"scale_out_pct": 50}),
            connection_id: Some(connection),
        },
        NOW,
    )
    .unwrap();
    let (input, out) = rig.decide(buy(0.8)).await;
    let report = service
        .execute_decision(&input, &out, Some(id), NOW)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
    let row = rig.open_positions()[0].clone();
    let legs = orders::of_position(rig.store.lock().unwrap().conn(), row.id).unwrap();
    let target = legs
        .iter()
        .find(|o| o.purpose == OrderPurpose::TakeProfit)
        .unwrap();
    let btc = Symbol::new("BTCUSDT").unwrap();
    client_for(&rig.binance, client_config(&rig.binance))
        .cancel_order(&btc, &target.order.client_order_id)
        .await
        .unwrap();
    let open_before: Vec<_> = rig
        .binance
        .orders()
        .into_iter()
        .filter(|o| o.status == OrderStatus::New)
        .collect();
    assert_eq!(
        open_before.len(),
        1,
        "the rest's stop alone: {open_before:#?}"
    );

    service.monitor_orders(NOW + 60_000).await.unwrap();
    let after = rig.binance.orders();
    let open_after: Vec<_> = after
        .iter()
        .filter(|o| o.status == OrderStatus::New)
        .cloned()
        .collect();
    assert_eq!(open_after, open_before, "nothing taken down or put back");
    assert_eq!(after.len(), 4, "no new order: {after:#?}");
}

/// With `trail_bips = 150` the fake Binance holds the part's OCO (LIMIT_MAKER at 52 000 +
/// STOP_LOSS_LIMIT at 49 000, 0.00999 each) and, for the other 0.00999, a STOP_LOSS_LIMIT with
/// `trailingDelta` and no stop price, which the fake accepts as Binance does.
#[tokio::test]
async fn the_fake_binance_holds_a_trailing_stop_for_the_rest() {
    use crate::trading::{NOW, Rig, buy};
    use trademind::app::trading::ExecutionOutcome;
    use trademind::domain::trading::order::{OrderStatus, OrderType};
    let rig = Rig::new().await;
    let service = rig.service().await;
    let connection = trademind::store::strategies::add_connection(
        rig.store.lock().unwrap().conn(),
        "binance-testnet",
        "binance",
        true,
        None,
        NOW,
    )
    .unwrap();
    let id = trademind::store::strategies::add_strategy(
        rig.store.lock().unwrap().conn(),
        &trademind::store::strategies::NewStrategy {
            name: "scaler".into(),
            symbols: vec!["BTCUSDT".into()],
            interval: "1h".into(),
            decision_engine: "llm".into(),
            parameters: serde_json::json!({"scale_out_pct": 50, "trail_bips": 150}),
            connection_id: Some(connection),
        },
        NOW,
    )
    .unwrap();
    let (input, out) = rig.decide(buy(0.8)).await;
    let report = service
        .execute_decision(&input, &out, Some(id), NOW)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        ExecutionOutcome::Executed,
        "{}",
        report.message
    );
    let mut open: Vec<_> = rig
        .binance
        .orders()
        .into_iter()
        .filter(|o| o.status == OrderStatus::New)
        .map(|o| (o.order_type, o.quantity, o.stop_price))
        .collect();
    open.sort_by_key(|o| (o.0.as_str(), o.2));
    let half = Qty(dec!(0.00999));
    assert_eq!(
        open,
        [
            (OrderType::LimitMaker, half, None),
            (OrderType::StopLossLimit, half, None),
            (OrderType::StopLossLimit, half, Some(Price(dec!(49000)))),
        ]
    );
}
