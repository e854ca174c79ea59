//! #19's done-when test: two strategies on BTCUSDT, a built-in sma-cross and the rules engine,
//! run in the real `trademind --daemon` against the fake Binance. Each holds its own position
//! with its own protection; a stop fill closes one book and leaves the other protected; the
//! books' realised PnL is each book's own, and together they are the account's change, exactly.
//!
//! The candles are `rebound_candles` at 50 000 (a slow decline, then ten rising closes to
//! 48 050). The rules engine with `oversold = 99` buys them; sma-cross with fast 3 and slow 48
//! crosses up on the last of them only (3 over 46..50 cross there and nowhere before), so both
//! strategies enter in the same trading slot. sma-cross's stop is 1 % under the entry, the rules
//! engine's 2 %: a price at the first stop triggers it alone.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use trademind::domain::market::Interval;
use trademind::domain::trading::order::{Order, OrderStatus, OrderType};
use trademind::services::exchange::balance_of;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, flat_candles, rebound_candles};

use crate::daemon::{signal, trademind_command, wait_exit, wait_for_rows};

/// The daemon, killed if a failed assertion drops it.
struct Running(Option<Child>);

impl Running {
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.0.take().expect("running");
        signal(&child, "TERM");
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let mut stderr = String::new();
        if let Some(err) = child.stderr.as_mut() {
            let _ = std::io::Read::read_to_string(err, &mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A config whose one-minute trading slot falls `in_secs` seconds from now; orders are
/// checked every second.
fn write_config(path: &Path, base_url: &str, in_secs: u64) {
    let now = chrono::Utc::now().timestamp() as u64;
    let offset = (now + in_secs) % 60;
    std::fs::write(
        path,
        format!(
            "[trading]\nconnection = \"fake\"\n\n\
             [exchange.binance]\nbase_url = \"{base_url}\"\n\n\
             [scheduler]\nautonomous_trading_minutes = 1\ncandle_close_offset_seconds = {offset}\n\
             monitor_orders_seconds = 1\nupdate_prices_seconds = 600\n\n\
             [rules]\noversold = 99.0\noverbought = 99.5\n"
        ),
    )
    .unwrap();
}

fn cli(data: &Path, config: &Path, args: &[&str]) {
    let out = trademind_command(data)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

async fn wait_until(db: &Path, query: String, within: Duration) -> bool {
    let db = db.to_path_buf();
    tokio::task::spawn_blocking(move || wait_for_rows(&db, &query, within))
        .await
        .unwrap()
}

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// What the database says about one strategy's book.
#[derive(Debug)]
struct Book {
    strategy_id: i64,
    position_id: i64,
    status: String,
    quantity: Decimal,
    realized_pnl: Decimal,
    /// client order id by purpose (entry, stop_loss, take_profit).
    orders: Vec<(String, String)>,
}

impl Book {
    fn order(&self, purpose: &str) -> &str {
        &self
            .orders
            .iter()
            .find(|(p, _)| p == purpose)
            .unwrap_or_else(|| panic!("no {purpose} order in {self:?}"))
            .1
    }
}

fn book(db: &Path, strategy: &str) -> Book {
    let conn = rusqlite::Connection::open(db).unwrap();
    let strategy_id: i64 = conn
        .query_row(
            "SELECT id FROM strategies WHERE name = ?1",
            [strategy],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT id, status, quantity, realized_pnl FROM positions
             WHERE strategy_id = ?1 AND symbol = 'BTCUSDT'",
        )
        .unwrap();
    let positions: Vec<(i64, String, String, String)> = stmt
        .query_map([strategy_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(positions.len(), 1, "one position in {strategy}'s book");
    let (position_id, status, quantity, realized) = positions.into_iter().next().unwrap();
    let mut stmt = conn
        .prepare("SELECT purpose, client_order_id FROM orders WHERE position_id = ?1 ORDER BY id")
        .unwrap();
    let orders = stmt
        .query_map([position_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    Book {
        strategy_id,
        position_id,
        status,
        quantity: decimal(&quantity),
        realized_pnl: decimal(&realized),
        orders,
    }
}

fn on_exchange(fake: &FakeBinance, client_order_id: &str) -> Order {
    fake.orders()
        .into_iter()
        .find(|o| o.client_order_id == client_order_id)
        .unwrap_or_else(|| panic!("{client_order_id} is not on the exchange"))
}

/// `q` rounded down to BTCUSDT's lot step, 0.00001 in the fake's exchangeInfo fixture (what
/// an order can sell).
fn sellable(q: Decimal) -> Decimal {
    (q / LOT_STEP).floor() * LOT_STEP
}

const LOT_STEP: Decimal = dec!(0.00001);

/// A book's round trip as the exchange executed it, and the realised PnL it comes to.
struct RoundTrip {
    /// BTC the entry left in the account (bought less the fee taken in BTC).
    held: Decimal,
    /// BTC held but below one lot step: not sold by the stop, kept on the exchange.
    dust: Decimal,
    exit_price: Decimal,
    realized: Decimal,
}

fn round_trip(fake: &FakeBinance, book: &Book, fee_rate: Decimal) -> RoundTrip {
    let entry = on_exchange(fake, book.order("entry"));
    let stop = on_exchange(fake, book.order("stop_loss"));
    assert_eq!(entry.status, OrderStatus::Filled);
    assert_eq!(stop.status, OrderStatus::Filled, "{stop:?}");
    let held = entry.filled_quantity.get() * (Decimal::ONE - fee_rate);
    let sold = stop.filled_quantity.get();
    let proceeds = stop.cumulative_quote.get();
    let exit_price = proceeds / sold;
    let dust = held - sold;
    // The engine closes the dust at the exit price (it cannot be sold): the book counts it.
    let realized =
        proceeds - proceeds * fee_rate - entry.cumulative_quote.get() + dust * exit_price;
    RoundTrip {
        held,
        dust,
        exit_price,
        realized,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sma_cross_and_rules_on_btcusdt_in_the_daemon_keep_separate_books_that_add_up_to_the_account()
 {
    let fee_rate = FakeConfig::default().fee_rate;
    let fake = FakeBinance::start(FakeConfig {
        // Cash only: nothing unmanaged, so the account's change is the books' alone.
        balances: vec![("USDT".into(), dec!(10000))],
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let series = rebound_candles(dec!(50000), Interval::M1, now);
    let last_close = series.last().unwrap().close.get();
    let last_open = series.last().unwrap().open_time;
    fake.set_price("BTCUSDT", last_close);
    fake.set_klines("BTCUSDT", series);

    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    let db = data.join(trademind::cli::DB_FILE);
    write_config(&config, &fake.base_url(), 4);
    cli(&data, &config, &["connection", "add", "fake", "--testnet"]);
    let common = [
        "--symbol",
        "BTCUSDT",
        "--interval",
        "1m",
        "--connection",
        "fake",
        "--allocation",
        "30%",
    ];
    let mut cross = vec!["strategy", "add", "cross", "--engine", "strategy"];
    for p in [
        "strategy=sma-cross",
        "fast=3",
        "slow=48",
        "stop_pct=1",
        "take_pct=4",
    ] {
        cross.extend(["--param", p]);
    }
    cross.extend(common);
    cli(&data, &config, &cross);
    let mut rules = vec!["strategy", "add", "rules", "--engine", "rules"];
    rules.extend(common);
    cli(&data, &config, &rules);
    cli(&data, &config, &["strategy", "enable", "cross"]);
    cli(&data, &config, &["strategy", "enable", "rules"]);
    let before = fake.balances();

    let daemon = {
        let (data, config) = (data.clone(), config.clone());
        Running(Some(
            tokio::task::spawn_blocking(move || {
                trademind_command(&data)
                    .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
                    .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
                    .arg("--config")
                    .arg(&config)
                    .arg("--daemon")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .await
            .unwrap(),
        ))
    };
    let protected = wait_until(
        &db,
        "SELECT COUNT(DISTINCT strategy_id) = 2 FROM orders
         WHERE purpose = 'stop_loss' AND status = 'NEW'"
            .into(),
        Duration::from_secs(90),
    )
    .await;
    if !protected {
        let (_, stderr) = daemon.stop();
        panic!("the two books were not both entered and protected:\n{stderr}");
    }
    // No more signals: the strategies do not re-enter once stopped out.
    fake.set_klines(
        "BTCUSDT",
        flat_candles(last_close, 70, Interval::M1, last_open),
    );

    // Two positions, one per book, each protected on the exchange for its own quantity.
    let (cross_book, rules_book) = (book(&db, "cross"), book(&db, "rules"));
    assert_ne!(cross_book.position_id, rules_book.position_id);
    assert_ne!(cross_book.strategy_id, rules_book.strategy_id);
    let mut stops = Vec::new();
    for b in [&cross_book, &rules_book] {
        assert_eq!(b.status, "open", "{b:?}");
        let stop = on_exchange(&fake, b.order("stop_loss"));
        let target = on_exchange(&fake, b.order("take_profit"));
        assert_eq!(stop.order_type, OrderType::StopLossLimit);
        for leg in [&stop, &target] {
            assert_eq!(leg.status, OrderStatus::New, "{leg:?}");
            assert_eq!(leg.quantity.get(), sellable(b.quantity), "{b:?}");
        }
        stops.push(stop.stop_price.expect("a stop price").get());
    }
    let held_by_books = cross_book.quantity + rules_book.quantity;
    assert_eq!(
        balance_of(&fake.balances(), "BTC").total(),
        held_by_books,
        "the exchange holds exactly what the two books hold"
    );
    let (cross_stop, rules_stop) = (stops[0], stops[1]);
    assert!(
        cross_stop > rules_stop,
        "sma-cross's 1 % stop ({cross_stop}) is above the rules engine's 2 % ({rules_stop})"
    );

    // The price falls to sma-cross's stop: its book closes, the rules book stays open and
    // protected.
    fake.set_price("BTCUSDT", cross_stop);
    let closed = format!(
        "SELECT COUNT(*) FROM positions WHERE status = 'closed' AND strategy_id = {}",
        cross_book.strategy_id
    );
    if !wait_until(&db, closed, Duration::from_secs(30)).await {
        let (_, stderr) = daemon.stop();
        panic!("sma-cross's stop fill was not booked:\n{stderr}");
    }
    let rules_open = book(&db, "rules");
    assert_eq!(rules_open.status, "open");
    assert_eq!(rules_open.quantity, rules_book.quantity);
    assert_eq!(
        on_exchange(&fake, rules_open.order("stop_loss")).status,
        OrderStatus::New,
        "the rules book keeps its own protection"
    );

    // Then to the rules engine's stop: its book closes too.
    fake.set_price("BTCUSDT", rules_stop);
    let closed = format!(
        "SELECT COUNT(*) FROM positions WHERE status = 'closed' AND strategy_id = {}",
        rules_book.strategy_id
    );
    let rules_closed = wait_until(&db, closed, Duration::from_secs(30)).await;
    let (status, stderr) = daemon.stop();
    assert!(
        rules_closed,
        "the rules stop fill was not booked:\n{stderr}"
    );
    assert_eq!(status.code(), Some(0), "{stderr}");
    let after = fake.balances();

    // Each book's realised PnL is its own round trip, fees included, to the unit.
    let (cross_closed, rules_closed) = (book(&db, "cross"), book(&db, "rules"));
    let mut trips = Vec::new();
    for (b, opened) in [(&cross_closed, &cross_book), (&rules_closed, &rules_book)] {
        assert_eq!(b.status, "closed");
        let trip = round_trip(&fake, b, fee_rate);
        assert_eq!(
            trip.held, opened.quantity,
            "the book held what its entry left"
        );
        assert_eq!(b.realized_pnl, trip.realized, "book {b:?}");
        trips.push(trip);
    }
    assert_ne!(
        trips[0].exit_price, trips[1].exit_price,
        "each book left at its own stop"
    );

    // Together they are the account's change: the cash moved by the books' PnL less the dust
    // they booked as sold, and the BTC left is exactly that dust.
    let usdt = |b: &[trademind::services::exchange::Balance]| balance_of(b, "USDT").total();
    let btc = |b: &[trademind::services::exchange::Balance]| balance_of(b, "BTC").total();
    let books_pnl = cross_closed.realized_pnl + rules_closed.realized_pnl;
    let dust: Decimal = trips.iter().map(|t| t.dust).sum();
    let dust_value: Decimal = trips.iter().map(|t| t.dust * t.exit_price).sum();
    assert_eq!(usdt(&after) - usdt(&before), books_pnl - dust_value);
    assert_eq!(btc(&after) - btc(&before), dust);
}
