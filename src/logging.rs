//! Logging with `tracing`: always to a daily-rolling file in `<data_dir>/logs`; to stderr as well
//! in daemon and CLI modes. In TUI mode nothing goes to the terminal (the TUI owns it).

use std::path::Path;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt};

/// Where log lines go besides the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The TUI owns the terminal: file only.
    FileOnly,
    /// Daemon and one-shot commands: file and stderr. `stderr_level` is the threshold there.
    FileAndStderr,
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

/// Install the global subscriber. `level` is the file threshold; `stderr_level` the terminal's.
pub fn init(
    data_dir: &Path,
    level: &str,
    stderr_level: &str,
    target: LogTarget,
    max_files: usize,
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
    let file_filter = filter(level)?;
    let file_layer = fmt::layer()
        .with_writer(writer)
        .with_ansi(false)
        .with_target(true)
        .with_filter(file_filter);
    let stderr_layer = match target {
        LogTarget::FileOnly => None,
        LogTarget::FileAndStderr => Some(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .with_filter(filter(stderr_level)?),
        ),
    };
    // A second init (tests, or a command that re-enters) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init();
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
