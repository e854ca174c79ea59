//! Shared set-up for the exchange flows: a fake Binance with a client and an executor wired to
//! it, and a paper exchange with the same filters and balances.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::sync::{Arc, Mutex};
use trademind::domain::money::{Price, Qty};
use trademind::domain::symbol::Symbol;
use trademind::domain::trading::order::{OrderRequest, OrderType, Side, TimeInForce};
use trademind::services::exchange::binance::models::ExchangeInfo;
use trademind::services::exchange::binance::{BinanceClient, BinanceConfig};
use trademind::services::exchange::executor::{ExecutorConfig, OrderExecutor};
use trademind::services::exchange::paper::{PaperConfig, PaperExchange};
use trademind::store::Store;
use trademind::testkit::fake_binance::{EXCHANGE_INFO_FIXTURE, FakeBinance, FakeConfig};

pub fn btcusdt() -> Symbol {
    Symbol::new("BTCUSDT").unwrap()
}

pub fn client_config(fake: &FakeBinance) -> BinanceConfig {
    BinanceConfig {
        base_url: Some(fake.base_url()),
        request_timeout_ms: 2_000,
        max_read_retries: 3,
        ..BinanceConfig::default()
    }
}

pub fn client_for(fake: &FakeBinance, config: BinanceConfig) -> BinanceClient {
    BinanceClient::new(config, Some(fake.credentials())).unwrap()
}

/// Fast resolution for tests; "not found" becomes final 300 ms after sending.
pub fn executor_config() -> ExecutorConfig {
    ExecutorConfig {
        resolve_attempts: 10,
        resolve_initial_delay_ms: 50,
        not_found_grace_ms: Some(300),
        max_ban_wait_ms: 3_000,
        max_rate_limit_rounds: 3,
    }
}

pub fn executor<E: trademind::services::exchange::Exchange>(
    exchange: Arc<E>,
    connection: &str,
) -> (OrderExecutor<E>, Arc<Mutex<Store>>) {
    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    (
        OrderExecutor::new(exchange, store.clone(), connection, executor_config()),
        store,
    )
}

pub async fn fake() -> FakeBinance {
    FakeBinance::start(FakeConfig::default()).await.unwrap()
}

/// A paper exchange with the fixture's BTCUSDT filters, 10000 USDT + 1 BTC, price 50000,
/// no slippage: the same starting point as the fake.
/// The time order rows are stamped with (2025-01-15T00:00:00Z): the executor takes the
/// caller's clock.
pub const ORDER_TIME: i64 = 1_736_899_200_000;

pub fn paper() -> PaperExchange {
    let config = PaperConfig {
        slippage_bps: Decimal::ZERO,
        initial_balances: [
            ("USDT".to_string(), dec!(10000)),
            ("BTC".to_string(), dec!(1)),
        ]
        .into_iter()
        .collect(),
        symbols: vec![],
        ..PaperConfig::default()
    };
    let paper = PaperExchange::in_memory(&config);
    paper.add_symbol(btcusdt(), fixture_filters()).unwrap();
    paper.on_price(&btcusdt(), Price(dec!(50000))).unwrap();
    paper
}

pub fn fixture_filters() -> trademind::domain::trading::filters::SymbolFilters {
    let info: ExchangeInfo = serde_json::from_str(EXCHANGE_INFO_FIXTURE).unwrap();
    info.symbols[0].to_filters().unwrap()
}

pub fn market(cid: &str, side: Side, qty: Decimal) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        symbol: btcusdt(),
        side,
        order_type: OrderType::Market,
        quantity: Qty(qty),
        price: None,
        stop_price: None,
        time_in_force: None,
        trailing_delta: None,
    }
}

pub fn limit(cid: &str, side: Side, qty: Decimal, price: Decimal) -> OrderRequest {
    OrderRequest {
        client_order_id: cid.into(),
        symbol: btcusdt(),
        side,
        order_type: OrderType::Limit,
        quantity: Qty(qty),
        price: Some(Price(price)),
        stop_price: None,
        time_in_force: Some(TimeInForce::Gtc),
        trailing_delta: None,
    }
}
