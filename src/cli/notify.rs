//! `trademind notify test`: send one test e-mail through Resend with the configured sender and
//! recipients, recorded in the `alerts` table like any alert.

use anyhow::Result;
use clap::Subcommand;
use std::sync::Mutex;

use super::{Context, UsageError};
use crate::secrets::SecretKind;
use crate::services::notification::{Alert, AlertKind, AlertOutcome, notify};

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test e-mail to the configured recipients.
    Test,
}

pub async fn run(cmd: NotifyCommand, ctx: &Context) -> Result<()> {
    let NotifyCommand::Test = cmd;
    let cfg = &ctx.settings().notifications;
    if cfg.from.trim().is_empty() || cfg.to.is_empty() {
        return Err(UsageError(
            "set [notifications] from and to (and enabled = true) in the config before testing"
                .into(),
        )
        .into());
    }
    let key = ctx
        .secrets()
        .api_key(SecretKind::Resend)
        .await?
        .ok_or_else(|| {
            UsageError("no Resend API key: store one with `trademind keys set resend`".into())
        })?;
    let client = crate::app::venue::resend_client(cfg, key.expose())?;
    let store = ctx.open_store()?;
    let db = Mutex::new(store.into_connection());
    let now = chrono::Utc::now().timestamp_millis();
    let alert = Alert {
        kind: AlertKind::Test,
        // unique per call: a test is never deduplicated away
        dedup_key: format!("test/{now}"),
        subject: "TradeMind test alert".into(),
        body:
            "This is a test e-mail from `trademind notify test`. Alerts will arrive like this one."
                .into(),
    };
    let outcome = notify(&db, Some(&client), cfg, &alert, now).await?;
    let failed = matches!(outcome, AlertOutcome::Failed { .. })
        .then(|| "the test e-mail was not sent".to_string());
    ctx.emit_or_fail(
        &outcome,
        || match &outcome {
            AlertOutcome::Sent { id } => {
                println!("test e-mail sent to {} (Resend id {id})", cfg.to.join(", "))
            }
            AlertOutcome::Suppressed { reason } => println!("not sent: {reason}"),
            AlertOutcome::Failed { error } => println!("failed: {error}"),
            AlertOutcome::Disabled => println!("notifications are disabled"),
        },
        failed,
    )
}
