//! Logging with `tracing`: always to a daily-rolling file in `<data_dir>/logs`; to stderr as well
//! in daemon and CLI modes. In TUI mode nothing goes to the terminal (the TUI owns it).
//!
//! Colour is for people at a terminal: stderr gets ANSI escapes only when it is one and
//! `NO_COLOR` is not set (no-color.org), and the file never does, so a daemon's log redirected
//! to a file or a journal reads as plain text. `--log-format json` writes one JSON object per
//! line (the event's fields flattened) for log shippers.

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, fmt};

/// Where log lines go besides the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The TUI owns the terminal: file only.
    FileOnly,
    /// Daemon and one-shot commands: file and stderr. `stderr_level` is the threshold there.
    FileAndStderr,
}

/// How a log line is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `2026-12-04T22:53:35Z  INFO entry fill booked symbol=BTCUSDT ...`
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message and the event's fields.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot create the log directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the log file in {path}: {message}")]
    File { path: String, message: String },
    #[error("invalid log level {0:?}")]
    Level(String),
}

/// Keeps the background writer alive; drop it last to flush.
pub struct LogGuard {
    _file: WorkerGuard,
}

/// Whether stderr may carry colour: only a terminal, and only when `NO_COLOR` is unset or
/// empty (no-color.org: "present and not an empty string" turns colour off).
pub fn stderr_ansi(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// One output: `format` lines to `writer`, coloured or not, at `filter`.
fn layer<W>(writer: W, format: LogFormat, ansi: bool, target: bool, filter: EnvFilter) -> BoxedLayer
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .with_target(target)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_ansi(false)
            .with_target(true)
            .with_filter(filter)
            .boxed(),
    }
}

/// Install the global subscriber. `level` is the file threshold; `stderr_level` the terminal's.
pub fn init(
    data_dir: &Path,
    level: &str,
    stderr_level: &str,
    target: LogTarget,
    max_files: usize,
    format: LogFormat,
) -> Result<LogGuard, LoggingError> {
    let dir = data_dir.join("logs");
    crate::secrets::ensure_private_dir(&dir).map_err(|source| LoggingError::Dir {
        path: dir.display().to_string(),
        source,
    })?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("trademind")
        .filename_suffix("log")
        .max_log_files(max_files.max(1))
        .build(&dir)
        .map_err(|e| LoggingError::File {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let mut layers = vec![layer(writer, format, false, true, filter(level)?)];
    if target == LogTarget::FileAndStderr {
        use std::io::IsTerminal;
        let ansi = stderr_ansi(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        );
        layers.push(layer(
            std::io::stderr,
            format,
            ansi,
            false,
            filter(stderr_level)?,
        ));
    }
    // A second init (tests, or a command that re-enters) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(LogGuard { _file: guard })
}

fn filter(level: &str) -> Result<EnvFilter, LoggingError> {
    let level = level.to_ascii_lowercase();
    if !["trace", "debug", "info", "warn", "error", "off"].contains(&level.as_str()) {
        return Err(LoggingError::Level(level));
    }
    // Our crate at the chosen level; chatty dependencies one notch quieter.
    EnvFilter::try_new(format!("warn,trademind={level}")).map_err(|_| LoggingError::Level(level))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn stderr_is_coloured_only_on_a_terminal_without_no_color() {
        assert!(stderr_ansi(true, None));
        assert!(
            stderr_ansi(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!stderr_ansi(true, Some(OsStr::new("1"))));
        assert!(
            !stderr_ansi(false, None),
            "a file or a pipe gets no escapes"
        );
        assert!(!stderr_ansi(false, Some(OsStr::new("1"))));
    }
}
