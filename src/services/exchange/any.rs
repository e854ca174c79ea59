//! `AnyExchange`: the paper exchange or Binance behind one type, for the faces (CLI, daemon)
//! that pick the venue from the config at run time.

use super::binance::BinanceClient;
use super::paper::PaperExchange;
use super::{
    Balance, Exchange, ExchangeError, OcoRequest, OrderBook, OrderList, Placed, Ticker24h,
};
use crate::domain::market::candle::{Candle, Interval, TimestampMs};
use crate::domain::money::Price;
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::{Fill, Order, OrderRequest};

pub enum AnyExchange {
    Paper(Box<PaperExchange>),
    Binance(Box<BinanceClient>),
}

macro_rules! delegate {
    ($self:ident, $e:ident => $call:expr) => {
        match $self {
            AnyExchange::Paper($e) => $call.await,
            AnyExchange::Binance($e) => $call.await,
        }
    };
}

impl Exchange for AnyExchange {
    fn name(&self) -> &str {
        match self {
            AnyExchange::Paper(e) => e.name(),
            AnyExchange::Binance(e) => e.name(),
        }
    }

    async fn server_time(&self) -> Result<TimestampMs, ExchangeError> {
        delegate!(self, e => e.server_time())
    }

    async fn symbol_filters(&self, symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        delegate!(self, e => e.symbol_filters(symbol))
    }

    async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_time: Option<TimestampMs>,
        limit: u16,
    ) -> Result<Vec<Candle>, ExchangeError> {
        delegate!(self, e => e.klines(symbol, interval, start_time, limit))
    }

    async fn ticker_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        delegate!(self, e => e.ticker_price(symbol))
    }

    async fn ticker_24h(&self, symbol: &Symbol) -> Result<Ticker24h, ExchangeError> {
        delegate!(self, e => e.ticker_24h(symbol))
    }

    async fn order_book(&self, symbol: &Symbol, limit: u16) -> Result<OrderBook, ExchangeError> {
        delegate!(self, e => e.order_book(symbol, limit))
    }

    async fn balances(&self) -> Result<Vec<Balance>, ExchangeError> {
        delegate!(self, e => e.balances())
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<Placed, ExchangeError> {
        delegate!(self, e => e.place_order(request))
    }

    async fn place_oco(&self, request: &OcoRequest) -> Result<OrderList, ExchangeError> {
        delegate!(self, e => e.place_oco(request))
    }

    async fn query_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Order, ExchangeError> {
        delegate!(self, e => e.query_order(symbol, client_order_id))
    }

    async fn cancel_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Order, ExchangeError> {
        delegate!(self, e => e.cancel_order(symbol, client_order_id))
    }

    async fn open_orders(&self, symbol: &Symbol) -> Result<Vec<Order>, ExchangeError> {
        delegate!(self, e => e.open_orders(symbol))
    }

    async fn my_trades(&self, symbol: &Symbol) -> Result<Vec<Fill>, ExchangeError> {
        delegate!(self, e => e.my_trades(symbol))
    }
}
