//! The fake Telegram Bot API answers as the Bot API documents say: offsets confirm updates, long
//! polling waits for one, a wrong token is 401, a 429 carries `parameters.retry_after` and is
//! enforced, inline keyboards are checked, edits and callback answers follow their rules.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trademind::testkit::fake_telegram::FakeTelegram;

const TOKEN: &str = "123456:ABC-fake";

async fn call(fake: &FakeTelegram, token: &str, method: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/bot{token}/{method}", fake.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn get_updates_confirms_by_offset_and_long_polls_until_an_update_arrives() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    fake.user_message(42, "/status");
    fake.user_message(42, "/pnl day");
    let (status, first) = call(&fake, TOKEN, "getUpdates", json!({})).await;
    assert_eq!(status, 200);
    let updates = first["result"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0]["message"]["text"], "/status");
    assert_eq!(updates[0]["message"]["chat"]["id"], 42);
    let last = updates[1]["update_id"].as_i64().unwrap();
    // Not confirmed yet: asked again without an offset, they come back.
    let (_, again) = call(&fake, TOKEN, "getUpdates", json!({"limit": 1})).await;
    assert_eq!(again["result"].as_array().unwrap().len(), 1);
    // An offset above the last id confirms both; a long poll then waits for the next one.
    let poll = {
        let url = format!("{}/bot{TOKEN}/getUpdates", fake.base_url());
        tokio::spawn(async move {
            let started = Instant::now();
            let v: Value = reqwest::Client::new()
                .get(url)
                .query(&[("offset", (last + 1).to_string()), ("timeout", "5".into())])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (started.elapsed(), v)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.user_message(7, "/risk");
    let (waited, v) = poll.await.unwrap();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(v["result"][0]["message"]["text"], "/risk");
    assert_eq!(
        fake.pending_updates(),
        1,
        "the two earlier updates were confirmed"
    );
    // A short poll on an empty queue answers at once with nothing.
    let next = v["result"][0]["update_id"].as_i64().unwrap() + 1;
    let (_, empty) = call(&fake, TOKEN, "getUpdates", json!({"offset": next})).await;
    assert_eq!(empty["result"], json!([]));
}

#[tokio::test]
async fn a_wrong_token_is_401_and_a_429_carries_retry_after_which_is_enforced() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let (status, body) = call(&fake, "999:wrong", "getMe", json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    fake.throttle(1, 1);
    let (status, body) = call(
        &fake,
        TOKEN,
        "sendMessage",
        json!({"chat_id": 42, "text": "hi"}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["parameters"]["retry_after"], 1);
    // Too early: still refused.
    let (status, _) = call(
        &fake,
        TOKEN,
        "sendMessage",
        json!({"chat_id": 42, "text": "hi"}),
    )
    .await;
    assert_eq!(status, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = call(
        &fake,
        TOKEN,
        "sendMessage",
        json!({"chat_id": 42, "text": "hi"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.sent().len(), 1);
}

#[tokio::test]
async fn inline_buttons_callbacks_and_edits_follow_the_bot_api_rules() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let keyboard =
        json!({"inline_keyboard": [[{"text": "Confirm pause", "callback_data": "pause:1"}]]});
    let (status, sent) = call(
        &fake,
        TOKEN,
        "sendMessage",
        json!({"chat_id": 42, "text": "Pause trading?", "reply_markup": keyboard}),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let message_id = sent["result"]["message_id"].as_i64().unwrap();
    assert_eq!(sent["result"]["reply_markup"], keyboard);
    // callback_data over 64 bytes and an empty text are refused.
    let long = json!({"inline_keyboard": [[{"text": "x", "callback_data": "y".repeat(65)}]]});
    let (status, _) = call(
        &fake,
        TOKEN,
        "sendMessage",
        json!({"chat_id": 42, "text": "t", "reply_markup": long}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = call(
        &fake,
        TOKEN,
        "sendMessage",
        json!({"chat_id": 42, "text": ""}),
    )
    .await;
    assert_eq!(
        (status, body["description"].as_str().unwrap()),
        (400, "Bad Request: message text is empty")
    );

    let query = fake.user_presses(42, message_id, "pause:1");
    let (_, updates) = call(&fake, TOKEN, "getUpdates", json!({})).await;
    assert_eq!(updates["result"][0]["callback_query"]["data"], "pause:1");
    assert_eq!(
        updates["result"][0]["callback_query"]["message"]["message_id"],
        message_id
    );
    // The notification text is 0-200 characters; a refused answer leaves the query open.
    let (status, body) = call(
        &fake,
        TOKEN,
        "answerCallbackQuery",
        json!({"callback_query_id": query, "text": "x".repeat(201)}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = call(
        &fake,
        TOKEN,
        "answerCallbackQuery",
        json!({"callback_query_id": query, "text": "paused"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &fake,
        TOKEN,
        "answerCallbackQuery",
        json!({"callback_query_id": query}),
    )
    .await;
    assert_eq!(status, 400, "a query is answered once");

    let edit = json!({"chat_id": 42, "message_id": message_id, "text": "Trading paused"});
    let (status, edited) = call(&fake, TOKEN, "editMessageText", edit.clone()).await;
    assert_eq!(status, 200);
    assert!(
        edited["result"].get("reply_markup").is_none(),
        "the buttons are gone"
    );
    let (status, body) = call(&fake, TOKEN, "editMessageText", edit).await;
    assert_eq!(status, 400);
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("Bad Request: message is not modified")
    );
    let (status, _) = call(
        &fake,
        TOKEN,
        "editMessageText",
        json!({"chat_id": 42, "message_id": 999, "text": "x"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(fake.edits().len(), 1);
    assert_eq!(fake.answered(), vec![(query, Some("paused".to_string()))]);
}

mod client {
    use std::time::{Duration, Instant};

    use trademind::services::telegram::{TelegramClient, TelegramError};
    use trademind::testkit::fake_telegram::FakeTelegram;

    use super::TOKEN;

    #[tokio::test]
    async fn the_client_reads_commands_and_button_presses_and_confirms_them_by_offset() {
        let fake = FakeTelegram::start(TOKEN).await.unwrap();
        let client = TelegramClient::new(&fake.base_url(), TOKEN).unwrap();
        let asked = client
            .send_message(
                42,
                "Pause trading?",
                &[("Confirm".into(), "pause:7".into())],
            )
            .await
            .unwrap();
        fake.user_message(42, "/status");
        fake.user_presses(42, asked.message_id, "pause:7");
        let updates = client.get_updates(None, 0).await.unwrap();
        assert_eq!(updates.len(), 2);
        assert_eq!(
            updates[0].message.as_ref().unwrap().text.as_deref(),
            Some("/status")
        );
        let press = updates[1].callback_query.as_ref().unwrap();
        assert_eq!(press.data.as_deref(), Some("pause:7"));
        assert_eq!(press.message.as_ref().unwrap().message_id, asked.message_id);
        client
            .answer_callback_query(&press.id, Some("paused"))
            .await
            .unwrap();
        client
            .edit_message_text(42, asked.message_id, "Trading paused")
            .await
            .unwrap();
        let next = client
            .get_updates(Some(updates[1].update_id + 1), 0)
            .await
            .unwrap();
        assert!(next.is_empty());
        assert_eq!(fake.pending_updates(), 0);
    }

    #[tokio::test]
    async fn the_client_waits_out_a_429_and_a_bad_token_is_unauthorized() {
        let fake = FakeTelegram::start(TOKEN).await.unwrap();
        let client = TelegramClient::new(&fake.base_url(), TOKEN).unwrap();
        fake.throttle(1, 1);
        let started = Instant::now();
        client.send_message(42, "stop hit", &[]).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "{:?}",
            started.elapsed()
        );
        let sends = fake.calls().iter().filter(|c| *c == "sendMessage").count();
        assert_eq!(sends, 2, "one refused, one sent after retry_after");
        assert_eq!(fake.sent().len(), 1);

        let wrong = TelegramClient::new(&fake.base_url(), "1:wrong").unwrap();
        let err = wrong.get_updates(None, 0).await.unwrap_err();
        assert!(matches!(err, TelegramError::Unauthorized), "{err}");
        assert!(
            !format!("{err} {wrong:?}").contains("1:wrong"),
            "the token leaked"
        );
    }
}
