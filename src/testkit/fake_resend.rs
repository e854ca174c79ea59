//! A fake Resend (`POST /emails`, `GET /domains`) written from `resend.yaml` and Resend's documented behaviour:
//! Bearer auth (401 `missing_api_key`, 403 `invalid_api_key`), a required `User-Agent` (403),
//! required `from`/`to`/`subject` (422 `missing_required_field`), `Idempotency-Key` (1-256
//! chars, else 400; the same key and payload replay the first answer without sending again; the
//! same key with another payload is 409 `invalid_idempotent_request`), and scripted 429/5xx.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::http::{Handler, Request, Response, Server, serve};

/// One e-mail the fake accepted (delivered once, whatever the retries).
#[derive(Debug, Clone, PartialEq)]
pub struct SentEmail {
    pub id: String,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct State {
    sent: Vec<SentEmail>,
    by_key: BTreeMap<String, (Value, String)>,
    scripted: VecDeque<Response>,
    requests: usize,
    sending_only: bool,
}

/// The running fake; dropping it stops the server.
pub struct FakeResend {
    server: Server,
    api_key: String,
    state: Arc<Mutex<State>>,
}

fn error(status: u16, name: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({ "statusCode": status, "name": name, "message": message }),
    )
}

impl FakeResend {
    pub async fn start(api_key: &str) -> std::io::Result<FakeResend> {
        let state = Arc::new(Mutex::new(State::default()));
        let key = api_key.to_string();
        let s = state.clone();
        let handler: Handler = Arc::new(move |req: Request| handle(&s, &key, req));
        let server = serve(handler).await?;
        Ok(FakeResend {
            server,
            api_key: api_key.to_string(),
            state,
        })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The next answers, before normal handling (e.g. a 429 with `retry-after`).
    pub fn script(&self, response: Response) {
        if let Ok(mut st) = self.state.lock() {
            st.scripted.push_back(response);
        }
    }

    /// Make the key a sending-only one (Resend's `sending_access` permission).
    pub fn set_sending_only(&self, sending_only: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.sending_only = sending_only;
        }
    }

    pub fn sent(&self) -> Vec<SentEmail> {
        self.state
            .lock()
            .map(|s| s.sent.clone())
            .unwrap_or_default()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().map(|s| s.requests).unwrap_or(0)
    }

    pub fn rate_limited() -> Response {
        error(
            429,
            "rate_limit_exceeded",
            "Too many requests. You can only make 2 requests per second.",
        )
        .with_header("retry-after", "1")
        .with_header("ratelimit-limit", "2")
        .with_header("ratelimit-remaining", "0")
        .with_header("ratelimit-reset", "1")
    }
}

/// `GET /domains`: the domain list for a full-access key; a sending-only key is refused with
/// 401 `restricted_api_key`, as Resend does.
fn list_domains(st: &State, api_key: &str, req: &Request) -> Response {
    match req.header("authorization") {
        None => error(
            401,
            "missing_api_key",
            "Missing API key in the authorization header.",
        ),
        Some(h) if h != format!("Bearer {api_key}") => {
            error(403, "invalid_api_key", "API key is invalid.")
        }
        Some(_) if st.sending_only => error(
            401,
            "restricted_api_key",
            "This API key is restricted to only send emails.",
        ),
        Some(_) => Response::json(
            200,
            &json!({"object": "list", "has_more": false, "data": [{
                "id": "d91cd9bd-1176-453e-8fc1-35364d380206", "name": "example.com",
                "status": "verified", "created_at": "2026-01-01 00:00:00.000000+00",
                "region": "us-east-1", "capabilities": {"sending": "enabled", "receiving": "disabled"}
            }]}),
        ),
    }
}

fn handle(state: &Arc<Mutex<State>>, api_key: &str, req: Request) -> Response {
    let Ok(mut st) = state.lock() else {
        return error(500, "internal_server_error", "state poisoned");
    };
    st.requests += 1;
    if let Some(r) = st.scripted.pop_front() {
        return r;
    }
    if req
        .header("user-agent")
        .is_none_or(|ua| ua.trim().is_empty())
    {
        // Cloudflare answers before Resend does.
        return Response {
            status: 403,
            headers: vec![],
            body: "error code: 1010".into(),
            delay: Default::default(),
        };
    }
    if req.method == "GET" && req.path.split('?').next() == Some("/domains") {
        return list_domains(&st, api_key, &req);
    }
    if req.method != "POST" || req.path != "/emails" {
        return error(
            405,
            "method_not_allowed",
            "Method is not allowed for the requested path.",
        );
    }
    match req.header("authorization") {
        None => {
            return error(
                401,
                "missing_api_key",
                "Missing API key in the authorization header.",
            );
        }
        Some(h) if h != format!("Bearer {api_key}") => {
            return error(403, "invalid_api_key", "API key is invalid.");
        }
        Some(_) => {}
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(422, "validation_error", "Invalid JSON body.");
    };
    for field in ["from", "to", "subject"] {
        let present = match body.get(field) {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            _ => false,
        };
        if !present {
            return error(
                422,
                "missing_required_field",
                &format!("The `{field}` field is missing."),
            );
        }
    }
    if body
        .get("to")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() > 50)
    {
        return error(422, "validation_error", "Too many recipients: at most 50.");
    }
    let key = req.header("idempotency-key").map(str::to_string);
    if let Some(k) = &key {
        if k.is_empty() || k.len() > 256 {
            return error(
                400,
                "invalid_idempotency_key",
                "The key must be between 1-256 chars.",
            );
        }
        if let Some((first_body, id)) = st.by_key.get(k) {
            if *first_body == body {
                return Response::json(200, &json!({ "id": id }));
            }
            return error(
                409,
                "invalid_idempotent_request",
                "Same idempotency key used with a different request payload.",
            );
        }
    }
    let id = format!("00000000-0000-4000-8000-{:012}", st.sent.len() + 1);
    if let Some(k) = &key {
        st.by_key.insert(k.clone(), (body.clone(), id.clone()));
    }
    st.sent.push(SentEmail {
        id: id.clone(),
        idempotency_key: key,
        body,
    });
    Response::json(200, &json!({ "id": id }))
}
