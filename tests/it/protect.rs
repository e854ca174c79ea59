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

/// The TUI's `P` on a Positions row sends `ControlOp::ProtectPosition` with the row's symbol
/// and book; the control server carries it out through `TradingService::protect`, the path of
/// `trademind protect`.
#[tokio::test]
async fn the_interfaces_protect_request_places_the_withdrawn_protection_again() {
    use std::sync::Arc;
    use trademind::app::bus::EventBus;
    use trademind::app::control::{ControlHandle, ControlOp};
    use trademind::app::daemon::{backtest_queue, serve_control};
    use trademind::app::scheduler::{MemoryRecorder, TokioClock};
    use trademind::config::Settings;
    let rig = Rig::new().await;
    let service = rig.service().await;
    let (input, out) = rig.decide(buy(0.8)).await;
    service
        .execute_decision(&input, &out, None, crate::trading::NOW)
        .await
        .unwrap();
    let legs = open_sells(&rig);
    assert_eq!(legs.len(), 2, "an OCO");
    // A person cancels the OCO on the exchange; the monitor finds it withdrawn.
    let btc = Symbol::new("BTCUSDT").unwrap();
    let outside = client_for(&rig.binance, client_config(&rig.binance));
    outside
        .cancel_order(&btc, &legs[0].client_order_id)
        .await
        .unwrap();
    let again = service
        .reconcile(crate::trading::NOW + 60_000)
        .await
        .unwrap();
    assert!(!again.reconciled, "reported, not put back: {again:?}");
    assert!(open_sells(&rig).is_empty());

    let cancel = tokio_util::sync::CancellationToken::new();
    let clock = Arc::new(TokioClock::new(crate::trading::NOW + 120_000));
    let (backtests, _worker) = backtest_queue(
        Store::open_in_memory().unwrap(),
        clock.clone(),
        Arc::new(MemoryRecorder::default()),
        EventBus::new(16),
        1,
        cancel.clone(),
    );
    let (handle, requests) = ControlHandle::channel(4);
    let server = tokio::spawn(serve_control(
        Arc::new(service),
        requests,
        backtests,
        Arc::new(Settings::default()),
        clock,
        cancel.clone(),
    ));
    let reply = handle
        .request(ControlOp::ProtectPosition {
            symbol: btc.clone(),
            book: None,
        })
        .await;
    let message = reply.expect("protected");
    assert!(message.contains("protected again"), "{message}");
    assert!(message.contains("trading may resume"), "{message}");
    let placed = open_sells(&rig);
    assert_eq!(placed.len(), 2, "the OCO is back: {placed:?}");
    let stop = placed.iter().find(|o| o.stop_price.is_some()).unwrap();
    let open = positions::open_positions(rig.store.lock().unwrap().conn()).unwrap();
    assert_eq!(stop.quantity, open[0].position.quantity);
    cancel.cancel();
    server.await.unwrap();
}
