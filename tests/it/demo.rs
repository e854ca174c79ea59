//! `trademind demo --daemon`: offline, seconds, real trades, and an equity that adds up against
//! the database rows.

use rust_decimal::Decimal;
use std::str::FromStr;

use crate::daemon::trademind_command;

fn dec(v: &serde_json::Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap()
}

#[test]
fn demo_daemon_replays_500_candles_trades_with_exchange_exits_and_its_equity_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = trademind_command(dir.path())
        .args(["--json", "demo", "--daemon", "--candles", "500"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr:\n{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["candles_replayed"], 500);
    assert_eq!(v["engine"], "rules");
    let trades = v["trades"].as_array().unwrap();
    assert!(trades.len() >= 3, "the demo should trade: {v:#}");
    let exits: Vec<&str> = trades.iter().map(|t| t["exit"].as_str().unwrap()).collect();
    assert!(
        exits.contains(&"stop_loss") && exits.contains(&"take_profit"),
        "both exchange-side exits appear: {exits:?}"
    );

    // The demo used its own database, not the one in the data dir.
    assert!(!dir.path().join(trademind::cli::DB_FILE).exists());
    let db = dir.path().join("demo").join(trademind::cli::DB_FILE);
    let conn = rusqlite::Connection::open(&db).unwrap();

    // Equity from the fills table alone: cash and coins after every buy, sell and fee.
    let initial = dec(&v["initial_balance"]);
    let last = dec(&v["last_price"]);
    let mut stmt = conn
        .prepare("SELECT side, price, quantity, fee, fee_asset FROM trades")
        .unwrap();
    let (mut usdt, mut btc) = (initial, Decimal::ZERO);
    let mut fills = 0;
    for row in stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .unwrap()
    {
        let (side, price, qty, fee, fee_asset) = row.unwrap();
        let (price, qty, fee) = (
            Decimal::from_str(&price).unwrap(),
            Decimal::from_str(&qty).unwrap(),
            Decimal::from_str(&fee).unwrap(),
        );
        if side == "BUY" {
            usdt -= price * qty;
            btc += qty;
        } else {
            usdt += price * qty;
            btc -= qty;
        }
        match fee_asset.as_str() {
            "BTC" => btc -= fee,
            "USDT" => usdt -= fee,
            other => panic!("unexpected fee asset {other}"),
        }
        fills += 1;
    }
    assert!(fills >= 2 * (trades.len() - 1));
    let final_equity = dec(&v["final_equity"]);
    assert_eq!(
        final_equity,
        usdt + btc * last,
        "equity = cash + coins at the last price"
    );

    // And from the positions: initial + realised (net of fees) + open positions at the last
    // price + the fee dust a closed position left below one lot step (held, but in no position,
    // so its cost is not in the realised PnL: it counts at last price minus its entry).
    let mut stmt = conn
        .prepare("SELECT id, realized_pnl, quantity, entry_price, status FROM positions")
        .unwrap();
    let positions: Vec<(i64, Decimal, Decimal, Decimal, String)> = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Decimal::from_str(&r.get::<_, String>(1)?).unwrap(),
                Decimal::from_str(&r.get::<_, String>(2)?).unwrap(),
                Decimal::from_str(&r.get::<_, String>(3)?).unwrap(),
                r.get::<_, String>(4)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let held_by_position = |id: i64| -> Decimal {
        let mut stmt = conn
            .prepare(
                "SELECT t.side, t.quantity, t.fee, t.fee_asset FROM trades t
                 JOIN orders o ON o.id = t.order_id WHERE o.position_id = ?1",
            )
            .unwrap();
        stmt.query_map([id], |r| {
            let (side, qty, fee, asset): (String, String, String, String) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let (qty, fee) = (
                Decimal::from_str(&qty).unwrap(),
                Decimal::from_str(&fee).unwrap(),
            );
            let fee_in_btc = if asset == "BTC" { fee } else { Decimal::ZERO };
            Ok(if side == "BUY" {
                qty - fee_in_btc
            } else {
                -qty
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .sum()
    };
    let (mut realized, mut expected) = (Decimal::ZERO, initial);
    for (id, pnl, qty, entry, status) in &positions {
        realized += pnl;
        expected += pnl;
        let left = held_by_position(*id);
        if status == "open" {
            assert_eq!(left, *qty, "an open position holds what its fills left");
            expected += qty * (last - entry);
        } else {
            assert!(
                left >= Decimal::ZERO && left < Decimal::new(1, 5),
                "a closed position leaves less than one lot step: {left}"
            );
            expected += left * (last - entry);
        }
    }
    assert_eq!(dec(&v["realized_pnl"]), realized);
    assert!(
        (final_equity - expected).abs() < Decimal::new(1, 2),
        "equity {final_equity} vs initial + realised + open + dust = {expected}"
    );
}

#[test]
fn demo_daemon_prints_trades_and_final_equity_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let out = trademind_command(dir.path())
        .args(["demo", "--daemon", "--candles", "200"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("200 BTCUSDT candles"), "{text}");
    assert!(text.contains("trades:"), "{text}");
    assert!(text.contains("final equity"), "{text}");
    // Too many candles for the bundled month is a usage error, not a crash.
    let too_many = trademind_command(dir.path())
        .args(["demo", "--daemon", "--candles", "100000"])
        .output()
        .unwrap();
    assert!(!too_many.status.success());
    assert!(String::from_utf8_lossy(&too_many.stderr).contains("at most"));
}

/// `trademind demo` in a real terminal: the replay trades, and every screen shows its data.
#[test]
fn demo_in_tmux_fills_every_screen_with_replayed_data() {
    use crate::tui_tmux::{Tmux, tmux_available};
    if !tmux_available() {
        println!("SKIPPED: tmux is not installed, so the end-to-end demo test cannot run");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 212 candles end with the 13 January position still open (its OCO resting), after four
    // stops and a target: every screen has something to show. A million-fold speed replays
    // them in well under a second.
    let tmux = Tmux::launch("demo", dir.path(), "demo --speed 1000000 --candles 212");
    // The replay is over when the demo's backtest has run (the last thing it does).
    tmux.send("6");
    let (ok, screen) = tmux.wait_for(|s| s.contains("rsi-macd") && s.contains("completed"));
    assert!(ok, "the demo's backtest never completed:\n{screen}");

    let screens: [(&str, &str, &[&str]); 8] = [
        (
            "1",
            "┌ Dashboard",
            &["Last decisions", "rules", "autonomous_trading:demo"],
        ),
        (
            "2",
            "┌ Positions & orders",
            &["BTCUSDT", "LONG", "92,358.34"],
        ),
        ("3", "┌ Trades", &["SELL", "BUY", "demo"]),
        ("4", "┌ Decisions 212 recorded", &["executed", "rules"]),
        // The replay's book and trades fill the Market screen's panes.
        (
            "5",
            "┌ Market BTCUSDT 1h",
            &["close 94536.1", "spread 0.02"],
        ),
        ("6", "┌ Backtests 1 runs", &["rsi-macd", "completed"]),
        ("7", "┌ Risk", &["REDUCE ONLY", "consecutive losses"]),
        // Heartbeats are in the health panel, the fills in the activity feed.
        (
            "8",
            "┌ Logs",
            &["monitor_orders", "last run", "Activity", "BUY"],
        ),
    ];
    for (key, title, data) in screens {
        tmux.send(key);
        let (ok, screen) =
            tmux.wait_for(|s| s.contains(title) && data.iter().all(|d| s.contains(d)));
        assert!(ok, "key {key}: {title} without {data:?}:\n{screen}");
        let lower = screen.to_lowercase();
        assert!(
            !lower.contains("panicked") && !lower.contains("failed"),
            "{title} shows an error:\n{screen}"
        );
    }
    // p pauses the demo's trading service (after a confirmation): the breaker shows HALTED.
    tmux.send("1");
    tmux.send("p");
    let (ok, screen) = tmux.wait_for(|s| s.contains("[y] yes"));
    assert!(ok, "p did not ask for a confirmation:\n{screen}");
    tmux.send("y");
    let (ok, screen) = tmux.wait_for(|s| s.contains("trading paused") && s.contains("HALTED"));
    assert!(ok, "pausing did not reach the trading service:\n{screen}");
    // Issue #17, symptoms 2 and 3: the pause is loaded (the header says PAUSED, on the replay's
    // simulated day), `p` now offers to resume, and the kill switch reads apart from a pause.
    let header = |s: &str| s.lines().next().unwrap_or_default().to_string();
    let (ok, screen) =
        tmux.wait_for(|s| header(s).contains("PAUSED") && header(s).contains("as of 2025-01-"));
    assert!(
        ok,
        "the header does not show the pause on the replay's day:\n{screen}"
    );
    tmux.send("p");
    let (ok, screen) = tmux.wait_for(|s| s.contains("Resume trading?"));
    assert!(ok, "p did not offer to resume:\n{screen}");
    tmux.send("y");
    let (ok, screen) =
        tmux.wait_for(|s| s.contains("trading resumed") && header(s).contains("ACTIVE"));
    assert!(ok, "resuming from the TUI did not take:\n{screen}");
    tmux.send("7");
    tmux.send("K");
    let (ok, screen) = tmux.wait_for(|s| s.contains("[y] yes"));
    assert!(ok, "K did not ask for a confirmation:\n{screen}");
    tmux.send("y");
    let (ok, screen) = tmux.wait_for(|s| header(s).contains("KILLED"));
    assert!(ok, "the kill switch does not read KILLED:\n{screen}");
    // The position's two protection orders rest on the (paper) exchange: q asks first.
    tmux.send("q");
    let (ok, screen) = tmux.wait_for(|s| s.contains("2 order(s) in flight. Quit anyway?"));
    assert!(ok, "q did not ask about the resting orders:\n{screen}");
    tmux.send("y");
    tmux.expect_exit_zero();
    // The user's own database was never created.
    assert!(!dir.path().join(trademind::cli::DB_FILE).exists());
}
