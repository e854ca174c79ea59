//! `trademind notify test [--channel NAME]`: send one test alert on every configured channel
//! (e-mail through Resend, each webhook), or on the one named, recorded in the `alerts` table and
//! the delivery log like any alert.

use anyhow::Result;
use clap::Subcommand;
use std::sync::Mutex;

use super::{Context, UsageError};
use crate::secrets::SecretKind;
use crate::services::notification::channel::EMAIL;
use crate::services::notification::{
    Alert, AlertChannels, AlertKind, AlertOutcome, Delivery, dispatch,
};

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test alert on every configured channel, or only on `--channel NAME`.
    Test {
        /// `email`, or `webhook:<name>` as `[[notifications.webhooks]]` names it.
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
    },
}

/// What `notify test --json` prints: the alert's outcome and each channel's.
#[derive(Debug, serde::Serialize)]
struct TestReport {
    #[serde(flatten)]
    outcome: AlertOutcome,
    deliveries: Vec<Delivery>,
}

pub async fn run(cmd: NotifyCommand, ctx: &Context) -> Result<()> {
    let NotifyCommand::Test { channel } = cmd;
    let cfg = &ctx.settings().notifications;
    let webhooks = cfg.webhooks.iter().any(|w| w.enabled) || ctx.settings().telegram.enabled;
    // E-mail must be set up when it is asked for, or when it is the only channel there is.
    let email_required = channel.as_deref() == Some(EMAIL) || (channel.is_none() && !webhooks);
    let email_wanted = channel.is_none() || channel.as_deref() == Some(EMAIL);
    let email_configured = !cfg.from.trim().is_empty() && !cfg.to.is_empty();
    if email_required && !email_configured {
        return Err(UsageError(
            "set [notifications] from and to (and enabled = true) in the config before testing"
                .into(),
        )
        .into());
    }
    let mailer = if email_wanted && email_configured {
        match ctx.secrets().api_key(SecretKind::Resend).await? {
            Some(key) => Some(crate::app::venue::resend_client(cfg, key.expose())?),
            None if email_required => {
                return Err(UsageError(
                    "no Resend API key: store one with `trademind keys set resend`".into(),
                )
                .into());
            }
            None => None,
        }
    } else {
        None
    };
    let mut all = AlertChannels::from_config(cfg, mailer.as_ref())?;
    let telegram = &ctx.settings().telegram;
    if let Some(client) = crate::app::venue::telegram_client(telegram, &ctx.secrets()).await {
        all.push(std::sync::Arc::new(
            crate::services::notification::telegram_channel::TelegramChannel::new(client, telegram),
        ));
    }
    let channels = match &channel {
        None => all,
        Some(name) => all.only(name).ok_or_else(|| {
            UsageError(format!(
                "no channel named {name:?}; configured: {}",
                if all.names().is_empty() {
                    "none".to_string()
                } else {
                    all.names().join(", ")
                }
            ))
        })?,
    };
    let store = ctx.open_store()?;
    let db = Mutex::new(store.into_connection());
    let now = chrono::Utc::now().timestamp_millis();
    let alert = Alert {
        kind: AlertKind::Test,
        // unique per call: a test is never deduplicated away
        dedup_key: format!("test/{now}"),
        subject: "TradeMind test alert".into(),
        body:
            "This is a test alert from `trademind notify test`. Alerts will arrive like this one."
                .into(),
    };
    let (outcome, deliveries) = dispatch(&db, &channels, cfg, &alert, now).await?;
    let failed: Vec<&str> = deliveries
        .iter()
        .filter(|d| matches!(d.outcome, AlertOutcome::Failed { .. }))
        .map(|d| d.channel.as_str())
        .collect();
    let failure = match failed.as_slice() {
        [] => None,
        [EMAIL] => Some("the test e-mail was not sent".to_string()),
        names => Some(format!(
            "the test alert was not sent on {}",
            names.join(", ")
        )),
    };
    let report = TestReport {
        outcome,
        deliveries,
    };
    ctx.emit_or_fail(
        &report,
        || {
            if report.deliveries.is_empty() {
                match &report.outcome {
                    AlertOutcome::Suppressed { reason } => println!("not sent: {reason}"),
                    _ => println!("no channel is configured"),
                }
            }
            for d in &report.deliveries {
                match &d.outcome {
                    AlertOutcome::Sent { id } if d.channel == EMAIL => println!(
                        "{}: test e-mail sent to {} (Resend id {id})",
                        d.channel,
                        cfg.to.join(", ")
                    ),
                    AlertOutcome::Sent { id } => println!("{}: sent ({id})", d.channel),
                    AlertOutcome::Suppressed { reason } => {
                        println!("{}: not sent: {reason}", d.channel)
                    }
                    AlertOutcome::Failed { error } => println!("{}: failed: {error}", d.channel),
                    AlertOutcome::Disabled => println!("{}: disabled", d.channel),
                }
            }
        },
        failure,
    )
}
