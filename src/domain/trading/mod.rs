//! Orders, fills, exchange filters and positions.

pub mod filters;
pub mod order;

pub use filters::{FilterViolation, SymbolFilters};
pub use order::{Fill, Order, OrderRequest, OrderStatus, OrderType, Side, TimeInForce};
