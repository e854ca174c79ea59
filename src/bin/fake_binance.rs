//! `fake-binance`: the test fake Binance Spot REST server on its own, for pointing a real
//! `trademind` at it (`exchange.binance.base_url = "http://127.0.0.1:PORT"`).
//!
//! `cargo run --features fake-servers --bin fake-binance -- --port 9400 [--klines rebound]`
//!
//! Fault knobs over HTTP: `POST /fake/faults?orders_5xx_after_accept=1&my_trades_5xx_next=4`,
//! `GET /fake/faults`; the price: `POST /fake/price?symbol=BTCUSDT&price=51000`.

use clap::Parser;
use rust_decimal::Decimal;
use std::process::ExitCode;
use trademind::domain::market::Interval;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, flat_candles, rebound_candles};

#[derive(Debug, Parser)]
#[command(
    name = "fake-binance",
    about = "A fake Binance Spot REST API on 127.0.0.1 for tests"
)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// API key the fake accepts.
    #[arg(long, default_value = "fake-api-key")]
    api_key: String,
    /// API secret the fake verifies signatures with.
    #[arg(long, default_value = "fake-api-secret")]
    api_secret: String,
    /// Starting BTCUSDT price (move it with POST /fake/price?symbol=BTCUSDT&price=…).
    #[arg(long, default_value = "50000")]
    price: Decimal,
    /// Request weight allowed per minute.
    #[arg(long, default_value_t = 6000)]
    weight_limit: u32,
    /// BTCUSDT klines served, closed up to now: `flat` (at --price) or `rebound` (a slow
    /// decline, then ten rising closes: the rules engine with `oversold = 99` buys on it).
    #[arg(long, default_value = "flat", value_parser = ["flat", "rebound"])]
    klines: String,
    /// Interval of those klines (the one the strategy decides on).
    #[arg(long, default_value = "1h")]
    interval: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = FakeConfig {
        api_key: args.api_key,
        api_secret: args.api_secret,
        price: args.price,
        weight_limit: args.weight_limit,
        ..FakeConfig::default()
    };
    let fake = match FakeBinance::start_on_port(config, args.port).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fake-binance: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(interval) = args.interval.parse::<Interval>() else {
        eprintln!(
            "fake-binance: --interval {:?} is not a Binance interval",
            args.interval
        );
        return ExitCode::from(2);
    };
    let now = chrono::Utc::now().timestamp_millis();
    let candles = match args.klines.as_str() {
        "rebound" => rebound_candles(args.price, interval, now),
        _ => {
            let step = interval.millis();
            flat_candles(args.price, 200, interval, now - now.rem_euclid(step))
        }
    };
    // The ticker stands where the klines end.
    if let Some(last) = candles.last() {
        fake.set_price("BTCUSDT", last.close.get());
    }
    fake.set_klines("BTCUSDT", candles);
    println!("fake-binance listening on {}", fake.base_url());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("fake-binance: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
