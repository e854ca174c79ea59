//! Adapters to the outside world, each behind a trait the application owns.

pub mod exchange;
pub mod llm;
pub mod market_data;
pub mod monitoring;
pub mod notification;
