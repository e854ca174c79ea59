//! Risk: RiskManagementService (sizing, limits), the trading circuit breaker, PortfolioHeatService.
//!
//! Everything here is pure and exact: no clock (time arrives as `TimestampMs`), no I/O, Decimal
//! money. `validate` has the last word on every order; the backtest calls the same code.

pub mod book;
pub mod breaker;
pub mod config;
pub mod heat;
pub mod protections;
pub mod service;
pub mod sizing;

#[cfg(test)]
mod tests;

pub use book::{BookInputs, BookMeasures, describe_trip, measure_book};
pub use breaker::{
    BreakerInputs, BreakerReason, BreakerState, BreakerTransition, CircuitBreaker, ClosedTrade,
    consecutive_losses, next_utc_midnight,
};
pub use config::{BreakerAction, BreakerRecovery, RiskConfig, RiskConfigError, SizingMode};
pub use heat::{OpenPosition, PortfolioHeat, PortfolioHeatService, PositionHeat};
pub use protections::{StopExits, StopProtection, stop_protection};
pub use service::{
    Check, IntentKind, MarketSnapshot, RiskContext, RiskManagementService, RiskVerdict,
    TradeIntent, daily_loss_pct, drawdown_pct, validate,
};
pub use sizing::{Sizing, SizingBasis, SizingError, SizingInputs, kelly_fraction, size_position};
