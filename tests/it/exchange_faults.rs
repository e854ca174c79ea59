//! Faults between us and Binance: every one ends with exactly one order on the exchange and a
//! local record that matches it; filter violations never leave the machine.

use crate::exchange_common::*;
use rust_decimal_macros::dec;
use std::sync::Arc;
use std::time::Duration;
use trademind::domain::trading::order::{OrderStatus, Side};
use trademind::services::exchange::binance::Credentials;
use trademind::services::exchange::{Exchange, ExchangeError};
use trademind::store::orders;
use trademind::testkit::fake_binance::FakeBinance;

/// Exactly one order on the fake, and the local row agrees with it.
fn assert_one_matching_order(
    fake: &FakeBinance,
    store: &std::sync::Mutex<trademind::store::Store>,
    cid: &str,
) {
    let on_exchange = fake.orders();
    assert_eq!(
        on_exchange.len(),
        1,
        "exactly one order on the exchange: {on_exchange:?}"
    );
    let remote = &on_exchange[0];
    assert_eq!(remote.client_order_id, cid);
    let store = store.lock().unwrap();
    let local = orders::get(store.conn(), cid).unwrap().expect("local row");
    assert_eq!(local.order.status, remote.status);
    assert_eq!(local.order.exchange_order_id, remote.exchange_order_id);
    assert_eq!(local.order.filled_quantity, remote.filled_quantity);
    assert_eq!(local.order.cumulative_quote, remote.cumulative_quote);
}

#[tokio::test]
async fn timeout_after_accept_is_resolved_by_query_not_resend() {
    let fake = fake().await;
    fake.faults(|f| {
        f.orders_slow_after_accept = 1;
        f.accept_delay = Duration::from_millis(1500);
    });
    let mut config = client_config(&fake);
    config.request_timeout_ms = 300;
    let (executor, store) = executor(Arc::new(client_for(&fake, config)), "binance-fake");
    let placed = executor
        .place(&market("t-timeout", Side::Buy, dec!(0.01)), ORDER_TIME)
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::Filled);
    assert_eq!(fake.requests("POST /api/v3/order"), 1, "never sent twice");
    assert!(fake.requests("GET /api/v3/order") >= 1, "resolved by query");
    assert_one_matching_order(&fake, &store, "t-timeout");
}

#[tokio::test]
async fn dropped_connection_after_accept_is_resolved_by_query_not_resend() {
    let fake = fake().await;
    fake.faults(|f| f.orders_drop_after_accept = 1);
    let (executor, store) = executor(
        Arc::new(client_for(&fake, client_config(&fake))),
        "binance-fake",
    );
    let placed = executor
        .place(&market("t-drop", Side::Buy, dec!(0.01)), ORDER_TIME)
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::Filled);
    // 0.01 BTC at 50000
    assert_eq!(placed.order.cumulative_quote.get(), dec!(500));
    assert_eq!(fake.requests("POST /api/v3/order"), 1);
    assert_one_matching_order(&fake, &store, "t-drop");
}

#[tokio::test]
async fn server_error_after_accept_is_resolved_by_query_not_resend() {
    let fake = fake().await;
    fake.faults(|f| f.orders_5xx_after_accept = 1);
    let (executor, store) = executor(
        Arc::new(client_for(&fake, client_config(&fake))),
        "binance-fake",
    );
    let placed = executor
        .place(
            &limit("t-5xx", Side::Buy, dec!(0.01), dec!(49000)),
            ORDER_TIME,
        )
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::New);
    assert_eq!(fake.requests("POST /api/v3/order"), 1);
    assert_one_matching_order(&fake, &store, "t-5xx");
}

#[tokio::test]
async fn rate_limited_order_waits_retry_after_then_succeeds_once() {
    let fake = fake().await;
    fake.faults(|f| {
        f.orders_429_next = 1;
        f.retry_after_secs = 1;
    });
    let (executor, store) = executor(
        Arc::new(client_for(&fake, client_config(&fake))),
        "binance-fake",
    );
    let started = std::time::Instant::now();
    let placed = executor
        .place(&market("t-429", Side::Buy, dec!(0.01)), ORDER_TIME)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "honoured Retry-After"
    );
    assert_eq!(placed.order.status, OrderStatus::Filled);
    assert_eq!(
        fake.requests("POST /api/v3/order"),
        2,
        "the 429 was refused, the retry accepted"
    );
    assert!(
        fake.requests("GET /api/v3/order") >= 1,
        "checked before sending again"
    );
    assert_one_matching_order(&fake, &store, "t-429");
}

#[tokio::test]
async fn short_ip_ban_is_waited_out_then_the_order_is_placed_once() {
    let fake = fake().await;
    fake.faults(|f| {
        f.orders_418_next = 1;
        f.retry_after_secs = 1;
    });
    let (executor, store) = executor(
        Arc::new(client_for(&fake, client_config(&fake))),
        "binance-fake",
    );
    let placed = executor
        .place(&market("t-418", Side::Buy, dec!(0.01)), ORDER_TIME)
        .await
        .unwrap();
    assert_eq!(placed.order.status, OrderStatus::Filled);
    assert_eq!(fake.requests("POST /api/v3/order"), 2);
    assert_one_matching_order(&fake, &store, "t-418");
}

#[tokio::test]
async fn long_ip_ban_stops_all_calls_and_says_until_when() {
    let fake = fake().await;
    fake.faults(|f| {
        f.orders_418_next = 1;
        f.retry_after_secs = 120;
    });
    let client = Arc::new(client_for(&fake, client_config(&fake)));
    let (executor, store) = executor(client.clone(), "binance-fake");
    let err = executor
        .place(&market("t-ban", Side::Buy, dec!(0.01)), ORDER_TIME)
        .await
        .unwrap_err();
    let ExchangeError::Banned { until } = err else {
        panic!("expected a ban, got {err:?}")
    };
    assert!(until > chrono::Utc::now() + chrono::Duration::seconds(100));
    assert!(err.to_string().contains("banned") && err.to_string().contains("until"));
    let before = fake.stats().requests.values().sum::<u32>();
    assert!(matches!(
        client.ticker_price(&btcusdt()).await,
        Err(ExchangeError::Banned { .. })
    ));
    assert_eq!(
        fake.stats().requests.values().sum::<u32>(),
        before,
        "nothing sent during the ban"
    );
    assert!(fake.orders().is_empty());
    let local = orders::get(store.lock().unwrap().conn(), "t-ban")
        .unwrap()
        .unwrap();
    assert_eq!(local.order.status, OrderStatus::Rejected);
}

#[tokio::test]
async fn order_breaking_a_filter_is_refused_before_any_request() {
    let fake = fake().await;
    let (executor, store) = executor(
        Arc::new(client_for(&fake, client_config(&fake))),
        "binance-fake",
    );
    // LOT_SIZE step is 0.00001
    let err = executor
        .place(
            &limit("t-lot", Side::Buy, dec!(0.000015), dec!(49000)),
            ORDER_TIME,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ExchangeError::LocalFilter(_)), "{err:?}");
    assert!(err.to_string().contains("LOT_SIZE"));
    // 0.0001 BTC at 49000 = 4.9 USDT < 5 minimum
    let err = executor
        .place(
            &limit("t-notional", Side::Buy, dec!(0.0001), dec!(49000)),
            ORDER_TIME,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NOTIONAL"), "{err}");
    assert_eq!(fake.requests("POST /api/v3/order"), 0);
    assert!(
        orders::all(store.lock().unwrap().conn())
            .unwrap()
            .is_empty(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn exchange_side_filter_failure_names_the_filter() {
    let fake = fake().await;
    let client = client_for(&fake, client_config(&fake));
    let err = client
        .place_order(&limit("t-tick", Side::Buy, dec!(0.01), dec!(49000.001)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ExchangeError::FilterFailure {
            filter: "PRICE_FILTER".into(),
            detail: "Filter failure: PRICE_FILTER".into()
        }
    );
}

#[tokio::test]
async fn reads_are_retried_after_server_errors_and_malformed_json() {
    let fake = fake().await;
    fake.faults(|f| {
        f.http_5xx_next = 2;
    });
    let client = client_for(&fake, client_config(&fake));
    assert_eq!(
        client.ticker_price(&btcusdt()).await.unwrap().get(),
        dec!(50000)
    );
    assert_eq!(fake.requests("GET /api/v3/ticker/price"), 3);
    fake.faults(|f| f.malformed_next = 1);
    assert_eq!(
        client.ticker_price(&btcusdt()).await.unwrap().get(),
        dec!(50000)
    );
    assert_eq!(fake.requests("GET /api/v3/ticker/price"), 5);
}

#[tokio::test]
async fn clock_skew_is_corrected_by_resync_on_minus_1021() {
    let fake = fake().await;
    fake.faults(|f| f.clock_skew_ms = 20_000);
    let client = client_for(&fake, client_config(&fake));
    let balances = client.balances().await.unwrap();
    assert_eq!(
        trademind::services::exchange::balance_of(&balances, "USDT").free,
        dec!(10000)
    );
    let offset = client.clock_offset_ms();
    assert!((19_000..=21_000).contains(&offset), "offset {offset}");
}

#[tokio::test]
async fn wrong_secret_is_a_bad_signature_error_that_leaks_nothing() {
    let fake = fake().await;
    let client = trademind::services::exchange::binance::BinanceClient::new(
        client_config(&fake),
        Some(Credentials::new("fake-api-key", "not-the-secret-xyz")),
    )
    .unwrap();
    let err = client.balances().await.unwrap_err();
    assert_eq!(err, ExchangeError::BadSignature);
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains("not-the-secret-xyz"));
    assert!(!shown.contains("signature="));
}

#[tokio::test]
async fn unknown_symbol_and_unknown_order_are_typed() {
    let fake = fake().await;
    let client = client_for(&fake, client_config(&fake));
    let eth = trademind::domain::symbol::Symbol::new("ETHBTC").unwrap();
    assert!(matches!(
        client.symbol_filters(&eth).await,
        Err(ExchangeError::BadSymbol(_))
    ));
    assert!(matches!(
        client.query_order(&btcusdt(), "nope").await,
        Err(ExchangeError::UnknownOrder { code: -2013, .. })
    ));
    assert!(matches!(
        client.cancel_order(&btcusdt(), "nope").await,
        Err(ExchangeError::UnknownOrder { code: -2011, .. })
    ));
}

#[tokio::test]
async fn lost_order_that_never_arrived_is_marked_rejected_after_grace() {
    let fake = fake().await;
    fake.faults(|f| f.orders_5xx_before_accept = 1);
    let (executor, store) = executor(
        Arc::new(client_for(&fake, client_config(&fake))),
        "binance-fake",
    );
    let err = executor
        .place(&market("t-lost", Side::Buy, dec!(0.01)), ORDER_TIME)
        .await
        .unwrap_err();
    assert!(matches!(err, ExchangeError::OrderRejected(_)), "{err:?}");
    assert!(fake.orders().is_empty());
    assert_eq!(
        fake.requests("POST /api/v3/order"),
        1,
        "not re-sent on an unknown outcome"
    );
    assert!(
        fake.requests("GET /api/v3/order") >= 2,
        "queried until the grace period passed"
    );
    let local = orders::get(store.lock().unwrap().conn(), "t-lost")
        .unwrap()
        .unwrap();
    assert_eq!(local.order.status, OrderStatus::Rejected);
    assert!(local.error.unwrap_or_default().contains("never reached"));
}

#[tokio::test]
async fn circuit_breaker_opens_after_repeated_server_errors_and_stops_calling() {
    use trademind::services::exchange::resilience::{EndpointGroup, EndpointState};
    let fake = fake().await;
    fake.faults(|f| f.http_5xx_next = 100);
    let client = client_for(
        &fake,
        trademind::services::exchange::binance::BinanceConfig {
            max_read_retries: 0,
            breaker_failure_threshold: 3,
            breaker_cool_down_ms: 60_000,
            ..client_config(&fake)
        },
    );
    for _ in 0..3 {
        assert!(matches!(
            client.ticker_price(&btcusdt()).await,
            Err(ExchangeError::Unavailable(_))
        ));
    }
    let states = client.breaker_states();
    assert!(states.contains(&(EndpointGroup::MarketData, EndpointState::Open)));
    assert!(states.contains(&(EndpointGroup::Account, EndpointState::Closed)));
    let err = client.ticker_price(&btcusdt()).await.unwrap_err();
    assert!(matches!(err, ExchangeError::CircuitOpen { .. }), "{err:?}");
    assert_eq!(
        fake.requests("GET /api/v3/ticker/price"),
        3,
        "open breaker sends nothing"
    );
    // Account endpoints are a separate group and still work.
    fake.faults(|f| f.http_5xx_next = 0);
    assert!(client.balances().await.is_ok());
}
