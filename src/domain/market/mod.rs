//! Market data: candles and intervals; indicators (`calculate_indicators`) and order-book
//! analytics (`OrderBookService`) live beside them.

pub mod candle;

pub use candle::{Candle, CandleColumns, Interval, TimestampMs};
