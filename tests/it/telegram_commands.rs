//! Every command of issue #21 answered for an allowed chat by a running daemon (fake Telegram,
//! fake Binance): the read commands reply at once, the commands that change state ask first and
//! act on the button, `/backtest` queues a run on the daemon's backtest worker, names it, and
//! tells the chat its metrics when it ends; a 429 from Telegram is waited out.

use std::path::Path;

use trademind::store::Store;
use trademind::testkit::fake_telegram::{BotMessage, FakeTelegram};

use crate::telegram_bot::{ALLOWED, cli, eventually, to_chat};
use crate::telegram_summary::{setup, start_daemon, stop};

/// Send `text` from the allowed chat and wait for the bot's next message to it.
async fn answer(tg: &FakeTelegram, text: &str, log: &dyn Fn() -> String) -> BotMessage {
    let before = to_chat(tg, ALLOWED).len();
    tg.user_message(ALLOWED, text);
    eventually(20, || to_chat(tg, ALLOWED).into_iter().nth(before))
        .await
        .unwrap_or_else(|| panic!("{text} was not answered:\n{}", log()))
}

/// Press the question's button (0: Confirm, 1: Cancel); the outcome shown.
async fn press(tg: &FakeTelegram, question: &BotMessage, button: usize) -> String {
    let markup = question
        .reply_markup
        .clone()
        .unwrap_or_else(|| panic!("no buttons on {:?}", question.text));
    let data = markup["inline_keyboard"][0][button]["callback_data"]
        .as_str()
        .expect("a button")
        .to_string();
    let query = tg.user_presses(ALLOWED, question.message_id, &data);
    let answered = eventually(20, || {
        tg.answered().into_iter().find(|(id, _)| *id == query)
    })
    .await;
    answered
        .and_then(|(_, shown)| shown)
        .unwrap_or_else(|| panic!("the press on {:?} was not answered", question.text))
}

fn backtest_rows(db: &Path) -> i64 {
    Store::open(db)
        .unwrap()
        .conn()
        .query_row("SELECT COUNT(*) FROM backtests", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_is_answered_and_a_confirmed_backtest_reports_its_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (_binance, tg) = setup(data, "").await;
    let config = data.join("config.toml");
    let bundled = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/btcusdt_1h_2025-01_binance.csv"
    );
    cli(
        data,
        &config,
        &[
            "data",
            "import",
            bundled,
            "--symbol",
            "BTCUSDT",
            "--interval",
            "1h",
        ],
    );
    let db = data.join(trademind::cli::DB_FILE);
    let daemon = start_daemon(data, "daemon.log");
    let log = || std::fs::read_to_string(data.join("daemon.log")).unwrap_or_default();

    // Telegram throttles the bot: it waits `retry_after` out and still answers.
    tg.throttle(2, 1);
    let status = answer(&tg, "/status", &log).await;
    assert!(status.text.contains("Account fake"), "{}", status.text);

    for (command, expected) in [
        ("/positions", "no open position"),
        ("/trades", "no closed trade"),
        ("/decisions", "no decision yet"),
        ("/pnl", "PnL today"),
        ("/pnl week", "PnL last 7 days"),
        ("/risk", "open positions: 0"),
        ("/help", "/backtest STRATEGY [SYMBOL] [INTERVAL]"),
    ] {
        let reply = answer(&tg, command, &log).await;
        assert!(reply.text.contains(expected), "{command}: {}", reply.text);
        assert!(reply.reply_markup.is_none(), "{command} asked to confirm");
    }

    // Each command that changes state asks first, then acts on Confirm.
    for (command, outcome) in [
        ("/kill", "kill switch engaged: trading halted"),
        ("/resume", "trading resumed"),
        ("/pause", "trading paused"),
        ("/resume", "trading resumed"),
        ("/close BTCUSDT", "refused:"),
        ("/protect BTCUSDT", "refused:"),
    ] {
        let question = answer(&tg, command, &log).await;
        assert!(question.text.contains("Press Confirm"), "{}", question.text);
        let shown = press(&tg, &question, 0).await;
        assert!(shown.starts_with(outcome), "{command}: {shown}");
    }

    // Bad /backtest arguments get the usage.
    let usage = answer(&tg, "/backtest", &log).await;
    assert!(usage.text.starts_with("usage: /backtest"), "{}", usage.text);
    let unknown = answer(&tg, "/backtest moon BTCUSDT", &log).await;
    assert!(
        unknown.text.contains("unknown strategy") && unknown.text.contains("usage: /backtest"),
        "{}",
        unknown.text
    );

    // A backtest asks first: nothing is queued until Confirm; Cancel queues nothing.
    let question = answer(&tg, "/backtest sma-cross BTCUSDT 1h", &log).await;
    assert!(
        question
            .text
            .contains("backtest of sma-cross on BTCUSDT 1h"),
        "{}",
        question.text
    );
    assert_eq!(backtest_rows(&db), 0);
    assert_eq!(
        press(&tg, &question, 1).await,
        "cancelled: nothing was done"
    );
    assert_eq!(backtest_rows(&db), 0);

    let question = answer(&tg, "/backtest sma-cross", &log).await;
    let before = to_chat(&tg, ALLOWED).len();
    let shown = press(&tg, &question, 0).await;
    assert!(
        shown.starts_with("backtest #1 queued: sma-cross BTCUSDT 1h"),
        "{shown}"
    );
    let report = eventually(60, || {
        to_chat(&tg, ALLOWED)
            .into_iter()
            .skip(before)
            .find(|m| m.text.starts_with("Backtest #1"))
    })
    .await
    .unwrap_or_else(|| panic!("no backtest report:\n{}", log()));
    assert!(report.text.contains("completed"), "{}", report.text);

    // The figures are the stored run's, as `backtest show` reads them.
    let run = trademind::store::backtests::get(Store::open(&db).unwrap().conn(), 1)
        .unwrap()
        .expect("run 1");
    let rows = trademind::format::backtest_metrics(run.metrics.as_ref().unwrap(), "USDT");
    for (label, shown) in [
        ("Return", "return"),
        ("Max drawdown", "max drawdown"),
        ("Trades", "trades"),
        ("Win rate", "win rate"),
        ("Sharpe", "Sharpe"),
    ] {
        let value = &rows.iter().find(|(l, _)| *l == label).unwrap().1;
        assert!(
            report.text.contains(&format!("{shown} {value}")),
            "{label} {value} not in:\n{}",
            report.text
        );
    }
    assert_eq!(stop(daemon).await.code(), Some(0), "{}", log());
}
