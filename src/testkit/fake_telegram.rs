//! A fake Telegram Bot API on 127.0.0.1, written from the Bot API documents
//! (core.telegram.org/bots/api): `POST|GET /bot<token>/<method>` with parameters in the query
//! string, a form or a JSON body; every answer is `{"ok": true, "result": …}` or
//! `{"ok": false, "error_code", "description"[, "parameters": {"retry_after"}]}`.
//!
//! - `getUpdates`: `offset` confirms every update below it (they are forgotten), a negative one
//!   keeps the last `-offset`; `limit` 1–100 (default 100); `timeout` long-polls up to that many
//!   seconds for an update to arrive.
//! - `sendMessage` (`chat_id`, `text` 1–4096 characters, optional `reply_markup` with an inline
//!   keyboard whose `callback_data` is 1–64 bytes), `editMessageText` (`chat_id` +
//!   `message_id`; "message is not modified" when nothing changes), `answerCallbackQuery`
//!   (`callback_query_id` of a query it handed out, answered once; `text` 0-200 characters).
//! - A wrong token is 401 Unauthorized; an unknown method 404; scripted 429s carry
//!   `parameters.retry_after`, which the fake enforces: a call before it has passed is 429 again.
//!
//! Tests push what users do (`user_message`, `user_presses`) and read what the bot did
//! (`sent`, `edits`, `answered`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::fake_binance::http::{self, Request};

/// A message the bot sent (or its latest edit).
#[derive(Debug, Clone, PartialEq)]
pub struct BotMessage {
    pub message_id: i64,
    pub chat_id: i64,
    pub text: String,
    pub reply_markup: Option<Value>,
}

#[derive(Default)]
struct State {
    next_update_id: i64,
    next_message_id: i64,
    next_callback_id: i64,
    updates: VecDeque<Value>,
    /// Every message the bot sent, by id, as last edited.
    messages: BTreeMap<i64, BotMessage>,
    sent: Vec<BotMessage>,
    edits: Vec<BotMessage>,
    /// Callback query ids handed out and not answered yet.
    open_callbacks: Vec<String>,
    answered: Vec<(String, Option<String>)>,
    /// 429s still to give, each with its retry_after in seconds.
    throttles: VecDeque<u64>,
    /// No call is served before this (after a 429).
    blocked_until: Option<Instant>,
    calls: Vec<String>,
}

/// The running fake; dropping it stops the server.
pub struct FakeTelegram {
    addr: std::net::SocketAddr,
    token: String,
    state: Arc<Mutex<State>>,
    arrived: Arc<Notify>,
    shutdown: CancellationToken,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn ok(result: Value) -> (u16, Value) {
    (200, json!({"ok": true, "result": result}))
}

fn fail(code: u16, description: &str) -> (u16, Value) {
    (
        code,
        json!({"ok": false, "error_code": code, "description": description}),
    )
}

impl FakeTelegram {
    /// Start on 127.0.0.1:0, accepting `token` (e.g. "123456:ABC-DEF").
    pub async fn start(token: &str) -> std::io::Result<FakeTelegram> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            next_update_id: 1000,
            next_message_id: 1,
            ..State::default()
        }));
        let arrived = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let (s, a, t, stop) = (
            state.clone(),
            arrived.clone(),
            token.to_string(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = listener.accept() => r,
                };
                let Ok((mut stream, _)) = accepted else {
                    continue;
                };
                let (s, a, t, stop) = (s.clone(), a.clone(), t.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    while let Some(req) = http::read_request(&mut stream, &mut buffer).await {
                        let (status, body) = tokio::select! {
                            _ = stop.cancelled() => return,
                            r = handle(&s, &a, &t, req) => r,
                        };
                        if http::write_response(&mut stream, status, &[], &body.to_string())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Ok(FakeTelegram {
            addr,
            token: token.to_string(),
            state,
            arrived,
            shutdown,
        })
    }

    /// The API root, as `https://api.telegram.org` is for the real one.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, update: impl FnOnce(i64, &mut State) -> Value) {
        {
            let mut s = self.lock();
            s.next_update_id += 1;
            let id = s.next_update_id;
            let u = update(id, &mut s);
            s.updates.push_back(u);
        }
        self.arrived.notify_waiters();
    }

    /// A user in private chat `chat_id` sends `text` (e.g. "/status").
    pub fn user_message(&self, chat_id: i64, text: &str) {
        let text = text.to_string();
        self.push(|id, s| {
            s.next_message_id += 1;
            json!({
                "update_id": id,
                "message": {
                    "message_id": s.next_message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": chat_id, "is_bot": false, "first_name": "User"},
                    "text": text,
                }
            })
        });
    }

    /// The user presses the inline button with `data` under the bot's message `message_id`;
    /// returns the callback query id.
    pub fn user_presses(&self, chat_id: i64, message_id: i64, data: &str) -> String {
        let mut query_id = String::new();
        let data = data.to_string();
        self.push(|id, s| {
            s.next_callback_id += 1;
            query_id = format!("cbq-{}", s.next_callback_id);
            s.open_callbacks.push(query_id.clone());
            let message = s.messages.get(&message_id).map_or(Value::Null, |m| {
                json!({
                    "message_id": m.message_id,
                    "date": 1_700_000_000,
                    "chat": {"id": m.chat_id, "type": "private"},
                    "text": m.text,
                })
            });
            json!({
                "update_id": id,
                "callback_query": {
                    "id": query_id,
                    "from": {"id": chat_id, "is_bot": false, "first_name": "User"},
                    "chat_instance": "1",
                    "message": message,
                    "data": data,
                }
            })
        });
        query_id
    }

    /// The next `n` calls are answered 429 with `retry_after` seconds; calls before that time
    /// has passed are 429 too.
    pub fn throttle(&self, n: usize, retry_after_secs: u64) {
        self.lock()
            .throttles
            .extend(std::iter::repeat_n(retry_after_secs, n));
    }

    /// Messages the bot sent, oldest first (as sent, not as edited).
    pub fn sent(&self) -> Vec<BotMessage> {
        self.lock().sent.clone()
    }

    /// Every `editMessageText` that changed a message, oldest first.
    pub fn edits(&self) -> Vec<BotMessage> {
        self.lock().edits.clone()
    }

    /// Answered callback queries: (id, text shown).
    pub fn answered(&self) -> Vec<(String, Option<String>)> {
        self.lock().answered.clone()
    }

    /// Methods called, oldest first (`getUpdates`, `sendMessage`, …), refused ones included.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Updates not confirmed yet.
    pub fn pending_updates(&self) -> usize {
        self.lock().updates.len()
    }
}

/// Parameters from the query string, a form body or a JSON body (JSON values kept as JSON).
fn params(req: &Request) -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    let is_json = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"));
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&req.raw_body) {
            out.extend(map);
        }
        for (k, v) in http::parse_form(&req.raw_query) {
            out.entry(k).or_insert(Value::String(v));
        }
    } else {
        for (k, v) in req.params() {
            out.entry(k).or_insert(Value::String(v));
        }
    }
    out
}

fn int(p: &BTreeMap<String, Value>, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(p: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `reply_markup` as JSON (a form sends it as a JSON string), checked like Telegram does.
fn reply_markup(p: &BTreeMap<String, Value>) -> Result<Option<Value>, &'static str> {
    let markup = match p.get("reply_markup") {
        None => return Ok(None),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|_| "Bad Request: can't parse reply keyboard markup JSON object")?,
        Some(v) => v.clone(),
    };
    if let Some(rows) = markup.get("inline_keyboard") {
        let rows = rows.as_array().ok_or(
            "Bad Request: field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array",
        )?;
        for button in rows.iter().flat_map(|r| r.as_array().into_iter().flatten()) {
            if button
                .get("text")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err("Bad Request: text buttons are unallowed in the inline keyboard");
            }
            if let Some(data) = button.get("callback_data").and_then(Value::as_str)
                && (data.is_empty() || data.len() > 64)
            {
                return Err("Bad Request: BUTTON_DATA_INVALID");
            }
        }
    }
    Ok(Some(markup))
}

fn message_json(m: &BotMessage) -> Value {
    let mut v = json!({
        "message_id": m.message_id,
        "date": 1_700_000_000,
        "chat": {"id": m.chat_id, "type": "private"},
        "from": {"id": 1, "is_bot": true, "first_name": "TradeMind"},
        "text": m.text,
    });
    if let Some(markup) = &m.reply_markup {
        v["reply_markup"] = markup.clone();
    }
    v
}

async fn handle(state: &Mutex<State>, arrived: &Notify, token: &str, req: Request) -> (u16, Value) {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let Some((given, method)) = req
        .path
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
    else {
        return fail(404, "Not Found");
    };
    let method = method.to_string();
    lock().calls.push(method.clone());
    if given != token {
        return fail(401, "Unauthorized");
    }
    {
        let mut s = lock();
        let now = Instant::now();
        if let Some(until) = s.blocked_until.filter(|u| *u > now) {
            let secs = (until - now).as_secs().max(1);
            return throttled(secs);
        }
        if let Some(secs) = s.throttles.pop_front() {
            s.blocked_until = Some(now + Duration::from_secs(secs));
            return throttled(secs);
        }
    }
    let p = params(&req);
    match method.as_str() {
        "getMe" => ok(
            json!({"id": 1, "is_bot": true, "first_name": "TradeMind", "username": "trademind_bot"}),
        ),
        "getUpdates" => get_updates(state, arrived, &p).await,
        "sendMessage" => {
            let Some(chat_id) = int(&p, "chat_id") else {
                return fail(400, "Bad Request: chat_id is empty");
            };
            let text = text(&p, "text").unwrap_or_default();
            if text.trim().is_empty() {
                return fail(400, "Bad Request: message text is empty");
            }
            if text.chars().count() > 4096 {
                return fail(400, "Bad Request: message is too long");
            }
            let markup = match reply_markup(&p) {
                Ok(m) => m,
                Err(e) => return fail(400, e),
            };
            let mut s = lock();
            s.next_message_id += 1;
            let m = BotMessage {
                message_id: s.next_message_id,
                chat_id,
                text,
                reply_markup: markup,
            };
            s.messages.insert(m.message_id, m.clone());
            s.sent.push(m.clone());
            ok(message_json(&m))
        }
        "editMessageText" => {
            let (Some(chat_id), Some(message_id)) = (int(&p, "chat_id"), int(&p, "message_id"))
            else {
                return fail(400, "Bad Request: message identifier is not specified");
            };
            let text = text(&p, "text").unwrap_or_default();
            if text.trim().is_empty() {
                return fail(400, "Bad Request: message text is empty");
            }
            let markup = match reply_markup(&p) {
                Ok(m) => m,
                Err(e) => return fail(400, e),
            };
            let mut s = lock();
            let Some(m) = s
                .messages
                .get_mut(&message_id)
                .filter(|m| m.chat_id == chat_id)
            else {
                return fail(400, "Bad Request: message to edit not found");
            };
            if m.text == text && m.reply_markup == markup {
                return fail(
                    400,
                    "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
                );
            }
            m.text = text;
            m.reply_markup = markup;
            let m = m.clone();
            s.edits.push(m.clone());
            ok(message_json(&m))
        }
        "answerCallbackQuery" => {
            let Some(id) = text(&p, "callback_query_id") else {
                return fail(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                );
            };
            // The notification is 0-200 characters (Bot API, answerCallbackQuery.text).
            if text(&p, "text").is_some_and(|t| t.chars().count() > 200) {
                return fail(400, "Bad Request: MESSAGE_TOO_LONG");
            }
            let mut s = lock();
            let Some(pos) = s.open_callbacks.iter().position(|q| *q == id) else {
                return fail(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                );
            };
            s.open_callbacks.remove(pos);
            s.answered.push((id, text(&p, "text")));
            ok(Value::Bool(true))
        }
        _ => fail(404, "Not Found: method not found"),
    }
}

fn throttled(retry_after: u64) -> (u16, Value) {
    (
        429,
        json!({
            "ok": false,
            "error_code": 429,
            "description": format!("Too Many Requests: retry after {retry_after}"),
            "parameters": {"retry_after": retry_after},
        }),
    )
}

async fn get_updates(
    state: &Mutex<State>,
    arrived: &Notify,
    p: &BTreeMap<String, Value>,
) -> (u16, Value) {
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let limit = int(p, "limit").unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return fail(400, "Bad Request: limit must be between 1 and 100");
    }
    let timeout = Duration::from_secs(int(p, "timeout").unwrap_or(0).clamp(0, 50).unsigned_abs());
    let offset = int(p, "offset");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Registered before looking, so an update pushed in between still wakes us.
        let woken = arrived.notified();
        {
            let mut s = lock();
            match offset {
                // Every update below the offset is confirmed and forgotten.
                Some(o) if o > 0 => s.updates.retain(|u| u["update_id"].as_i64() >= Some(o)),
                // The last -offset updates are kept; all earlier ones are forgotten.
                Some(o) if o < 0 => {
                    let keep = o.unsigned_abs() as usize;
                    while s.updates.len() > keep {
                        s.updates.pop_front();
                    }
                }
                _ => {}
            }
            if !s.updates.is_empty() || tokio::time::Instant::now() >= deadline {
                let batch: Vec<Value> = s
                    .updates
                    .iter()
                    .take(usize::try_from(limit).unwrap_or(100))
                    .cloned()
                    .collect();
                return ok(Value::Array(batch));
            }
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}
