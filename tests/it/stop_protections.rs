//! Protections after stops (issue #19), through the binary against the fake Binance: with
//! `risk.cooldown_candles_after_stop = 3`, a position stopped out on the exchange puts its
//! book's symbol in a 3-candle cooldown: `risk show` lists it with the time left, and the
//! next entry signal is refused in plain words.

use rust_decimal_macros::dec;
use trademind::domain::trading::order::{OrderType, Side};
use trademind::store::{Store, positions};
use trademind::testkit::fake_xai::Script;

use crate::trading::{Rig, buy};
use crate::trading_faults::CliRig;

/// Run the binary off the runtime thread: the fake Binance answers on this runtime.
async fn run(cli: &CliRig, args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = cli.command(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn a_stop_out_puts_the_symbol_in_a_cooldown_that_refuses_the_next_entry_and_risk_show_lists_it()
 {
    let rig = Rig::new().await;
    let cli = CliRig::new(&rig, "cooldown_candles_after_stop = 3");
    rig.xai.push([Script::Decision(buy(0.8))]);
    let (code, text) = run(&cli, &["execute", "BTCUSDT", "--engine", "llm"]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(
        rig.binance
            .orders()
            .iter()
            .any(|o| o.order_type == OrderType::StopLossLimit && o.status.is_open()),
        "protected: {text}"
    );
    let (_, text) = run(&cli, &["risk", "show"]).await;
    assert!(
        text.contains("cooldowns and locks after stops: none in force"),
        "{text}"
    );

    // The price falls through the stop on the exchange; the next step books the stop fill.
    rig.binance.set_price("BTCUSDT", dec!(48900));
    let (code, text) = run(&cli, &["reconcile"]).await;
    assert_eq!(code, Some(0), "{text}");
    {
        let store = Store::open(&cli.data().join("trademind.db")).unwrap();
        assert!(positions::open_positions(store.conn()).unwrap().is_empty());
    }

    let (code, text) = run(&cli, &["risk", "show"]).await;
    assert_eq!(code, Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("BTCUSDT") && l.contains("cooldown:"))
        .unwrap_or_else(|| panic!("no cooldown listed: {text}"));
    assert!(line.contains("default"), "the default book: {line}");
    assert!(line.contains("left"), "{line}");
    assert!(line.contains("0 of 3 candles after the stop at"), "{line}");

    // A new BUY signal inside the cooldown is refused before anything is sent.
    rig.binance.set_price("BTCUSDT", dec!(50000));
    let sent = rig.binance.orders().len();
    rig.xai.push([Script::Decision(buy(0.8))]);
    let (_, text) = run(&cli, &["execute", "BTCUSDT", "--engine", "llm"]).await;
    assert!(
        text.contains("cooldown: 0 of 3 candles after the stop at"),
        "{text}"
    );
    assert_eq!(rig.binance.orders().len(), sent, "nothing sent: {text}");
    assert!(
        rig.binance
            .orders()
            .iter()
            .filter(|o| o.side == Side::Buy)
            .count()
            == 1
    );
}
