//! `trademind`: parse the command line, load the configuration, start logging, pick ONE mode
//! (TUI, daemon, or a one-shot command) and map the outcome to an exit code.

use clap::Parser;
use std::process::ExitCode;

use trademind::cli::{self, Cli, Context, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError};
use trademind::config::{self, ConfigError, FlagOverrides};
use trademind::logging::{self, LogTarget};

// Large columns on huge pages, freed ones kept for reuse (`trademind::memory`): the indicator
// kernels and `bench-indicators` run at the speed `cargo bench` measures.
#[global_allocator]
static ALLOC: trademind::memory::ColumnAllocator = trademind::memory::ColumnAllocator;

// Built once per run and matched at once: its size costs nothing, and boxing the command would
// only complicate the patterns below.
#[allow(clippy::large_enum_variant)]
enum Mode {
    Tui,
    Daemon,
    Command(cli::Command),
}

#[cfg(unix)]
fn restrict_new_files() {
    // Every file this process creates (database, WAL, logs, reports) is private to its owner.
    unsafe extern "C" {
        fn umask(mask: u32) -> u32;
    }
    // SAFETY: umask only swaps the process file-mode mask; it cannot fail.
    unsafe {
        umask(0o077);
    }
}

#[cfg(not(unix))]
fn restrict_new_files() {}

#[cfg(unix)]
fn default_sigpipe() {
    // Like other Unix tools, end quietly when the reader of our output goes away
    // (`trademind decisions --json | head`) instead of panicking on a broken pipe.
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

fn main() -> ExitCode {
    restrict_new_files();
    default_sigpipe();
    let args = match Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let raw: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            if e.use_stderr() && raw.iter().any(|a| a == "keys") {
                // A key pasted into the wrong place must not be echoed back.
                let shown = cli::keys::redact_rejected_args(&e.render().to_string(), &raw);
                eprint!("{shown}");
            } else {
                let _ = e.print();
            }
            return ExitCode::from(code);
        }
    };
    let mode = match (args.daemon, args.command) {
        (true, Some(_)) => {
            eprintln!(
                "error: --daemon runs the scheduler and cannot be combined with a subcommand"
            );
            return ExitCode::from(EXIT_USAGE);
        }
        (true, None) => Mode::Daemon,
        (false, Some(c)) => Mode::Command(c),
        (false, None) => Mode::Tui,
    };

    let env: Vec<(String, String)> = std::env::vars().collect();
    let flags = FlagOverrides {
        data_dir: args.global.data_dir.clone(),
        log_level: args.global.log_level.clone(),
    };
    let loaded = match config::load(args.global.config.as_deref(), &env, &flags) {
        Ok(l) => l,
        Err(e) => {
            report(args.global.json, &e.to_string());
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let settings = &loaded.settings;
    let (target, stderr_level) = match &mode {
        // The demo draws the TUI too: nothing may write over it.
        Mode::Tui
        | Mode::Command(cli::Command::Demo(cli::demo::DemoArgs { daemon: false, .. })) => {
            (LogTarget::FileOnly, "off".to_string())
        }
        Mode::Daemon => (LogTarget::FileAndStderr, settings.general.log_level.clone()),
        // One-shot commands print their results on stdout; stderr gets warnings unless asked.
        Mode::Command(_) => (
            LogTarget::FileAndStderr,
            args.global
                .log_level
                .clone()
                .unwrap_or_else(|| "warn".into()),
        ),
    };
    let _guard = match logging::init(
        &settings.data_dir(),
        &settings.general.log_level,
        &stderr_level,
        target,
        settings.general.log_max_files as usize,
        args.global.log_format,
    ) {
        Ok(g) => Some(g),
        Err(e) => {
            // Logging is not worth refusing a one-shot command for, but say so.
            eprintln!("warning: file logging disabled: {e}");
            None
        }
    };

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(
                args.global.json,
                &format!("cannot start the async runtime: {e}"),
            );
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let ctx = Context {
        loaded,
        json: args.global.json,
    };
    let outcome = runtime.block_on(async {
        match mode {
            Mode::Tui => trademind::tui::run(ctx.settings()).await,
            Mode::Daemon => {
                trademind::app::daemon::run(ctx.settings(), ctx.open_store()?, &ctx.db_path()).await
            }
            Mode::Command(cmd) => cli::run(cmd, &ctx).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            // Into the log file; the terminal gets the one clean line below.
            tracing::info!("failed: {err:#}");
            match err.downcast_ref::<cli::Failed>() {
                Some(failed) if ctx.json => println!(
                    "{}",
                    serde_json::json!({ "error": format!("{err:#}"), "details": failed.details })
                ),
                _ => report(ctx.json, &format!("{err:#}")),
            }
            let usage = err.downcast_ref::<UsageError>().is_some()
                || err
                    .downcast_ref::<trademind::app::daemon::AlreadyRunning>()
                    .is_some()
                || err.downcast_ref::<ConfigError>().is_some()
                || err
                    .downcast_ref::<trademind::app::venue::VenueError>()
                    .is_some_and(|e| e.is_usage());
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FAILURE })
        }
    }
}

fn report(json: bool, message: &str) {
    if json {
        println!("{}", serde_json::json!({ "error": message }));
    } else {
        eprintln!("error: {message}");
    }
}
