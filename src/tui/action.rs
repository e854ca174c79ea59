//! Messages into the interface: what a key, a mouse event or a background report means, and the
//! effects the pure update asks its caller to carry out (the interface itself does no I/O).

use crate::app::bus::Event;
use crate::app::snapshot::Snapshot;
use crate::domain::market::Interval;
use crate::domain::symbol::Symbol;

/// The cockpit's screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screen {
    Dashboard,
    Positions,
    Trades,
    Decisions,
    Market,
    Backtests,
    Risk,
    Logs,
}

impl Screen {
    pub const ALL: [Screen; 8] = [
        Screen::Dashboard,
        Screen::Positions,
        Screen::Trades,
        Screen::Decisions,
        Screen::Market,
        Screen::Backtests,
        Screen::Risk,
        Screen::Logs,
    ];

    pub fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    pub fn from_index(i: usize) -> Screen {
        Screen::ALL[i % Screen::ALL.len()]
    }

    pub fn title(self) -> &'static str {
        match self {
            Screen::Dashboard => "Dashboard",
            Screen::Positions => "Positions & orders",
            Screen::Trades => "Trades",
            Screen::Decisions => "Decisions",
            Screen::Market => "Market",
            Screen::Backtests => "Backtests",
            Screen::Risk => "Risk",
            Screen::Logs => "Logs",
        }
    }

    /// Tab label when the terminal is narrow.
    pub fn short(self) -> &'static str {
        match self {
            Screen::Dashboard => "Dash",
            Screen::Positions => "Pos",
            Screen::Trades => "Trades",
            Screen::Decisions => "Decis",
            Screen::Market => "Market",
            Screen::Backtests => "Backt",
            Screen::Risk => "Risk",
            Screen::Logs => "Logs",
        }
    }

    /// Tab label when there is room.
    pub fn long(self) -> &'static str {
        match self {
            Screen::Positions => "Positions",
            other => other.title(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    // Navigation.
    NextScreen,
    PrevScreen,
    GoTo(Screen),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Left,
    Right,
    Enter,
    Back,
    // Global commands.
    ShowHelp,
    OpenCommandLine,
    TogglePause,
    Quit,
    // Screen commands.
    ClosePosition,
    /// Put the selected position's protection back (`trademind protect`).
    ProtectPosition,
    CancelOrder,
    NewBacktest,
    /// Mark the selected run for a comparison (or unmark it).
    ToggleMark,
    /// Put the marked runs side by side.
    CompareBacktests,
    KillSwitch,
    CycleStrategyFilter,
    CycleSymbolFilter,
    CycleLogLevel,
    CycleMarketSymbol,
    CycleMarketInterval,
    Refresh,
    // Dialogs and text entry.
    Confirm,
    Deny,
    Input(char),
    Backspace,
    NextField,
    PrevField,
    /// Tab on the `:` line: complete the command, strategy or symbol being typed.
    Complete,
    Submit,
    // Background reports.
    SnapshotLoaded(Box<Snapshot>),
    LoadFailed(String),
    Bus {
        event: Box<Event>,
        at_ms: i64,
    },
    Lagged(u64),
    /// The shown symbol's order book from the interface's own market stream.
    BookLevels {
        symbol: Symbol,
        book: crate::app::snapshot::BookView,
    },
    Status(String),
    /// Something the user asked for could not be done.
    Warn(String),
    Resized,
}

/// A backtest the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestRequest {
    pub strategy: String,
    pub symbol: Symbol,
    pub interval: Interval,
    pub params: Vec<(String, String)>,
    /// First candle (ms, UTC) and end (exclusive); `None`: every stored candle.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Work the caller does on the update's behalf.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Quit,
    PauseTrading,
    ResumeTrading,
    /// Close one book's position: the selected row's (`book`: its strategy's id, `None` the
    /// default book), not whichever position in `symbol` comes first.
    ClosePosition {
        symbol: Symbol,
        book: Option<i64>,
    },
    /// Protect one book's position again from its stored stop and target, as `trademind
    /// protect SYMBOL --strategy NAME` does (`TradingService::protect`).
    ProtectPosition {
        symbol: Symbol,
        book: Option<i64>,
    },
    CancelOrder {
        symbol: Symbol,
        client_order_id: String,
    },
    StartBacktest(BacktestRequest),
    EngageKillSwitch,
    /// Reload the snapshot from the store (debounced by the runner).
    Refresh,
    /// Show another market; the next load reads its candles.
    SwitchMarket {
        symbol: Symbol,
        interval: Interval,
    },
}
