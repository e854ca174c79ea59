//! A webhook receiver on 127.0.0.1 that records every POST (path, `Idempotency-Key`, JSON body)
//! and answers 204, or the scripted answers first (a 500, a 429 with `Retry-After`). Like
//! Discord and Slack it refuses a body that is not JSON (400).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::http::{Handler, Request, Response, Server, serve};

/// One request the receiver got.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookCall {
    pub path: String,
    pub idempotency_key: Option<String>,
    pub body: Value,
    /// The answer's status.
    pub status: u16,
}

#[derive(Default)]
struct State {
    calls: Vec<WebhookCall>,
    scripted: VecDeque<Response>,
}

/// The running receiver; dropping it stops the server.
pub struct FakeWebhook {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl FakeWebhook {
    pub async fn start() -> std::io::Result<FakeWebhook> {
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let handler: Handler = Arc::new(move |req: Request| handle(&s, req));
        let server = serve(handler).await?;
        Ok(FakeWebhook { server, state })
    }

    /// The URL of `path` on this receiver (`/hook`, `/discord`, …).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// Answer the next requests with these, in order, before answering 204 again.
    pub fn script(&self, responses: impl IntoIterator<Item = Response>) {
        if let Ok(mut s) = self.state.lock() {
            s.scripted.extend(responses);
        }
    }

    /// Every request received, oldest first.
    pub fn calls(&self) -> Vec<WebhookCall> {
        self.state
            .lock()
            .map(|s| s.calls.clone())
            .unwrap_or_default()
    }

    /// The requests that were answered 2xx.
    pub fn delivered(&self) -> Vec<WebhookCall> {
        self.calls()
            .into_iter()
            .filter(|c| (200..300).contains(&c.status))
            .collect()
    }
}

fn handle(state: &Mutex<State>, req: Request) -> Response {
    let Ok(mut s) = state.lock() else {
        return Response::json(500, &json!({"error": "poisoned"}));
    };
    let body: Result<Value, _> = serde_json::from_slice(&req.body);
    let response = match (&body, req.method.as_str()) {
        (_, m) if m != "POST" => {
            Response::json(405, &json!({"message": "405: Method Not Allowed"}))
        }
        (Err(_), _) => Response::json(400, &json!({"message": "Cannot send an empty message"})),
        (Ok(_), _) => s.scripted.pop_front().unwrap_or(Response {
            status: 204,
            headers: Vec::new(),
            body: String::new(),
            delay: std::time::Duration::ZERO,
        }),
    };
    s.calls.push(WebhookCall {
        path: req.path.clone(),
        idempotency_key: req.header("idempotency-key").map(str::to_string),
        body: body.unwrap_or(Value::Null),
        status: response.status,
    });
    response
}
