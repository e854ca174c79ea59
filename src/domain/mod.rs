//! The pure domain: no I/O, no clock reads, no async. Everything here is deterministic and is
//! exercised identically by live trading and by backtests.

pub mod backtest;
pub mod decision;
pub mod market;
pub mod money;
pub mod risk;
pub mod symbol;
pub mod trading;

pub use money::{Price, Qty, Quote};
pub use symbol::Symbol;
