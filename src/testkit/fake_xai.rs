//! A fake xAI API (`/v1/chat/completions`, `/v1/responses`, `/v1/models`) written from xAI's
//! OpenAPI spec and docs: Bearer auth (401), JSON content type (415), malformed body (400),
//! unknown model (404), `search_parameters` (410 Gone, Live Search is retired), and scripted
//! replies. Replies are taken from a queue; the last one repeats when the queue runs dry.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Handler, Request, Response, Server, serve};

/// One scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Script {
    /// A 200 whose assistant content is this text (a decision JSON, or anything malformed).
    Content(String),
    /// A 200 with this decision object serialised as the content.
    Decision(Value),
    /// 429 with `Retry-After: secs`.
    RateLimited { retry_after_secs: u64 },
    /// A 5xx with an error body.
    ServerError(u16),
    /// The inner reply, sent only after the delay (for timeouts).
    Delayed(Duration, Box<Script>),
}

/// Cost the fake reports per reply, in ticks (1 USD = 10^10): $0.0037756 as in xAI's docs.
pub const COST_TICKS: i64 = 37_756_000;
pub const PROMPT_TOKENS: u64 = 1200;
pub const COMPLETION_TOKENS: u64 = 300;

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Script>,
    last: Option<Script>,
    requests: Vec<Value>,
    inference_calls: usize,
}

/// A running fake xAI server.
pub struct FakeXai {
    server: Server,
    state: Arc<Mutex<State>>,
    pub api_key: String,
    pub models: Vec<String>,
}

impl FakeXai {
    pub async fn start(api_key: &str, models: &[&str]) -> std::io::Result<FakeXai> {
        let state = Arc::new(Mutex::new(State::default()));
        let key = api_key.to_string();
        let model_list: Vec<String> = models.iter().map(|m| m.to_string()).collect();
        let handler: Handler = {
            let state = state.clone();
            let key = key.clone();
            let models = model_list.clone();
            Arc::new(move |req| handle(&state, &key, &models, req))
        };
        let server = serve(handler).await?;
        Ok(FakeXai {
            server,
            state,
            api_key: key,
            models: model_list,
        })
    }

    /// The OpenAI-compatible base URL, with `/v1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.url())
    }

    /// Queue replies, in order.
    pub fn push(&self, scripts: impl IntoIterator<Item = Script>) {
        if let Ok(mut s) = self.state.lock() {
            s.script.extend(scripts);
        }
    }

    /// Inference requests that reached the scripted part (auth and validation passed).
    pub fn inference_calls(&self) -> usize {
        self.state.lock().map(|s| s.inference_calls).unwrap_or(0)
    }

    /// Bodies of every accepted inference request.
    pub fn requests(&self) -> Vec<Value> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    // The observed xAI error shape: {"code": "...", "error": "..."}.
    Response::json(status, &json!({"code": code, "error": message}))
}

fn handle(state: &Mutex<State>, key: &str, models: &[String], req: Request) -> Response {
    let expected = format!("Bearer {key}");
    if req.header("authorization") != Some(expected.as_str()) {
        return error(
            401,
            "Unauthenticated",
            "Incorrect API key provided. Obtain an API key from https://console.x.ai.",
        );
    }
    let path = req.path.split('?').next().unwrap_or_default();
    match (req.method.as_str(), path) {
        ("GET", "/v1/models") => {
            let data: Vec<Value> = models
                .iter()
                .map(|m| json!({"id": m, "object": "model", "owned_by": "xai", "created": 0}))
                .collect();
            return Response::json(200, &json!({"object": "list", "data": data}));
        }
        ("POST", "/v1/chat/completions") | ("POST", "/v1/responses") => {}
        ("POST", "/v1/messages") => {
            return error(
                410,
                "Gone",
                "The Anthropic-compatible API has been retired.",
            );
        }
        (_, "/v1/chat/completions") | (_, "/v1/responses") => {
            return error(405, "Method not allowed", "use POST");
        }
        _ => return error(404, "Not found", "no such endpoint"),
    }
    let responses_api = path == "/v1/responses";
    if !req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        return error(
            415,
            "Unsupported media type",
            "Content-Type must be application/json",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(
            400,
            "Client specified an invalid argument",
            "malformed JSON body",
        );
    };
    if body.get("search_parameters").is_some() {
        return error(
            410,
            "Gone",
            "Live search is deprecated. Please switch to the Agent Tools API: https://docs.x.ai/docs/guides/tools/overview",
        );
    }
    let model = body["model"].as_str().unwrap_or_default();
    if !models.iter().any(|m| m == model) {
        return error(
            404,
            "Some requested entity was not found",
            &format!("The model {model} does not exist or your team does not have access to it."),
        );
    }
    if responses_api {
        if body.get("input").is_none() {
            return error(422, "Unprocessable entity", "missing field `input`");
        }
        for tool in body["tools"].as_array().into_iter().flatten() {
            let kind = tool["type"].as_str().unwrap_or_default();
            if ![
                "web_search",
                "x_search",
                "function",
                "code_interpreter",
                "mcp",
                "file_search",
            ]
            .contains(&kind)
            {
                return error(
                    422,
                    "Unprocessable entity",
                    &format!("unknown tool type {kind}"),
                );
            }
        }
    } else {
        if !body["messages"].is_array() {
            return error(422, "Unprocessable entity", "missing field `messages`");
        }
        if let Some(format) = body.get("response_format") {
            let ok = match format["type"].as_str() {
                Some("json_schema") => format["json_schema"]["schema"].is_object(),
                Some("text") | Some("json_object") => true,
                _ => false,
            };
            if !ok {
                return error(422, "Unprocessable entity", "invalid response_format");
            }
        }
    }
    let script = {
        let Ok(mut s) = state.lock() else {
            return error(500, "Internal", "state poisoned");
        };
        s.inference_calls += 1;
        s.requests.push(body.clone());
        let next = s.script.pop_front().or_else(|| s.last.clone());
        if let Some(n) = &next {
            s.last = Some(n.clone());
        }
        next
    };
    let Some(script) = script else {
        return error(500, "Internal", "fake xAI has no scripted reply");
    };
    reply(script, model, responses_api)
}

fn reply(script: Script, model: &str, responses_api: bool) -> Response {
    match script {
        Script::Delayed(delay, inner) => {
            let mut r = reply(*inner, model, responses_api);
            r.delay = delay;
            r
        }
        Script::RateLimited { retry_after_secs } => error(
            429,
            "Too many requests",
            "Your team has exceeded its rate limit.",
        )
        .with_header("Retry-After", &retry_after_secs.to_string()),
        Script::ServerError(status) => error(status, "Internal", "upstream failure"),
        Script::Decision(value) => reply(Script::Content(value.to_string()), model, responses_api),
        Script::Content(text) => {
            if responses_api {
                Response::json(
                    200,
                    &json!({
                        "id": "resp_fake", "object": "response", "created_at": 1754475266,
                        "model": model, "status": "completed",
                        "output": [
                            {"type": "web_search_call", "id": "ws_1", "status": "completed",
                             "action": {"type": "search", "query": "bitcoin news"}},
                            {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                             "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": null}]}
                        ],
                        "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS,
                                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                                  "num_sources_used": 2, "num_server_side_tools_used": 1,
                                  "cost_in_usd_ticks": COST_TICKS}
                    }),
                )
            } else {
                Response::json(
                    200,
                    &json!({
                        "id": "chat_fake", "object": "chat.completion", "created": 1752854522,
                        "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text, "refusal": null}}],
                        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                                  "num_sources_used": 0, "cost_in_usd_ticks": COST_TICKS},
                        "system_fingerprint": "fp_fake"
                    }),
                )
            }
        }
    }
}
