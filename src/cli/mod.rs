//! The command line (clap derive) and the one-shot subcommands. Thin: each command calls into
//! `app`/`store`/`services`, prints (human text, or JSON with `--json`) and returns.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use crate::config::{LoadedConfig, Settings};
use crate::store::Store;

pub mod backtest;
pub mod backtest_engine;
pub mod backtest_shard;
pub mod bench;
pub mod config_cmd;
pub mod db;
pub mod decide;
pub mod demo;
pub mod exchange;
pub mod keys;
pub mod leaderboard;
pub mod live;
pub mod market;
pub mod notify;
pub mod risk;
pub mod status;
pub mod strategy;
pub mod trading;
pub mod watch;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
Modes:
  trademind demo          the whole loop offline on bundled data, in the TUI (--daemon: headless)
  trademind               open the terminal interface (TUI)
  trademind --daemon      run headless: scheduler, trading, alerts; logs to stderr and the log file
  trademind <COMMAND>     do one job and exit

Exit codes:
  0  success
  1  runtime failure (network, exchange, database, ...)
  2  bad usage or bad configuration

Configuration layers (later wins): built-in defaults < config file < TRADEMIND_<SECTION>__<KEY>
environment variables < command-line flags. Credentials are never read from the config file:
they live in the OS keyring.";

#[derive(Debug, Parser)]
#[command(name = "trademind", version, about = "A terminal trading cockpit: market data, LLM decisions, deterministic risk, execution and backtests", after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    /// Run headless (no TUI): the scheduler, trading and alerts, until SIGINT/SIGTERM.
    #[arg(long, global = false)]
    pub daemon: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file (default: the platform config dir's trademind/config.toml, if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Directory for the database and logs (default: the platform data dir).
    #[arg(long, global = true, value_name = "PATH")]
    pub data_dir: Option<PathBuf>,
    /// Log level: trace, debug, info, warn, error.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log line format on stderr and in the log file: text, or json (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole loop offline on the bundled January 2025 candles, in the TUI (or --daemon).
    Demo(demo::DemoArgs),
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Manage strategies (what trades, how often, with which decision engine).
    #[command(subcommand)]
    Strategy(strategy::StrategyCommand),
    /// Manage exchange connections (credentials live in the keyring).
    #[command(subcommand)]
    Connection(strategy::ConnectionCommand),
    /// Market data: import candles from CSV, download them from Binance.
    #[command(subcommand)]
    Data(market::DataCommand),
    /// Show the latest indicator values computed from the stored candles.
    Indicators(market::IndicatorsArgs),
    /// Time the full indicator set as linked into this binary, on a candle CSV.
    BenchIndicators(bench::BenchIndicatorsArgs),
    /// Risk limits and the trading circuit breaker.
    #[command(subcommand)]
    Risk(risk::RiskCommand),
    /// Live trades, closed candles and the top of the order book for a symbol, until Ctrl-C.
    Watch(watch::WatchArgs),
    /// Backtest a strategy on stored or CSV candles; list, show and delete stored runs.
    Backtest(Box<backtest::BacktestArgs>),
    /// Look at the exchange: symbol filters, balances, connectivity.
    Exchange(exchange::ExchangeArgs),
    /// Decide on a symbol (rules or LLM) and record it; executes nothing.
    Decide(decide::DecideArgs),
    /// List recorded decisions (the flight recorder), optionally with LLM cost totals.
    Decisions(decide::DecisionsArgs),
    /// API keys in the OS keyring: set (hidden prompt or stdin), list, delete, test.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Live-trading switch: status and the one-time typed confirmation.
    #[command(subcommand)]
    Live(live::LiveCommand),
    /// Positions, open orders, the circuit breaker and job health, read from the database.
    Status,
    /// E-mail alerts through Resend.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Decide on a symbol and trade the decision once: risk check, entry, exchange-side protection.
    Execute(trading::ExecuteArgs),
    /// Open positions (or `--closed`) with stop, target and PnL.
    Positions(trading::PositionsArgs),
    /// Orders as recorded (`--open` for those that can still trade).
    Orders(trading::OrdersArgs),
    /// Fills, newest first, with fees and realised PnL.
    Trades(trading::TradesArgs),
    /// Close a position at market (its protective orders cancelled first).
    Close(trading::CloseArgs),
    /// Cancel an open order by client order id (an OCO leg cancels its list).
    Cancel(trading::CancelArgs),
    /// Protect an unprotected position again from its stored stop and target (after its
    /// protection was cancelled on the exchange or with `cancel`).
    Protect(trading::ProtectArgs),
    /// Bring orders and positions in line with the exchange now: lost answers resolved, filled
    /// entries booked, unprotected positions protected; exit 1 if something is left for you.
    Reconcile(trading::ReconcileArgs),
    /// Pause trading: no new entries until `trademind resume` (the daemon sees it at once).
    /// `risk kill` is the kill switch.
    Pause(trading::PauseArgs),
    /// Lift a pause or the kill switch.
    Resume,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A command that ran and failed, with what it found; `--json` prints it as
/// `{"error": message, "details": details}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    pub message: String,
    pub details: serde_json::Value,
}

/// A usage or configuration problem: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// What every command gets: the validated settings and the global flags.
pub struct Context {
    pub loaded: LoadedConfig,
    pub json: bool,
}

impl Context {
    pub fn settings(&self) -> &Settings {
        &self.loaded.settings
    }

    pub fn data_dir(&self) -> PathBuf {
        self.loaded.settings.data_dir()
    }

    /// Open (creating and migrating) the database in the data dir.
    pub fn open_store(&self) -> Result<Store> {
        Ok(Store::open_in(&self.data_dir())?)
    }

    /// For commands that only read (`status`): the store as `open_store` opens it, or, when
    /// the data dir cannot be written (a read-only mount, another user's directory) but holds a
    /// database, that database opened read-only.
    pub fn open_store_for_reading(&self) -> Result<Store> {
        match Store::open_in(&self.data_dir()) {
            Ok(store) => Ok(store),
            Err(
                e @ (crate::store::StoreError::DataDir { .. }
                | crate::store::StoreError::Open { .. }),
            ) => {
                let db = self.db_path();
                if !db.is_file() {
                    return Err(e.into());
                }
                tracing::info!(error = %e, "the data dir is not writable: reading the database read-only");
                Ok(Store::open_read_only(&db)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Credentials as `[secrets]` configures them (environment first, then the keyring).
    pub fn secrets(&self) -> crate::secrets::Secrets {
        crate::secrets::Secrets::from_config(&self.settings().secrets, &self.data_dir())
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir().join(DB_FILE)
    }

    /// Print a value as pretty JSON, or run the human printer.
    pub fn emit<T: serde::Serialize>(&self, value: &T, human: impl FnOnce()) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            human();
        }
        Ok(())
    }

    /// Show what a command found and then fail with `failure`, if any. With `--json` nothing
    /// is printed here: the findings travel in the error (`Failed`), so stdout holds exactly
    /// one JSON document, the error object `main` prints.
    pub fn emit_or_fail<T: serde::Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(),
        failure: Option<String>,
    ) -> Result<()> {
        let Some(message) = failure else {
            return self.emit(value, human);
        };
        if self.json {
            return Err(Failed {
                message,
                details: serde_json::to_value(value)?,
            }
            .into());
        }
        human();
        Err(anyhow::anyhow!(message))
    }
}

pub use crate::store::DB_FILE;

/// Run one subcommand.
pub async fn run(command: Command, ctx: &Context) -> Result<()> {
    match command {
        Command::Demo(args) => demo::run(args, ctx).await,
        Command::Config(cmd) => config_cmd::run(cmd, ctx),
        Command::Db(cmd) => db::run(cmd, ctx),
        Command::Strategy(cmd) => strategy::run(cmd, ctx),
        Command::Decide(args) => decide::run_decide(args, ctx).await,
        Command::Decisions(args) => decide::run_decisions(args, ctx).await,
        Command::Connection(cmd) => strategy::run_connection(cmd, ctx),
        Command::Data(cmd) => market::run_data(cmd, ctx).await,
        Command::Indicators(args) => market::run_indicators(args, ctx),
        Command::BenchIndicators(args) => bench::run(args, ctx),
        Command::Risk(cmd) => risk::run(cmd, ctx),
        Command::Watch(args) => watch::run(args, ctx).await,
        Command::Backtest(args) => backtest::run(*args, ctx).await,
        Command::Exchange(args) => exchange::run(args, ctx).await,
        Command::Keys(cmd) => keys::run(cmd, ctx).await,
        Command::Live(cmd) => live::run(cmd, ctx),
        Command::Notify(cmd) => notify::run(cmd, ctx).await,
        Command::Status => status::run(ctx),
        Command::Execute(args) => trading::run_execute(args, ctx).await,
        Command::Positions(args) => trading::run_positions(args, ctx),
        Command::Orders(args) => trading::run_orders(args, ctx),
        Command::Trades(args) => trading::run_trades(args, ctx),
        Command::Close(args) => trading::run_close(args, ctx).await,
        Command::Cancel(args) => trading::run_cancel(args, ctx).await,
        Command::Protect(args) => trading::run_protect(args, ctx).await,
        Command::Reconcile(args) => trading::run_reconcile(args, ctx).await,
        Command::Pause(args) => trading::run_pause(args, ctx),
        Command::Resume => trading::run_resume(ctx),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "trademind", &mut std::io::stdout());
            Ok(())
        }
    }
}
