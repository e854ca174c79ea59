//! Wiring: the scheduler, the decision -> risk -> execution flow, and the
//! snapshots the faces (TUI, daemon, CLI) read.

pub mod backtest;
pub mod backtest_compare;
pub mod backtest_series;
pub mod backtest_sweep;
pub mod compare;
pub mod control;
pub mod daemon;
pub mod daily_summary;
pub mod decide;
pub mod demo;
pub mod key_check;
pub mod leaderboard;
pub mod llm_backtest;
pub mod reflect;
pub mod scheduler;
pub mod shadow;
pub mod snapshot;
pub mod strategy_engine;
pub mod streams;
pub mod telegram_backtest;
pub mod telegram_bot;
pub mod trading;
pub mod venue;

/// The bus lives below `app/` (`crate::bus`) so adapters can publish without reaching up;
/// re-exported here for the wiring that has always named it `app::bus`.
pub use crate::bus::{self, Event, EventBus};
