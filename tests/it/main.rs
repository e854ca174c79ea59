//! The one integration-test binary: each module is a flow tested end to end.

mod architecture;
mod cli;
mod indicators_parity;
mod market_data;
mod risk;
mod tui_tmux;
