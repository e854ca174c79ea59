//! `trademind live status|confirm`: the typed confirmation that, together with `live = true`,
//! unlocks orders on Binance production (see `domain::trading::mode`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::{Context, UsageError};
use crate::domain::trading::mode::{confirmation_phrase, is_confirmation};
use crate::store::live_confirmations;

#[derive(Debug, Subcommand)]
pub enum LiveCommand {
    /// Show whether live trading is enabled in the config and confirmed for a connection.
    Status {
        /// Connection to check (default: `trading.connection`).
        #[arg(long)]
        connection: Option<String>,
    },
    /// Confirm once, by typing a sentence, that a connection may trade real money.
    Confirm {
        /// Connection to confirm (default: `trading.connection`).
        #[arg(long)]
        connection: Option<String>,
    },
}

#[derive(Serialize)]
struct Status {
    connection: String,
    live_enabled_in_config: bool,
    confirmed_at: Option<String>,
}

pub fn run(cmd: LiveCommand, ctx: &Context) -> Result<()> {
    match cmd {
        LiveCommand::Status { connection } => {
            let connection =
                connection.unwrap_or_else(|| ctx.settings().trading.connection.clone());
            let store = ctx.open_store()?;
            let confirmation = live_confirmations::get(store.conn(), &connection)?;
            let status = Status {
                live_enabled_in_config: ctx.settings().trading.live,
                confirmed_at: confirmation.and_then(|c| {
                    chrono::DateTime::from_timestamp_millis(c.confirmed_at_ms)
                        .map(|t| t.to_rfc3339())
                }),
                connection,
            };
            ctx.emit(&status, || {
                println!("connection:       {}", status.connection);
                println!(
                    "live in config:   {}",
                    if status.live_enabled_in_config {
                        "true"
                    } else {
                        "false (orders on production are refused)"
                    }
                );
                println!(
                    "confirmed:        {}",
                    status
                        .confirmed_at
                        .as_deref()
                        .unwrap_or("no (run `trademind live confirm`)")
                );
            })
        }
        LiveCommand::Confirm { connection } => {
            let connection =
                connection.unwrap_or_else(|| ctx.settings().trading.connection.clone());
            if connection == "paper" {
                return Err(UsageError(
                    "the paper connection never trades real money; name a Binance connection with --connection".into(),
                )
                .into());
            }
            let phrase = confirmation_phrase(&connection);
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                let mut err = std::io::stderr();
                writeln!(
                    err,
                    "Orders on {connection} will use REAL MONEY on Binance production."
                )?;
                write!(err, "Type exactly \"{phrase}\": ")?;
                err.flush()?;
            }
            let mut typed = String::new();
            stdin.lock().take_line(&mut typed)?;
            if !is_confirmation(&typed, &connection) {
                return Err(UsageError(format!(
                    "not confirmed: the sentence must be typed exactly as \"{phrase}\""
                ))
                .into());
            }
            let store = ctx.open_store()?;
            let now = chrono::Utc::now().timestamp_millis();
            live_confirmations::record(store.conn(), &connection, &phrase, now)?;
            #[derive(Serialize)]
            struct Confirmed<'a> {
                connection: &'a str,
                confirmed: bool,
                live_enabled_in_config: bool,
            }
            let live = ctx.settings().trading.live;
            ctx.emit(
                &Confirmed {
                    connection: &connection,
                    confirmed: true,
                    live_enabled_in_config: live,
                },
                || {
                    println!("live trading confirmed for {connection}");
                    if !live {
                        println!("note: `live = false` in the config still refuses every production order");
                    }
                },
            )
        }
    }
}

trait TakeLine {
    fn take_line(&mut self, buf: &mut String) -> std::io::Result<usize>;
}

impl<R: BufRead> TakeLine for R {
    /// One line, at most 1 KiB: the sentence is short and stdin may be anything.
    fn take_line(&mut self, buf: &mut String) -> std::io::Result<usize> {
        use std::io::Read;
        self.take(1024).read_line(buf)
    }
}
