//! Live market data from Binance's combined WebSocket streams: wire decoding, the local order
//! book sync manager, the REST calls that seed and back-fill it, the reconnecting stream task
//! that publishes on the event bus, the account's user-data stream and its execution reports
//! handed to a sink (the daemon's trading service books them), and `start_market_streams`, the
//! daemon's single entry point.

pub mod candle_sink;
pub mod config;
mod depth_scan;
pub mod execution;
pub mod rest;
pub mod runner;
pub mod stream;
pub mod sync;
pub mod user_data;
pub mod wire;

pub use candle_sink::StoreCandleSink;
pub use config::StreamConfig;
pub use rest::{KlineSource, RestMarketData};
pub use runner::{MarketStreams, Marks, run_market_streams, start_market_streams};
pub use stream::{ClosedCandleSink, MarketStream, SharedBook, StreamError, StreamSpec};
pub use sync::{BookSync, DepthSnapshotSource, SnapshotError, SnapshotStep, SyncStep};
pub use user_data::{ExecutionSink, UserDataSettings, apply_execution_report, run_user_data};
