//! `fake-binance`: the test fake Binance Spot REST server on its own, for pointing a real
//! `trademind` at it (`exchange.binance.base_url = "http://127.0.0.1:PORT"`).
//!
//! `cargo run --features fake-servers --bin fake-binance -- --port 9400 [--klines rebound|walk]
//! [--seed N] [--candles FILE.csv]`
//!
//! With `--klines walk` (a seeded random walk) or `--candles FILE.csv` (a recorded market, its
//! candles moved in time to end now) the market goes on: at every interval boundary the candle
//! that just closed is added and the price moves to its close, so resting orders it crosses fill.
//!
//! Fault knobs over HTTP: `POST /fake/faults?orders_5xx_after_accept=1&my_trades_5xx_next=4`,
//! `GET /fake/faults`; the price: `POST /fake/price?symbol=BTCUSDT&price=51000`.

use clap::Parser;
use rust_decimal::Decimal;
use std::process::ExitCode;
use trademind::domain::market::{Candle, Interval};
use trademind::services::market_data::import::read_candles_file;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, flat_candles, rebound_candles};
use trademind::testkit::fake_klines::{RandomWalk, restamp};

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
    /// BTCUSDT klines served, closed up to now: `flat` (at --price), `rebound` (a slow
    /// decline, then ten rising closes: the rules engine with `oversold = 99` buys on it) or
    /// `walk` (a random walk from --price, seeded by --seed, that goes on one candle per
    /// interval and moves the price with it).
    #[arg(long, default_value = "flat", value_parser = ["flat", "rebound", "walk"])]
    klines: String,
    /// Seed of `--klines walk`: the same seed gives the same market.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replay a recorded market instead (a Binance kline dump or `open_time,open,high,low,
    /// close,volume` CSV of --interval candles): the first --history candles end now, the rest
    /// follow one per interval, the price with them.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "klines")]
    candles: Option<std::path::PathBuf>,
    /// Candles of `--candles` served as history at the start.
    #[arg(long, default_value_t = 200)]
    history: usize,
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
    let step = interval.millis();
    // The candle that closed last opens one interval before the current boundary.
    let last_closed_open = now - now.rem_euclid(step) - step;
    let (history, mut upcoming): (Vec<Candle>, Box<dyn Iterator<Item = Candle> + Send>) =
        match (&args.candles, args.klines.as_str()) {
            (Some(path), _) => {
                let recorded = match read_candles_file(path, interval, now) {
                    Ok(c) if !c.is_empty() => c,
                    Ok(_) => {
                        eprintln!("fake-binance: {} holds no candles", path.display());
                        return ExitCode::from(2);
                    }
                    Err(e) => {
                        eprintln!("fake-binance: {e}");
                        return ExitCode::from(2);
                    }
                };
                let split = args.history.clamp(1, recorded.len());
                let history = restamp(&recorded[..split], interval, last_closed_open);
                let rest = recorded[split..].to_vec();
                (history, Box::new(rest.into_iter()))
            }
            (None, "walk") => {
                let mut walk = RandomWalk::new(args.seed, args.price);
                let history = walk.history(300, interval, last_closed_open);
                (
                    history,
                    Box::new(std::iter::from_fn(move || Some(walk.next_candle(0)))),
                )
            }
            (None, "rebound") => (
                rebound_candles(args.price, interval, now),
                Box::new(std::iter::empty()),
            ),
            _ => (
                flat_candles(args.price, 200, interval, now - now.rem_euclid(step)),
                Box::new(std::iter::empty()),
            ),
        };
    // The ticker stands where the klines end.
    if let Some(last) = history.last() {
        fake.set_price("BTCUSDT", last.close.get());
    }
    fake.set_klines("BTCUSDT", history.clone());
    // The market goes on: at each boundary the candle that just closed is added (stamped with
    // its real open time) and the price moves to its close.
    let fake = std::sync::Arc::new(fake);
    let market = {
        let fake = fake.clone();
        let mut served = history;
        tokio::spawn(async move {
            loop {
                let now = chrono::Utc::now().timestamp_millis();
                let wait = step - now.rem_euclid(step);
                tokio::time::sleep(std::time::Duration::from_millis(wait.max(1) as u64)).await;
                let Some(next) = upcoming.next() else { break };
                let boundary = chrono::Utc::now().timestamp_millis();
                let open_time = boundary - boundary.rem_euclid(step) - step;
                let candle = Candle { open_time, ..next };
                fake.set_price("BTCUSDT", candle.close.get());
                served.push(candle);
                // Binance serves at most 1000 per request; keep a few requests' worth.
                if served.len() > 5000 {
                    served.drain(..served.len() - 5000);
                }
                fake.set_klines("BTCUSDT", served.clone());
            }
        })
    };
    println!("fake-binance listening on {}", fake.base_url());
    let stopped = tokio::signal::ctrl_c().await;
    market.abort();
    if let Err(e) = stopped {
        eprintln!("fake-binance: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
