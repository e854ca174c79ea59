//! `fake-binance`: the test fake Binance Spot REST server on its own, for pointing a real
//! `trademind` at it (`exchange.binance.base_url = "http://127.0.0.1:PORT"`).
//!
//! `cargo run --features fake-servers --bin fake-binance -- --port 9400`

use clap::Parser;
use rust_decimal::Decimal;
use std::process::ExitCode;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig};

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
    println!("fake-binance listening on {}", fake.base_url());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("fake-binance: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
