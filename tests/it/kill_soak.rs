//! `kill -9` soak: fifty `trademind execute` runs against the fake Binance, each killed with
//! SIGKILL at a pseudo-random moment (before, during or after its entry and protection), each
//! followed by a restart (`trademind reconcile`). After every restart: the database passes
//! `integrity_check`, no client order id reached the exchange twice, every fill the exchange made
//! is booked (the position is exactly what the account gained), and the position is protected by
//! one stop for exactly its sellable quantity.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use std::collections::HashSet;
use std::time::Duration;

use trademind::domain::trading::order::Side;
use trademind::store::positions;
use trademind::testkit::fake_xai::Script;

use crate::trading::{Rig, buy};
use crate::trading_faults::CliRig;

const KILLS: usize = 50;

/// xorshift64: the same "random" kill times on every run, so a failure replays.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn fake_btc(rig: &Rig) -> Decimal {
    rig.binance
        .balances()
        .iter()
        .find(|b| b.asset == "BTC")
        .map_or(Decimal::ZERO, |b| b.free + b.locked)
}

#[tokio::test]
async fn fifty_kills_during_trading_leave_no_duplicate_no_unbooked_fill_and_no_naked_position() {
    let rig = Rig::new().await;
    // 1 % of equity per entry (0.002 BTC), up to 60 % in the symbol: every run may add.
    let cli = CliRig::new(
        &rig,
        "max_position_pct = \"1\"\nmax_symbol_exposure_pct = \"60\"\nheat_cap_pct = \"50\"\n\
         max_open_positions = 1",
    );
    // A short recv window keeps "not found" final 2 s after a killed run's send.
    let config = cli.dir.path().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "request_timeout_ms = 5000",
        "request_timeout_ms = 5000\nrecv_window_ms = 1000\n\n[exchange.executor]\nresolve_initial_delay_ms = 50",
    );
    std::fs::write(&config, text).unwrap();
    rig.binance
        .faults(|f| f.latency = Duration::from_millis(30));
    for _ in 0..KILLS + 10 {
        rig.xai.push([Script::Decision(buy(0.8))]);
    }
    let start_btc = fake_btc(&rig);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut killed_running = 0;
    for round in 0..KILLS {
        let mut run = cli
            .command(&["execute", "BTCUSDT", "--engine", "llm"])
            .spawn()
            .unwrap();
        let delay = 20 + next(&mut seed) % 700;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if run.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        run.kill().unwrap(); // SIGKILL
        run.wait().unwrap();

        let restart = cli.command(&["--json", "reconcile"]);
        let out = tokio::task::spawn_blocking(move || {
            let mut restart = restart;
            restart.output().unwrap()
        })
        .await
        .unwrap();
        let shown = format!(
            "round {round} (killed after {delay} ms): exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{shown}");

        let db = rusqlite::Connection::open(cli.data().join("trademind.db")).unwrap();
        let integrity: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "{shown}");

        let orders = rig.binance.orders();
        let mut ids = HashSet::new();
        for o in &orders {
            assert!(
                ids.insert(o.client_order_id.clone()),
                "{} reached the exchange twice; {shown}",
                o.client_order_id
            );
        }
        let store = trademind::store::Store::open(&cli.data().join("trademind.db")).unwrap();
        let open = positions::open_positions(store.conn()).unwrap();
        let held: Decimal = open.iter().map(|p| p.position.quantity.get()).sum();
        assert_eq!(
            fake_btc(&rig) - start_btc,
            held,
            "every fill is booked; {shown}"
        );
        let stops: Vec<_> = orders
            .iter()
            .filter(|o| o.side == Side::Sell && o.stop_price.is_some() && o.status.is_open())
            .collect();
        match open.first() {
            None => assert!(stops.is_empty(), "{shown}"),
            Some(p) => {
                let sellable = (p.position.quantity.get() * dec!(100000)).floor() / dec!(100000);
                assert_eq!(stops.len(), 1, "one stop protects the position; {shown}");
                assert_eq!(stops[0].quantity.get(), sellable, "{shown}");
            }
        }
    }
    // The kills must have landed mid-run, not only after runs that had finished.
    assert!(
        killed_running >= KILLS / 2,
        "only {killed_running} of {KILLS} kills hit a running process"
    );
}
