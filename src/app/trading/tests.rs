//! Unit tests of the trading service's helpers and steps on the paper exchange.

use super::settle::position_fill;
use super::*;
use crate::domain::decision::{Action, DecisionInput, TradingDecision};
use crate::domain::market::candle::Interval;
use crate::domain::money::{Qty, Quote};
use crate::domain::risk::IntentKind;
use crate::domain::trading::order::{Fill, Side};
use crate::domain::trading::plan::book_exit;
use crate::domain::trading::{PositionService, PositionSide, SymbolFilters};
use crate::services::exchange::balance_of;
use crate::store::{orders, positions};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

fn filters() -> SymbolFilters {
    let mut f = SymbolFilters::permissive("BTC", "USDT");
    f.step_size = dec!(0.00001);
    f
}

fn fill(side: Side, price: Decimal, qty: Decimal, fee: Decimal, asset: &str) -> Fill {
    Fill {
        client_order_id: "x".into(),
        trade_id: None,
        symbol: Symbol::new("BTCUSDT").unwrap(),
        side,
        price: Price(price),
        quantity: Qty(qty),
        fee: Quote(fee),
        fee_asset: asset.into(),
        is_maker: false,
        time: 1,
    }
}

#[test]
fn a_fee_in_the_base_asset_shrinks_the_holding_and_is_valued_at_the_fill_price() {
    let f = position_fill(
        &fill(Side::Buy, dec!(50000), dec!(0.02), dec!(0.00002), "BTC"),
        &filters(),
    );
    assert_eq!(f.quantity, Qty(dec!(0.01998)));
    assert_eq!(f.fee, Quote(dec!(1)));
    let f = position_fill(
        &fill(Side::Sell, dec!(50000), dec!(0.02), dec!(1), "USDT"),
        &filters(),
    );
    assert_eq!((f.quantity, f.fee), (Qty(dec!(0.02)), Quote(dec!(1))));
    let f = position_fill(
        &fill(Side::Sell, dec!(50000), dec!(0.02), dec!(0.003), "BNB"),
        &filters(),
    );
    assert_eq!(
        f.fee,
        Quote::ZERO,
        "a third-asset fee is not booked in quote"
    );
}

#[test]
fn a_remainder_below_one_lot_step_is_closed_with_the_exit() {
    let open = position_fill(
        &fill(Side::Buy, dec!(100), dec!(1.000005), dec!(0), "USDT"),
        &filters(),
    );
    let mut p = PositionService::open(&open, PositionSide::Long).unwrap();
    let exit = position_fill(
        &fill(Side::Sell, dec!(110), dec!(1), dec!(0.11), "USDT"),
        &filters(),
    );
    let realised = book_exit(&mut p, &[exit], &filters()).unwrap();
    assert!(p.closed_at.is_some());
    // 1 × 10 − 0.11, plus the 0.000005 dust at 110: 0.00005.
    assert_eq!(realised, Quote(dec!(9.89005)));
    assert_eq!(p.quantity, Qty::ZERO);
}

#[test]
fn sell_without_a_long_is_no_intent_and_buy_levels_come_from_the_snapshot_price() {
    let input = DecisionInput::from_candles(
        Symbol::new("BTCUSDT").unwrap(),
        Interval::H1,
        &[crate::domain::market::Candle {
            open_time: 0,
            open: Price(dec!(100)),
            high: Price(dec!(100)),
            low: Price(dec!(100)),
            close: Price(dec!(100)),
            volume: Qty(dec!(1)),
        }],
        1,
    )
    .unwrap();
    let mut d = TradingDecision::hold("BTCUSDT", "");
    d.action = Action::Sell;
    assert_eq!(intent_for(&d, &input, Price(dec!(101)), None, None), None);
    d.action = Action::Buy;
    d.confidence = 0.7;
    d.stop_loss = Some(crate::domain::decision::Level {
        kind: crate::domain::decision::LevelKind::Percent,
        value: 2.0,
    });
    let intent = intent_for(&d, &input, Price(dec!(101)), None, None).unwrap();
    assert_eq!(intent.kind, IntentKind::Entry);
    assert_eq!(intent.entry, Price(dec!(101)));
    assert_eq!(intent.stop_loss, Some(Price(dec!(98))));
}

mod close_race {
    use super::*;
    use crate::services::exchange::paper::{PaperConfig, PaperExchange};
    use rust_decimal_macros::dec;

    const NOW: i64 = 1_767_225_600_000;

    /// A paper account that also holds 1 BTC the bot did not buy: a second sale of a closed
    /// position would succeed here, as it would on a real account.
    fn service() -> (
        TradingService<PaperExchange>,
        Arc<PaperExchange>,
        Arc<Mutex<Store>>,
    ) {
        let config = PaperConfig {
            slippage_bps: Decimal::ZERO,
            initial_balances: [
                ("USDT".to_string(), dec!(5000)),
                ("BTC".to_string(), dec!(1)),
            ]
            .into_iter()
            .collect(),
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
            bus: EventBus::new(16),
            mailer: None,
        });
        (service, paper, store)
    }

    /// A close decided on a position row read just before its stop filled and was booked (the
    /// user-data stream or the monitor got there first) must not sell the quantity again.
    #[tokio::test]
    async fn a_close_on_a_stale_row_does_not_sell_what_the_stop_already_sold() {
        let (service, paper, store) = service();
        let btc = Symbol::new("BTCUSDT").unwrap();
        service.reconcile(NOW).await.unwrap();
        let filters = SymbolFilters::permissive("BTC", "USDT");
        let mut entry = ExecutionReport::new(&btc, "BUY");
        service
            .enter(
                &btc,
                Qty(dec!(0.01)),
                super::entry::EntryOrder::Market,
                super::entry::Levels {
                    stop: Some(Price(dec!(49000))),
                    target: Some(Price(dec!(52000))),
                },
                &filters,
                None,
                &mut entry,
                NOW,
            )
            .await
            .unwrap();
        assert_eq!(
            entry.outcome,
            ExecutionOutcome::Executed,
            "{}",
            entry.message
        );
        let stale =
            positions::open_position(store.lock().unwrap().conn(), "paper", "BTCUSDT", None)
                .unwrap()
                .expect("an open position");

        // The stop fills on the exchange and is booked.
        paper.on_price(&btc, Price(dec!(48900))).unwrap();
        let monitored = service.monitor_orders(NOW + 1).await.unwrap();
        assert_eq!(monitored.closed.len(), 1, "the stop closed the position");
        let btc_after_stop = balance_of(&paper.balances().await.unwrap(), "BTC");

        let mut close = ExecutionReport::new(&btc, "CLOSE");
        let realised = service.close_row(stale, &mut close, NOW + 2).await.unwrap();
        assert_eq!(
            close.outcome,
            ExecutionOutcome::AlreadyClosed,
            "{}",
            close.message
        );
        assert_eq!(realised, Quote::ZERO);
        assert!(close.order_ids.is_empty(), "no exit order was placed");
        assert_eq!(
            balance_of(&paper.balances().await.unwrap(), "BTC"),
            btc_after_stop,
            "the account's other BTC is untouched"
        );
        let exits = orders::of_position(store.lock().unwrap().conn(), entry.position_id.unwrap())
            .unwrap()
            .into_iter()
            .filter(|o| o.purpose == OrderPurpose::Exit)
            .count();
        assert_eq!(exits, 0);
    }
}
