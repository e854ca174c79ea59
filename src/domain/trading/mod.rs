//! Orders, fills, exchange filters and positions.

pub mod filters;
pub mod mode;
pub mod order;
pub mod plan;
pub mod position;
pub mod scale_out;

pub use filters::{FilterViolation, SymbolFilters};
pub use mode::{LiveConfirmation, LiveTradingRefused, TradingMode, authorize_order};
pub use order::{Fill, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce};
pub use position::{
    Allocation, FillEffect, InvalidAllocation, Position, PositionError, PositionFill,
    PositionService, PositionSide,
};
