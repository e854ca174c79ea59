//! A fake Tavily `/search` and `GET /usage` written from Tavily's OpenAPI spec: Bearer `tvly-` auth (401 with
//! `{"detail":{"error":...}}`), `query` required and enums and dates checked (400), scripted
//! results. Like the real service, a dated search may still return items published later (it
//! matches on publish *or update* date): the results are served as scripted, whatever the dates.

use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

use super::http::{Handler, Request, Response, Server, serve};

/// One result as the fake returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeNews {
    pub title: String,
    pub url: String,
    pub content: String,
    pub published_date: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    results: Vec<FakeNews>,
    requests: Vec<Value>,
}

pub struct FakeTavily {
    server: Server,
    state: Arc<Mutex<State>>,
    pub api_key: String,
}

fn detail(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"detail": {"error": message}}))
}

impl FakeTavily {
    pub async fn start(api_key: &str) -> std::io::Result<FakeTavily> {
        let state = Arc::new(Mutex::new(State::default()));
        let key = api_key.to_string();
        let handler: Handler = {
            let state = state.clone();
            let key = key.clone();
            Arc::new(move |req| handle(&state, &key, req))
        };
        Ok(FakeTavily {
            server: serve(handler).await?,
            state,
            api_key: key,
        })
    }

    pub fn base_url(&self) -> String {
        self.server.url()
    }

    pub fn set_results(&self, results: Vec<FakeNews>) {
        if let Ok(mut s) = self.state.lock() {
            s.results = results;
        }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}

fn handle(state: &Mutex<State>, key: &str, req: Request) -> Response {
    if req.path.split('?').next() == Some("/usage") && req.method == "GET" {
        if req.header("authorization") != Some(format!("Bearer {key}").as_str()) {
            return detail(401, "Unauthorized: missing or invalid API key.");
        }
        let searches = state.lock().map(|s| s.requests.len()).unwrap_or(0);
        return Response::json(
            200,
            &json!({"key": {"usage": searches, "limit": null, "search_usage": searches},
                    "account": {"current_plan": "Researcher", "plan_usage": searches,
                                "plan_limit": 1000, "paygo_usage": 0, "paygo_limit": null}}),
        );
    }
    if req.path.split('?').next() != Some("/search") {
        return detail(404, "Not Found");
    }
    if req.method != "POST" {
        return detail(405, "Method Not Allowed");
    }
    let expected = format!("Bearer {key}");
    if req.header("authorization") != Some(expected.as_str()) {
        return detail(401, "Unauthorized: missing or invalid API key.");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return detail(400, "Invalid JSON body.");
    };
    if body["query"].as_str().is_none_or(|q| q.trim().is_empty()) {
        return detail(400, "Query is missing.");
    }
    if let Some(topic) = body.get("topic")
        && !["general", "news", "finance"].contains(&topic.as_str().unwrap_or_default())
    {
        return detail(
            400,
            "Invalid topic. Must be 'general', 'news' or 'finance'.",
        );
    }
    if let Some(range) = body.get("time_range")
        && !["day", "week", "month", "year", "d", "w", "m", "y"]
            .contains(&range.as_str().unwrap_or_default())
    {
        return detail(400, "Invalid time_range.");
    }
    for key in ["start_date", "end_date"] {
        if let Some(d) = body.get(key)
            && d.as_str()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .is_none()
        {
            return detail(
                400,
                &format!("Invalid {key}. Must be in the format YYYY-MM-DD."),
            );
        }
    }
    if let Some(n) = body.get("max_results")
        && n.as_u64().is_none_or(|n| n > 20)
    {
        return detail(400, "max_results must be between 0 and 20.");
    }
    let Ok(mut s) = state.lock() else {
        return detail(500, "Internal Server Error");
    };
    s.requests.push(body.clone());
    let limit = body["max_results"].as_u64().unwrap_or(5) as usize;
    let results: Vec<Value> = s
        .results
        .iter()
        .take(limit)
        .map(|r| {
            let mut v = json!({"title": r.title, "url": r.url, "content": r.content,
                               "score": 0.8, "raw_content": null, "favicon": null});
            if let Some(d) = &r.published_date {
                v["published_date"] = json!(d);
            }
            v
        })
        .collect();
    Response::json(
        200,
        &json!({"query": body["query"], "answer": null, "images": [], "results": results,
                "response_time": "0.42", "request_id": "00000000-0000-0000-0000-000000000000"}),
    )
}
