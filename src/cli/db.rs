//! `trademind db migrate|status|check`.

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::Context;
use crate::store::candles::{SeriesCache, series_caches};
use crate::store::{self, Store};

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the database if needed and bring its schema up to date (safe to run again).
    Migrate,
    /// Show the database file, its schema version and tables, and each stored candle series
    /// with whether its columnar side file (`history/`) is fresh.
    Status,
    /// Check the whole database file for damage (`PRAGMA integrity_check`); exit 1 if damaged.
    Check,
}

#[derive(Serialize)]
struct Status {
    path: String,
    exists: bool,
    schema_version: usize,
    latest_version: usize,
    up_to_date: bool,
    journal_mode: Option<String>,
    tables: Vec<String>,
    /// The stored candle series and their side files (read only when the schema is current).
    candle_series: Vec<SeriesCache>,
}

pub fn run(cmd: DbCommand, ctx: &Context) -> Result<()> {
    match cmd {
        DbCommand::Migrate => {
            let dir = ctx.data_dir();
            crate::secrets::ensure_private_dir(&dir).map_err(|e| {
                anyhow::anyhow!("cannot create the data dir {}: {e}", dir.display())
            })?;
            let mut store = Store::open_unmigrated(&ctx.db_path())?;
            let report = store.migrate()?;
            ctx.emit(&report, || {
                if report.from_version == report.to_version {
                    println!(
                        "database already at schema version {} ({})",
                        report.to_version,
                        ctx.db_path().display()
                    );
                } else {
                    println!(
                        "migrated {} from schema version {} to {}",
                        ctx.db_path().display(),
                        report.from_version,
                        report.to_version
                    );
                }
            })
        }
        DbCommand::Check => {
            let path = ctx.db_path();
            if !path.exists() {
                return Err(super::UsageError(format!(
                    "there is no database at {}: nothing to check",
                    path.display()
                ))
                .into());
            }
            let store = Store::open_unmigrated(&path)?;
            store.integrity_check()?;
            ctx.emit(
                &serde_json::json!({ "path": path.display().to_string(), "integrity": "ok" }),
                || println!("{}: integrity ok", path.display()),
            )
        }
        DbCommand::Status => {
            let path = ctx.db_path();
            let status = if path.exists() {
                let s = Store::open_unmigrated(&path)?;
                let v = s.schema_version()?;
                Status {
                    path: path.display().to_string(),
                    exists: true,
                    schema_version: v,
                    latest_version: store::latest_version(),
                    up_to_date: v == store::latest_version(),
                    journal_mode: Some(s.journal_mode()?),
                    tables: s.tables()?,
                    candle_series: if v == store::latest_version() {
                        series_caches(&s)?.unwrap_or_default()
                    } else {
                        Vec::new()
                    },
                }
            } else {
                Status {
                    path: path.display().to_string(),
                    exists: false,
                    schema_version: 0,
                    latest_version: store::latest_version(),
                    up_to_date: false,
                    journal_mode: None,
                    tables: vec![],
                    candle_series: Vec::new(),
                }
            };
            ctx.emit(&status, || {
                if !status.exists {
                    println!(
                        "no database at {} (run `trademind db migrate`)",
                        status.path
                    );
                    return;
                }
                println!("database:       {}", status.path);
                println!(
                    "schema version: {} of {}{}",
                    status.schema_version,
                    status.latest_version,
                    if status.up_to_date {
                        " (up to date)"
                    } else {
                        " (run `trademind db migrate`)"
                    }
                );
                println!(
                    "journal mode:   {}",
                    status.journal_mode.as_deref().unwrap_or("?")
                );
                println!("tables:         {}", status.tables.join(", "));
                if !status.up_to_date {
                    return;
                }
                println!("candle series:  {}", status.candle_series.len());
                for series in &status.candle_series {
                    println!(
                        "  {} {}: {} candles{}",
                        series.symbol,
                        series.interval,
                        series.candles,
                        match (series.first_open_time, series.last_open_time) {
                            (Some(first), Some(last)) =>
                                format!(", {} to {} UTC", minute(first), minute(last)),
                            _ => String::new(),
                        }
                    );
                    println!("    side file {}: {}", series.side_file, series.side_state);
                }
            })
        }
    }
}

/// An open time as `YYYY-MM-DD HH:MM` (UTC), or the raw milliseconds when out of range.
fn minute(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}
