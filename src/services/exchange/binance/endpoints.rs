//! One type per Binance REST endpoint: its method, path, weight, whether it is signed, which
//! circuit-breaker group it belongs to, its parameters and its response model.

use super::models::{
    Account, ApiRestrictions, Depth, ExchangeInfo, ServerTime, Ticker24hr, TickerPrice, WireOrder,
    WireOrderList, WireTrade,
};
use crate::domain::market::candle::{Interval, TimestampMs};
use crate::domain::symbol::Symbol;
use crate::domain::trading::order::{OrderRequest, OrderType, TimeInForce};
use crate::services::exchange::OcoRequest;
use crate::services::exchange::resilience::EndpointGroup;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Delete,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// A REST endpoint. `params` are sent in this order; the signer appends `recvWindow`,
/// `timestamp` and `signature` for signed endpoints.
pub trait Endpoint: Send + Sync {
    const METHOD: HttpMethod;
    const PATH: &'static str;
    const SIGNED: bool;
    const GROUP: EndpointGroup;
    type Response: DeserializeOwned + Send;
    fn weight(&self) -> u32;
    fn params(&self) -> Vec<(&'static str, String)>;
    /// The client order id the request concerns, for error messages.
    fn client_order_id(&self) -> Option<&str> {
        None
    }
}

macro_rules! endpoint {
    ($name:ident, $method:ident, $path:literal, $signed:literal, $group:ident, $resp:ty) => {
        impl Endpoint for $name {
            const METHOD: HttpMethod = HttpMethod::$method;
            const PATH: &'static str = $path;
            const SIGNED: bool = $signed;
            const GROUP: EndpointGroup = EndpointGroup::$group;
            type Response = $resp;
            fn weight(&self) -> u32 {
                self.weight_of()
            }
            fn params(&self) -> Vec<(&'static str, String)> {
                self.params_of()
            }
            fn client_order_id(&self) -> Option<&str> {
                self.client_order_id_of()
            }
        }
    };
}

/// An endpoint without parameters and with a fixed weight: the unit struct and its
/// [`Endpoint`] impl.
macro_rules! parameterless_endpoint {
    ($(#[$doc:meta])* $name:ident, $method:ident, $path:literal, $signed:literal, $group:ident, weight $weight:literal, $resp:ty) => {
        $(#[$doc])*
        pub struct $name;
        impl $name {
            fn weight_of(&self) -> u32 {
                $weight
            }
            fn params_of(&self) -> Vec<(&'static str, String)> {
                Vec::new()
            }
            fn client_order_id_of(&self) -> Option<&str> {
                None
            }
        }
        endpoint!($name, $method, $path, $signed, $group, $resp);
    };
}

parameterless_endpoint!(
    /// `GET /api/v3/ping` — weight 1.
    Ping,
    Get,
    "/api/v3/ping",
    false,
    MarketData,
    weight 1,
    serde_json::Value
);

parameterless_endpoint!(
    /// `GET /api/v3/time` — weight 1.
    Time,
    Get,
    "/api/v3/time",
    false,
    MarketData,
    weight 1,
    ServerTime
);

/// `GET /api/v3/exchangeInfo?symbol=` — weight 20.
pub struct GetExchangeInfo {
    pub symbol: Symbol,
}
impl GetExchangeInfo {
    fn weight_of(&self) -> u32 {
        20
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![("symbol", self.symbol.to_string())]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(
    GetExchangeInfo,
    Get,
    "/api/v3/exchangeInfo",
    false,
    MarketData,
    ExchangeInfo
);

/// `GET /api/v3/klines` — weight 2.
pub struct Klines {
    pub symbol: Symbol,
    pub interval: Interval,
    pub start_time: Option<TimestampMs>,
    pub limit: u16,
}
impl Klines {
    fn weight_of(&self) -> u32 {
        2
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("symbol", self.symbol.to_string()),
            ("interval", self.interval.to_string()),
        ];
        if let Some(start) = self.start_time {
            p.push(("startTime", start.to_string()));
        }
        p.push(("limit", self.limit.clamp(1, 1000).to_string()));
        p
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(
    Klines,
    Get,
    "/api/v3/klines",
    false,
    MarketData,
    Vec<Vec<serde_json::Value>>
);

/// `GET /api/v3/ticker/price?symbol=` — weight 2.
pub struct GetTickerPrice {
    pub symbol: Symbol,
}
impl GetTickerPrice {
    fn weight_of(&self) -> u32 {
        2
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![("symbol", self.symbol.to_string())]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(
    GetTickerPrice,
    Get,
    "/api/v3/ticker/price",
    false,
    MarketData,
    TickerPrice
);

/// `GET /api/v3/ticker/24hr?symbol=` — weight 2.
pub struct GetTicker24h {
    pub symbol: Symbol,
}
impl GetTicker24h {
    fn weight_of(&self) -> u32 {
        2
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![("symbol", self.symbol.to_string())]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(
    GetTicker24h,
    Get,
    "/api/v3/ticker/24hr",
    false,
    MarketData,
    Ticker24hr
);

/// `GET /api/v3/depth` — weight 5/25/50/250 by limit.
pub struct GetDepth {
    pub symbol: Symbol,
    pub limit: u16,
}
impl GetDepth {
    fn weight_of(&self) -> u32 {
        depth_weight(self.limit)
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![
            ("symbol", self.symbol.to_string()),
            ("limit", self.limit.clamp(1, 5000).to_string()),
        ]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(GetDepth, Get, "/api/v3/depth", false, MarketData, Depth);

/// Request weight of `GET /api/v3/depth` for a given `limit`.
pub fn depth_weight(limit: u16) -> u32 {
    match limit {
        0..=100 => 5,
        101..=500 => 25,
        501..=1000 => 50,
        _ => 250,
    }
}

/// `GET /api/v3/account` — weight 20, signed.
pub struct GetAccount;
impl GetAccount {
    fn weight_of(&self) -> u32 {
        20
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![("omitZeroBalances", "true".into())]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(GetAccount, Get, "/api/v3/account", true, Account, Account);

parameterless_endpoint!(
    /// `GET /sapi/v1/account/apiRestrictions` — weight 1 (of the SAPI IP limit), signed.
    GetApiRestrictions,
    Get,
    "/sapi/v1/account/apiRestrictions",
    true,
    Account,
    weight 1,
    ApiRestrictions
);

/// `POST /api/v3/order` — weight 1, signed. Always asks for the FULL response (fills).
pub struct NewOrder {
    pub request: OrderRequest,
}
impl NewOrder {
    fn weight_of(&self) -> u32 {
        1
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        let r = &self.request;
        let mut p = vec![
            ("symbol", r.symbol.to_string()),
            ("side", r.side.to_string()),
            ("type", r.order_type.to_string()),
        ];
        let needs_tif = matches!(
            r.order_type,
            OrderType::Limit | OrderType::StopLossLimit | OrderType::TakeProfitLimit
        );
        if needs_tif {
            p.push((
                "timeInForce",
                r.time_in_force.unwrap_or(TimeInForce::Gtc).to_string(),
            ));
        }
        p.push(("quantity", r.quantity.get().normalize().to_string()));
        if let Some(price) = r.price.filter(|_| r.order_type != OrderType::Market) {
            p.push(("price", price.get().normalize().to_string()));
        }
        if let Some(stop) = r.stop_price {
            p.push(("stopPrice", stop.get().normalize().to_string()));
        }
        if let Some(delta) = r.trailing_delta {
            p.push(("trailingDelta", delta.to_string()));
        }
        p.push(("newClientOrderId", r.client_order_id.clone()));
        p.push(("newOrderRespType", "FULL".into()));
        p
    }
    fn client_order_id_of(&self) -> Option<&str> {
        Some(&self.request.client_order_id)
    }
}
endpoint!(NewOrder, Post, "/api/v3/order", true, Trading, WireOrder);

/// `POST /api/v3/orderList/oco` — weight 1, signed.
pub struct NewOco {
    pub request: OcoRequest,
}
impl NewOco {
    fn weight_of(&self) -> u32 {
        1
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        let r = &self.request;
        let text = |d: rust_decimal::Decimal| d.normalize().to_string();
        let take_profit = vec![
            ("ClientOrderId", r.take_profit_client_order_id.clone()),
            ("Type", "LIMIT_MAKER".to_string()),
            ("Price", text(r.take_profit_price.get())),
        ];
        let stop = vec![
            ("ClientOrderId", r.stop_client_order_id.clone()),
            ("Type", "STOP_LOSS_LIMIT".to_string()),
            ("Price", text(r.stop_limit_price.get())),
            ("StopPrice", text(r.stop_price.get())),
            ("TimeInForce", "GTC".to_string()),
        ];
        // For a SELL list the take-profit sits above the market; for a BUY list below.
        let (above, below) = match r.side {
            crate::domain::trading::order::Side::Sell => (take_profit, stop),
            crate::domain::trading::order::Side::Buy => (stop, take_profit),
        };
        let mut p = vec![
            ("symbol", r.symbol.to_string()),
            ("listClientOrderId", r.list_client_order_id.clone()),
            ("side", r.side.to_string()),
            ("quantity", text(r.quantity.get())),
        ];
        for (k, v) in above {
            p.push((above_key(k), v));
        }
        for (k, v) in below {
            p.push((below_key(k), v));
        }
        p.push(("newOrderRespType", "RESULT".into()));
        p
    }
    fn client_order_id_of(&self) -> Option<&str> {
        Some(&self.request.list_client_order_id)
    }
}
endpoint!(
    NewOco,
    Post,
    "/api/v3/orderList/oco",
    true,
    Trading,
    WireOrderList
);

fn above_key(k: &str) -> &'static str {
    match k {
        "ClientOrderId" => "aboveClientOrderId",
        "Type" => "aboveType",
        "Price" => "abovePrice",
        "StopPrice" => "aboveStopPrice",
        _ => "aboveTimeInForce",
    }
}

fn below_key(k: &str) -> &'static str {
    match k {
        "ClientOrderId" => "belowClientOrderId",
        "Type" => "belowType",
        "Price" => "belowPrice",
        "StopPrice" => "belowStopPrice",
        _ => "belowTimeInForce",
    }
}

/// `GET /api/v3/order?origClientOrderId=` — weight 4, signed.
pub struct QueryOrder {
    pub symbol: Symbol,
    pub client_order_id: String,
}
impl QueryOrder {
    fn weight_of(&self) -> u32 {
        4
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![
            ("symbol", self.symbol.to_string()),
            ("origClientOrderId", self.client_order_id.clone()),
        ]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        Some(&self.client_order_id)
    }
}
endpoint!(QueryOrder, Get, "/api/v3/order", true, Trading, WireOrder);

/// `DELETE /api/v3/order?origClientOrderId=` — weight 1, signed.
pub struct CancelOrder {
    pub symbol: Symbol,
    pub client_order_id: String,
}
impl CancelOrder {
    fn weight_of(&self) -> u32 {
        1
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![
            ("symbol", self.symbol.to_string()),
            ("origClientOrderId", self.client_order_id.clone()),
        ]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        Some(&self.client_order_id)
    }
}
endpoint!(
    CancelOrder,
    Delete,
    "/api/v3/order",
    true,
    Trading,
    WireOrder
);

/// `GET /api/v3/openOrders?symbol=` — weight 6, signed.
pub struct OpenOrders {
    pub symbol: Symbol,
}
impl OpenOrders {
    fn weight_of(&self) -> u32 {
        6
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![("symbol", self.symbol.to_string())]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(
    OpenOrders,
    Get,
    "/api/v3/openOrders",
    true,
    Account,
    Vec<WireOrder>
);

/// `GET /api/v3/myTrades?symbol=` — weight 20, signed.
pub struct MyTrades {
    pub symbol: Symbol,
}
impl MyTrades {
    fn weight_of(&self) -> u32 {
        20
    }
    fn params_of(&self) -> Vec<(&'static str, String)> {
        vec![("symbol", self.symbol.to_string())]
    }
    fn client_order_id_of(&self) -> Option<&str> {
        None
    }
}
endpoint!(
    MyTrades,
    Get,
    "/api/v3/myTrades",
    true,
    Account,
    Vec<WireTrade>
);

/// Weight of a request by method and path, as the fake server charges it.
pub fn weight_of_path(method: &str, path: &str, has_symbol: bool, limit: Option<u16>) -> u32 {
    match (method, path) {
        ("GET", "/api/v3/exchangeInfo") => 20,
        ("GET", "/api/v3/depth") => depth_weight(limit.unwrap_or(100)),
        ("GET", "/api/v3/klines" | "/api/v3/ticker/price" | "/api/v3/ticker/24hr") => {
            if has_symbol { 2 } else { 80 }
        }
        ("GET", "/api/v3/order") => 4,
        ("GET", "/api/v3/openOrders") => {
            if has_symbol {
                6
            } else {
                80
            }
        }
        ("GET", "/api/v3/account" | "/api/v3/myTrades") => 20,
        _ => 1,
    }
}
