//! `trademind demo --daemon`: offline, seconds, real trades, and an equity that adds up against
//! the database rows.

use rust_decimal::Decimal;
use std::str::FromStr;

use crate::daemon::trademind_command;

fn dec(v: &serde_json::Value) -> Decimal {
    Decimal::from_str(v.as_str().unwrap_or_else(|| panic!("not a decimal string: {v}"))).unwrap()
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
    assert_eq!(final_equity, usdt + btc * last, "equity = cash + coins at the last price");

    // And from the positions: initial + realised (net of fees) + open at the mark, plus the fee
    // dust below one lot step that no position holds.
    let mut stmt = conn
        .prepare("SELECT realized_pnl, quantity, entry_price, status FROM positions")
        .unwrap();
    let (mut realized, mut open_qty, mut unrealized) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for row in stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .unwrap()
    {
        let (pnl, qty, entry, status) = row.unwrap();
        realized += Decimal::from_str(&pnl).unwrap();
        if status == "open" {
            let (q, e) = (Decimal::from_str(&qty).unwrap(), Decimal::from_str(&entry).unwrap());
            open_qty += q;
            unrealized += q * (last - e);
        }
    }
    assert_eq!(dec(&v["realized_pnl"]), realized);
    let dust = btc - open_qty;
    assert!(
        dust >= Decimal::ZERO && dust < Decimal::new(1, 5) * Decimal::from(trades.len()),
        "at most one lot step of fee dust per trade: {dust}"
    );
    let from_positions = initial + realized + unrealized + dust * last;
    assert!(
        (final_equity - from_positions).abs() < Decimal::new(1, 2),
        "equity {final_equity} vs initial {initial} + realised {realized} + unrealised \
         {unrealized} + dust {dust} x {last} = {from_positions}"
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
