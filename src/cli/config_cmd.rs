//! `trademind config check|show`.

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::Context;
use crate::config::{Origin, describe};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, environment, flags); exit 2 with file:line and key if bad.
    Check,
    /// Show the effective configuration and where each value came from.
    Show,
}

#[derive(Serialize)]
struct Row {
    key: String,
    value: String,
    origin: Origin,
}

pub fn run(cmd: ConfigCommand, ctx: &Context) -> Result<()> {
    match cmd {
        ConfigCommand::Check => {
            #[derive(Serialize)]
            struct Checked {
                ok: bool,
                file: Option<String>,
            }
            let file = ctx.loaded.file.as_ref().map(|p| p.display().to_string());
            ctx.emit(
                &Checked {
                    ok: true,
                    file: file.clone(),
                },
                || match &file {
                    Some(f) => println!("config OK: {f}"),
                    None => println!("config OK: built-in defaults (no config file found)"),
                },
            )
        }
        ConfigCommand::Show => {
            let rows: Vec<Row> = describe(&ctx.loaded)
                .into_iter()
                .map(|(key, value, origin)| Row { key, value, origin })
                .collect();
            ctx.emit(&rows, || {
                let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
                for r in &rows {
                    println!("{:<width$}  {:<24}  # {}", r.key, r.value, r.origin);
                }
                println!(
                    "{:<width$}  {:<24}  # resolved",
                    "data_dir (effective)",
                    ctx.data_dir().display().to_string()
                );
            })
        }
    }
}
