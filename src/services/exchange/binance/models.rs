//! Binance wire models (JSON shapes from the official REST docs) and their conversion into
//! domain types. Nothing outside `binance/` and the fake server sees these.

use crate::domain::market::candle::Candle;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::{Fill, Order, OrderStatus, OrderType, Side};
use crate::services::exchange::ExchangeError;
use crate::services::exchange::{Balance, BookLevel, OrderBook, OrderList, Ticker24h};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: i64,
    pub msg: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub server_time: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfo {
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub server_time: i64,
    #[serde(default)]
    pub rate_limits: Vec<serde_json::Value>,
    pub symbols: Vec<SymbolInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    pub symbol: String,
    pub status: String,
    pub base_asset: String,
    pub quote_asset: String,
    #[serde(default)]
    pub order_types: Vec<String>,
    pub filters: Vec<serde_json::Value>,
}

fn dec_field(filter: &serde_json::Value, key: &str) -> Result<Decimal, ExchangeError> {
    let text = filter
        .get(key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| ExchangeError::Malformed(format!("filter field {key} missing")))?;
    Decimal::from_str_exact(text)
        .map(|d| d.normalize())
        .map_err(|e| ExchangeError::Malformed(format!("filter field {key}={text:?}: {e}")))
}

impl SymbolInfo {
    /// The filters TradeMind checks, parsed exactly from their string form.
    pub fn to_filters(&self) -> Result<SymbolFilters, ExchangeError> {
        let mut f = SymbolFilters::permissive(&self.base_asset, &self.quote_asset);
        for filter in &self.filters {
            match filter.get("filterType").and_then(|v| v.as_str()) {
                Some("PRICE_FILTER") => {
                    f.min_price = dec_field(filter, "minPrice")?;
                    f.max_price = dec_field(filter, "maxPrice")?;
                    f.tick_size = dec_field(filter, "tickSize")?;
                }
                Some("LOT_SIZE") => {
                    f.min_qty = dec_field(filter, "minQty")?;
                    f.max_qty = dec_field(filter, "maxQty")?;
                    f.step_size = dec_field(filter, "stepSize")?;
                }
                Some("MARKET_LOT_SIZE") => {
                    let step = dec_field(filter, "stepSize")?;
                    f.market_step_size = (!step.is_zero()).then_some(step);
                    let max = dec_field(filter, "maxQty")?;
                    f.market_max_qty = (!max.is_zero()).then_some(max);
                }
                Some("MIN_NOTIONAL") => f.min_notional = dec_field(filter, "minNotional")?,
                Some("NOTIONAL") => {
                    f.min_notional = dec_field(filter, "minNotional")?;
                    let max = dec_field(filter, "maxNotional")?;
                    f.max_notional = (!max.is_zero()).then_some(max);
                }
                _ => {}
            }
        }
        Ok(f)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TickerPrice {
    pub symbol: String,
    pub price: Decimal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker24hr {
    pub symbol: String,
    pub price_change_percent: Decimal,
    pub last_price: Decimal,
    pub high_price: Decimal,
    pub low_price: Decimal,
    pub volume: Decimal,
    pub quote_volume: Decimal,
}

impl Ticker24hr {
    pub fn to_domain(&self) -> Result<Ticker24h, ExchangeError> {
        Ok(Ticker24h {
            symbol: symbol(&self.symbol)?,
            last_price: Price(self.last_price),
            price_change_percent: self.price_change_percent,
            high_price: Price(self.high_price),
            low_price: Price(self.low_price),
            volume: Qty(self.volume),
            quote_volume: self.quote_volume,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Depth {
    pub last_update_id: u64,
    pub bids: Vec<[Decimal; 2]>,
    pub asks: Vec<[Decimal; 2]>,
}

impl Depth {
    pub fn to_domain(&self) -> OrderBook {
        let level = |l: &[Decimal; 2]| BookLevel {
            price: Price(l[0]),
            qty: Qty(l[1]),
        };
        OrderBook {
            last_update_id: self.last_update_id,
            bids: self.bids.iter().map(level).collect(),
            asks: self.asks.iter().map(level).collect(),
        }
    }
}

/// One kline row: `[openTime, "open", "high", "low", "close", "volume", closeTime, ...]`.
pub fn kline_to_candle(row: &[serde_json::Value]) -> Result<Candle, ExchangeError> {
    let text = |i: usize| -> Result<Decimal, ExchangeError> {
        row.get(i)
            .and_then(|v| v.as_str())
            .and_then(|s| Decimal::from_str_exact(s).ok())
            .ok_or_else(|| ExchangeError::Malformed(format!("kline column {i}")))
    };
    let open_time = row
        .first()
        .and_then(|v| v.as_i64())
        .ok_or_else(|| ExchangeError::Malformed("kline open time".into()))?;
    Ok(Candle {
        open_time,
        open: Price(text(1)?),
        high: Price(text(2)?),
        low: Price(text(3)?),
        close: Price(text(4)?),
        volume: Qty(text(5)?),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssetBalance {
    pub asset: String,
    pub free: Decimal,
    pub locked: Decimal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(default)]
    pub can_trade: bool,
    pub balances: Vec<AssetBalance>,
}

/// `GET /sapi/v1/account/apiRestrictions`: what the API key itself may do (production only;
/// the spot testnet has no `/sapi` endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiRestrictions {
    pub ip_restrict: bool,
    pub enable_reading: bool,
    pub enable_spot_and_margin_trading: bool,
    pub enable_withdrawals: bool,
    #[serde(default)]
    pub enable_internal_transfer: bool,
    #[serde(default)]
    pub permits_universal_transfer: bool,
}

impl Account {
    pub fn to_domain(&self) -> Vec<Balance> {
        self.balances
            .iter()
            .map(|b| Balance {
                asset: b.asset.clone(),
                free: b.free,
                locked: b.locked,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderFill {
    pub price: Decimal,
    pub qty: Decimal,
    pub commission: Decimal,
    pub commission_asset: String,
    pub trade_id: i64,
}

/// The order shape shared by POST/GET/DELETE order, openOrders and OCO order reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireOrder {
    pub symbol: String,
    pub order_id: i64,
    #[serde(default = "minus_one")]
    pub order_list_id: i64,
    pub client_order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orig_client_order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transact_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
    pub price: Decimal,
    pub orig_qty: Decimal,
    pub executed_qty: Decimal,
    pub cummulative_quote_qty: Decimal,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<String>,
    #[serde(rename = "type")]
    pub order_type: String,
    pub side: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fills: Option<Vec<OrderFill>>,
}

fn minus_one() -> i64 {
    -1
}

fn symbol(text: &str) -> Result<Symbol, ExchangeError> {
    Symbol::new(text).map_err(|e| ExchangeError::Malformed(e.to_string()))
}

fn parse<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, ExchangeError> {
    text.parse().map_err(ExchangeError::Malformed)
}

impl WireOrder {
    pub fn to_domain(&self) -> Result<Order, ExchangeError> {
        let created = self.time.or(self.transact_time).unwrap_or(0);
        let nonzero = |d: Decimal| (!d.is_zero()).then_some(Price(d));
        Ok(Order {
            client_order_id: self
                .orig_client_order_id
                .clone()
                .unwrap_or_else(|| self.client_order_id.clone()),
            exchange_order_id: Some(self.order_id.to_string()),
            symbol: symbol(&self.symbol)?,
            side: parse::<Side>(&self.side)?,
            order_type: parse::<OrderType>(&self.order_type)?,
            status: parse::<OrderStatus>(&self.status)?,
            price: nonzero(self.price),
            stop_price: self.stop_price.and_then(nonzero),
            quantity: Qty(self.orig_qty),
            filled_quantity: Qty(self.executed_qty),
            cumulative_quote: Quote(self.cummulative_quote_qty),
            created_at: created,
            updated_at: self.update_time.unwrap_or(created),
        })
    }

    pub fn fills_to_domain(&self) -> Result<Vec<Fill>, ExchangeError> {
        let order = self.to_domain()?;
        Ok(self
            .fills
            .iter()
            .flatten()
            .map(|f| Fill {
                client_order_id: order.client_order_id.clone(),
                trade_id: Some(f.trade_id.to_string()),
                symbol: order.symbol.clone(),
                side: order.side,
                price: Price(f.price),
                quantity: Qty(f.qty),
                fee: Quote(f.commission),
                fee_asset: f.commission_asset.clone(),
                is_maker: false,
                time: order.updated_at,
            })
            .collect())
    }

    /// The wire form of a domain order (used by the fake server).
    pub fn from_domain(order: &Order, list_id: i64, fills: Option<Vec<OrderFill>>) -> WireOrder {
        WireOrder {
            symbol: order.symbol.to_string(),
            order_id: order
                .exchange_order_id
                .as_deref()
                .and_then(|id| id.parse().ok())
                .unwrap_or(0),
            order_list_id: list_id,
            client_order_id: order.client_order_id.clone(),
            orig_client_order_id: None,
            transact_time: Some(order.updated_at),
            time: Some(order.created_at),
            update_time: Some(order.updated_at),
            price: order.price.map(|p| p.get()).unwrap_or_default(),
            orig_qty: order.quantity.get(),
            executed_qty: order.filled_quantity.get(),
            cummulative_quote_qty: order.cumulative_quote.get(),
            status: order.status.to_string(),
            time_in_force: Some("GTC".into()),
            order_type: order.order_type.to_string(),
            side: order.side.to_string(),
            stop_price: order.stop_price.map(|p| p.get()),
            fills,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireOrderList {
    pub order_list_id: i64,
    pub contingency_type: String,
    pub list_status_type: String,
    pub list_order_status: String,
    pub list_client_order_id: String,
    pub transaction_time: i64,
    pub symbol: String,
    pub order_reports: Vec<WireOrder>,
}

impl WireOrderList {
    pub fn to_domain(&self) -> Result<OrderList, ExchangeError> {
        Ok(OrderList {
            list_client_order_id: self.list_client_order_id.clone(),
            exchange_list_id: Some(self.order_list_id.to_string()),
            symbol: symbol(&self.symbol)?,
            orders: self
                .order_reports
                .iter()
                .map(WireOrder::to_domain)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTrade {
    pub symbol: String,
    pub id: i64,
    pub order_id: i64,
    pub price: Decimal,
    pub qty: Decimal,
    pub quote_qty: Decimal,
    pub commission: Decimal,
    pub commission_asset: String,
    pub time: i64,
    pub is_buyer: bool,
    pub is_maker: bool,
}

impl WireTrade {
    /// `myTrades` carries only the exchange order id; it stands in for the client id here
    /// (prefixed `order:`) and callers match fills to orders by it.
    pub fn to_domain(&self) -> Result<Fill, ExchangeError> {
        Ok(Fill {
            client_order_id: format!("order:{}", self.order_id),
            trade_id: Some(self.id.to_string()),
            symbol: symbol(&self.symbol)?,
            side: if self.is_buyer { Side::Buy } else { Side::Sell },
            price: Price(self.price),
            quantity: Qty(self.qty),
            fee: Quote(self.commission),
            fee_asset: self.commission_asset.clone(),
            is_maker: self.is_maker,
            time: self.time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn parses_the_docs_full_order_response() {
        let json = r#"{"symbol":"BTCUSDT","orderId":28,"orderListId":-1,"clientOrderId":"6gCrw2kRUAF9CvJDGP16IP",
            "transactTime":1507725176595,"price":"0.00000000","origQty":"10.00000000","executedQty":"10.00000000",
            "origQuoteOrderQty":"0.000000","cummulativeQuoteQty":"10.00000000","status":"FILLED","timeInForce":"GTC",
            "type":"MARKET","side":"SELL","workingTime":1507725176595,"selfTradePreventionMode":"NONE",
            "fills":[{"price":"4000.00000000","qty":"1.00000000","commission":"4.00000000","commissionAsset":"USDT","tradeId":56}]}"#;
        let wire: WireOrder = serde_json::from_str(json).unwrap();
        let order = wire.to_domain().unwrap();
        assert_eq!(order.status, OrderStatus::Filled);
        assert_eq!(order.price, None);
        assert_eq!(order.filled_quantity, Qty(dec!(10)));
        let fills = wire.fills_to_domain().unwrap();
        assert_eq!(fills[0].fee, Quote(dec!(4)));
        assert_eq!(fills[0].fee_asset, "USDT");
    }

    #[test]
    fn parses_filters_from_the_fixture() {
        let text = include_str!("../../../../tests/fixtures/binance/exchangeInfo_BTCUSDT.json");
        let info: ExchangeInfo = serde_json::from_str(text).unwrap();
        let f = info.symbols[0].to_filters().unwrap();
        assert_eq!(f.tick_size, dec!(0.01));
        assert_eq!(f.step_size, dec!(0.00001));
        assert_eq!(f.min_notional, dec!(5));
        assert_eq!(f.base_asset, "BTC");
    }
}
