//! Headless mode: runs until SIGINT or SIGTERM, then shuts down in order and exits 0.

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::app::bus::{Event, EventBus};
use crate::cli::Context;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub async fn run(ctx: &Context) -> Result<()> {
    let store = ctx.open_store()?;
    let bus = EventBus::default();
    let cancel = CancellationToken::new();
    tracing::info!(db = %ctx.db_path().display(), "daemon started; waiting for work (SIGINT/SIGTERM to stop)");
    tokio::select! {
        _ = shutdown_signal() => {},
        _ = cancel.cancelled() => {},
    }
    bus.publish(Event::ShuttingDown);
    cancel.cancel();
    store.checkpoint()?;
    tracing::info!("daemon stopped cleanly");
    Ok(())
}
