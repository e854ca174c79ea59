//! `fake-binance`: the test fake Binance Spot REST server on its own, for pointing a real
//! `trademind` at it (`exchange.binance.base_url = "http://127.0.0.1:PORT"`).
//!
//! `cargo run --features fake-servers --bin fake-binance -- --port 9400 [--klines rebound|walk]
//! [--seed N] [--candles FILE.csv] [--speed X]`
//!
//! With `--klines walk` (a seeded random walk) or `--candles FILE.csv` (a recorded market, its
//! candles moved in time to end now) the market goes on: at every interval boundary the candle
//! that just closed is added and the price moves to its close, so resting orders it crosses fill.
//! `--speed X` replays X times faster: the market then starts `--replay-hours` in the past and
//! catches up with now (every candle stays closed in the past, as a client checks), then goes on
//! in real time.
//!
//! The WebSocket side is on the same address: the combined market streams at
//! `/stream?streams=..` (trades, book ticker, depth, klines of the fake's own market) and the
//! WebSocket API at `/ws-api/v3` (user-data subscription, `executionReport` for its orders).
//!
//! Fault knobs over HTTP: `POST /fake/faults?orders_5xx_after_accept=1&my_trades_5xx_next=4`,
//! `GET /fake/faults`; the price: `POST /fake/price?symbol=BTCUSDT&price=51000`; hold the market
//! (no candle closes, no price moves) with `POST /fake/market?paused=true`, release it with
//! `paused=false`.

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
    /// Replay the market X times faster than real time (3600 with 1h candles: a candle a
    /// second), starting --replay-hours back so that the candles never close in the future.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Simulated hours replayed at --speed before the market reaches now (default: the rest of
    /// --candles after --history, or 24 for --klines walk).
    #[arg(long, value_name = "HOURS")]
    replay_hours: Option<u64>,
}

/// When the next candle closes on the fake, in wall-clock ms: at its close time, but no sooner
/// than `pace_ms` after the previous one was emitted (the replay speed).
fn next_due(emitted: i64, pace_ms: i64, close_time: i64) -> i64 {
    (emitted + pace_ms).max(close_time)
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
    if !(args.speed.is_finite() && args.speed >= 1.0) {
        eprintln!(
            "fake-binance: --speed {} must be 1 (real time) or more",
            args.speed
        );
        return ExitCode::from(2);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let step = interval.millis();
    // The replay's history ends this many candles back, so that at --speed the market catches
    // up with now instead of running into the future.
    let catch_up: i64 = if args.speed > 1.0 {
        match (args.replay_hours, &args.candles) {
            (Some(hours), _) => (hours as i64 * 3_600_000) / step,
            (None, Some(_)) => -1, // the rest of the file, known once it is read
            (None, None) => 24 * 3_600_000 / step,
        }
    } else {
        0
    };
    // The candle that closed last opens one interval before the current boundary.
    let boundary_open = now - now.rem_euclid(step) - step;
    let (history, upcoming): (Vec<Candle>, Box<dyn Iterator<Item = Candle> + Send>) =
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
                let behind = if catch_up < 0 {
                    (recorded.len() - split) as i64
                } else {
                    catch_up
                };
                let history = restamp(&recorded[..split], interval, boundary_open - behind * step);
                let rest = recorded[split..].to_vec();
                (history, Box::new(rest.into_iter()))
            }
            (None, "walk") => {
                let mut walk = RandomWalk::new(args.seed, args.price);
                let history = walk.history(300, interval, boundary_open - catch_up.max(0) * step);
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
    let mut last_open = history.last().map_or(boundary_open, |c| c.open_time);
    fake.set_klines("BTCUSDT", history);
    // The market goes on: when the next candle's close time has passed (and, at --speed, no
    // sooner than 1/speed of an interval after the previous one) it is added, stamped with its
    // open time, the price moves to its close and the kline streams get it.
    let fake = std::sync::Arc::new(fake);
    // In real time the close times alone set the pace (pacing from the last emission as
    // well would let a few ms of lateness add up, candle after candle).
    let pace_ms = if args.speed > 1.0 {
        (step as f64 / args.speed) as i64
    } else {
        0
    };
    let market = {
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut emitted = i64::MIN / 2;
            for next in upcoming {
                let open_time = last_open + step;
                let due = next_due(emitted, pace_ms, open_time + step);
                let wait = due - chrono::Utc::now().timestamp_millis();
                if wait > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
                }
                // Held by `POST /fake/market?paused=true`: nothing closes until released.
                while fake.market_paused() {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                // Binance serves at most 1000 per request; keep a few requests' worth.
                fake.close_candle("BTCUSDT", interval, Candle { open_time, ..next }, 5000);
                last_open = open_time;
                emitted = chrono::Utc::now().timestamp_millis();
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

#[cfg(test)]
mod tests {
    use super::next_due;

    #[test]
    fn at_speed_candles_come_a_pace_apart_but_never_before_they_close() {
        // Far behind now: one every pace.
        assert_eq!(next_due(1_000, 250, 0), 1_250);
        // Caught up: at the close time, not before.
        assert_eq!(next_due(1_000, 250, 5_000), 5_000);
    }
}
