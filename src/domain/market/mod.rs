//! Market data: candles and intervals; indicators (`calculate_indicators`) and order-book
//! analytics (`OrderBookService`) live beside them.

pub mod candle;
pub mod indicators;

pub use candle::{Candle, CandleColumns, Interval, TimestampMs};
pub use indicators::{
    Adx, Atr, Bollinger, Ema, IndicatorParams, IndicatorSet, IndicatorValues, Indicators, Macd,
    Obv, Ohlcv, Rsi, Signal, Sma, Stochastic, Vwap, Wma, calculate_indicators, simple_signal,
};
