//! Re-protection (issue #19, symptom 5): a position whose protection a person cancelled on the
//! exchange is reported UNPROTECTED and keeps trading paused, and `trademind protect` puts the
//! protection back for the position's quantity from its stored stop and target.

use rust_decimal::Decimal;
use trademind::domain::symbol::Symbol;
use trademind::domain::trading::order::{Order, Side};
use trademind::services::exchange::Exchange as _;
use trademind::store::{Store, positions};

use crate::exchange_common::{client_config, client_for};
use crate::trading::{Rig, buy};
use crate::trading_faults::CliRig;

fn open_sells(rig: &Rig) -> Vec<Order> {
    rig.binance
        .orders()
        .into_iter()
        .filter(|o| o.side == Side::Sell && o.status.is_open())
        .collect()
}

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
async fn a_protection_cancelled_on_the_exchange_is_reported_and_protect_places_it_again() {
    use trademind::testkit::fake_xai::Script;
    let rig = Rig::new().await;
    let cli = CliRig::new(&rig, "");
    rig.xai.push([Script::Decision(buy(0.8))]);
    let (code, text) = run(&cli, &["execute", "BTCUSDT", "--engine", "llm"]).await;
    assert_eq!(code, Some(0), "{text}");
    let legs = open_sells(&rig);
    assert!(!legs.is_empty(), "protected after the entry: {text}");
    let quantity = {
        let store = Store::open(&cli.data().join("trademind.db")).unwrap();
        let open = positions::open_positions(store.conn()).unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        open[0].position.quantity.get()
    };

    // A person cancels the OCO on the exchange (not through TradeMind).
    let btc = Symbol::new("BTCUSDT").unwrap();
    let outside = client_for(&rig.binance, client_config(&rig.binance));
    outside
        .cancel_order(&btc, &legs[0].client_order_id)
        .await
        .unwrap();
    assert!(open_sells(&rig).is_empty(), "the whole list is cancelled");

    let (code, text) = run(&cli, &["reconcile"]).await;
    assert_eq!(code, Some(1), "trading stays paused: {text}");
    assert!(text.contains("UNPROTECTED"), "{text}");
    assert!(text.contains("trademind protect BTCUSDT"), "{text}");
    assert!(
        open_sells(&rig).is_empty(),
        "not put back behind the person's back"
    );

    let (code, text) = run(&cli, &["protect", "BTCUSDT"]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("protected again"), "{text}");
    let again = open_sells(&rig);
    assert!(!again.is_empty(), "{text}");
    let stops: Vec<&Order> = again.iter().filter(|o| o.stop_price.is_some()).collect();
    assert_eq!(stops.len(), 1, "{again:?}");
    let sellable = stops[0].quantity.get();
    assert!(
        sellable <= quantity && quantity - sellable < Decimal::new(1, 5),
        "the stop covers the position's {quantity}: {sellable}"
    );
    let (code, text) = run(&cli, &["reconcile"]).await;
    assert_eq!(code, Some(0), "reconciled once protected: {text}");
}
