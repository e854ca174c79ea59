//! The one integration-test binary: each module is a flow tested end to end.

mod architecture;
mod backtest_cli;
mod backtest_engine;
mod backtest_parity;
mod cli;
mod decisions;
mod exchange_behaviour;
mod exchange_cli;
mod exchange_common;
mod exchange_faults;
mod exchange_paper;
mod exchange_rate_limit;
mod indicators_parity;
mod keyring_keyutils;
mod keys_cli;
mod live_stream;
mod live_user_data;
mod market_data;
mod notifications;
mod parser_robustness;
mod risk;
mod secret_leak;
mod tui_tmux;
