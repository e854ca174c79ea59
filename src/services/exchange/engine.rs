//! A small spot matching engine against a scripted price path: balances with locks, market /
//! limit / stop-limit / take-profit-limit / limit-maker orders, trailing stops (`trailingDelta`),
//! OCO lists, fees and filters as Binance applies them. The paper exchange and the fake Binance both run on it, so paper trading
//! and the tests see the same rules. Synchronous and deterministic: time is passed in.

use super::{Balance, BookLevel, OcoRequest, OrderBook, OrderList, Placed};
use crate::domain::market::candle::TimestampMs;
use crate::domain::money::{Price, Qty, Quote};
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::{FilterViolation, SymbolFilters};
use crate::domain::trading::order::{
    Fill, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce, TrailingStop,
};
use crate::services::exchange::ExchangeError;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Holding {
    free: Decimal,
    locked: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BookOrder {
    order: Order,
    time_in_force: Option<TimeInForce>,
    list_id: Option<u64>,
    /// Stop orders rest untriggered until the price crosses `stop_price`.
    triggered: bool,
    /// A trailing stop's tracker: it, not `stop_price`, decides when the order triggers.
    #[serde(default)]
    trailing: Option<TrailingStop>,
    locked_asset: String,
    locked: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ListRecord {
    id: u64,
    list_client_order_id: String,
    symbol: Symbol,
    order_ids: Vec<u64>,
}

/// The engine's whole state; serialisable so the paper exchange can persist it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Engine {
    /// Commission rate on every fill (0.001 = 0.1 %), charged in the asset received.
    pub fee_rate: Decimal,
    /// Market orders without a book fill at last price ± this many basis points.
    pub slippage_bps: Decimal,
    balances: BTreeMap<String, Holding>,
    filters: BTreeMap<Symbol, SymbolFilters>,
    prices: BTreeMap<Symbol, Price>,
    books: BTreeMap<Symbol, OrderBook>,
    orders: Vec<BookOrder>,
    lists: Vec<ListRecord>,
    fills: Vec<Fill>,
    next_order_id: u64,
    next_trade_id: u64,
    next_list_id: u64,
}

/// Binance's name for the filter a violation breaks.
pub fn filter_name(v: &FilterViolation, is_market: bool, f: &SymbolFilters) -> &'static str {
    match v {
        FilterViolation::Price { .. } => "PRICE_FILTER",
        FilterViolation::LotSize { .. } if is_market && f.market_step_size.is_some() => {
            "MARKET_LOT_SIZE"
        }
        FilterViolation::LotSize { .. } => "LOT_SIZE",
        FilterViolation::MinNotional { .. } | FilterViolation::MaxNotional { .. } => "NOTIONAL",
    }
}

fn filter_error(v: FilterViolation, is_market: bool, f: &SymbolFilters) -> ExchangeError {
    ExchangeError::FilterFailure {
        filter: filter_name(&v, is_market, f).to_string(),
        detail: v.to_string(),
    }
}

fn is_stop_type(t: OrderType) -> bool {
    t.is_stop()
}

/// Binance's `MAX_NUM_ALGO_ORDERS` on ordinary spot symbols (BTCUSDT's exchange info): at most
/// 5 open "algo" orders (STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT; an OCO's
/// stop leg counts, its LIMIT_MAKER does not) per account and symbol. A scale-out protects a
/// position with two, so three such positions in one symbol do not fit.
pub const MAX_NUM_ALGO_ORDERS: usize = 5;

fn triggers(order_type: OrderType, side: Side, stop: Price, price: Price) -> bool {
    order_type.stop_condition_met(side, stop, price)
}

fn crosses(side: Side, limit: Price, price: Price) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

fn rejected(msg: &str) -> ExchangeError {
    ExchangeError::OrderRejected(msg.to_string())
}

fn missing(param: &str) -> ExchangeError {
    ExchangeError::Api {
        code: -1102,
        msg: format!("Mandatory parameter '{param}' was not sent, was empty/null, or malformed."),
    }
}

impl Engine {
    pub fn new(fee_rate: Decimal) -> Engine {
        Engine {
            fee_rate,
            slippage_bps: Decimal::ZERO,
            balances: BTreeMap::new(),
            filters: BTreeMap::new(),
            prices: BTreeMap::new(),
            books: BTreeMap::new(),
            orders: Vec::new(),
            lists: Vec::new(),
            fills: Vec::new(),
            next_order_id: 1,
            next_trade_id: 1,
            next_list_id: 1,
        }
    }

    pub fn add_symbol(&mut self, symbol: Symbol, filters: SymbolFilters) {
        self.filters.insert(symbol, filters);
    }

    pub fn filters(&self, symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        self.filters
            .get(symbol)
            .cloned()
            .ok_or_else(|| ExchangeError::BadSymbol(symbol.to_string()))
    }

    pub fn symbols(&self) -> Vec<Symbol> {
        self.filters.keys().cloned().collect()
    }

    pub fn deposit(&mut self, asset: &str, amount: Decimal) {
        self.balances.entry(asset.to_string()).or_default().free += amount;
    }

    pub fn balances(&self) -> Vec<Balance> {
        self.balances
            .iter()
            .map(|(asset, h)| Balance {
                asset: asset.clone(),
                free: h.free,
                locked: h.locked,
            })
            .collect()
    }

    pub fn last_price(&self, symbol: &Symbol) -> Option<Price> {
        self.prices.get(symbol).copied()
    }

    pub fn set_book(&mut self, symbol: &Symbol, book: OrderBook) {
        self.books.insert(symbol.clone(), book);
    }

    pub fn book(&self, symbol: &Symbol) -> Option<&OrderBook> {
        self.books.get(symbol)
    }

    /// Every order ever accepted (any status), oldest first.
    pub fn all_orders(&self) -> Vec<Order> {
        self.orders.iter().map(|o| o.order.clone()).collect()
    }

    pub fn fills(&self, symbol: &Symbol) -> Vec<Fill> {
        self.fills
            .iter()
            .filter(|f| &f.symbol == symbol)
            .cloned()
            .collect()
    }

    pub fn open_orders(&self, symbol: &Symbol) -> Vec<Order> {
        self.orders
            .iter()
            .filter(|o| &o.order.symbol == symbol && o.order.status.is_open())
            .map(|o| o.order.clone())
            .collect()
    }

    /// The latest order with this client order id (Binance looks ids up the same way).
    pub fn query(&self, symbol: &Symbol, client_order_id: &str) -> Result<Order, ExchangeError> {
        self.orders
            .iter()
            .rev()
            .find(|o| &o.order.symbol == symbol && o.order.client_order_id == client_order_id)
            .map(|o| o.order.clone())
            .ok_or_else(|| ExchangeError::UnknownOrder {
                code: -2013,
                client_order_id: client_order_id.to_string(),
            })
    }

    fn holding(&mut self, asset: &str) -> &mut Holding {
        self.balances.entry(asset.to_string()).or_default()
    }

    fn validate(
        &self,
        req: &OrderRequest,
        filters: &SymbolFilters,
        last: Option<Price>,
    ) -> Result<Price, ExchangeError> {
        let t = req.order_type;
        let is_market = t == OrderType::Market;
        if matches!(t, OrderType::StopLoss | OrderType::TakeProfit) {
            return Err(ExchangeError::Unsupported(format!(
                "{t} orders are not supported; use {t}_LIMIT"
            )));
        }
        if !is_market && req.price.is_none() {
            return Err(missing("price"));
        }
        if let Some(delta) = req.trailing_delta {
            // Binance takes `trailingDelta` on contingent orders only, within the symbol's
            // TRAILING_DELTA filter (10..=2000 BIPS on ordinary symbols, both directions).
            if !is_stop_type(t) {
                return Err(ExchangeError::Api {
                    code: -1106,
                    msg: "Parameter 'trailingDelta' sent when not required.".to_string(),
                });
            }
            if !delta.in_filter_range() {
                return Err(ExchangeError::FilterFailure {
                    filter: "TRAILING_DELTA".to_string(),
                    detail: format!(
                        "trailingDelta {delta} is outside {}..={} BIPS",
                        crate::domain::trading::order::TrailingDelta::MIN,
                        crate::domain::trading::order::TrailingDelta::MAX
                    ),
                });
            }
        } else if is_stop_type(t) && req.stop_price.is_none() {
            return Err(missing("stopPrice"));
        }
        let reference = match (req.price, last) {
            (Some(p), _) if !is_market => p,
            (_, Some(l)) => l,
            (_, None) => {
                return Err(ExchangeError::Unavailable(format!(
                    "no market price for {} yet",
                    req.symbol
                )));
            }
        };
        filters
            .check_order(reference, req.quantity, is_market)
            .map_err(|v| filter_error(v, is_market, filters))?;
        if let Some(stop) = req.stop_price {
            filters
                .check_price(stop)
                .map_err(|v| filter_error(v, false, filters))?;
        }
        Ok(reference)
    }

    /// The price a market order would get now, and its fills' (price, qty) legs.
    fn market_legs(&self, symbol: &Symbol, side: Side, qty: Qty, last: Price) -> Vec<(Price, Qty)> {
        let filters = self.filters.get(symbol);
        let mut legs = Vec::new();
        let mut remaining = qty;
        if let Some(book) = self.books.get(symbol) {
            let levels: &[BookLevel] = match side {
                Side::Buy => &book.asks,
                Side::Sell => &book.bids,
            };
            for level in levels {
                if remaining.is_zero() {
                    break;
                }
                let take = remaining.min(level.qty);
                if take.is_positive() {
                    legs.push((level.price, take));
                    remaining -= take;
                }
            }
        }
        if remaining.is_positive() {
            let bps = self.slippage_bps / Decimal::from(10_000);
            let raw = match side {
                Side::Buy => last.get() * (Decimal::ONE + bps),
                Side::Sell => last.get() * (Decimal::ONE - bps),
            };
            let price = match (filters, side) {
                (Some(f), Side::Buy) => f.round_price_up(Price(raw)),
                (Some(f), Side::Sell) => f.round_price_down(Price(raw)),
                (None, _) => Price(raw),
            };
            legs.push((price, remaining));
        }
        legs
    }

    /// Refuse one more algo order on `symbol` past [`MAX_NUM_ALGO_ORDERS`].
    fn check_algo_orders(&self, symbol: &Symbol) -> Result<(), ExchangeError> {
        let open = self
            .orders
            .iter()
            .filter(|o| {
                &o.order.symbol == symbol
                    && o.order.status.is_open()
                    && is_stop_type(o.order.order_type)
            })
            .count();
        if open >= MAX_NUM_ALGO_ORDERS {
            return Err(ExchangeError::FilterFailure {
                filter: "MAX_NUM_ALGO_ORDERS".to_string(),
                detail: format!(
                    "{open} stop orders are open on {symbol}; at most {MAX_NUM_ALGO_ORDERS} are allowed"
                ),
            });
        }
        Ok(())
    }

    /// Place one order. Returns the order and its immediate fills.
    pub fn place(&mut self, req: &OrderRequest, now: TimestampMs) -> Result<Placed, ExchangeError> {
        let filters = self.filters(&req.symbol)?;
        if self
            .orders
            .iter()
            .any(|o| o.order.client_order_id == req.client_order_id && o.order.status.is_open())
        {
            return Err(rejected("Duplicate order sent."));
        }
        let last = self.last_price(&req.symbol);
        let reference = self.validate(req, &filters, last)?;
        let t = req.order_type;
        if is_stop_type(t) {
            self.check_algo_orders(&req.symbol)?;
        }
        if let (Some(last), Some(limit)) = (last, req.price)
            && t == OrderType::LimitMaker
            && crosses(req.side, limit, last)
        {
            return Err(rejected("Order would immediately match and take."));
        }
        if let (Some(last), Some(stop)) = (last, req.stop_price)
            && is_stop_type(t)
            && triggers(t, req.side, stop, last)
        {
            return Err(rejected("Order would trigger immediately."));
        }
        let legs = match (t, last) {
            (OrderType::Market, Some(last)) => {
                self.market_legs(&req.symbol, req.side, req.quantity, last)
            }
            _ => Vec::new(),
        };
        let (locked_asset, locked) = match req.side {
            Side::Buy if t == OrderType::Market => (
                filters.quote_asset.clone(),
                legs.iter().map(|(p, q)| (*p * *q).get()).sum(),
            ),
            Side::Buy => (
                filters.quote_asset.clone(),
                (reference * req.quantity).get(),
            ),
            Side::Sell => (filters.base_asset.clone(), req.quantity.get()),
        };
        self.lock(&locked_asset, locked)?;
        let id = self.next_order_id;
        self.next_order_id += 1;
        let order = Order {
            client_order_id: req.client_order_id.clone(),
            exchange_order_id: Some(id.to_string()),
            symbol: req.symbol.clone(),
            side: req.side,
            order_type: t,
            status: OrderStatus::New,
            price: req.price,
            stop_price: req.stop_price,
            quantity: req.quantity,
            filled_quantity: Qty::ZERO,
            cumulative_quote: Quote::ZERO,
            created_at: now,
            updated_at: now,
        };
        let index = self.orders.len();
        self.orders.push(BookOrder {
            order,
            time_in_force: req.time_in_force,
            list_id: None,
            triggered: !is_stop_type(t),
            trailing: req
                .trailing_delta
                .map(|d| TrailingStop::placed(t, req.side, d, req.stop_price, last)),
            locked_asset,
            locked,
        });
        let fills_before = self.fills.len();
        match (t, last) {
            (OrderType::Market, _) => self.execute(index, &legs, false, now),
            (OrderType::Limit, Some(last)) if crosses(req.side, reference, last) => {
                self.execute(index, &[(last, req.quantity)], false, now)
            }
            (OrderType::Limit, _)
                if matches!(req.time_in_force, Some(TimeInForce::Ioc | TimeInForce::Fok)) =>
            {
                self.close(index, OrderStatus::Expired, now)
            }
            _ => {}
        }
        Ok(Placed {
            order: self.orders[index].order.clone(),
            fills: self.fills[fills_before..].to_vec(),
        })
    }

    fn lock(&mut self, asset: &str, amount: Decimal) -> Result<(), ExchangeError> {
        let h = self.holding(asset);
        if h.free < amount {
            return Err(ExchangeError::InsufficientBalance(
                "Account has insufficient balance for requested action.".to_string(),
            ));
        }
        h.free -= amount;
        h.locked += amount;
        Ok(())
    }

    fn release(&mut self, index: usize) {
        let (asset, amount) = {
            let o = &mut self.orders[index];
            let amount = o.locked;
            o.locked = Decimal::ZERO;
            (o.locked_asset.clone(), amount)
        };
        let h = self.holding(&asset);
        h.locked -= amount;
        h.free += amount;
    }

    fn close(&mut self, index: usize, status: OrderStatus, now: TimestampMs) {
        self.release(index);
        let o = &mut self.orders[index].order;
        o.status = status;
        o.updated_at = now;
    }

    /// Fill the order at the given legs (the whole of what is left, or a part of it: the order
    /// then stays open, PARTIALLY_FILLED, with the lock of what is left), settle balances and
    /// fees, expire OCO siblings.
    fn execute(&mut self, index: usize, legs: &[(Price, Qty)], is_maker: bool, now: TimestampMs) {
        let sibling_ids = self.siblings(index);
        for sibling in &sibling_ids {
            // The list's lock is shared: move it onto the filling leg, then expire the others.
            let moved = std::mem::take(&mut self.orders[*sibling].locked);
            self.orders[index].locked += moved;
            let o = &mut self.orders[*sibling].order;
            o.status = OrderStatus::Expired;
            o.updated_at = now;
        }
        let (symbol, side, cid) = {
            let o = &self.orders[index].order;
            (o.symbol.clone(), o.side, o.client_order_id.clone())
        };
        let Some(filters) = self.filters.get(&symbol).cloned() else {
            return;
        };
        let (base, quote) = (filters.base_asset, filters.quote_asset);
        let (remaining, filled_now) = {
            let o = &self.orders[index].order;
            let filled_now: Qty = legs.iter().map(|(_, q)| *q).sum();
            (o.quantity - o.filled_quantity, filled_now)
        };
        let whole = filled_now >= remaining;
        // A part releases its share of the lock; the last part releases what is left.
        let locked = if whole || remaining.is_zero() {
            std::mem::take(&mut self.orders[index].locked)
        } else {
            let share = self.orders[index].locked * filled_now.get() / remaining.get();
            self.orders[index].locked -= share;
            share
        };
        let locked_asset = self.orders[index].locked_asset.clone();
        {
            let h = self.holding(&locked_asset);
            h.locked -= locked;
            h.free += locked;
        }
        for (price, qty) in legs {
            let notional = *price * *qty;
            let (fee, fee_asset) = match side {
                Side::Buy => (qty.get() * self.fee_rate, base.clone()),
                Side::Sell => (notional.get() * self.fee_rate, quote.clone()),
            };
            match side {
                Side::Buy => {
                    self.holding(&quote).free -= notional.get();
                    self.holding(&base).free += qty.get() - fee;
                }
                Side::Sell => {
                    self.holding(&base).free -= qty.get();
                    self.holding(&quote).free += notional.get() - fee;
                }
            }
            let trade_id = self.next_trade_id;
            self.next_trade_id += 1;
            self.fills.push(Fill {
                client_order_id: cid.clone(),
                trade_id: Some(trade_id.to_string()),
                symbol: symbol.clone(),
                side,
                price: *price,
                quantity: *qty,
                fee: Quote(fee),
                fee_asset,
                is_maker,
                time: now,
            });
            let o = &mut self.orders[index].order;
            o.filled_quantity += *qty;
            o.cumulative_quote += notional;
        }
        let o = &mut self.orders[index].order;
        o.status = if whole {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        o.updated_at = now;
    }

    fn siblings(&self, index: usize) -> Vec<usize> {
        let Some(list_id) = self.orders[index].list_id else {
            return Vec::new();
        };
        self.orders
            .iter()
            .enumerate()
            .filter(|(i, o)| *i != index && o.list_id == Some(list_id) && o.order.status.is_open())
            .map(|(i, _)| i)
            .collect()
    }

    /// Cancel an open order (and the rest of its list, as Binance does).
    pub fn cancel(
        &mut self,
        symbol: &Symbol,
        client_order_id: &str,
        now: TimestampMs,
    ) -> Result<Order, ExchangeError> {
        let index = self
            .orders
            .iter()
            .rposition(|o| {
                &o.order.symbol == symbol
                    && o.order.client_order_id == client_order_id
                    && o.order.status.is_open()
            })
            .ok_or_else(|| ExchangeError::UnknownOrder {
                code: -2011,
                client_order_id: client_order_id.to_string(),
            })?;
        for sibling in self.siblings(index) {
            self.close(sibling, OrderStatus::Canceled, now);
        }
        self.close(index, OrderStatus::Canceled, now);
        Ok(self.orders[index].order.clone())
    }

    /// Place an OCO: a take-profit LIMIT_MAKER and a STOP_LOSS_LIMIT sharing one lock.
    pub fn place_oco(
        &mut self,
        req: &OcoRequest,
        now: TimestampMs,
    ) -> Result<OrderList, ExchangeError> {
        let filters = self.filters(&req.symbol)?;
        let last = self.last_price(&req.symbol).ok_or_else(|| {
            ExchangeError::Unavailable(format!("no market price for {} yet", req.symbol))
        })?;
        let ordered = match req.side {
            Side::Sell => req.take_profit_price > last && last > req.stop_price,
            Side::Buy => req.take_profit_price < last && last < req.stop_price,
        };
        if !ordered {
            return Err(rejected(
                "The relationship of the prices for the orders is not correct.",
            ));
        }
        for cid in [&req.take_profit_client_order_id, &req.stop_client_order_id] {
            if self
                .orders
                .iter()
                .any(|o| &o.order.client_order_id == cid && o.order.status.is_open())
            {
                return Err(rejected("Duplicate order sent."));
            }
        }
        for price in [req.take_profit_price, req.stop_limit_price] {
            filters
                .check_order(price, req.quantity, false)
                .map_err(|v| filter_error(v, false, &filters))?;
        }
        filters
            .check_price(req.stop_price)
            .map_err(|v| filter_error(v, false, &filters))?;
        self.check_algo_orders(&req.symbol)?;
        let (locked_asset, locked) = match req.side {
            Side::Sell => (filters.base_asset.clone(), req.quantity.get()),
            Side::Buy => (
                filters.quote_asset.clone(),
                (req.take_profit_price.max(req.stop_limit_price) * req.quantity).get(),
            ),
        };
        self.lock(&locked_asset, locked)?;
        let list_id = self.next_list_id;
        self.next_list_id += 1;
        let legs = [
            (
                &req.stop_client_order_id,
                OrderType::StopLossLimit,
                req.stop_limit_price,
                Some(req.stop_price),
                locked,
            ),
            (
                &req.take_profit_client_order_id,
                OrderType::LimitMaker,
                req.take_profit_price,
                None,
                Decimal::ZERO,
            ),
        ];
        let mut ids = Vec::new();
        let mut orders = Vec::new();
        for (cid, order_type, price, stop_price, lock) in legs {
            let id = self.next_order_id;
            self.next_order_id += 1;
            ids.push(id);
            let order = Order {
                client_order_id: cid.clone(),
                exchange_order_id: Some(id.to_string()),
                symbol: req.symbol.clone(),
                side: req.side,
                order_type,
                status: OrderStatus::New,
                price: Some(price),
                stop_price,
                quantity: req.quantity,
                filled_quantity: Qty::ZERO,
                cumulative_quote: Quote::ZERO,
                created_at: now,
                updated_at: now,
            };
            orders.push(order.clone());
            self.orders.push(BookOrder {
                order,
                time_in_force: Some(TimeInForce::Gtc),
                list_id: Some(list_id),
                triggered: order_type == OrderType::LimitMaker,
                trailing: None,
                locked_asset: locked_asset.clone(),
                locked: lock,
            });
        }
        self.lists.push(ListRecord {
            id: list_id,
            list_client_order_id: req.list_client_order_id.clone(),
            symbol: req.symbol.clone(),
            order_ids: ids,
        });
        Ok(OrderList {
            list_client_order_id: req.list_client_order_id.clone(),
            exchange_list_id: Some(list_id.to_string()),
            symbol: req.symbol.clone(),
            orders,
        })
    }

    /// The exchange id of the list an order belongs to, if any.
    pub fn list_of(&self, client_order_id: &str) -> Option<(u64, String)> {
        let o = self
            .orders
            .iter()
            .rev()
            .find(|o| o.order.client_order_id == client_order_id)?;
        let id = o.list_id?;
        self.lists
            .iter()
            .find(|l| l.id == id)
            .map(|l| (l.id, l.list_client_order_id.clone()))
    }

    /// A new last price: trigger stops and fill resting orders the price crosses.
    /// Returns the fills this produced.
    pub fn set_price(&mut self, symbol: &Symbol, price: Price, now: TimestampMs) -> Vec<Fill> {
        self.trade(symbol, price, None, now)
    }

    /// A trade at `price` of at most `liquidity` (all that crosses when `None`): the liquidity
    /// model behind partial fills. Resting orders the price crosses fill, oldest first, until
    /// the traded quantity is used up; an order left with a part unfilled rests on,
    /// PARTIALLY_FILLED, and a later price that crosses it fills the rest. Returns the fills.
    pub fn trade(
        &mut self,
        symbol: &Symbol,
        price: Price,
        liquidity: Option<Qty>,
        now: TimestampMs,
    ) -> Vec<Fill> {
        let mut liquidity = liquidity;
        self.prices.insert(symbol.clone(), price);
        let before = self.fills.len();
        for index in 0..self.orders.len() {
            let (open, order_type, side, stop, limit, triggered) = {
                let o = &self.orders[index];
                (
                    &o.order.symbol == symbol && o.order.status.is_open(),
                    o.order.order_type,
                    o.order.side,
                    o.order.stop_price,
                    o.order.price,
                    o.triggered,
                )
            };
            if !open {
                continue;
            }
            let Some(limit) = limit else { continue };
            let mut newly_triggered = false;
            if !triggered {
                let fires = match (&mut self.orders[index].trailing, stop) {
                    (Some(trailing), _) => trailing.observe(price),
                    (None, Some(stop)) => triggers(order_type, side, stop, price),
                    (None, None) => false,
                };
                if !fires {
                    continue;
                }
                self.orders[index].triggered = true;
                newly_triggered = true;
            }
            if crosses(side, limit, price) {
                let o = &self.orders[index].order;
                let mut qty = o.quantity - o.filled_quantity;
                if let Some(left) = liquidity.as_mut() {
                    qty = qty.min(*left);
                    *left -= qty;
                }
                if qty.is_zero() {
                    continue;
                }
                // A resting order is the maker at its own price; a stop that just triggered
                // into a marketable limit takes the current price.
                let (fill_price, maker) = if newly_triggered {
                    (price, false)
                } else {
                    (limit, true)
                };
                self.execute(index, &[(fill_price, qty)], maker, now);
            }
        }
        self.fills[before..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn btcusdt() -> Symbol {
        Symbol::new("BTCUSDT").unwrap()
    }

    fn engine() -> Engine {
        let mut f = SymbolFilters::permissive("BTC", "USDT");
        f.min_notional = dec!(5);
        let mut e = Engine::new(dec!(0.001));
        e.add_symbol(btcusdt(), f);
        e.deposit("USDT", dec!(10000));
        e.set_price(&btcusdt(), Price(dec!(100)), 0);
        e
    }

    fn req(
        cid: &str,
        side: Side,
        t: OrderType,
        qty: Decimal,
        price: Option<Decimal>,
    ) -> OrderRequest {
        OrderRequest {
            client_order_id: cid.into(),
            symbol: btcusdt(),
            side,
            order_type: t,
            quantity: Qty(qty),
            price: price.map(Price),
            stop_price: None,
            time_in_force: price.map(|_| TimeInForce::Gtc),
            trailing_delta: None,
        }
    }

    fn free(e: &Engine, asset: &str) -> Decimal {
        super::super::balance_of(&e.balances(), asset).free
    }

    #[test]
    fn market_buy_pays_fee_in_base_asset() {
        let mut e = engine();
        let p = e
            .place(&req("a", Side::Buy, OrderType::Market, dec!(2), None), 1)
            .unwrap();
        assert_eq!(p.order.status, OrderStatus::Filled);
        // 2 BTC at 100 = 200 USDT; fee 0.1 % of 2 BTC = 0.002 BTC
        assert_eq!(free(&e, "USDT"), dec!(9800));
        assert_eq!(free(&e, "BTC"), dec!(1.998));
        assert_eq!(p.fills[0].fee, Quote(dec!(0.002)));
    }

    #[test]
    fn slippage_moves_market_fill_price_against_the_taker() {
        let mut e = engine();
        e.slippage_bps = dec!(10);
        let p = e
            .place(&req("a", Side::Buy, OrderType::Market, dec!(1), None), 1)
            .unwrap();
        // 100 * (1 + 0.001) = 100.1
        assert_eq!(p.fills[0].price, Price(dec!(100.1)));
    }

    #[test]
    fn market_order_walks_the_book() {
        let mut e = engine();
        e.set_book(
            &btcusdt(),
            OrderBook {
                last_update_id: 1,
                bids: vec![],
                asks: vec![
                    BookLevel {
                        price: Price(dec!(101)),
                        qty: Qty(dec!(1)),
                    },
                    BookLevel {
                        price: Price(dec!(102)),
                        qty: Qty(dec!(5)),
                    },
                ],
            },
        );
        let p = e
            .place(&req("a", Side::Buy, OrderType::Market, dec!(3), None), 1)
            .unwrap();
        // 1 @ 101 + 2 @ 102 = 305
        assert_eq!(p.order.cumulative_quote, Quote(dec!(305)));
        assert_eq!(p.fills.len(), 2);
    }

    #[test]
    fn resting_limit_locks_then_fills_when_price_crosses() {
        let mut e = engine();
        let p = e
            .place(
                &req("a", Side::Buy, OrderType::Limit, dec!(1), Some(dec!(90))),
                1,
            )
            .unwrap();
        assert_eq!(p.order.status, OrderStatus::New);
        assert_eq!(
            super::super::balance_of(&e.balances(), "USDT").locked,
            dec!(90)
        );
        assert!(e.set_price(&btcusdt(), Price(dec!(91)), 2).is_empty());
        let fills = e.set_price(&btcusdt(), Price(dec!(89)), 3);
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].price, Price(dec!(90)));
        assert!(fills[0].is_maker);
        assert_eq!(free(&e, "USDT"), dec!(9910));
        assert_eq!(free(&e, "BTC"), dec!(0.999));
    }

    #[test]
    fn a_trade_smaller_than_a_resting_limit_fills_it_in_part_and_a_cancel_keeps_the_part() {
        let mut e = engine();
        e.place(
            &req("a", Side::Buy, OrderType::Limit, dec!(1), Some(dec!(90))),
            1,
        )
        .unwrap();
        let fills = e.trade(&btcusdt(), Price(dec!(90)), Some(Qty(dec!(0.4))), 2);
        assert_eq!(fills.len(), 1);
        assert_eq!(fills[0].quantity, Qty(dec!(0.4)));
        assert_eq!(fills[0].price, Price(dec!(90)));
        let o = e.query(&btcusdt(), "a").unwrap();
        assert_eq!(o.status, OrderStatus::PartiallyFilled);
        assert_eq!(o.filled_quantity, Qty(dec!(0.4)));
        // What is left stays locked: 0.6 at 90.
        let usdt = super::super::balance_of(&e.balances(), "USDT");
        assert_eq!((usdt.free, usdt.locked), (dec!(9910), dec!(54)));
        assert_eq!(free(&e, "BTC"), dec!(0.4) * dec!(0.999));
        // A second part, then a cancel: the order keeps what it filled, the lock is released.
        e.trade(&btcusdt(), Price(dec!(89)), Some(Qty(dec!(0.1))), 3);
        let o = e.cancel(&btcusdt(), "a", 4).unwrap();
        assert_eq!(o.status, OrderStatus::Canceled);
        assert_eq!(o.filled_quantity, Qty(dec!(0.5)));
        let usdt = super::super::balance_of(&e.balances(), "USDT");
        assert_eq!((usdt.free, usdt.locked), (dec!(9955), dec!(0)));
    }

    #[test]
    fn duplicate_open_client_id_and_instant_trigger_are_rejected() {
        let mut e = engine();
        e.place(
            &req("a", Side::Buy, OrderType::Limit, dec!(1), Some(dec!(90))),
            1,
        )
        .unwrap();
        let dup = e.place(
            &req("a", Side::Buy, OrderType::Limit, dec!(1), Some(dec!(80))),
            1,
        );
        assert_eq!(dup, Err(rejected("Duplicate order sent.")));
        let maker = e.place(
            &req(
                "b",
                Side::Buy,
                OrderType::LimitMaker,
                dec!(1),
                Some(dec!(110)),
            ),
            1,
        );
        assert_eq!(
            maker,
            Err(rejected("Order would immediately match and take."))
        );
    }

    #[test]
    fn insufficient_balance_and_filters_are_refused() {
        let mut e = engine();
        assert!(matches!(
            e.place(&req("a", Side::Buy, OrderType::Market, dec!(1000), None), 1),
            Err(ExchangeError::InsufficientBalance(_))
        ));
        assert!(matches!(
            e.place(&req("b", Side::Buy, OrderType::Market, dec!(0.01), None), 1),
            Err(ExchangeError::FilterFailure { ref filter, .. }) if filter == "NOTIONAL"
        ));
        assert!(e.all_orders().is_empty());
    }

    #[test]
    fn oco_take_profit_fill_expires_the_stop_and_releases_lock() {
        let mut e = engine();
        e.deposit("BTC", dec!(1));
        let list = e
            .place_oco(
                &OcoRequest {
                    list_client_order_id: "l".into(),
                    symbol: btcusdt(),
                    side: Side::Sell,
                    quantity: Qty(dec!(1)),
                    take_profit_client_order_id: "tp".into(),
                    take_profit_price: Price(dec!(110)),
                    stop_client_order_id: "sl".into(),
                    stop_price: Price(dec!(95)),
                    stop_limit_price: Price(dec!(94)),
                },
                1,
            )
            .unwrap();
        assert_eq!(list.orders.len(), 2);
        assert_eq!(
            super::super::balance_of(&e.balances(), "BTC").locked,
            dec!(1)
        );
        e.set_price(&btcusdt(), Price(dec!(111)), 2);
        assert_eq!(
            e.query(&btcusdt(), "tp").unwrap().status,
            OrderStatus::Filled
        );
        assert_eq!(
            e.query(&btcusdt(), "sl").unwrap().status,
            OrderStatus::Expired
        );
        // 110 USDT minus 0.11 fee
        assert_eq!(free(&e, "USDT"), dec!(10109.89));
        assert_eq!(
            super::super::balance_of(&e.balances(), "BTC").total(),
            dec!(0)
        );
    }

    #[test]
    fn stop_limit_triggers_and_takes_current_price() {
        let mut e = engine();
        e.deposit("BTC", dec!(1));
        let mut r = req(
            "s",
            Side::Sell,
            OrderType::StopLossLimit,
            dec!(1),
            Some(dec!(94)),
        );
        r.stop_price = Some(Price(dec!(95)));
        e.place(&r, 1).unwrap();
        assert!(e.set_price(&btcusdt(), Price(dec!(96)), 2).is_empty());
        let fills = e.set_price(&btcusdt(), Price(dec!(95)), 3);
        assert_eq!(fills[0].price, Price(dec!(95)));
        assert!(!fills[0].is_maker);
    }
}
