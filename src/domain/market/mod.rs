//! Market data: candles and intervals; indicators (`calculate_indicators`) and order-book
//! analytics (`OrderBookService`) live beside them.

pub mod book_analytics;
pub mod candle;
pub mod indicators;
pub mod orderbook;
pub mod replay_market;
pub mod resample;

pub use book_analytics::{
    DepthBand, FillError, FillEstimate, OrderBookService, Spread, Wall, Walls,
};
pub use candle::{Candle, CandleColumns, Interval, TimestampMs};
pub use indicators::{
    Adx, Atr, Bollinger, Ema, IndicatorParams, IndicatorSet, IndicatorValues, Indicators, Macd,
    Obv, Ohlcv, Rsi, Signal, Sma, Stochastic, Vwap, Wma, calculate_indicators,
    calculate_indicators_into, simple_signal, simple_signal_at,
};
pub use orderbook::{BookSyncError, DiffOutcome, OrderBook};
pub use replay_market::{ReplayTrade, candle_book, candle_trades};
pub use resample::{ResampleError, resample};
