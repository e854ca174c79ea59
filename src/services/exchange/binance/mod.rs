//! The Binance Spot REST adapter: endpoint types, wire models, request signing, the client.

pub mod client;
pub mod endpoints;
pub mod models;
pub mod signing;

pub use client::{BinanceClient, BinanceConfig};
pub use signing::Credentials;
