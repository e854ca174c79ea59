//! The paper exchange: the `Exchange` trait with real behaviour and no real money. Market
//! orders walk the order book when one is known, else fill at the last price plus slippage;
//! limit, stop-limit and OCO orders fill when fed prices or candles cross them; fees and
//! filters as on Binance. The whole state is saved to SQLite after every change, so paper
//! trading survives a restart. It is the default exchange until a Binance connection exists.

use super::engine::Engine;
use super::{
    Balance, Exchange, ExchangeError, OcoRequest, OrderBook, OrderList, Placed, Ticker24h,
};
use crate::domain::market::candle::{Candle, Interval, TimestampMs};
use crate::domain::money::{Price, Qty};
use crate::domain::symbol::Symbol;
use crate::domain::trading::filters::SymbolFilters;
use crate::domain::trading::order::{Fill, Order, OrderRequest};
use crate::store::{Store, paper as paper_store};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// `[exchange.paper]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaperConfig {
    /// Commission per fill as a fraction (0.001 = 0.1 %, Binance's base rate). Default 0.001.
    pub fee_rate: Decimal,
    /// Market orders without an order book fill this many basis points worse than the last
    /// price. Default 5.
    pub slippage_bps: Decimal,
    /// Starting balances of a new paper account. Not a config key: filled from
    /// `trading.paper_starting_balance` (USDT). Default 10000 USDT.
    #[serde(skip)]
    pub initial_balances: BTreeMap<String, Decimal>,
    /// Symbols the paper exchange trades. Default BTCUSDT and ETHUSDT.
    pub symbols: Vec<String>,
    /// Price tick for those symbols. Default 0.01.
    pub tick_size: Decimal,
    /// Quantity step for those symbols. Default 0.00001.
    pub step_size: Decimal,
    /// Minimum order value in the quote asset. Default 5.
    pub min_notional: Decimal,
}

impl Default for PaperConfig {
    fn default() -> Self {
        PaperConfig {
            fee_rate: Decimal::new(1, 3),
            slippage_bps: Decimal::from(5),
            initial_balances: BTreeMap::from([("USDT".to_string(), Decimal::from(10_000))]),
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            tick_size: Decimal::new(1, 2),
            step_size: Decimal::new(1, 5),
            min_notional: Decimal::from(5),
        }
    }
}

const QUOTE_ASSETS: [&str; 7] = ["USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB"];

/// Split `BTCUSDT` into (`BTC`, `USDT`) by the known quote assets.
pub fn split_symbol(symbol: &str) -> Option<(String, String)> {
    QUOTE_ASSETS.iter().find_map(|q| {
        symbol
            .strip_suffix(q)
            .filter(|b| !b.is_empty())
            .map(|b| (b.to_string(), q.to_string()))
    })
}

impl PaperConfig {
    pub fn validate(&self) -> Result<(), (String, String)> {
        let key = |k: &str| format!("exchange.paper.{k}");
        if self.fee_rate < Decimal::ZERO || self.fee_rate >= Decimal::new(1, 1) {
            return Err((
                key("fee_rate"),
                format!("{} must be in [0, 0.1)", self.fee_rate),
            ));
        }
        if self.slippage_bps < Decimal::ZERO || self.slippage_bps > Decimal::from(1000) {
            return Err((key("slippage_bps"), "must be between 0 and 1000".into()));
        }
        for s in &self.symbols {
            if Symbol::new(s).is_err() || split_symbol(s).is_none() {
                return Err((
                    key("symbols"),
                    format!(
                        "{s:?} is not a symbol ending in a known quote asset (USDT, USDC, BTC, ...)"
                    ),
                ));
            }
        }
        if self.tick_size <= Decimal::ZERO {
            return Err((key("tick_size"), "must be positive".into()));
        }
        if self.step_size <= Decimal::ZERO {
            return Err((key("step_size"), "must be positive".into()));
        }
        if self.min_notional < Decimal::ZERO {
            return Err((key("min_notional"), "must not be negative".into()));
        }
        Ok(())
    }

    /// The filters the paper exchange applies to `symbol`.
    pub fn filters_for(&self, symbol: &str) -> Option<SymbolFilters> {
        let (base, quote) = split_symbol(symbol)?;
        let mut f = SymbolFilters::permissive(&base, &quote);
        f.tick_size = self.tick_size;
        f.min_price = self.tick_size;
        f.step_size = self.step_size;
        f.min_qty = self.step_size;
        f.min_notional = self.min_notional;
        Some(f)
    }
}

/// Where the paper exchange reads the time for order, fill and save timestamps: the wall clock
/// by default, a replay clock in the demo (so a replayed January trades in January).
pub type PaperClock = Arc<dyn Fn() -> TimestampMs + Send + Sync>;

pub struct PaperExchange {
    account: String,
    engine: Mutex<Engine>,
    store: Option<Mutex<Store>>,
    candles: Mutex<HashMap<(Symbol, Interval), Vec<Candle>>>,
    clock: PaperClock,
}

impl std::fmt::Debug for PaperExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperExchange")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn wall_clock() -> PaperClock {
    Arc::new(|| chrono::Utc::now().timestamp_millis())
}

impl PaperExchange {
    fn fresh_engine(config: &PaperConfig) -> Engine {
        let mut engine = Engine::new(config.fee_rate);
        engine.slippage_bps = config.slippage_bps;
        for s in &config.symbols {
            if let (Ok(symbol), Some(filters)) = (Symbol::new(s), config.filters_for(s)) {
                engine.add_symbol(symbol, filters);
            }
        }
        for (asset, amount) in &config.initial_balances {
            engine.deposit(asset, *amount);
        }
        engine
    }

    /// A paper account kept only in memory (tests, backtests).
    pub fn in_memory(config: &PaperConfig) -> PaperExchange {
        PaperExchange {
            account: "paper".into(),
            engine: Mutex::new(Self::fresh_engine(config)),
            store: None,
            candles: Mutex::new(HashMap::new()),
            clock: wall_clock(),
        }
    }

    /// Open (or create) the paper account `account` persisted in `store`.
    pub fn open(
        store: Store,
        account: &str,
        config: &PaperConfig,
    ) -> Result<PaperExchange, ExchangeError> {
        let saved = paper_store::load(store.conn(), account)
            .map_err(|e| ExchangeError::Store(e.to_string()))?;
        let mut engine = match saved {
            Some(json) => serde_json::from_str::<Engine>(&json).map_err(|e| {
                ExchangeError::Store(format!("paper account {account} is unreadable: {e}"))
            })?,
            None => Self::fresh_engine(config),
        };
        // Settings win over the saved state for fees, slippage and newly listed symbols.
        engine.fee_rate = config.fee_rate;
        engine.slippage_bps = config.slippage_bps;
        let known = engine.symbols();
        for s in &config.symbols {
            if let (Ok(symbol), Some(filters)) = (Symbol::new(s), config.filters_for(s))
                && !known.contains(&symbol)
            {
                engine.add_symbol(symbol, filters);
            }
        }
        let paper = PaperExchange {
            account: account.to_string(),
            engine: Mutex::new(engine),
            store: Some(Mutex::new(store)),
            candles: Mutex::new(HashMap::new()),
            clock: wall_clock(),
        };
        paper.persist()?;
        Ok(paper)
    }

    /// Take timestamps from `clock` instead of the wall clock.
    pub fn with_clock(mut self, clock: PaperClock) -> PaperExchange {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> TimestampMs {
        (self.clock)()
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self) -> Result<(), ExchangeError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let json = serde_json::to_string(&*self.engine())
            .map_err(|e| ExchangeError::Store(e.to_string()))?;
        let store = store.lock().unwrap_or_else(|p| p.into_inner());
        paper_store::save(store.conn(), &self.account, &json, self.now_ms())
            .map_err(|e| ExchangeError::Store(e.to_string()))
    }

    fn mutate<T>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, ExchangeError>,
    ) -> Result<T, ExchangeError> {
        let out = f(&mut self.engine())?;
        self.persist()?;
        Ok(out)
    }

    /// Use these filters for `symbol` (e.g. copied from Binance's exchange info).
    pub fn add_symbol(&self, symbol: Symbol, filters: SymbolFilters) -> Result<(), ExchangeError> {
        self.mutate(|e| {
            e.add_symbol(symbol, filters);
            Ok(())
        })
    }

    pub fn deposit(&self, asset: &str, amount: Decimal) -> Result<(), ExchangeError> {
        self.mutate(|e| {
            e.deposit(asset, amount);
            Ok(())
        })
    }

    /// A new last trade price: resting orders it crosses fill. Returns those fills.
    pub fn on_price(&self, symbol: &Symbol, price: Price) -> Result<Vec<Fill>, ExchangeError> {
        self.mutate(|e| Ok(e.set_price(symbol, price, self.now_ms())))
    }

    /// A trade of `quantity` at `price`: resting orders it crosses fill, oldest first, only
    /// up to that quantity (a limit order larger than the trade fills in part and rests on).
    pub fn on_trade(
        &self,
        symbol: &Symbol,
        price: Price,
        quantity: crate::domain::money::Qty,
    ) -> Result<Vec<Fill>, ExchangeError> {
        self.mutate(|e| Ok(e.trade(symbol, price, Some(quantity), self.now_ms())))
    }

    /// A closed candle: the price path open → low/high (nearest first) → close is replayed.
    pub fn on_candle(
        &self,
        symbol: &Symbol,
        interval: Interval,
        candle: &Candle,
    ) -> Result<Vec<Fill>, ExchangeError> {
        {
            let mut candles = self.candles.lock().unwrap_or_else(|p| p.into_inner());
            let series = candles.entry((symbol.clone(), interval)).or_default();
            series.retain(|c| c.open_time != candle.open_time);
            series.push(candle.clone());
            series.sort_by_key(|c| c.open_time);
        }
        // The backtest walks a candle through the same four prices.
        let path = crate::domain::backtest::fills::candle_path(candle);
        let time = candle.open_time + interval.millis();
        self.mutate(|e| {
            Ok(path
                .iter()
                .flat_map(|p| e.set_price(symbol, *p, time))
                .collect())
        })
    }

    /// The current order book, walked by market orders.
    pub fn on_order_book(&self, symbol: &Symbol, book: OrderBook) -> Result<(), ExchangeError> {
        self.mutate(|e| {
            e.set_book(symbol, book);
            Ok(())
        })
    }
}

impl Exchange for PaperExchange {
    fn name(&self) -> &str {
        "paper"
    }

    async fn server_time(&self) -> Result<TimestampMs, ExchangeError> {
        Ok(self.now_ms())
    }

    async fn symbol_filters(&self, symbol: &Symbol) -> Result<SymbolFilters, ExchangeError> {
        self.engine().filters(symbol)
    }

    async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_time: Option<TimestampMs>,
        limit: u16,
    ) -> Result<Vec<Candle>, ExchangeError> {
        let candles = self.candles.lock().unwrap_or_else(|p| p.into_inner());
        let series = candles
            .get(&(symbol.clone(), interval))
            .cloned()
            .unwrap_or_default();
        let from: Vec<Candle> = series
            .into_iter()
            .filter(|c| start_time.is_none_or(|s| c.open_time >= s))
            .collect();
        let limit = usize::from(limit.max(1));
        Ok(if start_time.is_some() {
            from.into_iter().take(limit).collect()
        } else {
            let skip = from.len().saturating_sub(limit);
            from.into_iter().skip(skip).collect()
        })
    }

    async fn ticker_price(&self, symbol: &Symbol) -> Result<Price, ExchangeError> {
        let engine = self.engine();
        engine.filters(symbol)?;
        engine.last_price(symbol).ok_or_else(|| {
            ExchangeError::Unavailable(format!("the paper exchange has no price for {symbol} yet"))
        })
    }

    async fn ticker_24h(&self, symbol: &Symbol) -> Result<Ticker24h, ExchangeError> {
        let last = self.ticker_price(symbol).await?;
        let candles = self.candles.lock().unwrap_or_else(|p| p.into_inner());
        let recent: Vec<&Candle> = candles
            .iter()
            .filter(|((s, _), _)| s == symbol)
            .flat_map(|(_, v)| v.iter())
            .filter(|c| c.open_time >= self.now_ms() - 86_400_000)
            .collect();
        let high = recent
            .iter()
            .map(|c| c.high)
            .max()
            .unwrap_or(last)
            .max(last);
        let low = recent.iter().map(|c| c.low).min().unwrap_or(last).min(last);
        let open = recent
            .iter()
            .min_by_key(|c| c.open_time)
            .map(|c| c.open)
            .unwrap_or(last);
        let volume: Qty = recent.iter().map(|c| c.volume).sum();
        let change = if open.is_zero() {
            Decimal::ZERO
        } else {
            ((last.get() - open.get()) / open.get() * Decimal::from(100)).round_dp(3)
        };
        Ok(Ticker24h {
            symbol: symbol.clone(),
            last_price: last,
            price_change_percent: change,
            high_price: high,
            low_price: low,
            volume,
            quote_volume: (volume * last).get(),
        })
    }

    async fn order_book(&self, symbol: &Symbol, limit: u16) -> Result<OrderBook, ExchangeError> {
        let engine = self.engine();
        engine.filters(symbol)?;
        let mut book = engine.book(symbol).cloned().ok_or_else(|| {
            ExchangeError::Unavailable(format!("the paper exchange has no order book for {symbol}"))
        })?;
        book.bids.truncate(usize::from(limit));
        book.asks.truncate(usize::from(limit));
        Ok(book)
    }

    async fn balances(&self) -> Result<Vec<Balance>, ExchangeError> {
        Ok(self
            .engine()
            .balances()
            .into_iter()
            .filter(|b| !b.total().is_zero())
            .collect())
    }

    async fn place_order(&self, request: &OrderRequest) -> Result<Placed, ExchangeError> {
        self.mutate(|e| e.place(request, self.now_ms()))
    }

    async fn place_oco(&self, request: &OcoRequest) -> Result<OrderList, ExchangeError> {
        self.mutate(|e| e.place_oco(request, self.now_ms()))
    }

    async fn query_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Order, ExchangeError> {
        self.engine().query(symbol, client_order_id)
    }

    async fn cancel_order(
        &self,
        symbol: &Symbol,
        client_order_id: &str,
    ) -> Result<Order, ExchangeError> {
        self.mutate(|e| e.cancel(symbol, client_order_id, self.now_ms()))
    }

    async fn open_orders(&self, symbol: &Symbol) -> Result<Vec<Order>, ExchangeError> {
        Ok(self.engine().open_orders(symbol))
    }

    async fn my_trades(&self, symbol: &Symbol) -> Result<Vec<Fill>, ExchangeError> {
        Ok(self.engine().fills(symbol))
    }
}
