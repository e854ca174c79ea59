//! Configuration of the LLM engine and the news search, and the API-key wrapper that never
//! prints its value.

use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// An API key. Debug and Display redact it so it cannot leak into logs or the flight recorder.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(value: impl Into<String>) -> Self {
        ApiKey(value.into())
    }

    /// The secret itself, for the Authorization header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// What the engine does once the day's LLM budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetFallback {
    /// Decide with the rules engine (labelled `rules`).
    Rules,
    /// Record a HOLD.
    Hold,
}

/// USD per million tokens, for servers that do not report the cost themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input_per_million_usd: Decimal,
    pub output_per_million_usd: Decimal,
}

/// Tavily news search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TavilyConfig {
    /// Search news before deciding (needs a Tavily key). Default true.
    pub enabled: bool,
    /// Default `https://api.tavily.com`.
    pub base_url: String,
    /// `day` | `week` | `month` | `year`. Default `day`.
    pub time_range: String,
    /// 1..=20. Default 5.
    pub max_results: u32,
    /// Default 20.
    pub timeout_secs: u64,
}

impl Default for TavilyConfig {
    fn default() -> Self {
        TavilyConfig {
            enabled: true,
            base_url: "https://api.tavily.com".into(),
            time_range: "day".into(),
            max_results: 5,
            timeout_secs: 20,
        }
    }
}

/// The `[llm]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// OpenAI-compatible base URL including `/v1`. Default `https://api.x.ai/v1`.
    pub base_url: String,
    /// Model id sent to the server; model names churn, so it is configuration. Default `grok-4.3`.
    pub model: String,
    /// 0..=2. Default 0.2 (decisions should be repeatable).
    pub temperature: f64,
    /// Completion token limit. Default 2048.
    pub max_tokens: u32,
    /// Per-request timeout. Default 60.
    pub timeout_secs: u64,
    /// Retries after 429 or 5xx. Default 3.
    pub max_retries: u32,
    /// First backoff delay after a 5xx (doubles each retry). Default 500.
    pub retry_base_ms: u64,
    /// Longest Retry-After honoured before giving up. Default 60.
    pub max_retry_after_secs: u64,
    /// Use xAI's `/v1/responses` with the `web_search` and `x_search` tools. Default false.
    pub use_grok_search: bool,
    /// Daily LLM spend limit in USD (UTC day). Default 5.
    pub daily_budget_usd: Decimal,
    /// `rules` | `hold` once the budget is spent. Default `rules`.
    pub on_budget_exhausted: BudgetFallback,
    /// Prices per model id, used when the server reports no cost.
    pub prices: BTreeMap<String, ModelPrice>,
    /// A prompt template replacing the bundled `assets/prompt_template.md`.
    pub prompt_template: Option<PathBuf>,
    /// Largest position a decision may ask for, percent of equity. Default 10.
    pub max_position_pct: f64,
    /// How many earlier decisions the prompt shows. Default 5.
    pub recent_decisions: usize,
    /// How many of the strategy's last reflections on closed positions the prompt shows; 0
    /// also makes no reflection call when a position closes. Default 3, at most 20.
    pub reflections: usize,
    /// Largest reply body read from the LLM server, in bytes; a longer reply is a HOLD (no
    /// repair round). Default 65536.
    pub max_reply_bytes: usize,
    /// Spend limit of one LLM backtest in USD when `backtest --max-cost` is not given.
    /// Default 1.
    pub backtest_max_cost_usd: Decimal,
    /// Where the model's knowledge ends (`YYYY-MM-DD`), per model id: an LLM backtest reports
    /// its metrics before and after it.
    pub knowledge_cutoff: BTreeMap<String, String>,
    pub tavily: TavilyConfig,
}

impl Default for LlmConfig {
    fn default() -> Self {
        let mut prices = BTreeMap::new();
        prices.insert(
            "grok-4.3".to_string(),
            ModelPrice {
                input_per_million_usd: dec!(1.25),
                output_per_million_usd: dec!(2.50),
            },
        );
        LlmConfig {
            base_url: "https://api.x.ai/v1".into(),
            model: "grok-4.3".into(),
            temperature: 0.2,
            max_tokens: 2048,
            timeout_secs: 60,
            max_retries: 3,
            retry_base_ms: 500,
            max_retry_after_secs: 60,
            use_grok_search: false,
            daily_budget_usd: dec!(5),
            on_budget_exhausted: BudgetFallback::Rules,
            prices,
            prompt_template: None,
            max_position_pct: 10.0,
            recent_decisions: 5,
            reflections: 3,
            max_reply_bytes: 64 * 1024,
            backtest_max_cost_usd: dec!(1),
            knowledge_cutoff: BTreeMap::new(),
            tavily: TavilyConfig::default(),
        }
    }
}

impl LlmConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(format!(
                "llm.base_url {:?} must start with http:// or https://",
                self.base_url
            ));
        }
        if self.model.trim().is_empty() {
            return Err("llm.model must name a model, e.g. \"grok-4.3\"".into());
        }
        if !self.temperature.is_finite() || !(0.0..=2.0).contains(&self.temperature) {
            return Err(format!(
                "llm.temperature {} must be between 0 and 2",
                self.temperature
            ));
        }
        if self.max_tokens == 0 || self.timeout_secs == 0 {
            return Err("llm.max_tokens and llm.timeout_secs must be positive".into());
        }
        if self.max_reply_bytes < 1024 {
            return Err(format!(
                "llm.max_reply_bytes {} is too small for a decision: use at least 1024 (default 65536)",
                self.max_reply_bytes
            ));
        }
        if self.reflections > 20 {
            return Err(format!(
                "llm.reflections {} must be between 0 (off) and 20 (default 3)",
                self.reflections
            ));
        }
        if self.backtest_max_cost_usd < Decimal::ZERO {
            return Err("llm.backtest_max_cost_usd must not be negative".into());
        }
        for (model, date) in &self.knowledge_cutoff {
            if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
                return Err(format!(
                    "llm.knowledge_cutoff.{model} {date:?} must be a date, YYYY-MM-DD"
                ));
            }
        }
        if self.daily_budget_usd < Decimal::ZERO {
            return Err("llm.daily_budget_usd must not be negative".into());
        }
        if !self.max_position_pct.is_finite() || !(0.0..=100.0).contains(&self.max_position_pct) {
            return Err("llm.max_position_pct must be between 0 and 100".into());
        }
        if !["day", "week", "month", "year", "d", "w", "m", "y"]
            .contains(&self.tavily.time_range.as_str())
        {
            return Err(format!(
                "llm.tavily.time_range {:?} must be day, week, month or year",
                self.tavily.time_range
            ));
        }
        if !(1..=20).contains(&self.tavily.max_results) {
            return Err("llm.tavily.max_results must be between 1 and 20".into());
        }
        Ok(())
    }

    /// Cost of a reply from token counts, when the model has a configured price.
    pub fn priced_cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<Decimal> {
        let price = self.prices.get(&self.model)?;
        let million = Decimal::from(1_000_000u32);
        Some(
            (Decimal::from(prompt_tokens) * price.input_per_million_usd
                + Decimal::from(completion_tokens) * price.output_per_million_usd)
                / million,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_debug_is_redacted() {
        let key = ApiKey::new("xai-secret");
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[test]
    fn defaults_validate_and_bad_temperature_is_named() {
        LlmConfig::default().validate().unwrap();
        let cfg = LlmConfig {
            temperature: 3.0,
            ..LlmConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("llm.temperature"));
    }

    #[test]
    fn reflections_beyond_twenty_are_refused_and_zero_is_off() {
        let cfg = LlmConfig {
            reflections: 21,
            ..LlmConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("llm.reflections"));
        let off = LlmConfig {
            reflections: 0,
            ..LlmConfig::default()
        };
        off.validate().unwrap();
        assert_eq!(LlmConfig::default().reflections, 3);
    }

    #[test]
    fn priced_cost_uses_per_million_prices() {
        // 1000 * 1.25 / 1e6 + 500 * 2.50 / 1e6 = 0.00125 + 0.00125 = 0.0025
        let cost = LlmConfig::default().priced_cost(1000, 500).unwrap();
        assert_eq!(cost, dec!(0.0025));
    }
}
