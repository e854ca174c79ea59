//! Orders as the domain sees them: sides, types, statuses and the request an engine builds.
//! Exchange wire formats are parsed into these at the adapter edge.

use crate::domain::market::candle::TimestampMs;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::symbol::Symbol;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_uppercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(concat!("unknown ", stringify!($name), " {:?}"), other)),
                }
            }
        }
    };
}

wire_enum!(
    /// Buy or sell.
    Side { Buy => "BUY", Sell => "SELL" }
);

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

wire_enum!(
    /// Order types supported by the Spot API and the paper exchange.
    OrderType {
        Market => "MARKET",
        Limit => "LIMIT",
        StopLossLimit => "STOP_LOSS_LIMIT",
        TakeProfitLimit => "TAKE_PROFIT_LIMIT",
        LimitMaker => "LIMIT_MAKER",
        StopLoss => "STOP_LOSS",
        TakeProfit => "TAKE_PROFIT",
    }
);

impl OrderType {
    /// A contingent order: it rests until its stop condition (or its trailing delta) triggers it.
    pub fn is_stop(self) -> bool {
        matches!(
            self,
            OrderType::StopLossLimit
                | OrderType::TakeProfitLimit
                | OrderType::StopLoss
                | OrderType::TakeProfit
        )
    }

    /// Whether a stop order of this type and side meets its stop price at `price` (Binance:
    /// STOP_LOSS SELL / TAKE_PROFIT BUY when the price falls to the stop, STOP_LOSS BUY /
    /// TAKE_PROFIT SELL when it rises to it).
    pub fn stop_condition_met(self, side: Side, stop: Price, price: Price) -> bool {
        let falls = matches!(
            (self, side),
            (OrderType::StopLossLimit | OrderType::StopLoss, Side::Sell)
                | (
                    OrderType::TakeProfitLimit | OrderType::TakeProfit,
                    Side::Buy
                )
        );
        if falls { price <= stop } else { price >= stop }
    }
}

/// A trailing stop's distance in basis points: Binance's `trailingDelta` ("BIPS"; 100 = 1 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrailingDelta(pub u32);

impl TrailingDelta {
    /// The `TRAILING_DELTA` filter of ordinary Binance spot symbols: `min/maxTrailingAboveDelta`
    /// and `min/maxTrailingBelowDelta` are 10 and 2000 BIPS (0.1 % to 20 %).
    pub const MIN: u32 = 10;
    pub const MAX: u32 = 2000;

    /// The delta as a fraction (250 BIPS = 0.025).
    pub fn fraction(self) -> Decimal {
        Decimal::new(i64::from(self.0), 4)
    }

    /// Whether the exchange's `TRAILING_DELTA` filter accepts it.
    pub fn in_filter_range(self) -> bool {
        (Self::MIN..=Self::MAX).contains(&self.0)
    }
}

impl fmt::Display for TrailingDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The trigger of a trailing stop order, as Binance's Trailing Stop FAQ defines it: a sell
/// trails the highest price seen since it started tracking and triggers once a price is at or
/// under that high less the delta; a buy trails the lowest and triggers at or over the low plus
/// the delta. With a stop price, tracking starts at the first price that meets the order's stop
/// condition (that price is the first extreme); without one, at the last price when the order
/// is placed. The paper exchange, the fake Binance and the backtest all trigger through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrailingStop {
    pub delta: TrailingDelta,
    order_type: OrderType,
    side: Side,
    stop_price: Option<Price>,
    /// The best price since tracking started (`None`: not tracking yet).
    extreme: Option<Price>,
}

impl TrailingStop {
    /// A trailing order placed while the last price is `last` (`None`: no trade seen yet).
    pub fn placed(
        order_type: OrderType,
        side: Side,
        delta: TrailingDelta,
        stop_price: Option<Price>,
        last: Option<Price>,
    ) -> TrailingStop {
        TrailingStop {
            delta,
            order_type,
            side,
            stop_price,
            extreme: if stop_price.is_none() { last } else { None },
        }
    }

    /// The price that triggers the order now (`None` until it tracks).
    pub fn trigger_price(&self) -> Option<Price> {
        let d = self.delta.fraction();
        self.extreme.map(|e| match self.side {
            Side::Sell => e * (Decimal::ONE - d),
            Side::Buy => e * (Decimal::ONE + d),
        })
    }

    /// The highest (sell) or lowest (buy) price tracked so far.
    pub fn extreme(&self) -> Option<Price> {
        self.extreme
    }

    /// A trade at `price`: track it and say whether it triggers the order.
    pub fn observe(&mut self, price: Price) -> bool {
        let Some(extreme) = self.extreme else {
            let starts = self
                .stop_price
                .is_none_or(|stop| self.order_type.stop_condition_met(self.side, stop, price));
            if starts {
                self.extreme = Some(price);
            }
            return false;
        };
        let better = match self.side {
            Side::Sell => price > extreme,
            Side::Buy => price < extreme,
        };
        if better {
            self.extreme = Some(price);
            return false;
        }
        match (self.side, self.trigger_price()) {
            (Side::Sell, Some(trigger)) => price <= trigger,
            (Side::Buy, Some(trigger)) => price >= trigger,
            (_, None) => false,
        }
    }
}

wire_enum!(
    /// Order life cycle. `PendingNew` is ours: the row exists locally, the request may not have
    /// reached the exchange yet. `Unknown` means a send timed out and the outcome is being resolved.
    OrderStatus {
        PendingNew => "PENDING_NEW",
        Unknown => "UNKNOWN",
        New => "NEW",
        PartiallyFilled => "PARTIALLY_FILLED",
        Filled => "FILLED",
        Canceled => "CANCELED",
        PendingCancel => "PENDING_CANCEL",
        Rejected => "REJECTED",
        Expired => "EXPIRED",
        ExpiredInMatch => "EXPIRED_IN_MATCH",
    }
);

impl OrderStatus {
    /// Whether the order can still trade.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::PendingNew
                | OrderStatus::Unknown
                | OrderStatus::New
                | OrderStatus::PartiallyFilled
                | OrderStatus::PendingCancel
        )
    }
}

/// What an order is for, as stored in `orders.purpose` and shown by `trades`: the names are
/// the column's TEXT, so rows written before this type existed read back unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderPurpose {
    /// Opens or adds to a position (an order with no purpose given is an entry).
    #[default]
    Entry,
    /// Closes a position at market (`close`, a SELL decision, a stop that failed to place).
    Exit,
    /// The protective stop of a position (alone or an OCO leg).
    StopLoss,
    /// The take-profit leg of a position's OCO.
    TakeProfit,
}

impl OrderPurpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderPurpose::Entry => "entry",
            OrderPurpose::Exit => "exit",
            OrderPurpose::StopLoss => "stop_loss",
            OrderPurpose::TakeProfit => "take_profit",
        }
    }

    /// A stop-loss or take-profit order: it protects a position rather than opening or closing it
    /// on its own.
    pub fn is_protection(self) -> bool {
        matches!(self, OrderPurpose::StopLoss | OrderPurpose::TakeProfit)
    }
}

impl fmt::Display for OrderPurpose {
    /// Pads, so the CLI's aligned columns (`{:<11}`) line up as they did with the string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for OrderPurpose {
    type Err = String;
    /// Exact names only: a stored purpose is written by us, so anything else is corruption.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            OrderPurpose::Entry,
            OrderPurpose::Exit,
            OrderPurpose::StopLoss,
            OrderPurpose::TakeProfit,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| {
            format!("unknown order purpose {s:?} (expected entry, exit, stop_loss or take_profit)")
        })
    }
}

wire_enum!(
    /// How long a limit order stays on the book.
    TimeInForce { Gtc => "GTC", Ioc => "IOC", Fok => "FOK" }
);

/// What an engine asks the exchange to do. Quantities and prices are already rounded to the
/// symbol's filters when this is built (see `SymbolFilters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub quantity: Qty,
    pub price: Option<Price>,
    pub stop_price: Option<Price>,
    pub time_in_force: Option<TimeInForce>,
    /// Binance's `trailingDelta` on a stop order: the stop trails the market (see
    /// [`TrailingStop`]). `stop_price` is then optional (the price tracking starts at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trailing_delta: Option<TrailingDelta>,
}

/// An order as known after the exchange (or the paper exchange) answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub client_order_id: String,
    pub exchange_order_id: Option<String>,
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: OrderType,
    pub status: OrderStatus,
    pub price: Option<Price>,
    pub stop_price: Option<Price>,
    pub quantity: Qty,
    pub filled_quantity: Qty,
    /// Sum of price × quantity over fills, so the average fill price is exact.
    pub cumulative_quote: Quote,
    pub created_at: TimestampMs,
    pub updated_at: TimestampMs,
}

impl Order {
    pub fn average_fill_price(&self) -> Option<Price> {
        if self.filled_quantity.is_zero() {
            None
        } else {
            Some(Price(
                self.cumulative_quote.get() / self.filled_quantity.get(),
            ))
        }
    }
}

/// One execution (fill) of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub client_order_id: String,
    pub trade_id: Option<String>,
    pub symbol: Symbol,
    pub side: Side,
    pub price: Price,
    pub quantity: Qty,
    pub fee: Quote,
    pub fee_asset: String,
    pub is_maker: bool,
    pub time: TimestampMs,
}

/// A new client order id: a prefix naming the origin plus a caller-supplied unique part.
/// Binance allows `^[.A-Z:/a-z0-9_-]{1,36}$`.
pub fn client_order_id(prefix: &str, unique: &str) -> String {
    let mut id: String = format!("tm-{prefix}-{unique}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '/' | '_' | '-'))
        .collect();
    id.truncate(36);
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn wire_names_round_trip() {
        assert_eq!(
            "STOP_LOSS_LIMIT".parse::<OrderType>().unwrap(),
            OrderType::StopLossLimit
        );
        assert_eq!(OrderStatus::PartiallyFilled.to_string(), "PARTIALLY_FILLED");
        assert!("HOLD".parse::<Side>().is_err());
    }

    #[test]
    fn order_purposes_keep_their_stored_names_and_refuse_others() {
        for (purpose, text) in [
            (OrderPurpose::Entry, "entry"),
            (OrderPurpose::Exit, "exit"),
            (OrderPurpose::StopLoss, "stop_loss"),
            (OrderPurpose::TakeProfit, "take_profit"),
        ] {
            assert_eq!(purpose.to_string(), text);
            assert_eq!(format!("{purpose:<12}|"), format!("{text:<12}|"));
            assert_eq!(text.parse::<OrderPurpose>().unwrap(), purpose);
            assert_eq!(
                serde_json::to_value(purpose).unwrap(),
                serde_json::json!(text)
            );
        }
        assert!("STOP_LOSS".parse::<OrderPurpose>().is_err());
        assert!("".parse::<OrderPurpose>().is_err());
    }

    #[test]
    fn average_fill_price_is_exact() {
        let o = Order {
            client_order_id: "x".into(),
            exchange_order_id: None,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            side: Side::Buy,
            order_type: OrderType::Market,
            status: OrderStatus::Filled,
            price: None,
            stop_price: None,
            quantity: Qty(dec!(3)),
            filled_quantity: Qty(dec!(3)),
            cumulative_quote: Quote(dec!(1)),
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(
            o.average_fill_price().unwrap().get() * dec!(3),
            dec!(0.9999999999999999999999999999)
        );
    }

    fn p(v: i64) -> Price {
        Price(Decimal::from(v))
    }

    /// Scenario B of Binance's Trailing Stop FAQ: STOP_LOSS_LIMIT SELL, stopPrice 39,000,
    /// trailingDelta 1000, last price 40,000.
    #[test]
    fn trailing_sell_with_a_stop_price_tracks_from_the_stop_and_triggers_at_the_high_less_delta() {
        let mut t = TrailingStop::placed(
            OrderType::StopLossLimit,
            Side::Sell,
            TrailingDelta(1000),
            Some(p(39_000)),
            Some(p(40_000)),
        );
        // Rising to 41,500 before the stop price is met: not tracking.
        assert!(!t.observe(p(41_500)));
        assert_eq!(t.extreme(), None);
        // The first trade at the stop price starts tracking with it as the high.
        assert!(!t.observe(p(39_000)));
        assert_eq!(t.trigger_price(), Some(p(35_100)));
        // 37,000 is ~512 BIPS under the high: not enough.
        assert!(!t.observe(p(37_000)));
        // A new high at 41,000: the trigger moves to 36,900.
        assert!(!t.observe(p(41_000)));
        assert_eq!(t.trigger_price(), Some(p(36_900)));
        assert!(!t.observe(p(36_901)));
        assert!(t.observe(p(36_900)));
    }

    /// Scenario E: no stop price, tracking starts from the price at placement.
    #[test]
    fn trailing_sell_without_a_stop_price_tracks_from_placement() {
        let mut t = TrailingStop::placed(
            OrderType::StopLossLimit,
            Side::Sell,
            TrailingDelta(700),
            None,
            Some(p(40_000)),
        );
        assert_eq!(t.trigger_price(), Some(p(37_200)));
        assert!(!t.observe(p(42_000)));
        assert!(!t.observe(p(39_500)));
        assert!(!t.observe(p(45_500)));
        assert!(!t.observe(p(42_316)));
        assert!(t.observe(p(42_315)));
    }

    /// Scenario A: STOP_LOSS_LIMIT BUY, stopPrice 44,000, trailingDelta 500.
    #[test]
    fn trailing_buy_tracks_the_low_and_triggers_at_the_low_plus_delta() {
        let mut t = TrailingStop::placed(
            OrderType::StopLossLimit,
            Side::Buy,
            TrailingDelta(500),
            Some(p(44_000)),
            Some(p(40_000)),
        );
        // A fall to 37,000 is ignored: the stop condition (price >= 44,000) is not met.
        assert!(!t.observe(p(37_000)));
        assert!(!t.observe(p(44_000)));
        assert!(!t.observe(p(46_000)));
        assert!(!t.observe(p(42_000)));
        assert!(!t.observe(p(44_099)));
        assert!(t.observe(p(44_100)));
    }

    #[test]
    fn the_trailing_delta_filter_range_is_10_to_2000_bips() {
        assert!(!TrailingDelta(9).in_filter_range());
        assert!(TrailingDelta(10).in_filter_range());
        assert!(TrailingDelta(2000).in_filter_range());
        assert!(!TrailingDelta(2001).in_filter_range());
        assert_eq!(TrailingDelta(250).fraction(), dec!(0.025));
    }

    #[test]
    fn client_order_ids_fit_binance_rules() {
        let id = client_order_id("strategy one", "0123456789abcdef0123456789abcdef");
        assert!(id.len() <= 36);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:/_-".contains(c))
        );
    }
}
