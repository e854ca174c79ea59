//! Live market data from Binance's combined WebSocket streams: wire decoding, the local order
//! book sync manager, the REST calls that seed and back-fill it, and the reconnecting stream
//! task that publishes on the event bus.

pub mod candle_sink;
pub mod config;
pub mod execution;
pub mod rest;
pub mod stream;
pub mod sync;
pub mod user_data;
pub mod wire;

pub use candle_sink::StoreCandleSink;
pub use config::StreamConfig;
pub use rest::{KlineSource, RestMarketData};
pub use stream::{ClosedCandleSink, MarketStream, SharedBook, StreamError, StreamSpec};
pub use sync::{BookSync, DepthSnapshotSource, SnapshotError, SnapshotStep, SyncStep};
