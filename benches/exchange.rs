//! Exchange hot paths: request signing and the matching engine behind the paper exchange.
//! `cargo bench --bench exchange`

use rust_decimal::Decimal;
use std::hint::black_box;
use std::time::Instant;
use trademind::domain::money::{Price, Qty};
use trademind::domain::symbol::Symbol;
use trademind::domain::trading::filters::SymbolFilters;
use trademind::domain::trading::order::{OrderRequest, OrderType, Side, TimeInForce};
use trademind::services::exchange::binance::Credentials;
use trademind::services::exchange::binance::signing::encode_query;
use trademind::services::exchange::engine::Engine;

fn report(name: &str, n: u32, started: Instant) {
    let per = started.elapsed() / n;
    println!("{name:<40} {n:>8} iterations  {per:>10.2?} per iteration");
}

fn main() {
    let creds = Credentials::new(
        "key",
        "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
    );
    let params = vec![
        ("symbol", "BTCUSDT".to_string()),
        ("side", "BUY".into()),
        ("type", "LIMIT".into()),
        ("timeInForce", "GTC".into()),
        ("quantity", "0.01".into()),
        ("price", "50000".into()),
        ("newClientOrderId", "tm-bench-0123456789".into()),
        ("recvWindow", "5000".into()),
        ("timestamp", "1764000000000".into()),
    ];
    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        black_box(creds.sign(&encode_query(black_box(&params))));
    }
    report("encode + HMAC-sign an order", n, started);

    let symbol = Symbol::new("BTCUSDT").unwrap_or_else(|e| panic!("{e}"));
    let mut engine = Engine::new(Decimal::new(1, 3));
    engine.add_symbol(symbol.clone(), SymbolFilters::permissive("BTC", "USDT"));
    engine.deposit("USDT", Decimal::from(1_000_000_000));
    engine.set_price(&symbol, Price(Decimal::from(50_000)), 0);
    let n = 2_000;
    let started = Instant::now();
    for i in 0..n {
        let request = OrderRequest {
            client_order_id: format!("b{i}"),
            symbol: symbol.clone(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: Qty(Decimal::new(1, 2)),
            price: Some(Price(Decimal::from(40_000 + i64::from(i % 1000)))),
            stop_price: None,
            time_in_force: Some(TimeInForce::Gtc),
            trailing_delta: None,
        };
        black_box(engine.place(&request, 1).ok());
    }
    report("place a resting limit order (book grows)", n, started);
    let started = Instant::now();
    black_box(engine.set_price(&symbol, Price(Decimal::from(39_000)), 2));
    report("one price tick filling 2000 resting orders", 1, started);
}
