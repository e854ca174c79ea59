//! The account's user-data stream over Binance's WebSocket API (the `listenKey` flow is gone):
//! the HMAC-signed `userDataStream.subscribe.signature` request, and the decoding of the events
//! it delivers (`executionReport` → order/fill updates, `outboundAccountPosition` → balances)
//! into domain values. WS-API signing differs from REST: params sorted by name, joined as
//! `k=v&..`, NOT percent-encoded.

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::domain::money::{Price, Qty};
use crate::domain::trading::order::{OrderStatus, Side};
use crate::services::market_stream::config::StreamConfig;
pub use crate::services::market_stream::execution::{
    ExecutionApplied, ExecutionError, OrderOutcome, apply_execution_report,
};
use crate::services::market_stream::wire::WireError;
use crate::store::Store;

/// Hex HMAC-SHA256 over the WS-API payload: `params` sorted by name, `k=v` joined with `&`,
/// no percent-encoding. `signature` itself must not be among `params`.
pub fn ws_api_signature(secret: &str, params: &[(&str, String)]) -> String {
    let mut sorted: Vec<&(&str, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let payload = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    crate::services::exchange::binance::signing::hmac_sha256_hex(secret, &payload)
}

/// The text frame that subscribes this connection to the account's events.
pub fn subscribe_signature_request(
    request_id: &str,
    api_key: &str,
    secret: &str,
    timestamp_ms: i64,
    recv_window_ms: Option<u64>,
) -> String {
    let mut params = vec![
        ("apiKey", api_key.to_owned()),
        ("timestamp", timestamp_ms.to_string()),
    ];
    if let Some(w) = recv_window_ms {
        params.push(("recvWindow", w.to_string()));
    }
    let signature = ws_api_signature(secret, &params);
    let mut object = serde_json::Map::new();
    object.insert("apiKey".into(), api_key.into());
    object.insert("timestamp".into(), timestamp_ms.into());
    if let Some(w) = recv_window_ms {
        object.insert("recvWindow".into(), w.into());
    }
    object.insert("signature".into(), signature.into());
    serde_json::json!({
        "id": request_id,
        "method": "userDataStream.subscribe.signature",
        "params": object,
    })
    .to_string()
}

/// An order changed (`executionReport`): a new, a fill, a cancel, a reject or an expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionReport {
    pub event_time: i64,
    pub symbol: String,
    pub client_order_id: String,
    /// For cancels: the id of the order being cancelled (`C`).
    pub original_client_order_id: Option<String>,
    pub side: Side,
    pub order_type: String,
    /// `x`: NEW, TRADE, CANCELED, REJECTED, EXPIRED, ...
    pub execution_type: String,
    pub status: OrderStatus,
    pub reject_reason: String,
    pub order_id: i64,
    pub order_qty: Qty,
    pub order_price: Price,
    /// The fill carried by this report, if `execution_type` is TRADE.
    pub fill: Option<ExecutionFill>,
    pub cumulative_qty: Qty,
    /// `Z`: cumulative quote transacted; average price = `Z / z`.
    pub cumulative_quote: Decimal,
    pub transaction_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionFill {
    pub trade_id: i64,
    pub qty: Qty,
    pub price: Price,
    pub commission: Decimal,
    pub commission_asset: Option<String>,
    pub is_maker: bool,
}

impl ExecutionReport {
    /// Volume-weighted average fill price so far, if anything filled.
    pub fn average_price(&self) -> Option<Price> {
        (!self.cumulative_qty.is_zero())
            .then(|| Price::new(self.cumulative_quote / self.cumulative_qty.get()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetBalance {
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
}

/// What arrived on the user-data connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserDataEvent {
    Execution(Box<ExecutionReport>),
    /// Balances that changed (`outboundAccountPosition`).
    Balances {
        event_time: i64,
        balances: Vec<AssetBalance>,
    },
    /// A deposit, withdrawal or transfer changed `asset` by `delta`.
    BalanceDelta {
        asset: String,
        delta: Decimal,
        event_time: i64,
    },
    /// The subscription ended: subscribe again.
    StreamTerminated,
    /// The server is about to close the connection: reconnect and resubscribe.
    ServerShutdown,
    /// A reply to a request (`subscribe`), with the error if it failed.
    Response {
        id: Option<String>,
        status: u16,
        error: Option<String>,
    },
    /// Event types we do not act on (`listStatus`, `externalLockUpdate`, ...).
    Other(String),
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(default, borrow)]
    event: Option<RawEvent<'a>>,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct RawEvent<'a> {
    e: &'a str,
    #[serde(default)]
    E: i64,
    // executionReport
    #[serde(default)]
    s: Option<&'a str>,
    #[serde(default)]
    c: Option<&'a str>,
    #[serde(default)]
    C: Option<&'a str>,
    #[serde(default)]
    S: Option<&'a str>,
    #[serde(default)]
    o: Option<&'a str>,
    #[serde(default)]
    x: Option<&'a str>,
    #[serde(default)]
    X: Option<&'a str>,
    #[serde(default)]
    r: Option<&'a str>,
    #[serde(default)]
    i: Option<i64>,
    #[serde(default)]
    q: Option<&'a str>,
    #[serde(default)]
    p: Option<&'a str>,
    #[serde(default)]
    l: Option<&'a str>,
    #[serde(default)]
    z: Option<&'a str>,
    #[serde(default)]
    L: Option<&'a str>,
    #[serde(default)]
    n: Option<&'a str>,
    #[serde(default)]
    N: Option<&'a str>,
    #[serde(default)]
    T: Option<i64>,
    #[serde(default)]
    t: Option<i64>,
    #[serde(default)]
    m: Option<bool>,
    #[serde(default)]
    Z: Option<&'a str>,
    // outboundAccountPosition
    #[serde(default)]
    B: Option<Vec<RawBalance<'a>>>,
    // balanceUpdate
    #[serde(default)]
    a: Option<&'a str>,
    #[serde(default)]
    d: Option<&'a str>,
}

#[derive(Deserialize)]
struct RawBalance<'a> {
    a: &'a str,
    f: &'a str,
    l: &'a str,
}

fn need<'a>(value: Option<&'a str>, field: &'static str) -> Result<&'a str, WireError> {
    value.ok_or(WireError::BadValue {
        field,
        value: "missing".into(),
    })
}

fn dec(value: Option<&str>, field: &'static str) -> Result<Decimal, WireError> {
    let s = need(value, field)?;
    Decimal::from_str_exact(s)
        .or_else(|_| Decimal::from_str(s))
        .map_err(|_| WireError::BadValue {
            field,
            value: s.to_owned(),
        })
}

/// Decode one frame of the WebSocket-API connection.
pub fn decode_user_event(text: &str) -> Result<UserDataEvent, WireError> {
    let frame: Frame<'_> = serde_json::from_str(text)?;
    let Some(ev) = frame.event else {
        return Ok(UserDataEvent::Response {
            id: frame.id.and_then(|v| match v {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }),
            status: frame.status.unwrap_or(0),
            error: frame.error.map(|e| e.to_string()),
        });
    };
    Ok(match ev.e {
        "executionReport" => {
            let side = need(ev.S, "side")?;
            let status = need(ev.X, "order status")?;
            let execution_type = need(ev.x, "execution type")?.to_owned();
            let fill = if execution_type == "TRADE" {
                Some(ExecutionFill {
                    trade_id: ev.t.unwrap_or(-1),
                    qty: Qty::new(dec(ev.l, "last executed quantity")?),
                    price: Price::new(dec(ev.L, "last executed price")?),
                    commission: dec(ev.n, "commission")?,
                    commission_asset: ev.N.map(str::to_owned),
                    is_maker: ev.m.unwrap_or(false),
                })
            } else {
                None
            };
            UserDataEvent::Execution(Box::new(ExecutionReport {
                event_time: ev.E,
                symbol: need(ev.s, "symbol")?.to_owned(),
                client_order_id: need(ev.c, "client order id")?.to_owned(),
                original_client_order_id: ev.C.filter(|c| !c.is_empty()).map(str::to_owned),
                side: Side::from_str(side).map_err(|_| WireError::BadValue {
                    field: "side",
                    value: side.to_owned(),
                })?,
                order_type: need(ev.o, "order type")?.to_owned(),
                execution_type,
                status: OrderStatus::from_str(status).map_err(|_| WireError::BadValue {
                    field: "order status",
                    value: status.to_owned(),
                })?,
                reject_reason: ev.r.unwrap_or("NONE").to_owned(),
                order_id: ev.i.unwrap_or(-1),
                order_qty: Qty::new(dec(ev.q, "order quantity")?),
                order_price: Price::new(dec(ev.p, "order price")?),
                fill,
                cumulative_qty: Qty::new(dec(ev.z, "cumulative quantity")?),
                cumulative_quote: dec(ev.Z, "cumulative quote")?,
                transaction_time: ev.T.unwrap_or(ev.E),
            }))
        }
        "outboundAccountPosition" => {
            let mut balances = Vec::new();
            for b in ev.B.unwrap_or_default() {
                balances.push(AssetBalance {
                    asset: b.a.to_owned(),
                    free: dec(Some(b.f), "free balance")?,
                    locked: dec(Some(b.l), "locked balance")?,
                });
            }
            UserDataEvent::Balances {
                event_time: ev.E,
                balances,
            }
        }
        "balanceUpdate" => UserDataEvent::BalanceDelta {
            asset: need(ev.a, "asset")?.to_owned(),
            delta: dec(ev.d, "balance delta")?,
            event_time: ev.E,
        },
        "eventStreamTerminated" => UserDataEvent::StreamTerminated,
        "serverShutdown" => UserDataEvent::ServerShutdown,
        other => UserDataEvent::Other(other.to_owned()),
    })
}

/// Where and as whom to subscribe. `Debug` never prints the secret.
#[derive(Clone)]
pub struct UserDataSettings {
    /// `wss://ws-api.binance.com:443/ws-api/v3`
    pub ws_api_url: String,
    pub api_key: String,
    pub api_secret: String,
    pub reconnect_initial_backoff_ms: u64,
    pub reconnect_max_backoff_ms: u64,
    pub read_timeout_secs: u64,
}

impl UserDataSettings {
    /// The `[stream]` endpoint and reconnect timing with the account's API key and secret.
    pub fn new(config: &StreamConfig, api_key: String, api_secret: String) -> Self {
        UserDataSettings {
            ws_api_url: config.ws_api_url.clone(),
            api_key,
            api_secret,
            reconnect_initial_backoff_ms: config.reconnect_initial_backoff_ms,
            reconnect_max_backoff_ms: config.reconnect_max_backoff_ms,
            read_timeout_secs: config.read_timeout_secs,
        }
    }
}

impl std::fmt::Debug for UserDataSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDataSettings")
            .field("ws_api_url", &self.ws_api_url)
            .field("api_key", &"<redacted>")
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

/// Where the execution reports of the user-data stream go.
#[derive(Debug, Clone)]
pub enum ExecutionSink {
    /// Published on the bus as they come (`OrderFilled`, `OrderUpdated`).
    Publish,
    /// Applied to the order and trade rows (`apply_execution_report`), then what changed is
    /// published. Positions are not moved: that is the trading service's job.
    Store(Arc<Mutex<Store>>),
    /// Handed to the application, which books them (the daemon's trading service). A full
    /// channel waits: a report is never dropped while the receiver lives.
    Forward(tokio::sync::mpsc::Sender<ExecutionReport>),
}

/// Keep the account's user-data subscription alive until `cancel`, publishing balances on the
/// bus and handing execution reports to `sink`. After a reconnect the subscription is renewed;
/// events sent while disconnected are lost, so the REST order monitor stays the fallback.
pub async fn run_user_data(
    settings: UserDataSettings,
    bus: crate::bus::EventBus,
    sink: ExecutionSink,
    cancel: tokio_util::sync::CancellationToken,
) {
    use futures_util::{SinkExt, StreamExt};
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::Message;

    let initial = Duration::from_millis(settings.reconnect_initial_backoff_ms.max(1));
    let max = Duration::from_millis(settings.reconnect_max_backoff_ms.max(1));
    let read_timeout = Duration::from_secs(settings.read_timeout_secs.max(1));
    let mut backoff = initial;
    // `loud`: a line at info (subscribed, the first failure of an outage); the retries of an
    // outage already reported go to debug so they do not bury the trading lines.
    let status = |state: &str, detail: String, loud: bool| {
        if loud {
            tracing::info!(state, detail, "user-data stream");
        } else {
            tracing::debug!(state, detail, "user-data stream");
        }
        bus.publish(crate::bus::Event::HealthChanged {
            component: "user_data_stream".into(),
            healthy: state == "subscribed",
            detail: format!("{state}: {detail}"),
        });
    };
    let mut request_no = 0u64;
    loop {
        let connected = tokio::select! {
            _ = cancel.cancelled() => return,
            c = tokio_tungstenite::connect_async(settings.ws_api_url.as_str()) => c,
        };
        let why = match connected {
            Err(e) => format!("connect failed: {e}"),
            Ok((mut ws, _)) => {
                request_no += 1;
                let request = subscribe_signature_request(
                    &format!("subscribe-{request_no}"),
                    &settings.api_key,
                    &settings.api_secret,
                    chrono::Utc::now().timestamp_millis(),
                    None,
                );
                if let Err(e) = ws.send(Message::text(request)).await {
                    format!("subscribe send failed: {e}")
                } else {
                    loop {
                        let next = tokio::select! {
                            _ = cancel.cancelled() => return,
                            n = tokio::time::timeout(read_timeout, ws.next()) => n,
                        };
                        let text = match next {
                            Err(_) => break format!("no frame for {read_timeout:?}"),
                            Ok(None) => break "server closed the connection".into(),
                            Ok(Some(Err(e))) => break format!("read error: {e}"),
                            Ok(Some(Ok(Message::Text(t)))) => t,
                            Ok(Some(Ok(Message::Close(c)))) => {
                                break format!("server sent close {c:?}");
                            }
                            Ok(Some(Ok(_))) => continue,
                        };
                        match decode_user_event(text.as_str()) {
                            Ok(UserDataEvent::Response { status: 200, .. }) => {
                                backoff = initial;
                                status("subscribed", settings.ws_api_url.clone(), true);
                            }
                            Ok(UserDataEvent::Response {
                                status: code,
                                error,
                                ..
                            }) => {
                                break format!(
                                    "subscription refused ({code}): {}",
                                    error.unwrap_or_default()
                                );
                            }
                            Ok(UserDataEvent::Execution(report)) => match &sink {
                                ExecutionSink::Store(store) => {
                                    apply_and_publish(store, &bus, *report).await
                                }
                                ExecutionSink::Publish => publish_execution(&bus, *report),
                                ExecutionSink::Forward(to) => {
                                    let sent = tokio::select! {
                                        _ = cancel.cancelled() => return,
                                        sent = to.send(*report) => sent,
                                    };
                                    if sent.is_err() {
                                        // The booking side stopped: nothing left to serve.
                                        return;
                                    }
                                }
                            },
                            Ok(UserDataEvent::Balances { balances, .. }) => {
                                for b in balances {
                                    bus.publish(crate::bus::Event::BalanceChanged {
                                        asset: b.asset,
                                        free: b.free,
                                        locked: b.locked,
                                    });
                                }
                            }
                            Ok(UserDataEvent::StreamTerminated) => {
                                break "subscription terminated".into();
                            }
                            Ok(UserDataEvent::ServerShutdown) => {
                                break "server announced shutdown".into();
                            }
                            Ok(UserDataEvent::BalanceDelta { .. } | UserDataEvent::Other(_)) => {}
                            Err(e) => {
                                tracing::warn!(error = %e, "undecodable user-data frame skipped")
                            }
                        }
                    }
                }
            }
        };
        status(
            "reconnecting",
            format!("{why}; retry in {backoff:?}"),
            backoff == initial,
        );
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(max);
    }
}

/// Apply a report to the store on the blocking pool, then publish what changed.
async fn apply_and_publish(
    store: &Arc<Mutex<Store>>,
    bus: &crate::bus::EventBus,
    report: ExecutionReport,
) {
    let store = store.clone();
    let applied = tokio::task::spawn_blocking(move || {
        let now = chrono::Utc::now().timestamp_millis();
        let store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let applied = apply_execution_report(store.conn(), &report, now);
        (report, applied)
    })
    .await;
    match applied {
        Ok((report, Ok(applied))) => {
            if applied.order == OrderOutcome::NotOurs {
                tracing::info!(
                    client_order_id = applied.client_order_id,
                    "execution report for an order TradeMind did not place; not stored"
                );
            }
            for event in applied.events(&report) {
                bus.publish(event);
            }
        }
        // The REST reconcile (`monitor_orders`) catches the order up later.
        Ok((_, Err(e))) => tracing::error!(error = %e, "execution report not applied"),
        Err(e) => tracing::error!(error = %e, "execution report task failed"),
    }
}

fn publish_execution(bus: &crate::bus::EventBus, report: ExecutionReport) {
    use crate::bus::Event;
    let Ok(symbol) = crate::domain::symbol::Symbol::new(&report.symbol) else {
        tracing::warn!(
            symbol = report.symbol,
            "execution report for an invalid symbol skipped"
        );
        return;
    };
    if let Some(fill) = report.fill {
        bus.publish(Event::OrderFilled {
            client_order_id: report.client_order_id.clone(),
            symbol: symbol.clone(),
            side: report.side,
            qty: fill.qty,
            price: fill.price,
            commission: fill.commission,
            commission_asset: fill.commission_asset,
            trade_id: fill.trade_id,
        });
    }
    bus.publish(Event::OrderUpdated {
        client_order_id: report.client_order_id,
        symbol,
        status: report.status,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";

    #[test]
    fn ws_api_signature_matches_binance_worked_example_whatever_the_param_order() {
        // Given deliberately unsorted: the signer must sort by name.
        let params = [
            ("symbol", "BTCUSDT".to_string()),
            ("side", "SELL".to_string()),
            ("type", "LIMIT".to_string()),
            ("timeInForce", "GTC".to_string()),
            ("quantity", "0.01000000".to_string()),
            ("price", "52000.00".to_string()),
            ("recvWindow", "100".to_string()),
            ("timestamp", "1645423376532".to_string()),
            ("apiKey", KEY.to_string()),
        ];
        assert_eq!(
            ws_api_signature(SECRET, &params),
            "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24"
        );
    }

    #[test]
    fn ws_api_signature_does_not_percent_encode_non_ascii() {
        let params = [
            ("apiKey", KEY.to_string()),
            ("price", "0.10000000".to_string()),
            ("quantity", "1.00000000".to_string()),
            ("recvWindow", "5000".to_string()),
            ("side", "BUY".to_string()),
            ("symbol", "１２３４５６".to_string()),
            ("timeInForce", "GTC".to_string()),
            ("timestamp", "1645423376532".to_string()),
            ("type", "LIMIT".to_string()),
        ];
        assert_eq!(
            ws_api_signature(SECRET, &params),
            "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd"
        );
    }

    #[test]
    fn subscribe_request_carries_the_signed_params() {
        let text = subscribe_signature_request("req-1", KEY, SECRET, 1747385641636, None);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["method"], "userDataStream.subscribe.signature");
        assert_eq!(v["params"]["timestamp"], 1747385641636i64);
        let expected = ws_api_signature(
            SECRET,
            &[
                ("apiKey", KEY.to_string()),
                ("timestamp", "1747385641636".to_string()),
            ],
        );
        assert_eq!(v["params"]["signature"], expected.as_str());
        assert_eq!(expected.len(), 64);
    }

    #[test]
    fn execution_report_with_a_fill_decodes_to_an_order_update_and_a_fill() {
        let text = r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1499405658658,"s":"ETHBTC","c":"mUvoqJxFIILMdfAW5iGSOW","S":"BUY","o":"LIMIT","f":"GTC","q":"1.00000000","p":"0.10264410","P":"0.00000000","F":"0.00000000","g":-1,"C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":4293153,"l":"0.40000000","z":"0.60000000","L":"0.10264000","n":"0.00040000","N":"ETH","T":1499405658657,"t":77,"v":3,"I":8641984,"w":true,"m":true,"M":false,"O":1499405658657,"Z":"0.06158000","Y":"0.04105600","Q":"0.00000000","W":1499405658657,"V":"NONE"}}"#;
        let UserDataEvent::Execution(report) = decode_user_event(text).unwrap() else {
            panic!("not an execution report");
        };
        assert_eq!(report.status, OrderStatus::PartiallyFilled);
        assert_eq!(report.side, Side::Buy);
        assert_eq!(report.original_client_order_id, None);
        let fill = report.fill.clone().unwrap();
        assert_eq!(fill.qty, Qty::new(dec!(0.4)));
        assert_eq!(fill.price, Price::new(dec!(0.10264)));
        assert_eq!(fill.commission_asset.as_deref(), Some("ETH"));
        assert!(fill.is_maker);
        // Z / z = 0.06158 / 0.6 = 0.102633…
        assert_eq!(
            report.average_price().unwrap().get().round_dp(6),
            dec!(0.102633)
        );
    }

    #[test]
    fn a_new_order_report_has_no_fill() {
        let text = r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1,"s":"ETHBTC","c":"abc","S":"SELL","o":"LIMIT","q":"1","p":"2","C":"","x":"NEW","X":"NEW","r":"NONE","i":5,"l":"0","z":"0","L":"0","n":"0","N":null,"T":1,"t":-1,"m":false,"Z":"0"}}"#;
        let UserDataEvent::Execution(report) = decode_user_event(text).unwrap() else {
            panic!("not an execution report");
        };
        assert_eq!(report.fill, None);
        assert_eq!(report.average_price(), None);
        assert_eq!(report.status, OrderStatus::New);
    }

    #[test]
    fn account_position_balance_update_and_replies_decode() {
        let pos = r#"{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1564034571105,"u":1564034571073,"B":[{"a":"ETH","f":"10000.000000","l":"0.500000"}]}}"#;
        assert_eq!(
            decode_user_event(pos).unwrap(),
            UserDataEvent::Balances {
                event_time: 1564034571105,
                balances: vec![AssetBalance {
                    asset: "ETH".into(),
                    free: dec!(10000),
                    locked: dec!(0.5)
                }]
            }
        );
        let delta = r#"{"subscriptionId":0,"event":{"e":"balanceUpdate","E":1573200697110,"a":"BTC","d":"100.00000000","T":1573200697068}}"#;
        assert!(matches!(
            decode_user_event(delta).unwrap(),
            UserDataEvent::BalanceDelta { delta, .. } if delta == dec!(100)
        ));
        let ok = r#"{"id":"d3df8a22","status":200,"result":{"subscriptionId":0}}"#;
        assert_eq!(
            decode_user_event(ok).unwrap(),
            UserDataEvent::Response {
                id: Some("d3df8a22".into()),
                status: 200,
                error: None
            }
        );
        let revoked = r#"{"id":null,"status":401,"error":{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}}"#;
        assert!(matches!(
            decode_user_event(revoked).unwrap(),
            UserDataEvent::Response { status: 401, error: Some(e), .. } if e.contains("-2015")
        ));
        let term =
            r#"{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}"#;
        assert_eq!(
            decode_user_event(term).unwrap(),
            UserDataEvent::StreamTerminated
        );
    }
}
