//! Paper trading survives a restart: balances, open orders and fills are in SQLite.

use crate::exchange_common::*;
use rust_decimal_macros::dec;
use trademind::domain::market::candle::{Candle, Interval};
use trademind::domain::money::{Price, Qty};
use trademind::domain::trading::order::{OrderStatus, Side};
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::services::exchange::{Exchange, balance_of};
use trademind::store::Store;

#[tokio::test]
async fn paper_account_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paper.db");
    let config = PaperConfig {
        slippage_bps: dec!(0),
        ..PaperConfig::default()
    };
    {
        let paper = PaperExchange::open(Store::open(&path).unwrap(), "paper", &config).unwrap();
        paper.on_price(&btcusdt(), Price(dec!(50000))).unwrap();
        paper
            .place_order(&market("p-1", Side::Buy, dec!(0.1)))
            .await
            .unwrap();
        paper
            .place_order(&limit("p-2", Side::Buy, dec!(0.02), dec!(45000)))
            .await
            .unwrap();
    }
    let paper = PaperExchange::open(Store::open(&path).unwrap(), "paper", &config).unwrap();
    let balances = paper.balances().await.unwrap();
    // 10000 - 5000 (market) - 900 locked for the limit
    assert_eq!(balance_of(&balances, "USDT").free, dec!(4100));
    assert_eq!(balance_of(&balances, "USDT").locked, dec!(900));
    assert_eq!(balance_of(&balances, "BTC").free, dec!(0.0999));
    assert_eq!(paper.open_orders(&btcusdt()).await.unwrap().len(), 1);
    assert_eq!(paper.my_trades(&btcusdt()).await.unwrap().len(), 1);
    // A candle whose low crosses the limit fills it after the restart.
    let candle = Candle {
        open_time: 0,
        open: Price(dec!(50000)),
        high: Price(dec!(50100)),
        low: Price(dec!(44900)),
        close: Price(dec!(46000)),
        volume: Qty(dec!(10)),
    };
    let fills = paper.on_candle(&btcusdt(), Interval::M1, &candle).unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].price, Price(dec!(45000)));
    assert_eq!(
        paper.query_order(&btcusdt(), "p-2").await.unwrap().status,
        OrderStatus::Filled
    );
    assert_eq!(
        paper
            .klines(&btcusdt(), Interval::M1, None, 10)
            .await
            .unwrap(),
        vec![candle]
    );
    assert_eq!(
        paper.ticker_price(&btcusdt()).await.unwrap(),
        Price(dec!(46000))
    );
}

#[tokio::test]
async fn paper_market_order_pays_slippage_without_a_book() {
    let config = PaperConfig {
        slippage_bps: dec!(10),
        ..PaperConfig::default()
    };
    let paper = PaperExchange::in_memory(&config);
    paper.on_price(&btcusdt(), Price(dec!(50000))).unwrap();
    let placed = paper
        .place_order(&market("s-1", Side::Buy, dec!(0.01)))
        .await
        .unwrap();
    // 50000 * 1.001 = 50050
    assert_eq!(placed.fills[0].price, Price(dec!(50050)));
}

#[tokio::test]
async fn paper_orders_and_fills_carry_the_injected_clock_time() {
    // 2025-01-15 12:00 UTC: a replayed market, not today.
    let replay_ms = 1_736_942_400_000_i64;
    let clock = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(replay_ms));
    let reader = clock.clone();
    let paper = PaperExchange::in_memory(&PaperConfig::default()).with_clock(std::sync::Arc::new(
        move || reader.load(std::sync::atomic::Ordering::SeqCst),
    ));
    paper.on_price(&btcusdt(), Price(dec!(50000))).unwrap();
    let placed = paper
        .place_order(&market("c-1", Side::Buy, dec!(0.01)))
        .await
        .unwrap();
    assert_eq!(placed.order.created_at, replay_ms);
    assert_eq!(placed.fills[0].time, replay_ms);
    clock.store(replay_ms + 3_600_000, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(paper.server_time().await.unwrap(), replay_ms + 3_600_000);
}
