//! The user-data subscription against the fake WebSocket API: a correctly signed subscribe is
//! accepted, execution reports become fills and order updates on the bus, balances become
//! balance events, a dropped connection is resubscribed, and a wrong secret is refused.

use std::time::Duration;

use rust_decimal_macros::dec;
use tokio_util::sync::CancellationToken;
use trademind::app::bus::{Event, EventBus, Received, Subscription};
use trademind::domain::money::{Price, Qty};
use trademind::domain::trading::order::Side;
use trademind::services::market_stream::user_data::{UserDataSettings, run_user_data};
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
    assert!(matches!(update, Event::OrderUpdated { status, .. } if status == "PARTIALLY_FILLED"));

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
