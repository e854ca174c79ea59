//! What the faces render: plain view-model structs (`Snapshot`) and the loader that fills them
//! from the store's read model (`store::account::AccountView`) and repositories — no SQL of its
//! own, so the TUI shows the numbers `status`, `positions` and the decision prompt show. The
//! loader runs off the render loop (in `spawn_blocking`); the TUI only ever reads a finished
//! `Snapshot`.

use rusqlite::Connection;
use rust_decimal::Decimal;
use serde_json::Value;

use crate::domain::market::{Candle, Interval};
use crate::domain::risk::BreakerState;
use crate::domain::symbol::Symbol;
use crate::domain::trading::TradingMode;
use crate::domain::trading::order::Side;
use crate::domain::{Price, Qty, Quote};
use crate::store::StoreError;
use crate::store::account::{self, AccountQuery, Counts, Protection, TradingState};
use crate::store::decisions::DecisionRecord;

/// Portfolio heat cap used when no risk configuration names one, in percent of equity.
pub const DEFAULT_HEAT_CAP_PCT: f64 = 6.0;
/// How many rows of each history the loader keeps; older rows are left in the database.
pub const HISTORY_ROWS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read the trading database: {0}")]
    Store(#[from] StoreError),
}

/// The header's account figures, from `store::account::AccountView`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountPanel {
    pub equity: Quote,
    /// (time ms, equity) for the curve; f64 because it is only drawn.
    pub equity_curve: Vec<(i64, f64)>,
    pub daily_pnl: Quote,
    pub daily_pnl_pct: f64,
    pub available_balance: Quote,
    pub heat_pct: f64,
    pub heat_cap_pct: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerChange {
    pub at_ms: i64,
    pub scope: String,
    pub state: BreakerState,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerView {
    pub state: BreakerState,
    pub reason: String,
    /// When an automatic recovery is due (cooldown, day roll); `None` when manual or active.
    pub until: Option<i64>,
    /// Newest first.
    pub history: Vec<BreakerChange>,
}

/// One strategy's book as the Risk screen shows it: its own breaker, daily loss and drawdown
/// (`store::book_risk::BookRisk`) beside the limits in force for it.
#[derive(Debug, Clone, PartialEq)]
pub struct BookBreakerView {
    pub risk: crate::store::book_risk::BookRisk,
    pub max_daily_loss_pct: rust_decimal::Decimal,
    pub max_drawdown_pct: rust_decimal::Decimal,
}

impl Default for BreakerView {
    fn default() -> Self {
        BreakerView {
            state: BreakerState::Active,
            reason: String::new(),
            until: None,
            history: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PositionView {
    pub symbol: Symbol,
    /// The book it belongs to: its strategy's name, or `default`.
    pub book: String,
    /// The same book as the trading service names it (its strategy's id, `None` the default
    /// book): what a close of this row sends, since several books may hold one symbol.
    pub book_id: Option<i64>,
    pub side: String,
    pub entry: Price,
    pub mark: Price,
    pub qty: Qty,
    /// The LIVE stop-loss leg's trigger (none once it is cancelled or filled).
    pub stop: Option<Price>,
    /// The LIVE stop-loss leg's limit (how far below the trigger it may fill); `None` for a
    /// stop-market leg.
    pub stop_limit: Option<Price>,
    /// The stop the position was opened with: one R is the distance from the entry to it.
    pub initial_stop: Option<Price>,
    pub opened_at_ms: i64,
    /// The LIVE take-profit leg's price.
    pub target: Option<Price>,
    pub protection: Protection,
    pub unrealised_pnl: Quote,
    /// This position's share of portfolio heat, percent of equity.
    pub heat_pct: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub order_type: String,
    pub status: String,
    /// The limit price (for a stop-limit order, the worst fill once triggered).
    pub price: Option<Price>,
    /// The trigger of a stop or take-profit order.
    pub stop_price: Option<Price>,
    pub qty: Qty,
    pub filled: Qty,
    pub created_at_ms: i64,
    /// One leg of an OCO pair: cancelling it cancels the other leg too.
    pub in_order_list: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TradeView {
    pub at_ms: i64,
    pub symbol: Symbol,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub fee: Quote,
    pub fee_asset: String,
    pub realised_pnl: Option<Quote>,
    pub strategy: String,
    /// What the order was for: `entry`, `exit`, `stop_loss`, `take_profit`, …
    pub purpose: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RiskCheckView {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecisionView {
    pub id: i64,
    pub at_ms: i64,
    pub strategy: String,
    pub symbol: String,
    pub action: String,
    /// 0.0..=1.0 when the engine gave one.
    pub confidence: Option<f64>,
    /// The outcome: executed, refused, invalid, hold, error, dry_run.
    pub verdict: String,
    /// `rules`, `llm` or `cache`.
    pub engine: String,
    pub model: Option<String>,
    pub reasoning: String,
    pub risk_checks: Vec<RiskCheckView>,
    /// Why risk refused it (empty unless refused).
    pub refusal_reasons: Vec<String>,
    /// What the trading service did or why risk was not asked.
    pub execution: String,
    /// How risk sized an approved entry; `None` when it refused or was not asked.
    pub sizing: Option<SizingView>,
    /// The exchange orders the decision placed.
    pub order_ids: Vec<String>,
    /// The news the engine read: "date · title · url" (the date when the source gave one).
    pub sources: Vec<String>,
    /// An LLM decision's prompt and the model's reply as received.
    pub prompt: Option<String>,
    pub raw_reply: Option<String>,
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    pub cost_usd: Option<Quote>,
    pub latency_ms: Option<u64>,
}

/// Where a risk limit's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitSource {
    /// The built-in default.
    Default,
    /// `[risk]` in the configuration file.
    Config,
    /// Stored by `trademind risk set` (wins over the file).
    Database,
}

impl LimitSource {
    pub fn label(self) -> &'static str {
        match self {
            LimitSource::Default => "default",
            LimitSource::Config => "config",
            LimitSource::Database => "database",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RiskLimitRow {
    pub key: String,
    pub value: String,
    pub source: LimitSource,
}

/// Each limit in force and its source: the stored value when it differs from the file's, the
/// file's when it differs from the built-in default, else the default.
pub fn risk_limits(
    in_force: &[(String, String)],
    stored: bool,
    configured: &[(String, String)],
) -> Vec<RiskLimitRow> {
    let defaults = config_rows(&crate::domain::risk::RiskConfig::default());
    let find = |rows: &[(String, String)], k: &str| {
        rows.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    in_force
        .iter()
        .map(|(k, v)| {
            let source = if stored && find(configured, k).as_ref() != Some(v) {
                LimitSource::Database
            } else if find(&defaults, k).as_ref() != Some(v) {
                LimitSource::Config
            } else {
                LimitSource::Default
            };
            RiskLimitRow {
                key: k.clone(),
                value: v.clone(),
                source,
            }
        })
        .collect()
}

/// Risk's sizing of an approved entry: the quantity, the levels and what a stop-out costs.
#[derive(Debug, Clone, PartialEq)]
pub struct SizingView {
    pub quantity: Qty,
    pub entry: Price,
    pub stop: Option<Price>,
    pub target: Option<Price>,
    pub notional: Quote,
    /// Lost if the stop is hit: quantity × (entry − stop).
    pub risk_amount: Quote,
}

impl SizingView {
    /// Reward over risk: (target − entry) / (entry − stop), when both levels are set.
    pub fn reward_to_risk(&self) -> Option<f64> {
        let (stop, target) = (self.stop?, self.target?);
        let risk = (self.entry.get() - stop.get()).abs();
        if risk.is_zero() {
            return None;
        }
        let reward = (target.get() - self.entry.get()).abs();
        Some(Quote(reward).to_f64() / Quote(risk).to_f64())
    }
}

/// Indicator series aligned with `MarketView::candles` (same length; `None` while warming up).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Overlays {
    pub sma: Vec<Option<f64>>,
    pub ema: Vec<Option<f64>>,
    pub bb_upper: Vec<Option<f64>>,
    pub bb_middle: Vec<Option<f64>>,
    pub bb_lower: Vec<Option<f64>>,
    pub rsi: Vec<Option<f64>>,
    pub macd: Vec<Option<f64>>,
    pub macd_signal: Vec<Option<f64>>,
    pub macd_hist: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BookLevel {
    pub price: Price,
    pub qty: Qty,
}

/// Best level first on both sides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookView {
    pub bids: Vec<BookLevel>,
    pub asks: Vec<BookLevel>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MarketTrade {
    pub at_ms: i64,
    pub price: Price,
    pub qty: Qty,
    /// The aggressor sold (the buyer was the maker): shown as a down tick.
    pub buyer_is_maker: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MarketView {
    pub symbol: Symbol,
    pub interval: Interval,
    pub candles: Vec<Candle>,
    /// The stored interval `candles` were built from when none are stored at `interval`.
    pub resampled_from: Option<Interval>,
    pub overlays: Overlays,
    pub book: BookView,
    /// Newest first.
    pub recent_trades: Vec<MarketTrade>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestTradeView {
    pub entry_ms: i64,
    pub exit_ms: i64,
    pub side: String,
    pub entry: Price,
    pub exit: Price,
    pub qty: Qty,
    pub pnl: Quote,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BacktestView {
    pub id: i64,
    pub status: String,
    pub strategy: String,
    pub symbol: String,
    pub interval: String,
    pub params: String,
    /// The run's metrics (typed: each face formats them through `crate::format`).
    pub metrics: Option<crate::domain::backtest::Metrics>,
    pub equity_curve: Vec<f64>,
    /// Open time of each `equity_curve` point (ms, UTC); same length.
    pub curve_times: Vec<i64>,
    /// The equity of buying at the first open and holding, at each `curve_times` point (from
    /// the stored candles; empty when they are not stored).
    pub buy_and_hold: Vec<f64>,
    /// Drawdown from the running peak, percent (0 or negative).
    pub drawdown: Vec<f64>,
    pub trades: Vec<BacktestTradeView>,
    /// 0.0..=1.0 while running.
    pub progress: Option<f64>,
    pub error: Option<String>,
    /// The starting cash its parameters name (0 when they name none): the return net of
    /// the LLM's cost is taken off it (`app::backtest_compare`).
    pub initial_cash: f64,
    /// What its LLM decisions cost at live prices (cached ones at their first price).
    pub llm_cost_usd: rust_decimal::Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ComponentHealth {
    pub name: String,
    pub healthy: bool,
    /// Its last run is older than a few intervals: the dot turns grey.
    pub stale: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn label(self) -> &'static str {
        match self {
            LogLevel::Trace => "TRACE",
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }

    pub fn parse(text: &str) -> LogLevel {
        match text.trim().to_ascii_uppercase().as_str() {
            "TRACE" => LogLevel::Trace,
            "DEBUG" => LogLevel::Debug,
            "WARN" | "WARNING" => LogLevel::Warn,
            "ERROR" => LogLevel::Error,
            _ => LogLevel::Info,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at_ms: i64,
    pub level: LogLevel,
    pub target: String,
    pub message: String,
}

/// Everything the cockpit shows, as of `as_of_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub mode: TradingMode,
    pub as_of_ms: i64,
    /// Paused or killed by an operator: `p` offers to resume.
    pub trading_paused: bool,
    pub trading: TradingState,
    /// Whether a daemon runs on this data dir (its heartbeat); `None` until the first load.
    pub daemon: Option<crate::store::heartbeat::DaemonPresence>,
    /// Exact row counts (the lists below are capped at `HISTORY_ROWS`).
    pub counts: Counts,
    pub account: AccountPanel,
    pub breaker: BreakerView,
    /// Each strategy's book: its own breaker beside the account's.
    pub books: Vec<BookBreakerView>,
    pub positions: Vec<PositionView>,
    pub open_orders: Vec<OrderView>,
    /// Newest first.
    pub trades: Vec<TradeView>,
    /// Newest first.
    pub decisions: Vec<DecisionView>,
    pub market: MarketView,
    /// Newest first.
    pub backtests: Vec<BacktestView>,
    pub risk_config: Vec<(String, String)>,
    /// The limits in force with where each value comes from.
    pub risk_limits: Vec<RiskLimitRow>,
    /// The highest equity recorded: the drawdown limit counts from it.
    pub peak_equity: Option<Quote>,
    /// Losing closed trades in a row, newest back (the loss-streak rule's count).
    pub loss_streak: u32,
    /// Cooldowns and locks after stops in force, each book and symbol (`risk show` lists the
    /// same).
    pub stop_protections: Vec<crate::store::risk::ActiveStopProtection>,
    pub health: Vec<ComponentHealth>,
    /// Oldest first (appended as they arrive).
    pub logs: Vec<LogLine>,
    /// Choices offered by the backtest form and `:market`.
    pub symbols: Vec<Symbol>,
    pub strategies: Vec<String>,
}

impl Snapshot {
    /// An empty snapshot for `symbol`/`interval`, shown until the first load finishes.
    pub fn empty(mode: TradingMode, symbol: Symbol, interval: Interval) -> Snapshot {
        Snapshot {
            mode,
            as_of_ms: 0,
            trading_paused: false,
            trading: TradingState::Active,
            daemon: None,
            counts: Counts::default(),
            account: AccountPanel {
                heat_cap_pct: DEFAULT_HEAT_CAP_PCT,
                ..AccountPanel::default()
            },
            breaker: BreakerView::default(),
            books: Vec::new(),
            positions: Vec::new(),
            open_orders: Vec::new(),
            trades: Vec::new(),
            decisions: Vec::new(),
            market: MarketView {
                symbol: symbol.clone(),
                interval,
                candles: Vec::new(),
                resampled_from: None,
                overlays: Overlays::default(),
                book: BookView::default(),
                recent_trades: Vec::new(),
            },
            backtests: Vec::new(),
            risk_config: Vec::new(),
            risk_limits: Vec::new(),
            peak_equity: None,
            loss_streak: 0,
            stop_protections: Vec::new(),
            health: Vec::new(),
            logs: Vec::new(),
            symbols: vec![symbol],
            strategies: Vec::new(),
        }
    }

    /// Orders that are still working: quitting while they exist deserves a question.
    pub fn orders_in_flight(&self) -> usize {
        self.open_orders.len()
    }
}

/// What the loader needs besides the database: it never reads the clock itself.
#[derive(Debug, Clone)]
pub struct LoadRequest {
    pub mode: TradingMode,
    /// Now on the run's clock (the replay's simulated time in the demo).
    pub now_ms: i64,
    pub symbol: Symbol,
    pub interval: Interval,
    /// The connection whose account is shown.
    pub connection: String,
    /// Starting cash of a paper connection (shown until the engine writes an equity
    /// snapshot); `None` on an exchange connection.
    pub paper_starting_balance: Option<Quote>,
    pub symbols: Vec<Symbol>,
    /// The configured risk limits (key, value), shown when the database holds no default row.
    pub default_risk_config: Vec<(String, String)>,
    /// A job whose last run is older than this is shown as stale.
    pub stale_after_ms: i64,
}

/// Flatten any serialisable config into sorted `a.b = value` rows for display.
pub fn config_rows<T: serde::Serialize>(config: &T) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(config) {
        flatten("", &v, &mut out);
    }
    out.retain(|(k, _)| !k.is_empty());
    out
}

/// The mode of `connection` as the venue opens it (a testnet connection is TESTNET).
pub fn trading_mode(conn: &Connection, connection: &str) -> Result<TradingMode, SnapshotError> {
    Ok(crate::store::strategies::connection_mode(conn, connection)?)
}

/// Read everything the cockpit shows from the store. Blocking: call it from `spawn_blocking`.
pub fn load(conn: &Connection, req: &LoadRequest) -> Result<Snapshot, SnapshotError> {
    let mut snap = Snapshot::empty(req.mode, req.symbol.clone(), req.interval);
    snap.as_of_ms = req.now_ms;
    snap.symbols = req.symbols.clone();
    if !snap.symbols.contains(&req.symbol) {
        snap.symbols.insert(0, req.symbol.clone());
    }
    let view = account::load(
        conn,
        &AccountQuery {
            connection: &req.connection,
            now_ms: req.now_ms,
            day_start_ms: account::utc_day_start(req.now_ms),
            paper_starting_balance: req.paper_starting_balance,
            unresolved: Vec::new(),
        },
    )?;
    snap.positions = view.positions.iter().map(position_view).collect();
    snap.trading = view.trading.clone();
    snap.trading_paused = view.trading.is_manually_stopped();
    snap.daemon = Some(crate::store::heartbeat::presence(conn, req.now_ms)?);
    snap.counts = view.counts;
    snap.open_orders = load_open_orders(conn)?;
    snap.trades = load_trades(conn)?;
    // Exit fills carry the realised PnL of what they closed, newest first.
    snap.loss_streak = snap
        .trades
        .iter()
        .filter_map(|t| t.realised_pnl)
        .take_while(|p| p.get().is_sign_negative() && !p.is_zero())
        .count() as u32;
    snap.decisions = load_decisions(conn)?;
    snap.backtests = load_backtests(conn)?;
    (snap.market.candles, snap.market.resampled_from) =
        load_candles(conn, &req.symbol, req.interval)?;
    snap.market.overlays = overlays(&snap.market.candles);
    snap.breaker = load_breaker(conn)?;
    snap.risk_config = load_risk_config(conn)?;
    let stored = !snap.risk_config.is_empty();
    if !stored {
        snap.risk_config = req.default_risk_config.clone();
    }
    snap.risk_limits = risk_limits(&snap.risk_config, stored, &req.default_risk_config);
    snap.stop_protections = crate::store::risk::active_stop_protections(
        conn,
        &req.connection,
        &risk_config_of(&req.default_risk_config),
        req.interval.millis(),
        req.now_ms,
    )?;
    snap.breaker.until = view.breaker.until;
    let base = risk_config_of(&req.default_risk_config);
    snap.books = view
        .books
        .iter()
        .map(|risk| {
            let (limits, _) = crate::store::risk::load_config(conn, Some(&risk.strategy), &base)?;
            Ok(BookBreakerView {
                risk: risk.clone(),
                max_daily_loss_pct: limits.max_daily_loss_pct,
                max_drawdown_pct: limits.max_drawdown_pct,
            })
        })
        .collect::<Result<_, SnapshotError>>()?;
    snap.peak_equity = crate::store::equity::peak(conn, &req.connection)?.map(|(q, _)| q);
    snap.strategies = crate::store::strategies::list_strategies(conn)?
        .into_iter()
        .map(|s| s.name)
        .collect();
    snap.strategies.sort();
    for b in &snap.backtests {
        if !snap.strategies.contains(&b.strategy) {
            snap.strategies.push(b.strategy.clone());
        }
    }
    snap.account = account_panel(&view, &snap, req.now_ms);
    let cap = snap
        .risk_config
        .iter()
        .find(|(k, _)| {
            k.ends_with("heat_cap_pct")
                || k.ends_with("max_portfolio_heat")
                || k.ends_with("max_portfolio_heat_pct")
        })
        // Risk percentages are percent ("6" is 6 %), as `[risk]` documents.
        .and_then(|(_, v)| v.trim_matches('"').parse::<f64>().ok());
    snap.account.heat_cap_pct = cap.unwrap_or(DEFAULT_HEAT_CAP_PCT);
    apply_heat(&mut snap);
    snap.health = vec![ComponentHealth {
        name: "database".into(),
        healthy: true,
        stale: false,
        detail: format!(
            "{} trades, {} decisions",
            view.counts.trades, view.counts.decisions
        ),
    }];
    snap.health
        .extend(job_health(conn, req.now_ms, req.stale_after_ms)?);
    Ok(snap)
}

fn position_view(p: &account::PositionStatus) -> PositionView {
    let pos = &p.row.position;
    PositionView {
        side: match pos.side {
            crate::domain::trading::PositionSide::Long => "LONG".to_string(),
            crate::domain::trading::PositionSide::Short => "SHORT".to_string(),
        },
        mark: p.mark,
        symbol: pos.symbol.clone(),
        book: p.row.book().to_string(),
        book_id: p.row.strategy_id,
        entry: pos.entry_price,
        qty: pos.quantity,
        stop: p.live_stop,
        stop_limit: p.live_stop_limit,
        initial_stop: p.initial_stop,
        opened_at_ms: pos.opened_at,
        target: p.live_target,
        protection: p.protection,
        unrealised_pnl: p.row.unrealized_pnl,
        heat_pct: 0.0,
    }
}

fn load_open_orders(conn: &Connection) -> Result<Vec<OrderView>, SnapshotError> {
    Ok(crate::store::orders::list(conn, true, None, HISTORY_ROWS)?
        .into_iter()
        .map(|row| {
            let o = row.order;
            OrderView {
                client_order_id: o.client_order_id,
                symbol: o.symbol,
                side: o.side,
                order_type: o.order_type.as_str().to_string(),
                status: o.status.as_str().to_string(),
                price: o.price,
                stop_price: o.stop_price,
                qty: o.quantity,
                filled: o.filled_quantity,
                created_at_ms: o.created_at,
                in_order_list: row.order_list_id.is_some(),
            }
        })
        .collect())
}

fn load_trades(conn: &Connection) -> Result<Vec<TradeView>, SnapshotError> {
    Ok(crate::store::orders::trades(conn, HISTORY_ROWS)?
        .into_iter()
        .map(|row| TradeView {
            at_ms: row.fill.time,
            symbol: row.fill.symbol,
            side: row.fill.side,
            price: row.fill.price,
            qty: row.fill.quantity,
            fee: row.fill.fee,
            fee_asset: row.fill.fee_asset,
            realised_pnl: row.realized_pnl,
            strategy: row.strategy.unwrap_or_default(),
            purpose: row.purpose.as_str().to_string(),
        })
        .collect())
}

fn json(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The checks as the risk module made them, read back through the column's own type.
fn risk_checks(record: &DecisionRecord) -> Vec<RiskCheckView> {
    record
        .checks()
        .iter()
        .map(|c| RiskCheckView {
            name: c.name.to_string(),
            passed: c.passed,
            detail: c.detail.clone(),
        })
        .collect()
}

fn sources(results: &Value) -> Vec<String> {
    let list = results
        .get("results")
        .and_then(Value::as_array)
        .or_else(|| results.as_array());
    list.map(|items| {
        items
            .iter()
            .map(|s| match s {
                Value::String(u) => u.clone(),
                other => {
                    // "date · title · url", each part when the source gave it.
                    let parts: Vec<String> = ["published_date", "title", "url"]
                        .iter()
                        .filter_map(|k| other.get(*k).map(text_of))
                        .filter(|t| !t.is_empty())
                        .collect();
                    if parts.is_empty() {
                        other.to_string()
                    } else {
                        parts.join(" · ")
                    }
                }
            })
            .collect()
    })
    .unwrap_or_default()
}

fn load_decisions(conn: &Connection) -> Result<Vec<DecisionView>, SnapshotError> {
    let names: std::collections::HashMap<i64, String> =
        crate::store::strategies::list_strategies(conn)?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
    let rows = crate::store::decisions::recent(conn, HISTORY_ROWS)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let d = row.fields;
            let record = d
                .risk_verdict
                .as_deref()
                .map(DecisionRecord::from_column)
                .unwrap_or_default();
            let decision = json(d.decision);
            let mut reasoning = decision
                .get("reasoning")
                .or_else(|| decision.get("reason"))
                .map(text_of)
                .unwrap_or_default();
            if let Some(e) = d.error.filter(|e| !e.is_empty()) {
                if !reasoning.is_empty() {
                    reasoning.push('\n');
                }
                reasoning.push_str(&format!("error: {e}"));
            }
            DecisionView {
                id: row.id,
                at_ms: d.decided_at,
                strategy: d
                    .strategy_id
                    .and_then(|id| names.get(&id).cloned())
                    .unwrap_or_default(),
                symbol: d.symbol,
                action: d.action,
                confidence: d.confidence,
                verdict: d.outcome,
                engine: d.engine,
                model: d.model,
                reasoning,
                risk_checks: risk_checks(&record),
                refusal_reasons: record.refusal_reasons().to_vec(),
                execution: record
                    .not_evaluated
                    .clone()
                    .unwrap_or_else(|| record.execution.clone()),
                sizing: match &record.verdict {
                    Some(crate::domain::risk::RiskVerdict::Approved {
                        quantity,
                        entry,
                        stop,
                        take_profit,
                        notional,
                        risk_amount,
                        ..
                    }) => Some(SizingView {
                        quantity: *quantity,
                        entry: *entry,
                        stop: *stop,
                        target: *take_profit,
                        notional: *notional,
                        risk_amount: *risk_amount,
                    }),
                    _ => None,
                },
                order_ids: d.order_ids,
                sources: sources(&json(d.search_results)),
                prompt: d.prompt.filter(|p| !p.is_empty()),
                raw_reply: d.raw_response.filter(|r| !r.is_empty()),
                prompt_tokens: d.prompt_tokens.and_then(|v| u32::try_from(v).ok()),
                completion_tokens: d.completion_tokens.and_then(|v| u32::try_from(v).ok()),
                cost_usd: d.cost_usd.map(Quote),
                latency_ms: d.latency_ms.and_then(|v| u64::try_from(v).ok()),
            }
        })
        .collect())
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, child, out);
            }
        }
        other => out.push((prefix.to_string(), text_of(other))),
    }
}

/// Percent below the running peak at each point (0 or negative).
pub fn drawdown(curve: &[f64]) -> Vec<f64> {
    let mut peak = f64::MIN;
    curve
        .iter()
        .map(|&v| {
            peak = peak.max(v);
            if peak > 0.0 {
                (v - peak) / peak * 100.0
            } else {
                0.0
            }
        })
        .collect()
}

/// How many runs the backtests screen lists.
const BACKTEST_ROWS: usize = 100;
/// Runs (newest first) whose buy-and-hold curve is read from the stored candles on each load;
/// older runs show their equity alone, which keeps a reload cheap.
const BUY_AND_HOLD_RUNS: usize = 10;

/// Equity of putting `initial` into the asset at the first candle's open and holding it, at
/// each of `times` (the run's candle open times), from the closes of `candles`. Empty when a
/// time has no stored candle: a partial benchmark would mislead.
pub fn buy_and_hold(initial: f64, times: &[i64], candles: &[Candle]) -> Vec<f64> {
    let Some(first) = candles.first() else {
        return Vec::new();
    };
    let open = first.open.to_f64();
    if open <= 0.0 || times.first() != Some(&first.open_time) {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(times.len());
    let mut i = 0;
    for t in times {
        while i < candles.len() && candles[i].open_time < *t {
            i += 1;
        }
        match candles.get(i) {
            Some(c) if c.open_time == *t => out.push(initial * c.close.to_f64() / open),
            _ => return Vec::new(),
        }
    }
    out
}

fn run_buy_and_hold(
    conn: &Connection,
    run: &crate::store::backtests::BacktestRun,
    times: &[i64],
) -> Result<Vec<f64>, SnapshotError> {
    let (Ok(symbol), Ok(interval), Some(&first), Some(&last)) = (
        Symbol::new(&run.symbol),
        run.interval.parse::<Interval>(),
        times.first(),
        times.last(),
    ) else {
        return Ok(Vec::new());
    };
    let initial = run
        .metrics
        .as_ref()
        .map(|m| m.initial_equity)
        .or_else(|| run.equity_curve.first().map(|(_, e)| *e))
        .unwrap_or(0.0);
    let candles = crate::store::candles::candles_in_range(
        conn,
        &symbol,
        interval,
        Some(first),
        Some(last.saturating_add(1)),
    )?;
    Ok(buy_and_hold(initial, times, &candles))
}

fn backtest_trades(trades: &[crate::domain::backtest::TradeRecord]) -> Vec<BacktestTradeView> {
    trades
        .iter()
        .filter_map(|t| {
            // A trade still open at the end of the run has no exit to show.
            Some(BacktestTradeView {
                entry_ms: t.entry_time,
                exit_ms: t.exit_time.unwrap_or(0),
                side: "LONG".into(),
                entry: t.entry_price,
                exit: t.exit_price?,
                qty: t.qty,
                pnl: t.pnl,
            })
        })
        .collect()
}

fn load_backtests(conn: &Connection) -> Result<Vec<BacktestView>, SnapshotError> {
    let runs = crate::store::backtests::list_full(conn, BACKTEST_ROWS)?;
    let mut out = Vec::with_capacity(runs.len());
    for (n, run) in runs.into_iter().enumerate() {
        let mut param_rows = Vec::new();
        flatten("", &run.parameters, &mut param_rows);
        let equity_curve: Vec<f64> = run.equity_curve.iter().map(|(_, e)| *e).collect();
        let curve_times: Vec<i64> = run.equity_curve.iter().map(|(t, _)| *t).collect();
        let buy_and_hold = if n < BUY_AND_HOLD_RUNS {
            run_buy_and_hold(conn, &run, &curve_times)?
        } else {
            Vec::new()
        };
        let status = run.status.as_str().to_string();
        let llm_cost_usd = crate::store::decisions::backtest_cost(conn, run.id)?.full_cost_usd();
        out.push(BacktestView {
            initial_cash: crate::app::backtest_compare::initial_cash(&run.parameters)
                .unwrap_or(0.0),
            llm_cost_usd,
            id: run.id,
            progress: (run.status == crate::domain::backtest::RunStatus::Running).then_some(0.0),
            status,
            strategy: run.strategy,
            symbol: run.symbol,
            interval: run.interval,
            params: param_rows
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            metrics: run.metrics,
            drawdown: drawdown(&equity_curve),
            trades: backtest_trades(&run.trades),
            equity_curve,
            curve_times,
            buy_and_hold,
            error: run.error,
        });
    }
    Ok(out)
}

/// Shorter candles read to build longer ones are capped here (1d from 1h: 500 days fit).
const MAX_RESAMPLE_ROWS: usize = 12_000;

/// The newest candles of `sym` at `interval`; when none are stored at it, built from the
/// longest shorter stored interval that divides it (2h/4h/1d from 1h), named in the second value.
fn load_candles(
    conn: &Connection,
    sym: &Symbol,
    interval: Interval,
) -> Result<(Vec<Candle>, Option<Interval>), SnapshotError> {
    let stored = crate::store::candles::last_candles(conn, sym, interval, HISTORY_ROWS)?;
    if !stored.is_empty() {
        return Ok((stored, None));
    }
    let finer = Interval::ALL
        .iter()
        .rev()
        .filter(|f| f.millis() < interval.millis() && interval.millis() % f.millis() == 0);
    for &from in finer {
        let ratio = usize::try_from(interval.millis() / from.millis()).unwrap_or(usize::MAX);
        let rows = HISTORY_ROWS.saturating_mul(ratio).min(MAX_RESAMPLE_ROWS);
        let fine = crate::store::candles::last_candles(conn, sym, from, rows)?;
        if fine.is_empty() {
            continue;
        }
        if let Ok(mut built) = crate::domain::market::resample(&fine, from, interval) {
            let excess = built.len().saturating_sub(HISTORY_ROWS);
            built.drain(..excess);
            return Ok((built, Some(from)));
        }
    }
    Ok((Vec::new(), None))
}

fn load_breaker(conn: &Connection) -> Result<BreakerView, SnapshotError> {
    let mut view = BreakerView::default();
    for r in crate::store::risk::all_history(conn, 50)? {
        let mut reason = r.reason.map(|r| r.to_string()).unwrap_or_default();
        if let Some(note) = r.note.filter(|n| !n.is_empty()) {
            reason = format!("{reason}: {note}");
        }
        view.history.push(BreakerChange {
            at_ms: r.changed_at,
            scope: r.scope,
            state: r.state,
            reason,
        });
    }
    if let Some(latest) = view
        .history
        .iter()
        .find(|c| c.scope == crate::store::risk::GLOBAL_SCOPE)
    {
        view.state = latest.state;
        view.reason = latest.reason.clone();
    }
    Ok(view)
}

/// The configured limits back from their display rows (a key that does not parse keeps its
/// default): the base a strategy without stored limits trades on.
fn risk_config_of(rows: &[(String, String)]) -> crate::domain::risk::RiskConfig {
    rows.iter()
        .fold(crate::domain::risk::RiskConfig::default(), |c, (k, v)| {
            c.with_value(k, v.trim_matches('"')).unwrap_or(c)
        })
}

fn load_risk_config(conn: &Connection) -> Result<Vec<(String, String)>, SnapshotError> {
    Ok(crate::store::risk::stored_default(conn)?
        .map(|c| config_rows(&c))
        .unwrap_or_default())
}

/// The chart overlays for `candles` from the domain's indicators (TA-Lib parity): SMA 20,
/// EMA 50, Bollinger 20/2, RSI 14, MACD 12/26/9; `None` while an indicator warms up.
pub fn overlays(candles: &[Candle]) -> Overlays {
    use crate::domain::market::indicators::{Bollinger, Ema, Macd, Rsi, Sma};
    let n = candles.len();
    let mut o = Overlays {
        sma: Vec::with_capacity(n),
        ema: Vec::with_capacity(n),
        bb_upper: Vec::with_capacity(n),
        bb_middle: Vec::with_capacity(n),
        bb_lower: Vec::with_capacity(n),
        rsi: Vec::with_capacity(n),
        macd: Vec::with_capacity(n),
        macd_signal: Vec::with_capacity(n),
        macd_hist: Vec::with_capacity(n),
    };
    let (mut sma, mut ema, mut bb) = (Sma::new(20), Ema::new(50), Bollinger::new(20, 2.0, 2.0));
    let (mut rsi, mut macd) = (Rsi::new(14), Macd::new(12, 26, 9));
    for c in candles {
        let x = c.close.to_f64();
        o.sma.push(sma.update(x));
        o.ema.push(ema.update(x));
        let band = bb.update(x);
        o.bb_upper.push(band.map(|b| b.upper));
        o.bb_middle.push(band.map(|b| b.middle));
        o.bb_lower.push(band.map(|b| b.lower));
        o.rsi.push(rsi.update(x));
        let m = macd.update(x);
        o.macd.push(m.map(|m| m.macd));
        o.macd_signal.push(m.map(|m| m.signal));
        o.macd_hist.push(m.map(|m| m.histogram));
    }
    o
}

/// A scheduler job is healthy while its latest failure (if any) is older than its latest
/// success, and stale (grey) when its last run is older than `stale_after_ms` on the run's
/// clock: a stopped daemon does not keep green dots.
fn job_health(
    conn: &Connection,
    now_ms: i64,
    stale_after_ms: i64,
) -> Result<Vec<ComponentHealth>, SnapshotError> {
    Ok(crate::store::jobs::job_health(conn)?
        .into_iter()
        .map(|j| {
            let healthy = match (&j.last_error, j.last_success) {
                (None, _) => true,
                (Some((failed_at, _)), Some(ok_at)) => ok_at > *failed_at,
                (Some(_), None) => false,
            };
            let stale = j
                .last_run
                .is_none_or(|at| now_ms.saturating_sub(at) > stale_after_ms);
            let detail = match (&j.last_error, healthy) {
                (Some((_, e)), false) => format!("failing: {e}"),
                _ if stale => format!("{} runs, none lately", j.runs),
                _ => format!("{} runs", j.runs),
            };
            ComponentHealth {
                name: j.job,
                healthy,
                stale,
                detail,
            }
        })
        .collect())
}

/// The header's figures from the account read model; the equity curve steps through the
/// realised PnL of the trades shown, ending at the account's equity.
fn account_panel(view: &account::AccountView, snap: &Snapshot, now_ms: i64) -> AccountPanel {
    let equity = view.equity.get();
    let unrealised = view.unrealised_pnl.get();
    let committed: Decimal = snap
        .positions
        .iter()
        .map(|p| p.entry.get() * p.qty.get())
        .sum();
    // Curve: oldest to newest realised PnL steps.
    let steps: Vec<(i64, Decimal)> = snap
        .trades
        .iter()
        .rev()
        .filter_map(|t| t.realised_pnl.map(|p| (t.at_ms, p.get())))
        .collect();
    let mut running = equity - unrealised - steps.iter().map(|(_, p)| *p).sum::<Decimal>();
    let mut equity_curve = vec![(
        steps.first().map(|s| s.0).unwrap_or(now_ms),
        Quote(running).to_f64(),
    )];
    for (at, p) in steps {
        running += p;
        equity_curve.push((at, Quote(running).to_f64()));
    }
    equity_curve.push((now_ms, Quote(equity).to_f64()));
    AccountPanel {
        equity: view.equity,
        equity_curve,
        daily_pnl: view.day_pnl,
        daily_pnl_pct: view.day_pnl_pct,
        available_balance: Quote(equity - unrealised - committed),
        heat_pct: 0.0,
        heat_cap_pct: DEFAULT_HEAT_CAP_PCT,
    }
}

/// Heat of each position (risk to its stop as % of equity) and the total; positions without a
/// stop count their whole notional, which is what they can lose.
pub fn apply_heat(snap: &mut Snapshot) {
    let equity = snap.account.equity.to_f64();
    let mut total = 0.0;
    for p in &mut snap.positions {
        let risk_per_unit = match p.stop {
            Some(stop) => (p.entry.get() - stop.get()).abs(),
            None => p.entry.get(),
        };
        let risk = Quote(risk_per_unit * p.qty.get()).to_f64();
        p.heat_pct = if equity > 0.0 {
            risk / equity * 100.0
        } else {
            0.0
        };
        total += p.heat_pct;
    }
    snap.account.heat_pct = total;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use rust_decimal_macros::dec;

    fn request() -> LoadRequest {
        LoadRequest {
            mode: TradingMode::Paper,
            // 2026-01-02 12:00 UTC
            now_ms: 1_767_355_200_000,
            symbol: Symbol::new("BTCUSDT").unwrap(),
            interval: Interval::H1,
            connection: "paper".into(),
            paper_starting_balance: Some(Quote(dec!(10000))),
            symbols: vec![Symbol::new("BTCUSDT").unwrap()],
            default_risk_config: vec![("heat_cap_pct".into(), "5".into())],
            stale_after_ms: 3_600_000,
        }
    }

    #[test]
    fn each_risk_limit_says_whether_it_is_the_default_the_file_or_the_database() {
        let defaults = config_rows(&crate::domain::risk::RiskConfig::default());
        let mut configured = defaults.clone();
        let set = |rows: &mut Vec<(String, String)>, k: &str, v: &str| {
            rows.iter_mut().find(|(key, _)| key == k).unwrap().1 = v.into();
        };
        set(&mut configured, "max_daily_loss_pct", "2");
        let mut stored = configured.clone();
        set(&mut stored, "heat_cap_pct", "4");
        let rows = risk_limits(&stored, true, &configured);
        let source = |k: &str| rows.iter().find(|r| r.key == k).unwrap().source;
        assert_eq!(source("heat_cap_pct"), LimitSource::Database);
        assert_eq!(source("max_daily_loss_pct"), LimitSource::Config);
        assert_eq!(source("max_drawdown_pct"), LimitSource::Default);
        // Without a stored row nothing is "database".
        let rows = risk_limits(&configured, false, &configured);
        assert!(rows.iter().all(|r| r.source != LimitSource::Database));
    }

    #[test]
    fn empty_database_loads_the_starting_balance_and_nothing_else() {
        let store = Store::open_in_memory().unwrap();
        let snap = load(store.conn(), &request()).unwrap();
        assert_eq!(snap.account.equity, Quote(dec!(10000)));
        assert_eq!(snap.account.daily_pnl, Quote::ZERO);
        assert!(snap.positions.is_empty() && snap.trades.is_empty());
        assert_eq!(snap.breaker.state, BreakerState::Active);
        // No risk row stored: the configured limits are shown and the heat cap read from them.
        assert_eq!(snap.risk_config, vec![("heat_cap_pct".into(), "5".into())]);
        assert_eq!(snap.account.heat_cap_pct, 5.0);
    }

    #[test]
    fn loader_reads_positions_orders_trades_and_computes_equity_and_daily_pnl() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let now = request().now_ms;
        c.execute_batch(&format!(
            "INSERT INTO strategies (id, name, created_at, updated_at) VALUES (1, 'sma-cross', 0, 0);
             INSERT INTO positions (symbol, entry_price, quantity, stop_loss, mark_price, unrealized_pnl,
                realized_pnl, status, opened_at, updated_at)
               VALUES ('BTCUSDT', '50000', '0.1', '49000', '51000', '100', '0', 'open', 0, 0),
                      ('ETHUSDT', '3000', '1', NULL, NULL, '0', '40', 'closed', 0, 0);
             UPDATE positions SET closed_at = {now} WHERE symbol = 'ETHUSDT';
             INSERT INTO orders (id, client_order_id, strategy_id, symbol, side, order_type, status,
                quantity, created_at, updated_at, stop_price, purpose, position_id)
               VALUES (1, 'a', 1, 'ETHUSDT', 'SELL', 'MARKET', 'FILLED', '1', 0, 0, NULL, 'exit', 2),
                      (2, 'b', 1, 'BTCUSDT', 'SELL', 'STOP_LOSS_LIMIT', 'NEW', '0.1', 0, 0,
                       '49000', 'stop_loss', 1);
             INSERT INTO trades (order_id, symbol, side, price, quantity, fee, realized_pnl, executed_at)
               VALUES (1, 'ETHUSDT', 'SELL', '3040', '1', '3.04', '40', {now});
             INSERT INTO circuit_breaker_state (scope, state, reason, changed_at)
               VALUES ('global', 'active', NULL, 1), ('global', 'halted', 'daily_loss_limit', 2);"
        ))
        .unwrap();
        let snap = load(c, &request()).unwrap();
        // equity = 10000 + realised 40 + unrealised 100
        assert_eq!(snap.account.equity, Quote(dec!(10140)));
        // today: realised 40 + unrealised 100 = 140, on a start-of-day equity of 10000 = 1.4 %
        assert_eq!(snap.account.daily_pnl, Quote(dec!(140)));
        assert!((snap.account.daily_pnl_pct - 1.4).abs() < 1e-9);
        // available = equity - unrealised - committed (50000 * 0.1) = 10140 - 100 - 5000
        assert_eq!(snap.account.available_balance, Quote(dec!(5040)));
        assert_eq!(snap.positions.len(), 1);
        assert_eq!(snap.positions[0].mark, Price(dec!(51000)));
        // heat: (50000 - 49000) * 0.1 = 100 of 10140 = 0.986 %
        assert!((snap.account.heat_pct - 100.0 / 10140.0 * 100.0).abs() < 1e-9);
        assert_eq!(snap.open_orders.len(), 1);
        assert_eq!(snap.open_orders[0].client_order_id, "b");
        assert_eq!(snap.trades[0].strategy, "sma-cross");
        assert_eq!(snap.breaker.state, BreakerState::Halted);
        assert_eq!(snap.breaker.reason, "daily_loss_limit");
        assert_eq!(snap.breaker.history.len(), 2);
    }

    #[test]
    fn decision_detail_shows_the_stored_risk_checks_and_the_refusal_reason() {
        use crate::domain::risk::{Check, RiskVerdict};
        use crate::store::decisions::DecisionRecord;
        let store = Store::open_in_memory().unwrap();
        // The column exactly as the trading service writes it: {"verdict": …, "execution": …}.
        let record = DecisionRecord::of_execution(
            Some(RiskVerdict::Refused {
                reasons: vec!["size: too big".into()],
                checks: vec![
                    Check {
                        name: "heat".into(),
                        passed: true,
                        detail: "2% < 6%".into(),
                    },
                    Check {
                        name: "size".into(),
                        passed: false,
                        detail: "too big".into(),
                    },
                ],
            }),
            "refused by risk",
        )
        .unwrap();
        store
            .conn()
            .execute(
                r#"INSERT INTO decisions (symbol, engine, action, confidence, decision, risk_verdict,
                    search_results, outcome, latency_ms, prompt_tokens, completion_tokens, cost_usd, decided_at)
                   VALUES ('BTCUSDT', 'llm', 'BUY', 0.8, '{"reasoning":"breakout"}', ?1,
                    '[{"url":"https://x.test/a"}, "https://y.test/b"]', 'refused', 1200, 900, 100, '0.0031', 5);"#,
                [record.to_column()],
            )
            .unwrap();
        let snap = load(store.conn(), &request()).unwrap();
        let d = &snap.decisions[0];
        assert_eq!(d.reasoning, "breakout");
        assert_eq!(d.risk_checks.len(), 2);
        assert!(d.risk_checks[0].passed && !d.risk_checks[1].passed);
        assert_eq!(d.risk_checks[1].detail, "too big");
        assert_eq!(d.refusal_reasons, vec!["size: too big".to_string()]);
        assert_eq!(d.sources, vec!["https://x.test/a", "https://y.test/b"]);
        assert_eq!(d.cost_usd, Some(Quote(dec!(0.0031))));
        assert_eq!(d.latency_ms, Some(1200));
    }

    #[test]
    fn mode_follows_the_connection_row_and_testnet_connections_say_testnet() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        c.execute_batch(
            "INSERT INTO exchange_connections (name, exchange, is_testnet, created_at, updated_at)
             VALUES ('tn', 'binance', 1, 0, 0), ('main', 'binance', 0, 0, 0);",
        )
        .unwrap();
        assert_eq!(trading_mode(c, "paper").unwrap(), TradingMode::Paper);
        assert_eq!(trading_mode(c, "tn").unwrap(), TradingMode::Testnet);
        assert_eq!(trading_mode(c, "main").unwrap(), TradingMode::Live);
    }

    #[test]
    fn failing_scheduler_jobs_show_as_unhealthy_until_they_succeed_again() {
        let store = Store::open_in_memory().unwrap();
        let t = request().now_ms - 60_000;
        store
            .conn()
            .execute_batch(&format!(
                "INSERT INTO job_runs (job, started_at, finished_at, ok, error) VALUES
                   ('prices', {t}+1, {t}+2, 1, NULL), ('prices', {t}+3, {t}+4, 0, 'timeout'),
                   ('orders', {t}+1, {t}+2, 0, 'boom'), ('orders', {t}+5, {t}+6, 1, NULL);"
            ))
            .unwrap();
        let snap = load(store.conn(), &request()).unwrap();
        let find = |n: &str| snap.health.iter().find(|h| h.name == n).unwrap().clone();
        assert!(!find("prices").healthy);
        assert_eq!(find("prices").detail, "failing: timeout");
        assert!(find("orders").healthy);
        assert_eq!(find("orders").detail, "2 runs");
    }

    #[test]
    fn health_dots_turn_stale_when_the_last_run_is_older_than_a_few_intervals() {
        // Symptom 9: after the daemon (or the demo) stopped, its jobs' dots stayed green.
        let store = Store::open_in_memory().unwrap();
        let req = request();
        let (recent, old) = (req.now_ms - 60_000, req.now_ms - 2 * req.stale_after_ms);
        store
            .conn()
            .execute_batch(&format!(
                "INSERT INTO job_runs (job, started_at, finished_at, ok, error) VALUES
                   ('update_prices', {recent}, {recent}, 1, NULL),
                   ('monitor_orders', {old}, {old}, 1, NULL);"
            ))
            .unwrap();
        let snap = load(store.conn(), &req).unwrap();
        let find = |n: &str| snap.health.iter().find(|h| h.name == n).unwrap().clone();
        assert!(!find("update_prices").stale);
        let stopped = find("monitor_orders");
        assert!(stopped.healthy && stopped.stale, "{stopped:?}");
    }

    #[test]
    fn dashboard_counts_are_exact_past_the_history_cap() {
        // Symptom 9: "500 decisions" where 616 existed.
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        for i in 0..(HISTORY_ROWS + 116) {
            c.execute(
                "INSERT INTO decisions (symbol, engine, action, input_snapshot, outcome, decided_at)
                 VALUES ('BTCUSDT', 'rules', 'HOLD', '{}', 'hold', ?1)",
                [i as i64],
            )
            .unwrap();
        }
        let snap = load(c, &request()).unwrap();
        assert_eq!(snap.decisions.len(), HISTORY_ROWS);
        let db = snap.health.iter().find(|h| h.name == "database").unwrap();
        assert_eq!(db.detail, "0 trades, 616 decisions");
    }

    #[test]
    fn decision_detail_reads_the_verdict_the_trading_service_writes() {
        let store = Store::open_in_memory().unwrap();
        let v = serde_json::json!({"verdict": {"verdict": "refused", "reasons": ["too big"], "checks": [
            {"name": "heat", "passed": true, "detail": "2% < 6%"},
            {"name": "size", "passed": false, "detail": "too big"}]}, "execution": "refused"});
        store.conn().execute(
            "INSERT INTO decisions (symbol, engine, action, input_snapshot, risk_verdict, outcome, decided_at)
             VALUES ('BTCUSDT', 'rules', 'BUY', '{}', ?1, 'refused', 5)", [v.to_string()]).unwrap();
        let snap = load(store.conn(), &request()).unwrap();
        assert_eq!(snap.decisions[0].risk_checks.len(), 2);
    }

    #[test]
    fn a_kill_in_the_store_is_loaded_as_trading_paused() {
        let store = Store::open_in_memory().unwrap();
        let config = crate::domain::risk::RiskConfig::default();
        let mut b = crate::store::risk::load_breaker(store.conn(), "global").unwrap();
        crate::store::risk::record_transition(store.conn(), "global", &b.kill(&config, 5)).unwrap();
        let snap = load(store.conn(), &request()).unwrap();
        assert!(snap.trading_paused);
    }

    #[test]
    fn equity_is_the_engines_latest_snapshot_not_the_starting_balance_plus_pnl() {
        let store = Store::open_in_memory().unwrap();
        crate::store::equity::insert(store.conn(), "paper", Quote(dec!(9997.12)), Quote::ZERO, 5)
            .unwrap();
        let snap = load(store.conn(), &request()).unwrap();
        assert_eq!(snap.account.equity, Quote(dec!(9997.12)));
    }

    #[test]
    fn day_pnl_includes_the_entry_fee_of_a_round_trip() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let now = request().now_ms;
        c.execute_batch(&format!(
            "INSERT INTO positions (symbol, entry_price, quantity, realized_pnl, fees_paid, status, opened_at, closed_at, updated_at)
               VALUES ('BTCUSDT', '50000', '0', '-13.67', '9.18', 'closed', {now}, {now}, {now});
             INSERT INTO orders (id, client_order_id, symbol, side, order_type, status, quantity, created_at, updated_at, purpose, position_id)
               VALUES (1, 'x', 'BTCUSDT', 'SELL', 'MARKET', 'FILLED', '0.1', 0, 0, 'exit', 1);
             INSERT INTO trades (order_id, symbol, side, price, quantity, fee, realized_pnl, executed_at)
               VALUES (1, 'BTCUSDT', 'SELL', '49955', '0.1', '4.69', '-9.18', {now});"
        )).unwrap();
        let snap = load(c, &request()).unwrap();
        assert_eq!(snap.account.daily_pnl, Quote(dec!(-13.67)));
    }

    #[test]
    fn cancelled_oco_legs_no_longer_show_as_the_positions_stop_and_target() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        c.execute_batch(
            "INSERT INTO positions (symbol, entry_price, quantity, stop_loss, take_profit, realized_pnl, status, opened_at, updated_at)
               VALUES ('BTCUSDT', '50000', '0.1', '49000', '53000', '0', 'open', 0, 0);
             INSERT INTO orders (id, client_order_id, symbol, side, order_type, status, quantity, created_at, updated_at, stop_price, purpose, position_id, order_list_id)
               VALUES (1, 'sl', 'BTCUSDT', 'SELL', 'STOP_LOSS_LIMIT', 'CANCELED', '0.1', 0, 0, '49000', 'stop_loss', 1, 'l'),
                      (2, 'tp', 'BTCUSDT', 'SELL', 'LIMIT_MAKER', 'CANCELED', '0.1', 0, 0, NULL, 'take_profit', 1, 'l');",
        ).unwrap();
        let snap = load(c, &request()).unwrap();
        assert_eq!(snap.positions[0].stop, None);
        assert_eq!(snap.positions[0].target, None);
    }

    #[test]
    fn overlays_line_up_with_the_candles_and_warm_up_like_ta_lib() {
        let candles: Vec<Candle> = (0..60)
            .map(|i| Candle {
                open_time: i * 3_600_000,
                open: Price(Decimal::from(100 + i)),
                high: Price(Decimal::from(101 + i)),
                low: Price(Decimal::from(99 + i)),
                close: Price(Decimal::from(100 + i)),
                volume: Qty(Decimal::ONE),
            })
            .collect();
        let o = overlays(&candles);
        assert_eq!(o.sma.len(), 60);
        // SMA 20 first appears on the 20th close: mean of 100..=119 = 109.5
        assert_eq!(o.sma[18], None);
        assert_eq!(o.sma[19], Some(109.5));
        // closes only rise: RSI 14 is 100 once warmed up (lookback 14)
        assert_eq!(o.rsi[13], None);
        assert_eq!(o.rsi[14], Some(100.0));
        // MACD 12/26/9 has TA-Lib's lookback of 25 + 8 = 33; EMA 50 needs 50 closes
        assert_eq!(o.macd[32], None);
        assert!(o.macd[33].is_some() && o.macd_signal[33].is_some());
        assert_eq!(o.ema[48], None);
        assert!(o.ema[49].is_some());
    }

    #[test]
    fn backtest_runs_show_their_curve_drawdown_and_closed_trades_with_quantities() {
        use crate::domain::backtest::{ExitReason, TradeRecord};
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let closed = TradeRecord {
            entry_time: 1,
            entry_price: Price(dec!(100)),
            qty: Qty(dec!(0.5)),
            entry_fee: Quote::ZERO,
            exit_time: Some(2),
            exit_price: Some(Price(dec!(110))),
            exit_fee: Quote::ZERO,
            exit_reason: Some(ExitReason::Signal),
            pnl: Quote(dec!(5)),
            return_pct: 10.0,
            scaled_out: None,
        };
        let still_open = TradeRecord {
            entry_time: 3,
            exit_time: None,
            exit_price: None,
            exit_reason: None,
            ..closed.clone()
        };
        let trades = serde_json::to_string(&vec![closed, still_open]).unwrap();
        c.execute(
            "INSERT INTO backtests (status, strategy, symbol, interval, parameters, equity_curve,
                trades, created_at)
             VALUES ('completed', 'sma-cross', 'BTCUSDT', '1h', '{\"fast\":10}',
                '[[1,10000.0],[2,9000.0],[3,11000.0]]', ?1, 5)",
            [trades],
        )
        .unwrap();
        let snap = load(c, &request()).unwrap();
        let run = &snap.backtests[0];
        assert_eq!(run.status, "completed");
        assert_eq!(run.progress, None);
        assert_eq!(run.params, "fast=10");
        assert_eq!(run.equity_curve, vec![10000.0, 9000.0, 11000.0]);
        // 9 000 is 10 % under the 10 000 peak; 11 000 is a new peak.
        assert_eq!(run.drawdown, vec![0.0, -10.0, 0.0]);
        // The trade still open at the end has no exit to show.
        assert_eq!(run.trades.len(), 1);
        assert_eq!(run.trades[0].qty, Qty(dec!(0.5)));
        assert_eq!(run.trades[0].exit, Price(dec!(110)));
        assert_eq!(run.trades[0].pnl, Quote(dec!(5)));
    }

    #[test]
    fn a_4h_market_without_stored_4h_candles_is_built_from_the_stored_1h_ones() {
        let store = Store::open_in_memory().unwrap();
        let btc = Symbol::new("BTCUSDT").unwrap();
        let hour = Interval::H1.millis();
        // 2026-01-01 00:00 UTC, ten hours.
        let start = 1_767_225_600_000;
        let hourly: Vec<Candle> = (0..10)
            .map(|i| Candle {
                open_time: start + i * hour,
                open: Price(Decimal::from(100 + i)),
                high: Price(Decimal::from(200 + i)),
                low: Price(Decimal::from(50 - i)),
                close: Price(Decimal::from(101 + i)),
                volume: Qty(dec!(1)),
            })
            .collect();
        crate::store::candles::insert_candles(store.conn(), &btc, Interval::H1, &hourly).unwrap();
        let mut req = request();
        req.interval = Interval::H4;
        let snap = load(store.conn(), &req).unwrap();
        assert_eq!(snap.market.resampled_from, Some(Interval::H1));
        let m = &snap.market.candles;
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].open_time, start);
        assert_eq!(m[0].open, Price(dec!(100)));
        assert_eq!(m[0].high, Price(dec!(203)));
        assert_eq!(m[0].low, Price(dec!(47)));
        assert_eq!(m[0].close, Price(dec!(104)));
        assert_eq!(m[0].volume, Qty(dec!(4)));
        assert_eq!(snap.market.overlays.sma.len(), 3);
        // Stored 1h candles are read as they are.
        let snap = load(store.conn(), &request()).unwrap();
        assert_eq!(
            (snap.market.candles.len(), snap.market.resampled_from),
            (10, None)
        );
    }

    #[test]
    fn buy_and_hold_follows_the_closes_from_the_first_open() {
        let candles: Vec<Candle> = (0..3)
            .map(|i| Candle {
                open_time: i * 60_000,
                open: Price(dec!(100)),
                high: Price(dec!(130)),
                low: Price(dec!(90)),
                close: Price(Decimal::from(110 + 10 * i)),
                volume: Qty(dec!(1)),
            })
            .collect();
        assert_eq!(
            buy_and_hold(1000.0, &[0, 60_000, 120_000], &candles),
            vec![1100.0, 1200.0, 1300.0]
        );
        // A time without a stored candle: no benchmark rather than a wrong one.
        assert!(buy_and_hold(1000.0, &[0, 90_000], &candles).is_empty());
    }

    #[test]
    fn drawdown_is_measured_from_the_running_peak() {
        // peak 110 then 99: (99 - 110) / 110 = -10 %
        let dd = drawdown(&[100.0, 110.0, 99.0, 120.0]);
        assert_eq!(dd[0], 0.0);
        assert_eq!(dd[1], 0.0);
        assert!((dd[2] + 10.0).abs() < 1e-9);
        assert_eq!(dd[3], 0.0);
    }
}
