//! A read that gets no answer says so plainly: "order status unknown … resolve by querying the
//! order" is for an order whose reply was lost, not for `ping`, `balance` or `info`.

use std::time::Duration;
use trademind::services::exchange::binance::{BinanceClient, BinanceConfig};

/// A server that accepts connections and never answers.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn a_read_timeout_is_no_answer_within_the_timeout_not_an_unknown_order_status() {
    let (url, server) = silent_server().await;
    let client = BinanceClient::new(
        BinanceConfig {
            base_url: Some(url),
            request_timeout_ms: 300,
            max_read_retries: 0,
            ..BinanceConfig::default()
        },
        None,
    )
    .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), client.ping())
        .await
        .expect("the client's own timeout should end the request")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no answer from Binance within 0.3s"), "{err}");
    assert!(!err.contains("order status unknown"), "{err}");
    assert!(!err.contains("querying the order"), "{err}");
    server.abort();
}
