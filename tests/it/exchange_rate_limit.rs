//! The weight limiter keeps a burst under the limit the fake enforces.

use crate::exchange_common::*;
use std::sync::Arc;
use std::time::Duration;
use trademind::services::exchange::Exchange;
use trademind::services::exchange::binance::BinanceConfig;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_2000_requests_stays_under_the_weight_limit() {
    // 200 weight per 200 ms window on the fake; the client allows itself 180.
    let fake = FakeBinance::start(FakeConfig {
        weight_limit: 200,
        weight_window: Duration::from_millis(200),
        ban_after_violations: 0,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let client = Arc::new(client_for(
        &fake,
        BinanceConfig {
            weight_limit: 180,
            weight_window_ms: 200,
            max_read_retries: 0,
            ..client_config(&fake)
        },
    ));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..250 {
                // ticker/price with a symbol weighs 2 on Binance; ping weighs 1.
                if client.server_time().await.is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut succeeded = 0;
    for t in tasks {
        succeeded += t.await.unwrap();
    }
    let stats = fake.stats();
    assert_eq!(stats.responses_429, 0, "the fake never had to refuse");
    assert_eq!(stats.responses_418, 0);
    assert!(
        stats.max_window_weight <= 200,
        "max {}",
        stats.max_window_weight
    );
    assert_eq!(succeeded, 2000);
    assert_eq!(fake.requests("GET /api/v3/time"), 2000);
}

#[tokio::test]
async fn fake_answers_429_then_418_to_a_client_that_ignores_limits() {
    let fake = FakeBinance::start(FakeConfig {
        weight_limit: 5,
        weight_window: Duration::from_secs(60),
        ban_after_violations: 2,
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..9 {
        let r = http
            .get(format!("{}/api/v3/ping", fake.base_url()))
            .send()
            .await
            .unwrap();
        if r.status() != 200 {
            assert!(r.headers().contains_key("retry-after"));
        } else {
            assert!(r.headers().contains_key("x-mbx-used-weight-1m"));
        }
        statuses.push(r.status().as_u16());
    }
    // 5 allowed, then a 429, 2 tolerated violations answered 429, then the ban.
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429, 429, 429, 418]);
}
