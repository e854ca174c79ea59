//! Issue #19, symptom 1, end to end on the fake Binance (BTCUSDT at 50 000, fee 0.1 % taken in
//! BTC): a stop one tick under the entry is refused by the minimum stop distance; with the
//! minimum off, the entry is sized so that the stop filling at its limit loses no more than the
//! stated risk. Before, such a stop was approved with a stated risk of a few ten-thousandths of
//! a USDT and lost about two.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::{Value, json};

use crate::trading::{Rig, buy};
use crate::trading_faults::CliRig;

/// The LLM's BUY at 50 000 with a stop one tick under it.
fn one_tick_stop() -> Value {
    let mut decision = buy(0.8);
    decision["stop_loss"] = json!({"kind": "price", "value": 49999.99});
    decision["take_profit"] = json!({"kind": "price", "value": 60000});
    decision
}

async fn execute(cli: CliRig) -> (Value, String, CliRig) {
    tokio::task::spawn_blocking(move || {
        let out = cli
            .command(&["--json", "execute", "BTCUSDT", "--engine", "llm"])
            .output()
            .unwrap();
        let shown = format!(
            "exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (report, shown, cli)
    })
    .await
    .unwrap()
}

fn decimal(v: &Value) -> Decimal {
    match v {
        Value::String(s) => s.parse().unwrap(),
        other => other.to_string().parse().unwrap(),
    }
}

#[tokio::test]
async fn a_stop_one_tick_under_the_entry_is_refused_and_nothing_is_sent() {
    use trademind::testkit::fake_xai::Script;
    let rig = Rig::new().await;
    let cli = CliRig::new(&rig, "");
    rig.xai.push([Script::Decision(one_tick_stop())]);
    let (report, shown, _cli) = execute(cli).await;
    assert_eq!(
        rig.binance.requests("POST /api/v3/order"),
        0,
        "an entry with a one-tick stop was sent:\n{shown}"
    );
    let verdict = &report["report"]["risk_verdict"];
    assert_eq!(verdict["verdict"], "refused", "{shown}");
    let reasons = verdict["reasons"].to_string();
    assert!(
        reasons.contains("min_stop_distance: the stop 49999.99 is 0.00002 % under the entry"),
        "{shown}"
    );
}

#[tokio::test]
async fn with_no_minimum_stop_distance_the_loss_at_the_stop_limit_stays_within_the_stated_risk() {
    use trademind::testkit::fake_xai::Script;
    let rig = Rig::new().await;
    let cli = CliRig::new(
        &rig,
        "min_stop_distance_pct = \"0\"\nmin_reward_risk = \"0\"",
    );
    rig.xai.push([Script::Decision(one_tick_stop())]);
    let (report, shown, _cli) = execute(cli).await;
    let verdict = &report["report"]["risk_verdict"];
    assert_eq!(verdict["verdict"], "approved", "{shown}");
    let stated = decimal(&verdict["risk_amount"]);
    // What the fake did: the entry's fill, and the protective stop-limit left on the book.
    let orders = rig.binance.orders();
    let entry = orders
        .iter()
        .find(|o| o.stop_price.is_none() && o.side.to_string() == "BUY")
        .unwrap_or_else(|| panic!("no entry:\n{shown}"));
    let stop = orders
        .iter()
        .find(|o| o.stop_price.is_some())
        .unwrap_or_else(|| panic!("no protective stop:\n{shown}"));
    let paid = entry.cumulative_quote.get();
    let limit = stop.price.unwrap().get();
    // The stop sells what it covers at its limit, less the 0.1 % taker fee.
    let proceeds = stop.quantity.get() * limit * (Decimal::ONE - dec!(0.001));
    let lost = paid - proceeds;
    assert!(
        lost > Decimal::ZERO && lost <= stated,
        "the stop filling at its limit {limit} loses {lost}, stated risk {stated}:\n{shown}"
    );
}
