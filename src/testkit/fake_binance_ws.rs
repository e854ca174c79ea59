//! A scripted fake of Binance's market streams for integration tests: a combined-stream
//! WebSocket endpoint and the two public REST calls the stream client needs (`/api/v3/depth`,
//! `/api/v3/klines`), both on 127.0.0.1:0. The fake keeps the true order book; the test drives
//! it (diffs sent, diffs "lost", closed klines, `serverShutdown`, dropped connections) and then
//! compares the client's book with the fake's.
//!
//! Like the real service it only accepts `/stream?streams=..` WebSocket paths and answers REST
//! requests with a missing symbol, a bad interval or `limit` > 5000 with HTTP 400.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::domain::market::{Candle, Interval, OrderBook};
use crate::domain::money::{Price, Qty};

enum Command {
    Text(String),
    /// Drop the TCP connection without a close frame, as a network failure would.
    Drop,
}

struct State {
    book: OrderBook,
    klines: Vec<Candle>,
    interval: Interval,
    symbol: String,
    current: Option<mpsc::UnboundedSender<Command>>,
    paths: Vec<String>,
    snapshot_requests: u32,
}

/// Handle to a running fake. Dropping it stops the servers.
pub struct FakeBinanceWs {
    ws_addr: SocketAddr,
    rest_addr: SocketAddr,
    state: Arc<Mutex<State>>,
    connections: watch::Receiver<u32>,
    cancel: CancellationToken,
}

impl Drop for FakeBinanceWs {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeBinanceWs {
    /// Start serving `symbol` (e.g. `BTCUSDT`) with an empty book at update id `first_id`.
    pub async fn start(symbol: &str, interval: Interval, first_id: u64) -> std::io::Result<Self> {
        let ws = TcpListener::bind("127.0.0.1:0").await?;
        let rest = TcpListener::bind("127.0.0.1:0").await?;
        let mut book = OrderBook::new(10_000);
        book.apply_snapshot(first_id, [], [])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let state = Arc::new(Mutex::new(State {
            book,
            klines: Vec::new(),
            interval,
            symbol: symbol.to_ascii_uppercase(),
            current: None,
            paths: Vec::new(),
            snapshot_requests: 0,
        }));
        let (conn_tx, connections) = watch::channel(0u32);
        let cancel = CancellationToken::new();
        let fake = FakeBinanceWs {
            ws_addr: ws.local_addr()?,
            rest_addr: rest.local_addr()?,
            state: state.clone(),
            connections,
            cancel: cancel.clone(),
        };
        tokio::spawn(serve_ws(ws, state.clone(), conn_tx, cancel.clone()));
        tokio::spawn(serve_rest(rest, state, cancel));
        Ok(fake)
    }

    /// `ws://127.0.0.1:<port>`, the value for `stream.ws_base_url`.
    pub fn ws_base_url(&self) -> String {
        format!("ws://{}", self.ws_addr)
    }

    /// `http://127.0.0.1:<port>`, the value for `stream.rest_base_url`.
    pub fn rest_base_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// WebSocket connections accepted so far.
    pub fn connections(&self) -> u32 {
        *self.connections.borrow()
    }

    /// Request paths of every accepted WebSocket connection.
    pub fn paths(&self) -> Vec<String> {
        lock(&self.state).paths.clone()
    }

    pub fn snapshot_requests(&self) -> u32 {
        lock(&self.state).snapshot_requests
    }

    /// Wait until at least `n` connections have been accepted.
    pub async fn wait_for_connections(&self, n: u32) {
        let mut rx = self.connections.clone();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    /// The fake's true book.
    pub fn book(&self) -> OrderBook {
        lock(&self.state).book.clone()
    }

    fn send(&self, command: Command) -> bool {
        let state = lock(&self.state);
        state
            .current
            .as_ref()
            .is_some_and(|tx| tx.send(command).is_ok())
    }

    /// Send a raw text frame to the connected client.
    pub fn send_text(&self, text: &str) -> bool {
        self.send(Command::Text(text.to_owned()))
    }

    /// Change the true book by one event spanning `span` update ids and send it (when `deliver`)
    /// as a `depthUpdate`. Not delivering it is how a test makes the client miss an event.
    pub fn depth_update(
        &self,
        span: u64,
        bids: &[(Price, Qty)],
        asks: &[(Price, Qty)],
        deliver: bool,
    ) -> bool {
        let frame = {
            let mut state = lock(&self.state);
            let first = state.book.last_update_id() + 1;
            let last = first + span.max(1) - 1;
            let applied =
                state
                    .book
                    .apply_diff(first, last, bids.iter().copied(), asks.iter().copied());
            if applied.is_err() {
                return false;
            }
            depth_frame(&state.symbol, first, last, bids, asks)
        };
        !deliver || self.send(Command::Text(frame))
    }

    /// Send an event with arbitrary ids (out of order, duplicated) without touching the truth.
    pub fn send_depth_raw(&self, first: u64, last: u64, bids: &[(Price, Qty)]) -> bool {
        let symbol = lock(&self.state).symbol.clone();
        self.send(Command::Text(depth_frame(&symbol, first, last, bids, &[])))
    }

    /// Close a kline: record it for REST and, when `deliver`, send it on the stream.
    pub fn close_kline(&self, candle: Candle, deliver: bool) -> bool {
        let frame = {
            let mut state = lock(&self.state);
            state.klines.push(candle.clone());
            kline_frame(&state.symbol, state.interval, &candle, true)
        };
        !deliver || self.send(Command::Text(frame))
    }

    /// Send a still-forming kline (`x: false`).
    pub fn open_kline(&self, candle: &Candle) -> bool {
        let frame = {
            let state = lock(&self.state);
            kline_frame(&state.symbol, state.interval, candle, false)
        };
        self.send(Command::Text(frame))
    }

    pub fn server_shutdown(&self) -> bool {
        self.send_text(r#"{"e":"serverShutdown","E":1770123456789}"#)
    }

    /// Cut the current connection without a close frame.
    pub fn drop_connection(&self) -> bool {
        let sent = self.send(Command::Drop);
        lock(&self.state).current = None;
        sent
    }
}

fn levels_json(levels: &[(Price, Qty)]) -> String {
    let parts: Vec<String> = levels
        .iter()
        .map(|(p, q)| format!("[\"{p}\",\"{q}\"]"))
        .collect();
    format!("[{}]", parts.join(","))
}

pub(crate) fn depth_frame(
    symbol: &str,
    first: u64,
    last: u64,
    bids: &[(Price, Qty)],
    asks: &[(Price, Qty)],
) -> String {
    format!(
        r#"{{"stream":"{}@depth@100ms","data":{{"e":"depthUpdate","E":1700000000000,"s":"{symbol}","U":{first},"u":{last},"b":{},"a":{}}}}}"#,
        symbol.to_ascii_lowercase(),
        levels_json(bids),
        levels_json(asks)
    )
}

pub(crate) fn kline_frame(symbol: &str, interval: Interval, c: &Candle, closed: bool) -> String {
    format!(
        r#"{{"stream":"{}@kline_{interval}","data":{{"e":"kline","E":{},"s":"{symbol}","k":{{"t":{},"T":{},"s":"{symbol}","i":"{interval}","f":1,"L":2,"o":"{}","c":"{}","h":"{}","l":"{}","v":"{}","n":2,"x":{closed},"q":"0","V":"0","Q":"0","B":"0"}}}}}}"#,
        symbol.to_ascii_lowercase(),
        c.open_time + interval.millis(),
        c.open_time,
        c.open_time + interval.millis() - 1,
        c.open,
        c.close,
        c.high,
        c.low,
        c.volume
    )
}

async fn serve_ws(
    listener: TcpListener,
    state: Arc<Mutex<State>>,
    connections: watch::Sender<u32>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let mut path = String::new();
        // The signature is fixed by tungstenite's handshake callback.
        #[allow(clippy::result_large_err)]
        let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let uri = req.uri();
            path = uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            if uri.path() == "/stream" && uri.query().is_some_and(|q| q.starts_with("streams=")) {
                Ok(resp)
            } else {
                let mut err = ErrorResponse::new(Some("unknown stream path".into()));
                *err.status_mut() = StatusCode::NOT_FOUND;
                Err(err)
            }
        };
        let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
            continue;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut s = lock(&state);
            s.paths.push(path);
            s.current = Some(tx);
        }
        connections.send_modify(|c| *c += 1);
        tokio::spawn(connection(ws, rx, cancel.clone()));
    }
}

async fn connection(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            command = rx.recv() => match command {
                Some(Command::Text(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Drop) | None => return,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

async fn serve_rest(listener: TcpListener, state: Arc<Mutex<State>>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((tcp, _)) = accepted else { continue };
        tokio::spawn(rest_request(tcp, state.clone()));
    }
}

async fn rest_request(mut tcp: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("GET "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_owned();
    let (status, body) = route(&target, &state);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

fn bad_request(msg: &str) -> (&'static str, String) {
    (
        "400 Bad Request",
        format!(r#"{{"code":-1102,"msg":"{msg}"}}"#),
    )
}

fn route(target: &str, state: &Mutex<State>) -> (&'static str, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let mut state = lock(state);
    if params.get("symbol") != Some(&state.symbol.as_str()) {
        return bad_request(
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        );
    }
    match path {
        "/api/v3/depth" => {
            let limit: u32 = match params.get("limit").map(|l| l.parse()) {
                None => 100,
                Some(Ok(l)) if (1..=5000).contains(&l) => l,
                Some(_) => {
                    return bad_request(
                        "Illegal characters found in parameter 'limit'; legal range is '1..5000'.",
                    );
                }
            };
            state.snapshot_requests += 1;
            let book = &state.book;
            let bids: Vec<_> = book.bids().take(limit as usize).collect();
            let asks: Vec<_> = book.asks().take(limit as usize).collect();
            (
                "200 OK",
                format!(
                    r#"{{"lastUpdateId":{},"bids":{},"asks":{}}}"#,
                    book.last_update_id(),
                    levels_json(&bids),
                    levels_json(&asks)
                ),
            )
        }
        "/api/v3/klines" => {
            if params.get("interval") != Some(&state.interval.as_str()) {
                return bad_request("Invalid interval.");
            }
            let start: i64 = params
                .get("startTime")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let limit: usize = params
                .get("limit")
                .and_then(|s| s.parse().ok())
                .unwrap_or(500);
            if !(1..=1000).contains(&limit) {
                return bad_request(
                    "Illegal characters found in parameter 'limit'; legal range is '1..1000'.",
                );
            }
            let step = state.interval.millis();
            let rows: Vec<String> = state
                .klines
                .iter()
                .filter(|c| c.open_time >= start)
                .take(limit)
                .map(|c| {
                    format!(
                        r#"[{},"{}","{}","{}","{}","{}",{},"0",2,"0","0","0"]"#,
                        c.open_time,
                        c.open,
                        c.high,
                        c.low,
                        c.close,
                        c.volume,
                        c.open_time + step - 1
                    )
                })
                .collect();
            ("200 OK", format!("[{}]", rows.join(",")))
        }
        _ => ("404 Not Found", r#"{"code":-1,"msg":"not found"}"#.into()),
    }
}

/// A fake of the WebSocket API's user-data subscription (`/ws-api/v3`): it checks
/// `userDataStream.subscribe.signature` like Binance (known key, HMAC over the sorted params,
/// `-1022` otherwise) and then forwards events the test pushes, wrapped with `subscriptionId`.
pub struct FakeBinanceWsApi {
    addr: SocketAddr,
    current: Arc<Mutex<Option<mpsc::UnboundedSender<Command>>>>,
    subscriptions: watch::Receiver<u32>,
    cancel: CancellationToken,
}

impl Drop for FakeBinanceWsApi {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl FakeBinanceWsApi {
    pub async fn start(api_key: &str, api_secret: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let current = Arc::new(Mutex::new(None));
        let (sub_tx, subscriptions) = watch::channel(0u32);
        let cancel = CancellationToken::new();
        let (key, secret) = (api_key.to_owned(), api_secret.to_owned());
        let task_current = current.clone();
        let task_cancel = cancel.clone();
        let sub_tx = Arc::new(sub_tx);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = task_cancel.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    continue;
                };
                let (tx, rx) = mpsc::unbounded_channel();
                *task_current.lock().unwrap_or_else(PoisonError::into_inner) = Some(tx);
                tokio::spawn(ws_api_connection(
                    ws,
                    rx,
                    key.clone(),
                    secret.clone(),
                    sub_tx.clone(),
                    task_cancel.clone(),
                ));
            }
        });
        Ok(FakeBinanceWsApi {
            addr,
            current,
            subscriptions,
            cancel,
        })
    }

    /// `ws://127.0.0.1:<port>/ws-api/v3`
    pub fn url(&self) -> String {
        format!("ws://{}/ws-api/v3", self.addr)
    }

    /// Successful subscriptions so far.
    pub async fn wait_for_subscriptions(&self, n: u32) {
        let mut rx = self.subscriptions.clone();
        let _ = rx.wait_for(|c| *c >= n).await;
    }

    fn send(&self, command: Command) -> bool {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| tx.send(command).is_ok())
    }

    /// Push a user-data event (the inner object, e.g. an `executionReport`).
    pub fn push_event(&self, event_json: &str) -> bool {
        self.send(Command::Text(format!(
            r#"{{"subscriptionId":0,"event":{event_json}}}"#
        )))
    }

    pub fn drop_connection(&self) -> bool {
        self.send(Command::Drop)
    }
}

async fn ws_api_connection(
    mut ws: tokio_tungstenite::WebSocketStream<TcpStream>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    key: String,
    secret: String,
    subscriptions: Arc<watch::Sender<u32>>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            command = rx.recv() => match command {
                Some(Command::Text(text)) => {
                    if ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Command::Drop) | None => return,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let (reply, ok) = ws_api_reply(text.as_str(), &key, &secret);
                    if ws.send(Message::text(reply)).await.is_err() {
                        return;
                    }
                    if ok {
                        subscriptions.send_modify(|c| *c += 1);
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
        }
    }
}

pub(crate) fn ws_api_reply(text: &str, key: &str, secret: &str) -> (String, bool) {
    let Ok(request) = serde_json::from_str::<serde_json::Value>(text) else {
        return (
            r#"{"id":null,"status":400,"error":{"code":-1102,"msg":"Malformed request."}}"#.into(),
            false,
        );
    };
    let id = request["id"].clone();
    let fail = |status: u16, code: i32, msg: &str| {
        (
            serde_json::json!({"id": id, "status": status, "error": {"code": code, "msg": msg}})
                .to_string(),
            false,
        )
    };
    if request["method"] != "userDataStream.subscribe.signature" {
        return fail(400, -1100, "Unknown method.");
    }
    let Some(params) = request["params"].as_object() else {
        return fail(400, -1102, "Mandatory parameter 'params' was not sent.");
    };
    if params.get("apiKey").and_then(|k| k.as_str()) != Some(key) {
        return fail(
            401,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        );
    }
    let signed: Vec<(&str, String)> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "signature")
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.as_str(), value)
        })
        .collect();
    let expected = crate::services::market_stream::user_data::ws_api_signature(secret, &signed);
    let given = params
        .get("signature")
        .and_then(|s| s.as_str())
        .unwrap_or("");
    if !given.eq_ignore_ascii_case(&expected) {
        return fail(400, -1022, "Signature for this request is not valid.");
    }
    (
        serde_json::json!({"id": id, "status": 200, "result": {"subscriptionId": 0}}).to_string(),
        true,
    )
}
