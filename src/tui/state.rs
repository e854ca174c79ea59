//! The interface's state: the latest snapshot plus what the user is looking at (screen,
//! selections, filters, dialogs). Only `update` changes it.

use crate::app::snapshot::{LogLevel, Snapshot};
use crate::domain::market::Interval;
use crate::format::{Precision, Precisions};

use super::action::{Effect, Screen};

/// Which table of the Positions screen has the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionsFocus {
    #[default]
    Positions,
    Orders,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmDialog {
    pub question: String,
    pub effect: Effect,
}

/// The new-backtest form: text fields, validated on submit.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestForm {
    pub strategy: String,
    pub symbol: String,
    pub interval: String,
    /// The date range, as typed (empty: every stored candle).
    pub from: String,
    pub to: String,
    pub params: String,
    pub focus: usize,
    pub error: Option<String>,
}

impl BacktestForm {
    pub const LABELS: [&'static str; 6] =
        ["Strategy", "Symbol", "Interval", "From", "To", "Parameters"];

    pub fn field(&self, i: usize) -> &str {
        match i {
            0 => &self.strategy,
            1 => &self.symbol,
            2 => &self.interval,
            3 => &self.from,
            4 => &self.to,
            _ => &self.params,
        }
    }

    pub fn field_mut(&mut self, i: usize) -> &mut String {
        match i {
            0 => &mut self.strategy,
            1 => &mut self.symbol,
            2 => &mut self.interval,
            3 => &mut self.from,
            4 => &mut self.to,
            _ => &mut self.params,
        }
    }

    /// What an empty field means, shown in its place.
    pub fn placeholder(i: usize) -> &'static str {
        match i {
            3 => "YYYY-MM-DD (UTC); empty: the first stored candle",
            4 => "YYYY-MM-DD, exclusive; empty: the last stored candle",
            _ => "",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Overlay {
    #[default]
    None,
    Help,
    Confirm(ConfirmDialog),
    Command(String),
    BacktestForm(BacktestForm),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusLine {
    pub kind: StatusKind,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct App {
    pub snapshot: Snapshot,
    pub screen: Screen,
    pub overlay: Overlay,
    pub status: Option<StatusLine>,
    /// Cursor row per screen (indexed by `Screen::index`).
    pub selected: [usize; 8],
    pub order_selected: usize,
    pub positions_focus: PositionsFocus,
    pub trades_strategy: Option<String>,
    pub trades_symbol: Option<String>,
    pub log_min_level: LogLevel,
    pub backtest_detail: bool,
    /// Runs marked (space) for a comparison, by id, in the order marked: the first is the
    /// baseline.
    pub backtest_marked: Vec<i64>,
    /// The comparison open on the Backtests screen (`c`), as `backtest compare` computes it.
    pub backtest_comparison: Option<crate::app::backtest_compare::Comparison>,
    /// The selected decision shown full screen (Enter), scrolled by `detail_scroll` lines.
    pub decision_detail: bool,
    pub detail_scroll: u16,
    /// The market the user switched to, until a load brings it (then `loading…` is answered).
    pub market_loading: Option<(crate::domain::symbol::Symbol, Interval)>,
    pub should_quit: bool,
    /// How each symbol's prices and quantities are written (its tick and step).
    pub precisions: Precisions,
    /// The account's currency: money is shown in it.
    pub currency: String,
    /// Each job's last successful run seen on the bus (run's clock): heartbeats go to the
    /// health panel, not the log.
    pub heartbeats: std::collections::BTreeMap<String, i64>,
    /// Commands run on the `:` line, oldest first, and where ↑/↓ is in them.
    pub command_history: Vec<String>,
    pub history_pos: Option<usize>,
    /// Set by `update` whenever something visible changed; the runner draws and clears it.
    pub dirty: bool,
    /// The interface shows the demo's replay (`trademind demo`), not the user's own account.
    pub in_demo: bool,
}

/// Log lines kept for the Logs screen; older ones are dropped.
pub const MAX_LOG_LINES: usize = 2000;

impl App {
    pub fn new(snapshot: Snapshot) -> App {
        let currency = Precision::guess(snapshot.market.symbol.as_str()).quote;
        App {
            precisions: Precisions::default(),
            currency,
            heartbeats: std::collections::BTreeMap::new(),
            command_history: Vec::new(),
            history_pos: None,
            snapshot,
            screen: Screen::Dashboard,
            overlay: Overlay::None,
            status: None,
            selected: [0; 8],
            order_selected: 0,
            positions_focus: PositionsFocus::Positions,
            trades_strategy: None,
            trades_symbol: None,
            log_min_level: LogLevel::Info,
            backtest_detail: false,
            backtest_marked: Vec::new(),
            backtest_comparison: None,
            decision_detail: false,
            detail_scroll: 0,
            market_loading: None,
            should_quit: false,
            dirty: true,
            in_demo: false,
        }
    }

    pub fn selected(&self, screen: Screen) -> usize {
        self.selected[screen.index()]
    }

    /// Trades after the strategy and symbol filters, newest first.
    pub fn visible_trades(&self) -> Vec<&crate::app::snapshot::TradeView> {
        self.snapshot
            .trades
            .iter()
            .filter(|t| {
                self.trades_strategy
                    .as_ref()
                    .is_none_or(|s| &t.strategy == s)
            })
            .filter(|t| {
                self.trades_symbol
                    .as_ref()
                    .is_none_or(|s| t.symbol.as_str() == s)
            })
            .collect()
    }

    /// Log lines at or above the chosen level, oldest first.
    pub fn visible_logs(&self) -> Vec<&crate::app::snapshot::LogLine> {
        self.snapshot
            .logs
            .iter()
            .filter(|l| l.level >= self.log_min_level)
            .collect()
    }

    /// How `symbol`'s prices and quantities are written.
    pub fn precision(&self, symbol: &str) -> Precision {
        self.precisions.get(symbol)
    }

    /// Now on the run's clock, as of the snapshot shown: "today" in dates means this day.
    pub fn now_ms(&self) -> i64 {
        self.snapshot.as_of_ms
    }

    pub fn market_interval(&self) -> Interval {
        self.snapshot.market.interval
    }
}
