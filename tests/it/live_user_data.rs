//! The user-data subscription against the fake WebSocket API: a correctly signed subscribe is
//! accepted, execution reports become fills and order updates on the bus, balances become
//! balance events, a dropped connection is resubscribed, and a wrong secret is refused.

use std::time::Duration;

use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;
use trademind::app::bus::{Event, EventBus, Received, Subscription};
use trademind::domain::money::{Price, Qty};
use trademind::domain::trading::order::Side;
use trademind::services::market_stream::user_data::{
    ExecutionSink, UserDataSettings, run_user_data,
};
use trademind::testkit::fake_binance_ws::FakeBinanceWsApi;

const KEY: &str = "test-key";
const SECRET: &str = "test-secret";

fn settings(url: String, secret: &str) -> UserDataSettings {
    UserDataSettings {
        ws_api_url: url,
        api_key: KEY.into(),
        api_secret: secret.into(),
        reconnect_initial_backoff_ms: 20,
        reconnect_max_backoff_ms: 100,
        read_timeout_secs: 30,
    }
}

async fn next_matching(events: &mut Subscription, pred: impl Fn(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Received::Event(e) = events.recv().await
                && pred(&e)
            {
                return e;
            }
        }
    })
    .await
    .expect("expected event published")
}

const FILL: &str = r#"{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"tm-1","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0","F":"0","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,"l":"0.40000000","z":"0.40000000","L":"0.10264000","n":"0.00040000","N":"ETH","T":1499405658657,"t":77,"I":1,"w":true,"m":false,"M":false,"O":1,"Z":"0.04105600","Y":"0.04105600","Q":"0"}"#;

#[tokio::test]
async fn signed_subscription_turns_events_into_fills_orders_and_balances_and_survives_a_drop() {
    let fake = FakeBinanceWsApi::start(KEY, SECRET).await.unwrap();
    let bus = EventBus::new(1024);
    let mut events = bus.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_user_data(
        settings(fake.url(), SECRET),
        bus.clone(),
        ExecutionSink::Publish,
        cancel.clone(),
    ));
    fake.wait_for_subscriptions(1).await;

    assert!(fake.push_event(FILL));
    let fill = next_matching(&mut events, |e| matches!(e, Event::OrderFilled { .. })).await;
    let Event::OrderFilled {
        client_order_id,
        side,
        qty,
        price,
        commission,
        ..
    } = fill
    else {
        unreachable!()
    };
    assert_eq!(client_order_id, "tm-1");
    assert_eq!(side, Side::Buy);
    assert_eq!(qty, Qty::new(dec!(0.4)));
    assert_eq!(price, Price::new(dec!(0.10264)));
    assert_eq!(commission, dec!(0.0004));
    let update = next_matching(&mut events, |e| matches!(e, Event::OrderUpdated { .. })).await;
    assert!(
        matches!(update, Event::OrderUpdated { status, .. } if status == trademind::domain::trading::order::OrderStatus::PartiallyFilled)
    );

    assert!(fake.push_event(
        r#"{"e":"outboundAccountPosition","E":1,"u":1,"B":[{"a":"ETH","f":"10.5","l":"0.25"}]}"#
    ));
    let balance = next_matching(&mut events, |e| matches!(e, Event::BalanceChanged { .. })).await;
    assert_eq!(
        balance,
        Event::BalanceChanged {
            asset: "ETH".into(),
            free: dec!(10.5),
            locked: dec!(0.25)
        }
    );

    assert!(fake.drop_connection());
    tokio::time::timeout(Duration::from_secs(5), fake.wait_for_subscriptions(2))
        .await
        .expect("resubscribed after the drop");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_with_invalid_signature_and_reported_unhealthy() {
    let fake = FakeBinanceWsApi::start(KEY, SECRET).await.unwrap();
    let bus = EventBus::new(1024);
    let mut events = bus.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_user_data(
        settings(fake.url(), "not-the-secret"),
        bus.clone(),
        ExecutionSink::Publish,
        cancel.clone(),
    ));
    let health = next_matching(&mut events, |e| matches!(e, Event::HealthChanged { .. })).await;
    assert!(
        matches!(&health, Event::HealthChanged { healthy: false, detail, .. } if detail.contains("-1022")),
        "{health:?}"
    );
    cancel.cancel();
    task.await.unwrap();
}

fn execution(
    cid: &str,
    exec: &str,
    status: &str,
    fill: Option<(i64, &str, &str, &str, &str)>,
    z: &str,
    zq: &str,
) -> String {
    let (t, l, price, n, asset) = fill.unwrap_or((-1, "0", "0", "0", ""));
    format!(
        r#"{{"e":"executionReport","E":1700000000000,"s":"BTCUSDT","c":"{cid}","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"110.00000000","C":"","x":"{exec}","X":"{status}","r":"NONE","i":9001,"l":"{l}","z":"{z}","L":"{price}","n":"{n}","N":"{asset}","T":1700000000000,"t":{t},"m":false,"Z":"{zq}"}}"#
    )
}

#[tokio::test]
async fn an_execution_report_fill_updates_the_order_and_records_the_trade_once_even_when_replayed()
{
    use std::sync::{Arc, Mutex};
    use trademind::domain::symbol::Symbol;
    use trademind::domain::trading::order::{OrderRequest, OrderStatus, OrderType};
    use trademind::store::{Store, orders, positions};

    let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let row = orders::insert_pending(
        store.lock().unwrap().conn(),
        &OrderRequest {
            client_order_id: "tm-7".into(),
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            quantity: Qty::new(dec!(1)),
            price: Some(Price::new(dec!(110))),
            stop_price: None,
            time_in_force: None,
            trailing_delta: None,
        },
        "live",
        1,
    )
    .unwrap();
    let fake = FakeBinanceWsApi::start(KEY, SECRET).await.unwrap();
    let bus = EventBus::new(1024);
    let mut events = bus.subscribe();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_user_data(
        settings(fake.url(), SECRET),
        bus.clone(),
        ExecutionSink::Store(store.clone()),
        cancel.clone(),
    ));
    fake.wait_for_subscriptions(1).await;

    let first_fill = execution(
        "tm-7",
        "TRADE",
        "PARTIALLY_FILLED",
        Some((77, "0.40000000", "100.00000000", "0.04000000", "USDT")),
        "0.40000000",
        "40.00000000",
    );
    assert!(fake.push_event(&execution("tm-7", "NEW", "NEW", None, "0", "0")));
    assert!(fake.push_event(&first_fill));
    assert!(fake.push_event(&execution(
        "tm-7",
        "TRADE",
        "FILLED",
        Some((78, "0.60000000", "110.00000000", "0.00060000", "BTC")),
        "1.00000000",
        "106.00000000",
    )));
    // The last event of the FILLED report: its fill (after its order update).
    let filled = next_matching(&mut events, |e| {
        matches!(e, Event::OrderFilled { trade_id: 78, .. })
    })
    .await;
    assert!(
        matches!(&filled, Event::OrderFilled { client_order_id, .. } if client_order_id == "tm-7")
    );

    // The first fill again on a new connection (as after a reconnect): nothing moves.
    assert!(fake.drop_connection());
    tokio::time::timeout(Duration::from_secs(5), fake.wait_for_subscriptions(2))
        .await
        .expect("resubscribed after the drop");
    assert!(fake.push_event(&first_fill));
    // A later event on the same connection proves the replay was processed before it.
    assert!(fake.push_event(
        r#"{"e":"outboundAccountPosition","E":2,"u":2,"B":[{"a":"BTC","f":"1","l":"0"}]}"#
    ));
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Received::Event(e) = events.recv().await {
                if matches!(e, Event::BalanceChanged { .. }) {
                    break;
                }
                seen.push(e);
            }
        }
    })
    .await
    .expect("balance event after the replay");
    assert!(
        !seen.iter().any(|e| matches!(
            e,
            Event::OrderFilled { .. } | Event::PositionChanged { .. } | Event::OrderUpdated { .. }
        )),
        "the replay published {seen:?}"
    );

    {
        let store = store.lock().unwrap();
        let c = store.conn();
        let order = orders::get(c, "tm-7").unwrap().unwrap().order;
        assert_eq!(order.status, OrderStatus::Filled);
        assert_eq!(order.filled_quantity, Qty::new(dec!(1)));
        assert_eq!(order.average_fill_price(), Some(Price::new(dec!(106))));
        assert_eq!(orders::fill_count(c, row).unwrap(), 2);
        // Positions are the trading service's to book, never this sink's.
        assert!(positions::open_positions(c).unwrap().is_empty());
    }
    cancel.cancel();
    task.await.unwrap();
}
