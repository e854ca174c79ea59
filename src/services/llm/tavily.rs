//! Tavily news search (`POST /search`, Bearer auth, topic `news`). Results are untrusted data:
//! they only ever reach the prompt inside the delimited block built by `prompt`.

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

use super::config::{ApiKey, TavilyConfig};
use crate::domain::market::TimestampMs;

/// One news result as it goes into the prompt and the flight recorder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewsItem {
    pub title: String,
    pub url: String,
    /// As Tavily gives it (RFC 2822, RFC 3339 or a date); not in the current schema, often absent.
    pub published_date: Option<String>,
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TavilyError {
    #[error("Tavily rejected the API key: {0}")]
    Unauthorized(String),
    #[error("Tavily usage limit reached (HTTP {status}): {body}")]
    Limit { status: u16, body: String },
    #[error("Tavily answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("cannot reach Tavily: {0}")]
    Network(String),
    #[error("unreadable Tavily response: {0}")]
    Decode(String),
}

#[derive(Deserialize)]
struct SearchResponse {
    results: Vec<SearchResult>,
}

#[derive(Deserialize)]
struct SearchResult {
    title: Option<String>,
    url: Option<String>,
    content: Option<String>,
    published_date: Option<String>,
}

/// The dated window of a point-in-time search: Tavily's `start_date`/`end_date` (YYYY-MM-DD,
/// UTC). `end_date` is the decision's own day; Tavily matches on publish *or update* date, so
/// what it returns is still filtered by [`split_news_at`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewsWindow {
    pub start_date: String,
    pub end_date: String,
}

impl NewsWindow {
    /// The window ending on the UTC day of `at_ms` and reaching back as far as the configured
    /// `time_range` (day, week, month or year).
    pub fn ending_at(at_ms: TimestampMs, time_range: &str) -> NewsWindow {
        let end = DateTime::from_timestamp_millis(at_ms)
            .map(|t| t.date_naive())
            .unwrap_or_default();
        let days = match time_range {
            "week" | "w" => 7,
            "month" | "m" => 30,
            "year" | "y" => 365,
            _ => 1,
        };
        let start = end - chrono::Duration::days(days);
        NewsWindow {
            start_date: start.format("%Y-%m-%d").to_string(),
            end_date: end.format("%Y-%m-%d").to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TavilyClient {
    http: reqwest::Client,
    config: TavilyConfig,
    key: ApiKey,
}

impl TavilyClient {
    pub fn new(config: TavilyConfig, key: ApiKey) -> Result<Self, TavilyError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs))
            .build()
            .map_err(|e| TavilyError::Network(e.to_string()))?;
        Ok(TavilyClient { http, config, key })
    }

    pub fn config(&self) -> &TavilyConfig {
        &self.config
    }

    /// News about the symbol's base asset: recent (`time_range` back from now), or within
    /// `window` for a decision in the past.
    pub async fn search_news(
        &self,
        query: &str,
        window: Option<&NewsWindow>,
    ) -> Result<Vec<NewsItem>, TavilyError> {
        let url = format!("{}/search", self.config.base_url.trim_end_matches('/'));
        let mut body = json!({
            "query": query,
            "topic": "news",
            "max_results": self.config.max_results,
            "search_depth": "basic",
        });
        match window {
            // `time_range` counts back from today: a past decision names its dates instead.
            Some(w) => {
                body["start_date"] = json!(w.start_date);
                body["end_date"] = json!(w.end_date);
            }
            None => body["time_range"] = json!(self.config.time_range),
        }
        let response = self
            .http
            .post(url)
            .bearer_auth(self.key.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| TavilyError::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| TavilyError::Network(e.to_string()))?;
        let text = crate::secrets::redact(text, self.key.expose());
        match status {
            200 => {}
            401 => return Err(TavilyError::Unauthorized(text)),
            403 | 429 | 432 | 433 => return Err(TavilyError::Limit { status, body: text }),
            _ => return Err(TavilyError::Http { status, body: text }),
        }
        let parsed: SearchResponse =
            serde_json::from_str(&text).map_err(|e| TavilyError::Decode(e.to_string()))?;
        Ok(parsed
            .results
            .into_iter()
            .map(|r| NewsItem {
                title: r.title.unwrap_or_default(),
                url: r.url.unwrap_or_default(),
                published_date: r.published_date,
                snippet: r.content.unwrap_or_default(),
            })
            .collect())
    }
}

impl TavilyClient {
    /// `GET /usage`: the credits used and the key's limit; costs no credit, so `keys test`
    /// uses it to check the key. Returns (credits used, limit if any).
    pub async fn usage(&self) -> Result<(u64, Option<u64>), TavilyError> {
        let url = format!("{}/usage", self.config.base_url.trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .bearer_auth(self.key.expose())
            .send()
            .await
            .map_err(|e| TavilyError::Network(crate::services::describe_http_error(e)))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| TavilyError::Network(crate::services::describe_http_error(e)))?;
        let text = crate::secrets::redact(text, self.key.expose());
        match status {
            200 => {}
            401 => return Err(TavilyError::Unauthorized(text)),
            403 | 429 | 432 | 433 => return Err(TavilyError::Limit { status, body: text }),
            _ => return Err(TavilyError::Http { status, body: text }),
        }
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| TavilyError::Decode(e.to_string()))?;
        Ok((
            value["key"]["usage"].as_u64().unwrap_or(0),
            value["key"]["limit"].as_u64(),
        ))
    }
}

/// Milliseconds since the epoch of a published date in any of the forms Tavily has used.
pub fn published_ms(date: &str) -> Option<TimestampMs> {
    let date = date.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(date) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(date) {
        return Some(t.timestamp_millis());
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// News split at a decision time: what may be shown, and how many were dropped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewsSplit {
    pub kept: Vec<NewsItem>,
    /// No date, or one that cannot be read: it could be from the future.
    pub undated: usize,
    /// Published after the decision time.
    pub after: usize,
}

/// For a decision at `now_ms` in the past: keep only news provably published at or before it,
/// counting what goes (undated items included: they could be from the future).
pub fn split_news_at(items: Vec<NewsItem>, now_ms: TimestampMs) -> NewsSplit {
    let mut split = NewsSplit::default();
    for item in items {
        match item.published_date.as_deref().and_then(published_ms) {
            Some(at) if at <= now_ms => split.kept.push(item),
            Some(_) => split.after += 1,
            None => split.undated += 1,
        }
    }
    split
}

/// For a backtest at `now_ms`: keep only news provably published at or before it (an undated
/// item could be from the future, so it goes too).
pub fn drop_news_after(items: Vec<NewsItem>, now_ms: TimestampMs) -> Vec<NewsItem> {
    items
        .into_iter()
        .filter(|n| {
            n.published_date
                .as_deref()
                .and_then(published_ms)
                .is_some_and(|t| t <= now_ms)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(date: Option<&str>) -> NewsItem {
        NewsItem {
            title: "t".into(),
            url: "u".into(),
            published_date: date.map(str::to_string),
            snippet: "s".into(),
        }
    }

    #[test]
    fn backtest_drops_news_from_after_the_simulated_time_and_undated_news() {
        // 2025-01-15T00:00:00Z = 1736899200000 ms
        let now = 1_736_899_200_000;
        let kept = drop_news_after(
            vec![
                item(Some("Tue, 14 Jan 2025 10:00:00 GMT")),
                item(Some("2025-01-15T00:00:01Z")),
                item(Some("2025-01-15")),
                item(None),
            ],
            now,
        );
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].published_date.as_deref(), Some("2025-01-15"));
    }

    #[test]
    fn a_split_counts_undated_and_later_news_apart() {
        let now = 1_736_899_200_000;
        let split = split_news_at(
            vec![
                item(Some("2025-01-14T10:00:00Z")),
                item(Some("2026-12-04")),
                item(None),
                item(Some("sometime last week")),
            ],
            now,
        );
        assert_eq!(split.kept.len(), 1);
        assert_eq!((split.undated, split.after), (2, 1));
    }

    #[test]
    fn a_past_window_ends_on_the_decision_day_and_reaches_back_the_time_range() {
        // 2025-01-15T13:00Z
        let w = NewsWindow::ending_at(1_736_946_000_000, "week");
        assert_eq!(w.end_date, "2025-01-15");
        assert_eq!(w.start_date, "2025-01-08");
        assert_eq!(
            NewsWindow::ending_at(1_736_946_000_000, "day").start_date,
            "2025-01-14"
        );
    }
}
