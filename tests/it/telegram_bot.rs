//! The Telegram bot (issue #21) as a user meets it, with the fake Telegram and the fake
//! Binance: the token is a key like the others, only the configured chats are answered, a
//! command that changes state acts only once its button is pressed, and a stop hit reaches
//! the chat once, also across a restart of the daemon.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use rust_decimal_macros::dec;
use trademind::domain::market::Interval;
use trademind::domain::trading::order::OrderType;
use trademind::testkit::fake_binance::{FakeBinance, FakeConfig, rebound_candles};
use trademind::testkit::fake_telegram::{BotMessage, FakeTelegram};
use trademind::testkit::fake_webhook::FakeWebhook;

use crate::daemon::{signal, trademind_command, wait_exit, wait_for_rows};

pub(crate) const TOKEN: &str = "123456:ABC-test-token";
pub(crate) const ALLOWED: i64 = 111;
pub(crate) const STRANGER: i64 = 222;

pub(crate) struct Running(pub(crate) Option<Child>);

impl Running {
    pub(crate) fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        signal(&child, "TERM");
        wait_exit(&mut child, Duration::from_secs(30))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn output(data: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    trademind_command(data)
        .env("TRADEMIND_TELEGRAM_API_KEY", TOKEN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

pub(crate) fn cli(data: &Path, config: &Path, args: &[&str]) -> String {
    let out = output(data, config, args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Poll `f` every 100 ms for up to `secs` seconds.
pub(crate) async fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

pub(crate) async fn wait_rows(db: &Path, query: &str, secs: u64) -> bool {
    let (db, query) = (db.to_path_buf(), query.to_string());
    tokio::task::spawn_blocking(move || wait_for_rows(&db, &query, Duration::from_secs(secs)))
        .await
        .unwrap()
}

pub(crate) fn to_chat(tg: &FakeTelegram, chat: i64) -> Vec<BotMessage> {
    tg.sent()
        .into_iter()
        .filter(|m| m.chat_id == chat)
        .collect()
}

fn stop_messages(tg: &FakeTelegram) -> usize {
    to_chat(tg, ALLOWED)
        .iter()
        .filter(|m| m.text.starts_with("TradeMind:") && m.text.contains("stop"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_test_checks_a_telegram_token_against_the_bot_api() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[telegram]\nbase_url = \"{}\"\n", tg.base_url()),
    )
    .unwrap();
    let data = dir.path().join("data");
    let listed = cli(&data, &config, &["--json", "keys", "list"]);
    assert!(listed.contains("telegram"), "{listed}");
    let tested = tokio::task::spawn_blocking({
        let (data, config) = (data.clone(), config.clone());
        move || cli(&data, &config, &["keys", "test"])
    })
    .await
    .unwrap();
    assert!(tested.contains("telegram:default"), "{tested}");
    assert!(tested.contains("token accepted"), "{tested}");
    assert!(!tested.contains(TOKEN), "the token was printed");
    assert!(tg.calls().contains(&"getMe".to_string()));
}

/// `[telegram]` is validated like the rest of the config: an enabled bot with no chat is
/// refused, naming the key.
#[test]
fn an_enabled_bot_without_chat_ids_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[telegram]\nenabled = true\n").unwrap();
    let out = output(&dir.path().join("data"), &config, &["config", "check"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("telegram.chat_ids"), "{stderr}");
}

fn write_config(path: &Path, binance: &str, telegram: &str, hook: &str, in_secs: u64) {
    let now = chrono::Utc::now().timestamp() as u64;
    let offset = (now + in_secs) % 60;
    std::fs::write(
        path,
        format!(
            "[trading]\nconnection = \"fake\"\n\n\
             [exchange.binance]\nbase_url = \"{binance}\"\n\n\
             [scheduler]\nautonomous_trading_minutes = 1\ncandle_close_offset_seconds = {offset}\n\
             monitor_orders_seconds = 1\nupdate_prices_seconds = 600\n\n\
             [rules]\noversold = 99.0\noverbought = 99.5\n\n\
             [telegram]\nenabled = true\nbase_url = \"{telegram}\"\nchat_ids = [{ALLOWED}]\n\
             poll_timeout_seconds = 1\nevents = [\"stop_or_target_hit\"]\n\n\
             [[notifications.webhooks]]\nname = \"ops\"\nurl = \"{hook}\"\n\
             events = [\"stop_or_target_hit\"]\n"
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_answers_only_its_chats_pauses_on_confirmation_and_tells_a_stop_hit_once() {
    let fake = FakeBinance::start(FakeConfig::default()).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let series = rebound_candles(dec!(50000), Interval::M1, now);
    fake.set_price("BTCUSDT", series.last().unwrap().close.get());
    fake.set_klines("BTCUSDT", series);
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let hook = FakeWebhook::start().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    let db = data.join(trademind::cli::DB_FILE);
    write_config(
        &config,
        &fake.base_url(),
        &tg.base_url(),
        &hook.url("/hook"),
        4,
    );
    cli(&data, &config, &["connection", "add", "fake", "--testnet"]);
    cli(
        &data,
        &config,
        &[
            "strategy",
            "add",
            "trip",
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1m",
            "--connection",
            "fake",
        ],
    );
    cli(&data, &config, &["strategy", "enable", "trip"]);
    let log_path = dir.path().join("daemon.log");
    let start = |log: &str| {
        Running(Some(
            trademind_command(&data)
                .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
                .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
                .env("TRADEMIND_TELEGRAM_API_KEY", TOKEN)
                .arg("--config")
                .arg(&config)
                .arg("--daemon")
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.path().join(log)).unwrap(),
                ))
                .spawn()
                .unwrap(),
        ))
    };
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let daemon = start("daemon.log");

    // A stranger's /status first, then the allowed chat's: once the second is answered, the
    // first has been handled, and ignored.
    tg.user_message(STRANGER, "/status");
    tg.user_message(ALLOWED, "/status");
    let answer = eventually(30, || to_chat(&tg, ALLOWED).into_iter().next()).await;
    let answer = answer.unwrap_or_else(|| panic!("/status not answered:\n{}", log()));
    assert!(answer.text.contains("Account fake"), "{}", answer.text);
    assert!(answer.text.contains("trading:"), "{}", answer.text);
    assert!(to_chat(&tg, STRANGER).is_empty(), "a stranger was answered");
    assert!(
        log().contains("not in telegram.chat_ids ignored"),
        "the stranger was not logged:\n{}",
        log()
    );

    // A protected entry, then the price falls to its stop.
    assert!(
        wait_rows(
            &db,
            "SELECT COUNT(*) FROM orders WHERE purpose = 'stop_loss' AND status = 'NEW'",
            90
        )
        .await,
        "no protected entry:\n{}",
        log()
    );
    let stop = fake
        .orders()
        .into_iter()
        .find(|o| o.order_type == OrderType::StopLossLimit)
        .expect("the stop on the exchange");
    fake.set_price("BTCUSDT", stop.stop_price.expect("a stop price").get());
    assert!(
        wait_rows(
            &db,
            "SELECT COUNT(*) FROM positions WHERE status = 'closed'",
            30
        )
        .await,
        "the stop fill was not booked:\n{}",
        log()
    );
    let told = eventually(15, || (stop_messages(&tg) > 0).then_some(())).await;
    assert!(told.is_some(), "no stop message in the chat:\n{}", log());

    // /pause asks; nothing changes until the button is pressed.
    let before = to_chat(&tg, ALLOWED).len();
    tg.user_message(ALLOWED, "/pause");
    let question = eventually(15, || {
        to_chat(&tg, ALLOWED)
            .into_iter()
            .skip(before)
            .find(|m| m.reply_markup.is_some())
    })
    .await
    .unwrap_or_else(|| panic!("/pause asked nothing:\n{}", log()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = cli(&data, &config, &["status"]);
    assert!(!status.contains("trading:    paused"), "{status}");
    let markup = question.reply_markup.clone().unwrap();
    let confirm = markup["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .expect("a confirm button")
        .to_string();
    let query = tg.user_presses(ALLOWED, question.message_id, &confirm);
    let answered = eventually(15, || {
        tg.answered().into_iter().find(|(id, _)| *id == query)
    })
    .await;
    let (_, shown) = answered.unwrap_or_else(|| panic!("the press was not answered:\n{}", log()));
    assert_eq!(shown.as_deref(), Some("trading paused"));
    assert!(
        tg.edits()
            .iter()
            .any(|e| e.message_id == question.message_id && e.text == "trading paused"),
        "{:?}",
        tg.edits()
    );
    let status = cli(&data, &config, &["status"]);
    assert!(status.contains("trading:    paused"), "{status}");

    let exit = tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{}", log());
    let stop_hooks = |hook: &FakeWebhook| {
        hook.delivered()
            .into_iter()
            .filter(|c| c.body["kind"] == "stop_or_target_hit")
            .count()
    };
    assert_eq!(stop_messages(&tg), 1, "{:?}", tg.sent());
    assert_eq!(stop_hooks(&hook), 1, "{:?}", hook.calls());

    // A restarted daemon (reconciling, monitoring) sends neither again.
    let again = start("daemon2.log");
    let pid = again.id();
    assert!(
        wait_rows(
            &db,
            &format!(
                "SELECT COUNT(*) FROM daemon_heartbeat WHERE pid = {pid} AND last_cycle_job = 'monitor_orders'"
            ),
            30
        )
        .await,
        "the restarted daemon never monitored orders"
    );
    let exit = tokio::task::spawn_blocking(move || again.stop())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert_eq!(stop_messages(&tg), 1, "sent again after a restart");
    assert_eq!(stop_hooks(&hook), 1, "posted again after a restart");
}

/// A confirmation button expires (`telegram.confirm_seconds`): pressed after that, it does
/// nothing and says so, and the daemon stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_pressed_after_it_expired_does_nothing() {
    let fake = FakeBinance::start(FakeConfig::default()).await.unwrap();
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, config) = (dir.path().to_path_buf(), dir.path().join("config.toml"));
    std::fs::write(
        &config,
        format!(
            "[trading]\nconnection = \"fake\"\n\n[exchange.binance]\nbase_url = \"{}\"\n\n\
             [telegram]\nenabled = true\nbase_url = \"{}\"\nchat_ids = [{ALLOWED}]\n\
             poll_timeout_seconds = 1\nconfirm_seconds = 5\n",
            fake.base_url(),
            tg.base_url()
        ),
    )
    .unwrap();
    cli(&data, &config, &["connection", "add", "fake", "--testnet"]);
    let log_path = dir.path().join("daemon.log");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let daemon = Running(Some(
        trademind_command(&data)
            .env("TRADEMIND_BINANCE_FAKE_API_KEY", "fake-api-key")
            .env("TRADEMIND_BINANCE_FAKE_API_SECRET", "fake-api-secret")
            .env("TRADEMIND_TELEGRAM_API_KEY", TOKEN)
            .arg("--config")
            .arg(&config)
            .arg("--daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
            .spawn()
            .unwrap(),
    ));
    tg.user_message(ALLOWED, "/pause");
    let question = eventually(30, || {
        to_chat(&tg, ALLOWED)
            .into_iter()
            .find(|m| m.reply_markup.is_some())
    })
    .await
    .unwrap_or_else(|| panic!("/pause asked nothing:\n{}", log()));
    let confirm = question.reply_markup.clone().unwrap()["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .expect("a confirm button")
        .to_string();
    // The button's expiry is in whole seconds: wait past the 5 s and the next second.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let query = tg.user_presses(ALLOWED, question.message_id, &confirm);
    let answered = eventually(15, || {
        tg.answered().into_iter().find(|(id, _)| *id == query)
    })
    .await;
    let (_, shown) = answered.unwrap_or_else(|| panic!("the press was not answered:\n{}", log()));
    assert_eq!(
        shown.as_deref(),
        Some("expired: nothing was done; send the command again")
    );
    let status = cli(&data, &config, &["status"]);
    assert!(!status.contains("trading:    paused"), "{status}");
    let exit = tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{}", log());
}
