//! Wiring: the event bus, the scheduler, the decision -> risk -> execution flow, and the
//! snapshots the faces (TUI, daemon, CLI) read.

pub mod backtest;
pub mod bus;
pub mod control;
pub mod daemon;
pub mod decide;
pub mod demo;
pub mod key_check;
pub mod scheduler;
pub mod snapshot;
pub mod strategy_engine;
pub mod streams;
pub mod trading;
pub mod venue;

pub use bus::{Event, EventBus};
