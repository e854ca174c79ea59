//! TradeMind: a single-binary terminal trading application.
//!
//! Layout (arrows point inward): `domain` is pure; `services` and `store` adapt the outside world;
//! `app` wires them; `cli`, `tui` and the daemon are the faces. See `README.md`.

pub mod app;
pub mod bus;
pub mod cli;
pub mod config;
pub mod domain;
pub mod format;
pub mod logging;
pub mod memory;
pub mod secrets;
pub mod services;
pub mod store;
#[cfg(feature = "fake-servers")]
pub mod testkit;
pub mod tui;
