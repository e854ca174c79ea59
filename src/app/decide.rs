//! The decision flow: the `DecisionEngine` contract with its engines, `rules`, `llm` and
//! `strategy` (a built-in backtest strategy, in `strategy_engine`), how they are built, and
//! the flight recorder call that turns every outcome (valid, invalid, error, fallback) into a
//! `decisions` row. Nothing here places an order.

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::app::bus::{Event, EventBus};
use crate::app::strategy_engine::{
    ENGINE_NAME as STRATEGY_ENGINE, StrategyEngine, StrategyEngineError,
};
use crate::config::Settings;
use crate::domain::decision::{
    DecisionInput, InjectionFinding, RulesConfig, ValidatedDecision, ValidationLimits, Verdict,
    decision_json_schema, detect_injection, parse_and_validate, rules_decide, validate,
};
use crate::secrets::{SecretError, SecretKind, Secrets};
use crate::services::llm::{
    ApiKey, BudgetFallback, ChatMessage, LlmCache, LlmClient, NewsItem, NewsWindow, PromptParts,
    SYSTEM_PROMPT, TavilyClient, build_prompt, load_template, split_news_at,
};
use crate::services::notification::{
    Alert, AlertKind, NotificationConfig, ResendClient, already_alerted, notify,
};
use crate::store::account::AccountView;
use crate::store::decisions::{self as recorder, CachedReply, NewDecision};
use crate::store::strategies::StrategyRow;
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};

/// Everything one decision produced, for the flight recorder and the faces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineOutput {
    /// `rules`, `llm`, `cache` (an LLM decision answered entirely from the cache), or
    /// `strategy:<name>` (a built-in backtest strategy).
    pub engine: String,
    pub model: Option<String>,
    pub validated: ValidatedDecision,
    pub news: Vec<NewsItem>,
    pub news_error: Option<String>,
    pub injections: Vec<InjectionFinding>,
    pub prompt: Option<String>,
    pub raw_response: Option<String>,
    pub latency_ms: i64,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub cost_usd: Option<Decimal>,
    pub error: Option<String>,
    /// Requests sent to the LLM server for this decision (0 when cached).
    pub llm_calls: u32,
    pub repaired: bool,
    /// Why another engine decided instead (budget exhausted).
    pub fallback: Option<String>,
    /// What the cached turns of this decision cost when they were first asked (a replay pays
    /// nothing; this is what the decision costs a user who trades it live).
    pub cached_cost_usd: Option<Decimal>,
    /// News the point-in-time rule kept out of the prompt: items without a provable date, and
    /// items dated after the decision time.
    pub news_dropped_undated: usize,
    pub news_dropped_future: usize,
    /// When the news was fetched (wall clock live, the decision time in a backtest).
    pub news_captured_at: Option<i64>,
    /// The dated window of a point-in-time news search (backtest, demo).
    pub news_window: Option<NewsWindow>,
}

impl EngineOutput {
    /// An engine's answer with nothing but the validated decision (no LLM call behind it).
    pub fn new(engine: &str, validated: ValidatedDecision) -> Self {
        EngineOutput {
            engine: engine.to_string(),
            model: None,
            validated,
            news: Vec::new(),
            news_error: None,
            injections: Vec::new(),
            prompt: None,
            raw_response: None,
            latency_ms: 0,
            prompt_tokens: None,
            completion_tokens: None,
            cost_usd: None,
            error: None,
            llm_calls: 0,
            repaired: false,
            fallback: None,
            cached_cost_usd: None,
            news_dropped_undated: 0,
            news_dropped_future: 0,
            news_captured_at: None,
            news_window: None,
        }
    }

    /// The outcome column when nothing is executed: error, invalid, hold or dry_run.
    pub fn dry_run_outcome(&self) -> &'static str {
        if self.error.is_some() {
            "error"
        } else if !self.validated.is_valid() {
            "invalid"
        } else if self.validated.decision.action == crate::domain::decision::Action::Hold {
            "hold"
        } else {
            "dry_run"
        }
    }
}

/// Decides on a snapshot. Live trading, the CLI and backtests call the same engines.
pub trait DecisionEngine {
    /// `rules`, `llm` or `strategy` (the `strategies.decision_engine` value that selects it).
    fn label(&self) -> &'static str;
    fn decide(&self, input: &DecisionInput) -> impl Future<Output = EngineOutput> + Send;
}

/// The RSI + MACD rule engine.
#[derive(Debug, Clone, Default)]
pub struct RulesEngine {
    pub config: RulesConfig,
    pub limits: ValidationLimits,
}

impl RulesEngine {
    pub fn decide_now(&self, input: &DecisionInput) -> EngineOutput {
        let decision = rules_decide(input, &self.config);
        let validated = validate(decision, &input.symbol, input.price, &self.limits);
        EngineOutput::new("rules", validated)
    }
}

impl DecisionEngine for RulesEngine {
    fn label(&self) -> &'static str {
        "rules"
    }

    fn decide(&self, input: &DecisionInput) -> impl Future<Output = EngineOutput> + Send {
        std::future::ready(self.decide_now(input))
    }
}

/// The engine a strategy runs with, chosen once at start-up: the rules, or the LLM when a key
/// is configured. One type so the scheduler's jobs need not be generic over it.
pub enum AnyEngine {
    Rules(RulesEngine),
    Llm(Box<LlmEngine>),
    /// A built-in backtest strategy (`decision_engine = 'strategy'`).
    Strategy(StrategyEngine),
}

impl DecisionEngine for AnyEngine {
    fn label(&self) -> &'static str {
        match self {
            AnyEngine::Rules(e) => e.label(),
            AnyEngine::Llm(e) => e.label(),
            AnyEngine::Strategy(e) => e.label(),
        }
    }

    async fn decide(&self, input: &DecisionInput) -> EngineOutput {
        match self {
            AnyEngine::Rules(e) => e.decide_now(input),
            AnyEngine::Llm(e) => e.decide(input).await,
            AnyEngine::Strategy(e) => e.decide_now(input),
        }
    }
}

impl AnyEngine {
    /// The engine for a backtest or a replay of history: point-in-time news, and (for the LLM)
    /// a spend cap for the whole run instead of the live daily budget.
    pub fn for_backtest(self, max_cost_usd: Decimal) -> AnyEngine {
        match self {
            AnyEngine::Llm(e) => AnyEngine::Llm(Box::new(
                e.with_mode(RunMode::Backtest).with_run_budget(max_cost_usd),
            )),
            other => other,
        }
    }

    /// Point-in-time news only (the demo replays history), budget unchanged.
    pub fn point_in_time(self) -> AnyEngine {
        match self {
            AnyEngine::Llm(e) => AnyEngine::Llm(Box::new(e.with_mode(RunMode::Backtest))),
            other => other,
        }
    }
}

/// Live: news as found, stored with the time it was captured. Backtest (and the demo, which
/// replays history): news is searched up to the decision's day and kept only when its
/// published date is provably at or before the decision time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Live,
    Backtest,
}

/// The LLM engine: news → prompt → cached or fresh model reply → validation (one repair at
/// most) → decision; budget-aware, never panics, every failure is a HOLD with the reason.
pub struct LlmEngine {
    client: LlmClient,
    tavily: Option<TavilyClient>,
    store: Arc<Mutex<Store>>,
    cache: LlmCache,
    template: String,
    /// Hash of the system prompt and the template: part of every cache key, so an edited
    /// template never answers from replies to the old one.
    template_version: String,
    rules: RulesEngine,
    bus: Option<EventBus>,
    mode: RunMode,
    alerts: Option<BudgetAlerts>,
    /// A backtest's spend cap and what it has spent so far.
    run_budget: Option<RunBudget>,
    /// `decisions replay`: where the model turns come from, and the news the decision saw.
    replay: Option<Replay>,
}

/// How `decisions replay` re-runs a recorded decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySource {
    /// Only from the cache: nothing is paid, a reply missing from the cache is an error.
    Cache,
    /// Ask the model again (paid, within the daily budget); the cache is neither read nor
    /// overwritten.
    Live,
}

#[derive(Debug, Clone)]
struct Replay {
    source: ReplaySource,
    /// The news recorded with the decision: a replay sees exactly what it saw.
    news: Vec<NewsItem>,
}

/// The spend cap of one backtest (`--max-cost`).
#[derive(Debug)]
struct RunBudget {
    max_usd: Decimal,
    spent: Mutex<Decimal>,
}

impl RunBudget {
    fn spent(&self) -> Decimal {
        self.spent.lock().map(|s| *s).unwrap_or(self.max_usd)
    }
    fn add(&self, cost: Decimal) {
        if let Ok(mut s) = self.spent.lock() {
            *s += cost;
        }
    }
}

/// The version of a prompt template: the first 16 hex digits of SHA-256 of the system prompt
/// and the template.
pub fn template_version(template: &str) -> String {
    let mut h = Sha256::new();
    h.update(SYSTEM_PROMPT.as_bytes());
    h.update([0u8]);
    h.update(template.as_bytes());
    hex::encode(h.finalize())[..16].to_string()
}

/// What decides a decision, and nothing else: the cache key is its hash. The decision time is
/// the close of the last closed candle (not the wall-clock minute), and the news enters by the
/// request that fetches it, so a cache hit needs no news search.
/// (Intervals are floored from the epoch: weekly buckets start on Thursdays, consistently for
/// live decisions, backtests and replays alike.)
#[derive(Serialize)]
struct DecisionKey<'a> {
    model: &'a str,
    search: bool,
    template: &'a str,
    symbol: &'a str,
    interval: String,
    candle_time: i64,
    price: &'a crate::domain::Price,
    change_24h_pct: f64,
    indicators: &'a crate::domain::decision::IndicatorSnapshot,
    higher_indicators: &'a Option<crate::domain::decision::IndicatorSnapshot>,
    order_book: &'a Option<crate::domain::decision::OrderBookSummary>,
    position: &'a Option<crate::domain::decision::PositionSnapshot>,
    risk: &'a crate::domain::decision::RiskSnapshot,
    recent: &'a [crate::domain::decision::PastDecision],
    /// Absent when empty, so keys of decisions without reflections are unchanged.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    reflections: &'a [crate::domain::decision::PastReflection],
    max_position_pct: f64,
    news: Option<(String, Option<NewsWindow>, u32)>,
}

/// Floats in a cache key to ten significant digits: a recorded snapshot read back from JSON
/// may differ in the last bit (serde_json's float parsing is not exact), and `decisions replay`
/// must find the same key; no indicator difference that small changes a prompt.
fn round_floats(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                *value = serde_json::Value::String(format!("{f:.9e}"));
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(round_floats),
        serde_json::Value::Object(map) => map.values_mut().for_each(round_floats),
        _ => {}
    }
}

/// The news as cached with a decision: the items the prompt showed and what was dropped.
#[derive(Serialize, serde::Deserialize)]
struct CachedNews {
    items: Vec<NewsItem>,
    dropped_undated: usize,
    dropped_future: usize,
    captured_at: i64,
}

/// Where the engine reports a spent budget: the alerts table and, with a client, e-mail.
pub struct BudgetAlerts {
    /// `None` records the alert without sending it (notifications off or no Resend key).
    pub client: Option<ResendClient>,
    pub config: NotificationConfig,
}

fn lock(store: &Mutex<Store>) -> Result<std::sync::MutexGuard<'_, Store>, StoreError> {
    store
        .lock()
        .map_err(|_| StoreError::Conflict("the database lock was poisoned by a panic".into()))
}

/// The news query for a symbol: its base asset (BTCUSDT → BTC).
pub fn news_query(symbol: &str) -> String {
    let base = ["USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR", "BTC", "ETH"]
        .iter()
        .find_map(|q| symbol.strip_suffix(q).filter(|b| !b.is_empty()))
        .unwrap_or(symbol);
    format!("{base} cryptocurrency price news")
}

impl LlmEngine {
    pub fn new(
        client: LlmClient,
        tavily: Option<TavilyClient>,
        store: Arc<Mutex<Store>>,
        template: String,
        rules: RulesEngine,
    ) -> Self {
        let template_version = template_version(&template);
        LlmEngine {
            client,
            tavily,
            cache: LlmCache::Store(store.clone()),
            store,
            template,
            template_version,
            rules,
            bus: None,
            mode: RunMode::Live,
            alerts: None,
            run_budget: None,
            replay: None,
        }
    }

    /// Re-run recorded decisions: model turns from `source`, news as recorded.
    pub fn for_replay(mut self, source: ReplaySource, news: Vec<NewsItem>) -> Self {
        self.replay = Some(Replay { source, news });
        self
    }

    /// Keep replies in `cache` (the data dir's own cache file) instead of the database's table.
    pub fn with_cache(mut self, cache: LlmCache) -> Self {
        self.cache = cache;
        self
    }

    /// Cap the spend of a whole run (a backtest) instead of the live daily budget.
    pub fn with_run_budget(mut self, max_usd: Decimal) -> Self {
        self.run_budget = Some(RunBudget {
            max_usd,
            spent: Mutex::new(Decimal::ZERO),
        });
        self
    }

    /// Raise an alert (one a UTC day) when the daily budget is spent.
    pub fn with_budget_alerts(mut self, alerts: BudgetAlerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    pub fn with_mode(mut self, mode: RunMode) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn client(&self) -> &LlmClient {
        &self.client
    }

    pub(crate) fn store(&self) -> &Arc<Mutex<Store>> {
        &self.store
    }

    fn publish(&self, event: Event) {
        if let Some(bus) = &self.bus {
            bus.publish(event);
        }
    }

    fn cache_get(&self, key: &str) -> Option<CachedReply> {
        self.cache.get(key)
    }

    fn cache_put(&self, key: &str, reply: &CachedReply, now_ms: i64) {
        self.cache
            .put(key, &self.client.config().model, reply, now_ms);
    }

    /// The news request for a decision: the query and, for history, the dated window.
    fn news_request(&self, input: &DecisionInput) -> Option<(String, Option<NewsWindow>, u32)> {
        let tavily = self.tavily.as_ref()?;
        let window = match self.mode {
            RunMode::Backtest => Some(NewsWindow::ending_at(
                input.now_ms,
                &tavily.config().time_range,
            )),
            RunMode::Live => None,
        };
        Some((
            news_query(input.symbol.as_str()),
            window,
            tavily.config().max_results,
        ))
    }

    /// The cache key of a decision (see [`DecisionKey`]).
    fn decision_key(&self, input: &DecisionInput, max_position_pct: f64) -> String {
        let config = self.client.config();
        // The close of the last closed candle: a backtest decides exactly there, a live
        // decision some minutes later; both (and a replay of the recorded snapshot) floor to it.
        let step = input.interval.millis().max(1);
        let candle_time = input.now_ms.div_euclid(step) * step;
        let key = DecisionKey {
            model: &config.model,
            search: config.use_grok_search,
            template: &self.template_version,
            symbol: input.symbol.as_str(),
            interval: input.interval.to_string(),
            candle_time,
            price: &input.price,
            change_24h_pct: input.change_24h_pct,
            indicators: &input.indicators,
            higher_indicators: &input.higher_indicators,
            order_book: &input.order_book,
            position: &input.position,
            risk: &input.risk,
            recent: &input.recent_decisions,
            reflections: &input.reflections,
            max_position_pct,
            news: self.news_request(input),
        };
        let mut value = serde_json::to_value(&key).unwrap_or_default();
        round_floats(&mut value);
        recorder::cache_key(&config.model, &value.to_string())
    }

    async fn news(&self, input: &DecisionInput, decision_key: &str, out: &mut EngineOutput) {
        if let Some(replay) = &self.replay {
            out.news = replay.news.clone();
            return;
        }
        let Some(tavily) = &self.tavily else { return };
        let Some((query, window, _)) = self.news_request(input) else {
            return;
        };
        out.news_window = window.clone();
        let news_key = recorder::cache_key("tavily", &format!("{decision_key}\0news"));
        let cached = self
            .cache_get(&news_key)
            .and_then(|c| serde_json::from_str::<CachedNews>(&c.response).ok());
        let news = match cached {
            Some(news) => news,
            None => match tavily.search_news(&query, window.as_ref()).await {
                Ok(items) => {
                    let captured_at = match self.mode {
                        RunMode::Live => chrono::Utc::now().timestamp_millis(),
                        RunMode::Backtest => input.now_ms,
                    };
                    let news = match self.mode {
                        // Live news is what exists now; it is kept with its capture time.
                        RunMode::Live => CachedNews {
                            items,
                            dropped_undated: 0,
                            dropped_future: 0,
                            captured_at,
                        },
                        RunMode::Backtest => {
                            let split = split_news_at(items, input.now_ms);
                            CachedNews {
                                items: split.kept,
                                dropped_undated: split.undated,
                                dropped_future: split.after,
                                captured_at,
                            }
                        }
                    };
                    if let Ok(text) = serde_json::to_string(&news) {
                        let reply = CachedReply {
                            response: text,
                            prompt_tokens: None,
                            completion_tokens: None,
                            cost_usd: None,
                        };
                        self.cache_put(&news_key, &reply, input.now_ms);
                    }
                    news
                }
                Err(e) => {
                    tracing::warn!(error = %e, "news search failed; deciding without news");
                    out.news_error = Some(e.to_string());
                    return;
                }
            },
        };
        if news.dropped_undated > 0 || news.dropped_future > 0 {
            tracing::info!(
                undated = news.dropped_undated,
                after = news.dropped_future,
                "news kept out of a point-in-time prompt"
            );
        }
        out.news_dropped_undated = news.dropped_undated;
        out.news_dropped_future = news.dropped_future;
        out.news_captured_at = Some(news.captured_at);
        let items = news.items;
        for item in &items {
            let text = format!("{}\n{}", item.title, item.snippet);
            for finding in detect_injection(&item.url, &text) {
                tracing::warn!(
                    symbol = %input.symbol, source = %finding.source, pattern = %finding.pattern,
                    "instruction-like text in news: treated as data only"
                );
                self.publish(Event::PromptInjectionDetected {
                    symbol: input.symbol.clone(),
                    source: finding.source.clone(),
                    pattern: finding.pattern.clone(),
                });
                out.injections.push(finding);
            }
        }
        out.news = items;
    }

    /// One model turn, from the cache when this exact conversation was answered before.
    /// Turn `turn` (0: the question, 1: the repair) of the decision keyed `decision_key`:
    /// the later turns follow from the earlier replies, so the decision and the turn number
    /// name the whole conversation.
    async fn ask(
        &self,
        messages: &[ChatMessage],
        decision_key: &str,
        turn: u32,
        now_ms: i64,
        out: &mut EngineOutput,
    ) -> Result<(String, bool), String> {
        let model = &self.client.config().model;
        let key = recorder::cache_key(model, &format!("{decision_key}\0turn{turn}"));
        let source = self.replay.as_ref().map(|r| &r.source);
        let cached = match source {
            Some(ReplaySource::Live) => None,
            _ => self.cache_get(&key),
        };
        if cached.is_none() && source == Some(&ReplaySource::Cache) {
            return Err(format!(
                "turn {turn} of this decision is not in the LLM cache (made before the cache \
                 kept it, or with another model, template or news setting): replay it with --live"
            ));
        }
        if let Some(hit) = cached {
            if let Some(cost) = hit.cost_usd {
                out.cached_cost_usd = Some(out.cached_cost_usd.unwrap_or_default() + cost);
            }
            return Ok((hit.response, true));
        }
        // Before every paid call, the repair round included: a decision must not spend past
        // the budget because it started under it.
        self.check_budget(now_ms, out)?;
        let schema = decision_json_schema();
        match self.client.complete(messages, &schema).await {
            Ok(reply) => {
                out.llm_calls += reply.attempts;
                let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
                };
                out.prompt_tokens = add(out.prompt_tokens, reply.prompt_tokens);
                out.completion_tokens = add(out.completion_tokens, reply.completion_tokens);
                out.cost_usd = match (out.cost_usd, reply.cost_usd) {
                    (None, None) => None,
                    (a, b) => Some(a.unwrap_or_default() + b.unwrap_or_default()),
                };
                out.raw_response = Some(reply.raw.clone());
                if let (Some(budget), Some(cost)) = (&self.run_budget, reply.cost_usd) {
                    budget.add(cost);
                }
                if self.replay.is_some() {
                    // A live replay is a second opinion: the reply the decision got stays.
                    return Ok((reply.content, false));
                }
                let cached = CachedReply {
                    response: reply.content.clone(),
                    prompt_tokens: reply.prompt_tokens.and_then(|t| i64::try_from(t).ok()),
                    completion_tokens: reply.completion_tokens.and_then(|t| i64::try_from(t).ok()),
                    cost_usd: reply.cost_usd,
                };
                self.cache_put(&key, &cached, now_ms);
                Ok((reply.content, false))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The day whose budget a call is charged to: the decision's, except for a live replay of
    /// an old decision, which is paid today.
    fn budget_day(&self, decision_ms: i64) -> i64 {
        match &self.replay {
            Some(r) if r.source == ReplaySource::Live => chrono::Utc::now().timestamp_millis(),
            _ => decision_ms,
        }
    }

    /// `Err` with the reason when the budget leaves nothing for another call: the day's
    /// recorded spend plus what this decision has spent so far.
    fn check_budget(&self, now_ms: i64, out: &EngineOutput) -> Result<(), String> {
        self.check_budget_with(now_ms, out.cost_usd.unwrap_or_default())
    }

    /// [`Self::check_budget`] for a call whose earlier calls cost `spent_so_far` (a
    /// reflection's: nothing).
    pub(crate) fn check_budget_with(
        &self,
        now_ms: i64,
        spent_so_far: Decimal,
    ) -> Result<(), String> {
        let config = self.client.config();
        if let Some(budget) = &self.run_budget {
            // The run's spend already includes this decision's earlier calls.
            let spent = budget.spent();
            if spent >= budget.max_usd {
                return Err(format!(
                    "the run's LLM cost cap is reached (${spent} of ${}); no further call was made",
                    budget.max_usd
                ));
            }
            return Ok(());
        }
        let recorded = lock(&self.store)
            .and_then(|s| recorder::spent_on_day(s.conn(), self.budget_day(now_ms)))
            .map_err(|e| format!("cannot read today's LLM spend ({e}); not calling the model"))?;
        let spent = recorded + spent_so_far;
        if spent >= config.daily_budget_usd {
            return Err(format!(
                "LLM daily budget spent (${spent} of ${}); no further call was made",
                config.daily_budget_usd
            ));
        }
        Ok(())
    }

    async fn decide_llm(&self, input: &DecisionInput) -> EngineOutput {
        let started = Instant::now();
        let config = self.client.config().clone();
        let max_position_pct = if input.risk.max_position_pct > 0.0 {
            config.max_position_pct.min(input.risk.max_position_pct)
        } else {
            config.max_position_pct
        };
        let limits = ValidationLimits {
            max_position_pct,
            ..ValidationLimits::default()
        };
        let mut out = EngineOutput::new(
            "llm",
            ValidatedDecision::invalid_hold(&input.symbol, vec!["no decision yet".into()]),
        );
        out.model = Some(config.model.clone());

        let decision_key = self.decision_key(input, max_position_pct);
        self.news(input, &decision_key, &mut out).await;
        let prompt = build_prompt(
            &self.template,
            input,
            &PromptParts {
                news: &out.news,
                max_position_pct,
            },
        );
        out.prompt = Some(prompt.clone());
        let mut messages = vec![
            ChatMessage::system(SYSTEM_PROMPT),
            ChatMessage::user(prompt),
        ];

        let mut all_cached = true;
        let first = self
            .ask(&messages, &decision_key, 0, input.now_ms, &mut out)
            .await;
        let content = match first {
            Ok((content, cached)) => {
                all_cached &= cached;
                content
            }
            Err(e) => {
                out.error = Some(e.clone());
                out.validated =
                    ValidatedDecision::invalid_hold(&input.symbol, vec![format!("LLM error: {e}")]);
                out.latency_ms = elapsed_ms(started);
                return out;
            }
        };
        let mut validated = parse_and_validate(&content, &input.symbol, input.price, &limits);
        if let Verdict::Invalid(reasons) = &validated.verdict {
            // One repair request, never a guess: the model sees its reply and why it failed.
            out.repaired = true;
            messages.push(ChatMessage::assistant(content.clone()));
            messages.push(ChatMessage::user(format!(
                "Your reply was rejected: {}. Reply again with one JSON object matching the \
                 trading_decision schema for {} only, or a HOLD.",
                reasons.join("; "),
                input.symbol
            )));
            match self
                .ask(&messages, &decision_key, 1, input.now_ms, &mut out)
                .await
            {
                Ok((second, cached)) => {
                    all_cached &= cached;
                    let retried = parse_and_validate(&second, &input.symbol, input.price, &limits);
                    validated = match retried.verdict {
                        Verdict::Valid => retried,
                        Verdict::Invalid(second_reasons) => {
                            let mut all = reasons.clone();
                            all.extend(
                                second_reasons
                                    .into_iter()
                                    .map(|r| format!("after repair: {r}")),
                            );
                            let mut held = ValidatedDecision::invalid_hold(&input.symbol, all);
                            held.original = retried.original.or(validated.original.clone());
                            held
                        }
                    };
                }
                Err(e) => {
                    out.error = Some(format!("repair request failed: {e}"));
                }
            }
        }
        out.validated = validated;
        if all_cached {
            out.engine = "cache".into();
        }
        out.latency_ms = elapsed_ms(started);
        out
    }

    async fn decide_inner(&self, input: &DecisionInput) -> EngineOutput {
        let config = self.client.config();
        let cache_replay = self
            .replay
            .as_ref()
            .is_some_and(|r| r.source == ReplaySource::Cache);
        if self.run_budget.is_some() || cache_replay {
            // A backtest: its cap is checked before every call (a cached decision is free).
            // A replay from the cache makes no call at all.
            return self.decide_llm(input).await;
        }
        let spent = lock(&self.store)
            .and_then(|s| recorder::spent_on_day(s.conn(), self.budget_day(input.now_ms)))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read today's LLM spend; assuming the budget is spent");
                config.daily_budget_usd
            });
        if spent >= config.daily_budget_usd {
            let fallback = match config.on_budget_exhausted {
                BudgetFallback::Rules => "rules",
                BudgetFallback::Hold => "hold",
            };
            tracing::warn!(%spent, budget = %config.daily_budget_usd, fallback, "LLM daily budget exhausted");
            self.publish(Event::LlmBudgetExhausted {
                spent_usd: spent.to_string(),
                budget_usd: config.daily_budget_usd.to_string(),
                fallback: fallback.to_string(),
            });
            let reason = format!(
                "LLM daily budget spent (${spent} of ${}); {fallback} decided instead",
                config.daily_budget_usd
            );
            self.alert_budget_spent(&reason, input.now_ms).await;
            let mut out = match config.on_budget_exhausted {
                BudgetFallback::Rules => self.rules.decide_now(input),
                BudgetFallback::Hold => {
                    let hold = validate(
                        crate::domain::decision::TradingDecision::hold(
                            input.symbol.as_str(),
                            reason.clone(),
                        ),
                        &input.symbol,
                        input.price,
                        &self.rules.limits,
                    );
                    EngineOutput::new("rules", hold)
                }
            };
            out.fallback = Some(reason);
            return out;
        }
        self.decide_llm(input).await
    }
}

impl LlmEngine {
    /// One alert a UTC day, whatever the notification dedup window; a failed send is retried
    /// at the next exhausted decision. Failures are logged, never fatal to the decision.
    async fn alert_budget_spent(&self, reason: &str, now_ms: i64) {
        let Some(alerts) = &self.alerts else { return };
        let day = chrono::DateTime::from_timestamp_millis(now_ms)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let alert = Alert {
            kind: AlertKind::LlmBudgetSpent,
            dedup_key: format!("{}/{day}", AlertKind::LlmBudgetSpent.as_str()),
            subject: format!("TradeMind: LLM budget for {day} spent"),
            body: format!(
                "{reason}.\nDecisions use the fallback until 00:00 UTC; raise llm.daily_budget_usd \
                 to allow more LLM calls today."
            ),
        };
        match lock(&self.store).and_then(|s| already_alerted(s.conn(), &alert.dedup_key)) {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the alerts table; not alerting");
                return;
            }
        }
        match notify(
            &self.store,
            alerts.client.as_ref(),
            &alerts.config,
            &alert,
            now_ms,
        )
        .await
        {
            Ok(outcome) => tracing::info!(?outcome, "LLM budget alert"),
            Err(e) => tracing::warn!(error = %e, "cannot record the LLM budget alert"),
        }
    }
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

impl DecisionEngine for LlmEngine {
    fn label(&self) -> &'static str {
        "llm"
    }

    fn decide(&self, input: &DecisionInput) -> impl Future<Output = EngineOutput> + Send {
        self.decide_inner(input)
    }
}

/// Write one decision to the flight recorder and announce it. `outcome` is what happened next
/// (`dry_run` … or `executed`/`refused` from the execution layer), `risk_verdict` every check.
pub fn record(
    store: &Store,
    input: &DecisionInput,
    out: &EngineOutput,
    strategy_id: Option<i64>,
    outcome: &str,
    risk_verdict: Option<serde_json::Value>,
    bus: Option<&EventBus>,
) -> Result<i64, StoreError> {
    record_row(
        store,
        input,
        out,
        strategy_id,
        None,
        outcome,
        risk_verdict,
        bus,
    )
}

/// Record a backtest's decision, linked to its `backtests` row (kept out of live prompts,
/// budgets and the daemon's history).
pub fn record_in_backtest(
    store: &Store,
    input: &DecisionInput,
    out: &EngineOutput,
    backtest_id: i64,
    outcome: &str,
) -> Result<i64, StoreError> {
    record_row(
        store,
        input,
        out,
        None,
        Some(backtest_id),
        outcome,
        None,
        None,
    )
}

#[allow(clippy::too_many_arguments)]
fn record_row(
    store: &Store,
    input: &DecisionInput,
    out: &EngineOutput,
    strategy_id: Option<i64>,
    backtest_id: Option<i64>,
    outcome: &str,
    risk_verdict: Option<serde_json::Value>,
    bus: Option<&EventBus>,
) -> Result<i64, StoreError> {
    let decision = &out.validated.decision;
    let search = if out.news.is_empty()
        && out.news_error.is_none()
        && out.injections.is_empty()
        && out.news_captured_at.is_none()
    {
        None
    } else {
        Some(
            json!({
                "items": out.news,
                "error": out.news_error,
                "injections": out.injections,
                "captured_at": out.news_captured_at,
                "window": out.news_window,
                "dropped_undated": out.news_dropped_undated,
                "dropped_after_decision": out.news_dropped_future,
            })
            .to_string(),
        )
    };
    let validation = json!({
        "verdict": out.validated.verdict,
        "original": out.validated.original,
        "adjustments": out.validated.adjustments,
        "repaired": out.repaired,
        "fallback": out.fallback,
        "llm_calls": out.llm_calls,
        "cached_cost_usd": out.cached_cost_usd,
    });
    let row = NewDecision {
        strategy_id,
        backtest_id,
        symbol: input.symbol.to_string(),
        engine: out.engine.clone(),
        model: out.model.clone(),
        action: decision.action.to_string(),
        confidence: Some(decision.confidence),
        input_snapshot: serde_json::to_string(input).unwrap_or_else(|_| "{}".into()),
        search_results: search,
        prompt: out.prompt.clone(),
        raw_response: out.raw_response.clone(),
        decision: serde_json::to_string(decision).ok(),
        validation: Some(validation.to_string()),
        risk_verdict: risk_verdict.map(|v| v.to_string()),
        outcome: outcome.to_string(),
        order_ids: Vec::new(),
        latency_ms: Some(out.latency_ms),
        prompt_tokens: out.prompt_tokens.and_then(|t| i64::try_from(t).ok()),
        completion_tokens: out.completion_tokens.and_then(|t| i64::try_from(t).ok()),
        cost_usd: out.cost_usd,
        error: out.error.clone(),
        decided_at: input.now_ms,
    };
    let id = recorder::insert(store.conn(), &row)?;
    if let Some(bus) = bus {
        bus.publish(Event::DecisionRecorded {
            id,
            symbol: input.symbol.clone(),
            action: row.action.clone(),
            outcome: row.outcome.clone(),
        });
    }
    Ok(id)
}

/// The environment variable that supplies the Grok key when the keyring holds none.
pub const GROK_KEY_ENV: &str = "TRADEMIND_GROK_API_KEY";

/// Why a decision engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "the LLM engine needs a Grok API key: store one with `trademind keys set grok` or set {GROK_KEY_ENV}"
    )]
    NoGrokKey,
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(transparent)]
    Llm(#[from] crate::services::llm::LlmError),
    #[error(transparent)]
    Tavily(#[from] crate::services::llm::TavilyError),
    #[error("cannot read llm.prompt_template {path:?}: {source}")]
    Template {
        path: Option<std::path::PathBuf>,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] crate::services::llm::cache::CacheError),
    #[error("strategy {name:?} cannot run: {source}")]
    Strategy {
        name: String,
        source: StrategyEngineError,
    },
    #[error("unknown decision engine {0:?}: expected rules, llm or strategy")]
    Unknown(String),
}

/// A service's API key: the environment (`TRADEMIND_<KIND>_API_KEY`) first, then the OS keyring
/// (`trademind keys set grok|tavily`). A keyring that cannot be reached counts as no key: every
/// key read here is optional.
pub async fn api_key(settings: &Settings, kind: SecretKind) -> Result<Option<ApiKey>, SecretError> {
    let found = crate::secrets::optional(
        Secrets::from_config(&settings.secrets, &settings.data_dir())
            .api_key(kind)
            .await,
    )?;
    Ok(found.map(|k| ApiKey::new(k.expose().to_string())))
}

/// The rules engine as the settings configure it.
/// Fill a decision input's account part (the open position on its symbol, today's PnL, the
/// trading state, portfolio heat) from the account read model, so `decide`, `execute` and the
/// daemon tell the engine the same account the faces show.
pub fn apply_account(input: &mut crate::domain::decision::DecisionInput, view: &AccountView) {
    use crate::domain::risk::{OpenPosition, PortfolioHeatService};
    use crate::domain::trading::PositionService;
    input.position = view
        .positions
        .iter()
        .find(|p| p.row.position.symbol == input.symbol)
        .map(|p| {
            let pos = &p.row.position;
            crate::domain::decision::PositionSnapshot {
                quantity: pos.quantity,
                entry_price: pos.entry_price,
                unrealized_pnl: PositionService::unrealized_pnl(pos, input.price),
                thesis: p.thesis.clone(),
            }
        });
    input.risk.daily_pnl = view.day_pnl;
    input.risk.breaker = view.trading.label().to_lowercase();
    if view.equity.get() > Decimal::ZERO {
        // Heat from the LIVE stops: a position whose stop was cancelled risks its notional.
        let open: Vec<OpenPosition> = view
            .positions
            .iter()
            .map(|p| OpenPosition {
                symbol: p.row.position.symbol.clone(),
                quantity: p.row.position.quantity,
                entry: p.row.position.entry_price,
                stop: p.live_stop,
            })
            .collect();
        let heat = PortfolioHeatService::measure(&open, view.equity, Decimal::ONE_HUNDRED);
        input.risk.heat_pct =
            rust_decimal::prelude::ToPrimitive::to_f64(&heat.heat_pct).unwrap_or(0.0);
    }
}

pub fn rules_engine(settings: &Settings) -> RulesEngine {
    RulesEngine {
        config: settings.rules.clone(),
        limits: ValidationLimits {
            max_position_pct: settings.llm.max_position_pct,
            ..ValidationLimits::default()
        },
    }
}

/// Build `rules` or `llm` (`requested`, else llm when a Grok key is stored, else rules); the
/// notice says when it decides offline with rules. `mailer` is awaited only for the LLM engine
/// (its spent-budget alerts).
pub async fn build_engine(
    settings: &Settings,
    requested: Option<&str>,
    store: Arc<Mutex<Store>>,
    mailer: impl Future<Output = Option<ResendClient>>,
) -> Result<(AnyEngine, Option<String>), EngineError> {
    let grok_key = api_key(settings, SecretKind::Grok).await?;
    build_engine_with(settings, requested, store, mailer, grok_key).await
}

/// [`build_engine`] with the Grok key already read (so a caller that needs it too reads the
/// keyring once).
pub async fn build_engine_with(
    settings: &Settings,
    requested: Option<&str>,
    store: Arc<Mutex<Store>>,
    mailer: impl Future<Output = Option<ResendClient>>,
    grok_key: Option<ApiKey>,
) -> Result<(AnyEngine, Option<String>), EngineError> {
    let engine_name = match (requested, &grok_key) {
        (Some("llm"), None) => return Err(EngineError::NoGrokKey),
        (Some(e @ ("llm" | "rules")), _) => e.to_string(),
        (Some(other), _) => return Err(EngineError::Unknown(other.to_string())),
        (None, Some(_)) => "llm".to_string(),
        (None, None) => "rules".to_string(),
    };
    let offline_notice = (grok_key.is_none())
        .then(|| "no LLM key configured: deciding offline with the rules engine".to_string());
    let rules = rules_engine(settings);
    if engine_name != "llm" {
        return Ok((AnyEngine::Rules(rules), offline_notice));
    }
    let key = grok_key.ok_or(EngineError::NoGrokKey)?;
    let client = LlmClient::new(settings.llm.clone(), key)?;
    let tavily = match api_key(settings, SecretKind::Tavily).await? {
        Some(k) if settings.llm.tavily.enabled => {
            Some(TavilyClient::new(settings.llm.tavily.clone(), k)?)
        }
        _ => None,
    };
    let template = load_template(settings.llm.prompt_template.as_deref()).map_err(|source| {
        EngineError::Template {
            path: settings.llm.prompt_template.clone(),
            source,
        }
    })?;
    // A spent budget is recorded as an alert, and mailed when notifications are set up.
    let alerts = BudgetAlerts {
        client: mailer.await,
        config: settings.notifications.clone(),
    };
    let cache = LlmCache::open_in(&settings.data_dir())?;
    let engine = LlmEngine::new(client, tavily, store, template, rules)
        .with_budget_alerts(alerts)
        .with_cache(cache);
    Ok((AnyEngine::Llm(Box::new(engine)), offline_notice))
}

/// The engine a strategy row asks for, for the scheduler: `strategy` runs the built-in its
/// `parameters` name; `llm` only when a Grok key is stored, else the rules with a logged
/// notice, so a daemon without keys still trades offline.
pub async fn engine_for(
    settings: &Settings,
    strategy: &StrategyRow,
    store: Arc<Mutex<Store>>,
    mailer: impl Future<Output = Option<ResendClient>>,
) -> Result<AnyEngine, EngineError> {
    engine_named(
        settings,
        &strategy.name,
        &strategy.decision_engine,
        &strategy.parameters,
        store,
        mailer,
    )
    .await
}

/// [`engine_for`] by parts: the strategy's name (for errors), its engine and its parameters.
pub async fn engine_named(
    settings: &Settings,
    name: &str,
    wanted: &str,
    parameters: &serde_json::Value,
    store: Arc<Mutex<Store>>,
    mailer: impl Future<Output = Option<ResendClient>>,
) -> Result<AnyEngine, EngineError> {
    if wanted == STRATEGY_ENGINE {
        return StrategyEngine::from_parameters(parameters)
            .map(AnyEngine::Strategy)
            .map_err(|source| EngineError::Strategy {
                name: name.to_string(),
                source,
            });
    }
    if wanted == "llm" && api_key(settings, SecretKind::Grok).await?.is_none() {
        tracing::warn!(
            strategy = name,
            "a strategy asks for the LLM engine but no Grok key is configured: deciding with the rules engine{}",
            crate::secrets::unreadable_keyring_note()
        );
        return Ok(AnyEngine::Rules(rules_engine(settings)));
    }
    Ok(build_engine(settings, Some(wanted), store, mailer).await?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::decision::DecisionInput;
    use crate::domain::market::{Candle, Interval};
    use crate::domain::trading::{Position, PositionSide};
    use crate::domain::{Price, Qty, Quote, Symbol};
    use crate::store::account::{AccountQuery, load, utc_day_start};
    use crate::store::risk::{ManualStop, stop_trading};
    use rust_decimal_macros::dec;

    #[test]
    fn decide_prompt_tells_the_open_position_day_pnl_and_pause_execute_sees() {
        // Symptom 6: with a position open and trading paused, `decide` told the LLM "flat,
        // daily PnL 0, circuit breaker active".
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let now = 1_767_355_200_000;
        let btc = Symbol::new("BTCUSDT").unwrap();
        let p = Position {
            symbol: btc.clone(),
            side: PositionSide::Long,
            quantity: Qty(dec!(0.1)),
            entry_price: Price(dec!(50000)),
            stop_loss: None,
            take_profit: None,
            realized_pnl: Quote(dec!(-5)),
            fees_paid: Quote(dec!(5)),
            opened_at: now - 60_000,
            closed_at: None,
        };
        crate::store::positions::insert(c, "paper", None, &p, now).unwrap();
        let config = crate::domain::risk::RiskConfig::default();
        stop_trading(c, &config, ManualStop::Pause, "cli", "news", now).unwrap();
        let candles: Vec<Candle> = (0..60)
            .map(|i| Candle {
                open_time: now - (60 - i) * 3_600_000,
                open: Price(dec!(51000)),
                high: Price(dec!(51100)),
                low: Price(dec!(50900)),
                close: Price(dec!(51000)),
                volume: Qty(dec!(1)),
            })
            .collect();
        let mut input = DecisionInput::from_candles(btc, Interval::H1, &candles, now).unwrap();
        let view = load(
            c,
            &AccountQuery {
                connection: "paper",
                now_ms: now,
                day_start_ms: utc_day_start(now),
                paper_starting_balance: Some(Quote(dec!(10000))),
                unresolved: Vec::new(),
            },
        )
        .unwrap();
        apply_account(&mut input, &view);
        let position = input.position.expect("the open position is told");
        assert_eq!(position.quantity, Qty(dec!(0.1)));
        // (51000 - 50000) * 0.1 at the snapshot's price
        assert_eq!(position.unrealized_pnl, Quote(dec!(100)));
        assert_eq!(input.risk.breaker, "paused");
        // Today: the entry's fee (the position is not marked yet).
        assert_eq!(input.risk.daily_pnl, Quote(dec!(-5)));
        // No stop order protects it: its whole notional is at risk.
        assert!(input.risk.heat_pct > 49.0, "{}", input.risk.heat_pct);
    }
}
