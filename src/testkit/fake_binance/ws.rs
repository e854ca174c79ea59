//! The WebSocket side of `FakeBinance`, on the same address as its REST API, in Binance's own
//! path layout (what `exchange.binance.base_url` derives, see `config/endpoints.rs`):
//!
//! - `/stream?streams=<a>/<b>/..`: the combined market streams (Binance "WebSocket Streams":
//!   `{"stream":"<name>","data":{..}}`), `<symbol>@aggTrade`, `@bookTicker`, `@depth@100ms` and
//!   `@kline_<interval>`, following the fake's own price, book and candles.
//! - `/ws-api/v3`: the WebSocket API's `userDataStream.subscribe.signature` (signature checked
//!   like Binance), then `executionReport` events for the fake's own orders and fills.
//!
//! Any other path is answered 404, as Binance does, before the upgrade.
//!
//! As the documents say of both: the server sends a ping frame every 20 seconds and
//! disconnects a connection that has sent no pong back within a minute.

use super::{State, http::Request};
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// "The WebSocket server will send a `ping frame` every 20 seconds."
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(20);
/// "If the WebSocket server does not receive a `pong frame` back from the connection within a
/// minute the connection will be disconnected."
const PONG_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The server's side of the keep-alive: pings on a timer, and whether the peer still answers.
struct KeepAlive {
    ticks: tokio::time::Interval,
    /// When the oldest ping still unanswered was sent.
    unanswered_since: Option<tokio::time::Instant>,
}

impl KeepAlive {
    fn new() -> KeepAlive {
        let start = tokio::time::Instant::now() + PING_EVERY;
        KeepAlive {
            ticks: tokio::time::interval_at(start, PING_EVERY),
            unanswered_since: None,
        }
    }

    /// A pong arrived (unsolicited pongs do not count, as Binance says, but there is no way
    /// to tell them apart; the client under test answers pings).
    fn pong(&mut self) {
        self.unanswered_since = None;
    }

    /// On a tick: `Some(ping)` to send, or `None` when the peer has not answered for a minute
    /// and is to be disconnected.
    fn tick(&mut self, now: tokio::time::Instant) -> Option<Message> {
        match self.unanswered_since {
            Some(since) if now.duration_since(since) >= PONG_WITHIN => None,
            Some(_) => Some(Message::Ping(Vec::new().into())),
            None => {
                self.unanswered_since = Some(now);
                Some(Message::Ping(Vec::new().into()))
            }
        }
    }
}

/// What the fake publishes to its WebSocket clients.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A combined-stream frame and the stream it belongs to (`btcusdt@aggTrade`).
    Market { stream: String, frame: String },
    /// A user-data event (the inner object, e.g. an `executionReport`).
    User(String),
}

/// Whether `req` asks for a WebSocket upgrade.
pub(super) fn is_upgrade(req: &Request) -> bool {
    req.method == "GET"
        && req
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
}

/// The stream names of a combined-stream query (`streams=btcusdt@aggTrade/btcusdt@kline_1h`).
fn requested_streams(raw_query: &str) -> Option<Vec<String>> {
    let streams = super::http::parse_form(raw_query)
        .into_iter()
        .find(|(k, _)| k == "streams")?
        .1;
    let names: Vec<String> = streams
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!names.is_empty()).then_some(names)
}

async fn refuse(mut stream: TcpStream, status: u16, msg: &str) {
    let body = format!(r#"{{"code":-1,"msg":"{msg}"}}"#);
    let _ = super::http::write_response(&mut stream, status, &[], &body).await;
    let _ = stream.shutdown().await;
}

/// Answer the upgrade request `req` and serve the connection until either side ends it.
pub(super) async fn serve(mut stream: TcpStream, req: Request, state: Arc<Mutex<State>>) {
    enum Kind {
        Market(Vec<String>),
        WsApi,
    }
    let kind = match req.path.as_str() {
        "/stream" => match requested_streams(&req.raw_query) {
            Some(names) => Kind::Market(names),
            None => return refuse(stream, 400, "Invalid request: no streams").await,
        },
        "/ws-api/v3" => Kind::WsApi,
        _ => return refuse(stream, 404, "Unknown WebSocket path.").await,
    };
    let Some(key) = req.header("sec-websocket-key") else {
        return refuse(stream, 400, "Missing Sec-WebSocket-Key.").await;
    };
    let accept = derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (feed, key, secret) = {
        let s = state.lock().unwrap_or_else(|p| p.into_inner());
        (
            s.feed.subscribe(),
            s.config.api_key.clone(),
            s.config.api_secret.clone(),
        )
    };
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, None).await;
    match kind {
        Kind::Market(names) => market(ws, feed, names).await,
        Kind::WsApi => ws_api(ws, feed, key, secret).await,
    }
}

async fn market(
    mut ws: WebSocketStream<TcpStream>,
    mut feed: broadcast::Receiver<FeedEvent>,
    names: Vec<String>,
) {
    let mut keep_alive = KeepAlive::new();
    loop {
        tokio::select! {
            now = keep_alive.ticks.tick() => {
                let Some(ping) = keep_alive.tick(now) else { return };
                if ws.send(ping).await.is_err() {
                    return;
                }
            }
            event = feed.recv() => match event {
                Ok(FeedEvent::Market { stream, frame }) if names.contains(&stream) => {
                    if ws.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                // A client too slow to keep up is cut off, as Binance does.
                Err(_) => return,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(Message::Pong(_))) => keep_alive.pong(),
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn ws_api(
    mut ws: WebSocketStream<TcpStream>,
    mut feed: broadcast::Receiver<FeedEvent>,
    key: String,
    secret: String,
) {
    let mut subscribed = false;
    let mut keep_alive = KeepAlive::new();
    loop {
        tokio::select! {
            now = keep_alive.ticks.tick() => {
                let Some(ping) = keep_alive.tick(now) else { return };
                if ws.send(ping).await.is_err() {
                    return;
                }
            }
            event = feed.recv() => match event {
                Ok(FeedEvent::User(event)) if subscribed => {
                    let frame = format!(r#"{{"subscriptionId":0,"event":{event}}}"#);
                    if ws.send(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let (reply, ok) =
                        crate::testkit::fake_binance_ws::ws_api_reply(text.as_str(), &key, &secret);
                    subscribed |= ok;
                    if ws.send(Message::text(reply)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(Message::Pong(_))) => keep_alive.pong(),
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_answers_a_ping_is_cut_off_after_a_minute() {
        let mut k = KeepAlive::new();
        let t0 = tokio::time::Instant::now();
        assert!(k.tick(t0).is_some(), "the first ping");
        assert!(k.tick(t0 + PING_EVERY).is_some());
        assert!(k.tick(t0 + PING_EVERY * 2).is_some());
        assert!(
            k.tick(t0 + PONG_WITHIN).is_none(),
            "no pong within a minute"
        );
        let mut k = KeepAlive::new();
        assert!(k.tick(t0).is_some());
        k.pong();
        assert!(k.tick(t0 + PONG_WITHIN).is_some(), "answered: pinged on");
    }
}
