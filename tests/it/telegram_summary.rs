//! The daily summary (`telegram.daily_summary_hour`, issue #21) with the fake Telegram, the
//! fake Binance and a webhook: once the hour has come the daemon sends one summary of the day
//! to the chat and to every channel that takes `daily_summary`, and a restarted daemon does
//! not send it again.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rust_decimal_macros::dec;
use trademind::domain::market::Interval;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, flat_candles};
use trademind::testkit::fake_telegram::FakeTelegram;
use trademind::testkit::fake_webhook::FakeWebhook;

use crate::daemon::trademind_command;
use crate::telegram_bot::{ALLOWED, Running, TOKEN, cli, eventually, to_chat};

pub(crate) fn write_config(path: &Path, binance: &str, telegram: &str, extra: &str) {
    std::fs::write(
        path,
        format!(
            "[trading]\nconnection = \"fake\"\nsymbols = [\"BTCUSDT\"]\ninterval = \"1h\"\n\n\
             [exchange.binance]\nbase_url = \"{binance}\"\n\n\
             [scheduler]\nmonitor_orders_seconds = 1\nupdate_prices_seconds = 600\n\n\
             [telegram]\nenabled = true\nbase_url = \"{telegram}\"\nchat_ids = [{ALLOWED}]\n\
             poll_timeout_seconds = 1\nevents = [\"stop_or_target_hit\"]\n{extra}"
        ),
    )
    .unwrap();
}

/// A fake Binance with BTCUSDT at 50,000, a fake Telegram and a data dir holding the `fake`
/// connection; returns the daemon's starter.
pub(crate) async fn setup(dir: &Path, extra: &str) -> (FakeBinance, FakeTelegram) {
    let fake = FakeBinance::start(FakeConfig::default()).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    fake.set_price("BTCUSDT", dec!(50000));
    fake.set_klines(
        "BTCUSDT",
        flat_candles(dec!(50000), 300, Interval::H1, now - 3_600_000),
    );
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let config = dir.join("config.toml");
    write_config(&config, &fake.base_url(), &tg.base_url(), extra);
    cli(dir, &config, &["connection", "add", "fake", "--testnet"]);
    (fake, tg)
}

pub(crate) fn start_daemon(dir: &Path, log: &str) -> Running {
    Running(Some(
        trademind_command(dir)
            .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
            .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
            .env("TRADEMIND_TELEGRAM_API_KEY", TOKEN)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .arg("--daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join(log)).unwrap()))
            .spawn()
            .unwrap(),
    ))
}

pub(crate) async fn stop(daemon: Running) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .unwrap()
}

fn summaries(tg: &FakeTelegram) -> Vec<String> {
    to_chat(tg, ALLOWED)
        .into_iter()
        .map(|m| m.text)
        .filter(|t| t.starts_with("TradeMind: daily summary"))
        .collect()
}

fn summary_hooks(hook: &FakeWebhook) -> usize {
    hook.delivered()
        .into_iter()
        .filter(|c| c.body["kind"] == "daily_summary")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_summary_is_sent_once_a_day_to_the_chat_and_a_webhook_also_across_a_restart() {
    let hook = FakeWebhook::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // Hour 0: the summary is due from the first moment of every UTC day. The chat's `events`
    // leave the summary out, yet it comes: it is asked for under [telegram]. The webhook takes
    // it because its `events` list it.
    let extra = format!(
        "daily_summary_hour = 0\n\n\
         [[notifications.webhooks]]\nname = \"ops\"\nurl = \"{}\"\nevents = [\"daily_summary\"]\n",
        hook.url("/hook")
    );
    let (_binance, tg) = setup(data, &extra).await;
    let log = |name: &str| std::fs::read_to_string(data.join(name)).unwrap_or_default();

    let daemon = start_daemon(data, "daemon.log");
    let first = eventually(60, || summaries(&tg).into_iter().next()).await;
    let first = first.unwrap_or_else(|| panic!("no daily summary:\n{}", log("daemon.log")));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(first.contains(&today), "{first}");
    for part in [
        "Account fake",
        "equity:",
        "today:",
        "realised",
        "unrealised",
        "trades today: 0",
        "open positions: 0",
        "trading: active",
        "breaker:",
        "daemon: up",
    ] {
        assert!(first.contains(part), "{part:?} missing from:\n{first}");
    }
    let hooked = eventually(10, || (summary_hooks(&hook) > 0).then_some(())).await;
    assert!(
        hooked.is_some(),
        "the webhook got no summary: {:?}",
        hook.calls()
    );
    // A few more checks of the hour pass (one every 10 s) without a second summary.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(stop(daemon).await.code(), Some(0), "{}", log("daemon.log"));
    assert_eq!(summaries(&tg).len(), 1, "{:?}", summaries(&tg));
    assert_eq!(summary_hooks(&hook), 1, "{:?}", hook.calls());

    // A restarted daemon looks, finds today's summary sent, and sends nothing.
    let again = start_daemon(data, "daemon2.log");
    let looked = eventually(90, || {
        let text = log("daemon2.log");
        (text.contains("daily summary already sent") || text.contains("daily summary sent"))
            .then_some(())
    })
    .await;
    assert!(
        looked.is_some(),
        "the restarted daemon never looked at the summary:\n{}",
        log("daemon2.log")
    );
    assert_eq!(stop(again).await.code(), Some(0));
    assert_eq!(summaries(&tg).len(), 1, "sent again after a restart");
    assert_eq!(summary_hooks(&hook), 1, "posted again after a restart");
}
