//! The flight recorder: every decision (HOLD, invalid, refused and failed ones included) as a
//! `decisions` row, the LLM response cache keyed by SHA-256 of (model, prompt), and cost totals.

use chrono::DateTime;
use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::StoreResult;
use super::codec::{dec_to_sql, opt_dec_from_sql};
use crate::domain::market::TimestampMs;
use crate::domain::risk::{Check, RiskVerdict};

/// One decision as written to the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewDecision {
    pub strategy_id: Option<i64>,
    /// The backtest run this decision was made in (`None`: live, `decide`, the demo).
    pub backtest_id: Option<i64>,
    pub symbol: String,
    /// `rules` | `llm` | `cache`
    pub engine: String,
    pub model: Option<String>,
    pub action: String,
    pub confidence: Option<f64>,
    pub input_snapshot: String,
    pub search_results: Option<String>,
    pub prompt: Option<String>,
    pub raw_response: Option<String>,
    pub decision: Option<String>,
    pub validation: Option<String>,
    pub risk_verdict: Option<String>,
    /// executed | refused | invalid | hold | error | dry_run
    pub outcome: String,
    pub order_ids: Vec<String>,
    pub latency_ms: Option<i64>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_usd: Option<Decimal>,
    pub error: Option<String>,
    pub decided_at: TimestampMs,
}

/// A decision as read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRow {
    pub id: i64,
    #[serde(flatten)]
    pub fields: NewDecision,
}

/// The `decisions.risk_verdict` column: written by serialising this type and read back through
/// it, so the faces see the same checks the risk module made. The JSON shape is the one the
/// trading service always wrote (`{"verdict": …, "execution": …}` or `{"not_evaluated": …}`),
/// so older rows load unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, serde::Deserialize)]
pub struct DecisionRecord {
    /// Every check the risk module made and its answer; `None` when risk was not asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<RiskVerdict>,
    /// What the trading service said it did with the decision, as shown to the user.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub execution: String,
    /// Why risk was not evaluated (paused, blocked, hold, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_evaluated: Option<String>,
}

impl DecisionRecord {
    /// The record for an execution: `None` when there is nothing to say.
    pub fn of_execution(verdict: Option<RiskVerdict>, message: &str) -> Option<DecisionRecord> {
        match verdict {
            Some(v) => Some(DecisionRecord {
                verdict: Some(v),
                execution: message.to_string(),
                not_evaluated: None,
            }),
            None if !message.is_empty() => Some(DecisionRecord {
                not_evaluated: Some(message.to_string()),
                ..DecisionRecord::default()
            }),
            None => None,
        }
    }

    /// The column text.
    pub fn to_column(&self) -> String {
        // A struct of strings, decimals and enums: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Read the column back. A row this type cannot read (hand-written or from an older build)
    /// still loads: its text is kept as the "not evaluated" note rather than failing the view.
    pub fn from_column(text: &str) -> DecisionRecord {
        serde_json::from_str(text).unwrap_or_else(|e| DecisionRecord {
            not_evaluated: Some(format!("unreadable risk verdict ({e}): {text}")),
            ..DecisionRecord::default()
        })
    }

    /// The risk module's reasons for a refusal (empty when approved or not evaluated).
    pub fn refusal_reasons(&self) -> &[String] {
        match &self.verdict {
            Some(RiskVerdict::Refused { reasons, .. }) => reasons,
            _ => &[],
        }
    }

    pub fn checks(&self) -> &[Check] {
        self.verdict.as_ref().map_or(&[], |v| v.checks())
    }
}

pub fn insert(conn: &Connection, d: &NewDecision) -> StoreResult<i64> {
    let order_ids = serde_json::to_string(&d.order_ids).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "INSERT INTO decisions (strategy_id, symbol, engine, model, action, confidence,
            input_snapshot, search_results, prompt, raw_response, decision, validation,
            risk_verdict, outcome, order_ids, latency_ms, prompt_tokens, completion_tokens,
            cost_usd, error, decided_at, backtest_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
            ?18, ?19, ?20, ?21, ?22)",
        params![
            d.strategy_id,
            d.symbol,
            d.engine,
            d.model,
            d.action,
            d.confidence,
            d.input_snapshot,
            d.search_results,
            d.prompt,
            d.raw_response,
            d.decision,
            d.validation,
            d.risk_verdict,
            d.outcome,
            order_ids,
            d.latency_ms,
            d.prompt_tokens,
            d.completion_tokens,
            d.cost_usd.map(dec_to_sql),
            d.error,
            d.decided_at,
            d.backtest_id,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Record the orders a decision led to.
pub fn set_order_ids(conn: &Connection, id: i64, order_ids: &[String]) -> StoreResult<()> {
    let text = serde_json::to_string(order_ids).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "UPDATE decisions SET order_ids = ?1 WHERE id = ?2",
        params![text, id],
    )?;
    Ok(())
}

const COLUMNS: &str = "id, strategy_id, symbol, engine, model, action, confidence, input_snapshot,
    search_results, prompt, raw_response, decision, validation, risk_verdict, outcome, order_ids,
    latency_ms, prompt_tokens, completion_tokens, cost_usd, error, decided_at, backtest_id";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(DecisionRow, Option<String>, String)> {
    let cost: Option<String> = r.get(19)?;
    let order_ids: String = r.get(15)?;
    Ok((
        DecisionRow {
            id: r.get(0)?,
            fields: NewDecision {
                strategy_id: r.get(1)?,
                backtest_id: r.get(22)?,
                symbol: r.get(2)?,
                engine: r.get(3)?,
                model: r.get(4)?,
                action: r.get(5)?,
                confidence: r.get(6)?,
                input_snapshot: r.get(7)?,
                search_results: r.get(8)?,
                prompt: r.get(9)?,
                raw_response: r.get(10)?,
                decision: r.get(11)?,
                validation: r.get(12)?,
                risk_verdict: r.get(13)?,
                outcome: r.get(14)?,
                order_ids: Vec::new(),
                latency_ms: r.get(16)?,
                prompt_tokens: r.get(17)?,
                completion_tokens: r.get(18)?,
                cost_usd: None,
                error: r.get(20)?,
                decided_at: r.get(21)?,
            },
        },
        cost,
        order_ids,
    ))
}

fn collect(
    rows: impl Iterator<Item = rusqlite::Result<(DecisionRow, Option<String>, String)>>,
) -> StoreResult<Vec<DecisionRow>> {
    let mut out = Vec::new();
    for row in rows {
        let (mut row, cost, order_ids) = row?;
        row.fields.cost_usd = opt_dec_from_sql("decisions.cost_usd", cost)?;
        row.fields.order_ids =
            serde_json::from_str(&order_ids).map_err(|e| super::StoreError::Corrupt {
                column: "decisions.order_ids",
                value: order_ids.clone(),
                reason: e.to_string(),
            })?;
        out.push(row);
    }
    Ok(out)
}

/// How many decisions are recorded, exactly.
pub fn count(conn: &Connection) -> StoreResult<u64> {
    let n: i64 = conn.query_row("SELECT COUNT(*) FROM decisions", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The `last` most recent decisions outside backtests (live, `decide`, the demo), newest
/// first: a 200-candle LLM backtest must not bury them.
pub fn recent(conn: &Connection, last: usize) -> StoreResult<Vec<DecisionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM decisions WHERE backtest_id IS NULL
         ORDER BY decided_at DESC, id DESC LIMIT ?1"
    ))?;
    let limit = i64::try_from(last).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], read_row)?;
    collect(rows)
}

/// The `last` most recent decisions of backtest `backtest_id`, newest first.
pub fn of_backtest(
    conn: &Connection,
    backtest_id: i64,
    last: usize,
) -> StoreResult<Vec<DecisionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM decisions WHERE backtest_id = ?1
         ORDER BY decided_at DESC, id DESC LIMIT ?2"
    ))?;
    let limit = i64::try_from(last).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![backtest_id, limit], read_row)?;
    collect(rows)
}

/// The `last` most recent decisions on one symbol up to `before_ms`, newest first (for prompts).
/// A challenger's shadow decisions are left out: they were never traded, and the primary must
/// not read them as its own history.
pub fn recent_for_symbol(
    conn: &Connection,
    symbol: &str,
    before_ms: TimestampMs,
    last: usize,
) -> StoreResult<Vec<DecisionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM decisions WHERE symbol = ?1 AND decided_at < ?2
         AND backtest_id IS NULL AND outcome <> 'shadow'
         ORDER BY decided_at DESC, id DESC LIMIT ?3"
    ))?;
    let limit = i64::try_from(last).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![symbol, before_ms, limit], read_row)?;
    collect(rows)
}

/// `recent_for_symbol` as the decision input's history: when, what, and what came of it.
pub fn past_decisions(
    conn: &Connection,
    symbol: &str,
    before_ms: TimestampMs,
    last: usize,
) -> StoreResult<Vec<crate::domain::decision::PastDecision>> {
    Ok(recent_for_symbol(conn, symbol, before_ms, last)?
        .into_iter()
        .map(|r| crate::domain::decision::PastDecision {
            decided_at: r.fields.decided_at,
            action: r.fields.action,
            outcome: r.fields.outcome,
        })
        .collect())
}

pub fn get(conn: &Connection, id: i64) -> StoreResult<Option<DecisionRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM decisions WHERE id = ?1"))?;
    let rows = stmt.query_map([id], read_row)?;
    Ok(collect(rows)?.into_iter().next())
}

const DAY_MS: i64 = 86_400_000;

/// LLM spend recorded on the UTC day containing `at_ms`: decisions' and reflections' calls.
pub fn spent_on_day(conn: &Connection, at_ms: TimestampMs) -> StoreResult<Decimal> {
    let start = at_ms.div_euclid(DAY_MS) * DAY_MS;
    let mut stmt = conn.prepare(
        "SELECT cost_usd FROM decisions WHERE cost_usd IS NOT NULL AND backtest_id IS NULL
         AND decided_at >= ?1 AND decided_at < ?2
         UNION ALL
         SELECT cost_usd FROM reflections WHERE cost_usd IS NOT NULL
         AND created_at >= ?1 AND created_at < ?2",
    )?;
    let mut total = Decimal::ZERO;
    for cost in stmt.query_map(params![start, start + DAY_MS], |r| r.get::<_, String>(0))? {
        total += opt_dec_from_sql("decisions.cost_usd", Some(cost?))?.unwrap_or_default();
    }
    Ok(total)
}

/// Spend and counts grouped by a key.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostTotal {
    /// `YYYY-MM-DD` (UTC) or the strategy id (`none` for decisions outside a strategy).
    pub key: String,
    pub decisions: u64,
    /// Reflections on closed positions (#20): LLM calls that count toward the budget.
    pub reflections: u64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_usd: Decimal,
}

/// Cost totals per UTC day and per strategy, oldest day / lowest id first: every LLM call the
/// daily budget counts (decisions and reflections), plus decisions made in backtests.
pub fn cost_totals(conn: &Connection) -> StoreResult<(Vec<CostTotal>, Vec<CostTotal>)> {
    let mut stmt = conn.prepare(
        "SELECT decided_at, strategy_id, prompt_tokens, completion_tokens, cost_usd, 0
         FROM decisions
         UNION ALL
         SELECT created_at, strategy_id, prompt_tokens, completion_tokens, cost_usd, 1
         FROM reflections",
    )?;
    let mut by_day: BTreeMap<String, CostTotal> = BTreeMap::new();
    let mut by_strategy: BTreeMap<String, CostTotal> = BTreeMap::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<i64>>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, bool>(5)?,
        ))
    })?;
    for row in rows {
        let (at, strategy, pt, ct, cost, reflection) = row?;
        let cost = opt_dec_from_sql("decisions.cost_usd", cost)?.unwrap_or_default();
        let day = DateTime::from_timestamp_millis(at)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| at.to_string());
        let strategy = strategy.map_or_else(|| "none".to_string(), |s| format!("{s:>12}"));
        for (map, key) in [(&mut by_day, day), (&mut by_strategy, strategy)] {
            let entry = map.entry(key.clone()).or_insert_with(|| CostTotal {
                key: key.trim().to_string(),
                ..CostTotal::default()
            });
            if reflection {
                entry.reflections += 1;
            } else {
                entry.decisions += 1;
            }
            entry.prompt_tokens += pt.unwrap_or(0);
            entry.completion_tokens += ct.unwrap_or(0);
            entry.cost_usd += cost;
        }
    }
    Ok((
        by_day.into_values().collect(),
        by_strategy.into_values().collect(),
    ))
}

/// What a backtest's decisions cost: counted, spent in the run, and what its cached decisions
/// cost when they were first made.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunCost {
    pub decisions: u64,
    pub cost_usd: Decimal,
    pub cached_cost_usd: Decimal,
}

impl RunCost {
    /// The run's cost to a user who trades it live: every decision at its price.
    pub fn full_cost_usd(&self) -> Decimal {
        self.cost_usd + self.cached_cost_usd
    }
}

/// The decisions of backtest `backtest_id` and their cost.
pub fn backtest_cost(conn: &Connection, backtest_id: i64) -> StoreResult<RunCost> {
    let mut stmt =
        conn.prepare("SELECT cost_usd, validation FROM decisions WHERE backtest_id = ?1")?;
    let rows = stmt.query_map([backtest_id], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
        ))
    })?;
    let mut total = RunCost::default();
    for row in rows {
        let (cost, validation) = row?;
        total.decisions += 1;
        total.cost_usd += opt_dec_from_sql("decisions.cost_usd", cost)?.unwrap_or_default();
        total.cached_cost_usd += cached_cost(validation.as_deref())?;
    }
    Ok(total)
}

/// What a cached decision cost when it was first made (`validation.cached_cost_usd`; zero for
/// a decision that was paid for).
fn cached_cost(validation: Option<&str>) -> StoreResult<Decimal> {
    let cached = validation
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .and_then(|v| match &v["cached_cost_usd"] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Ok(opt_dec_from_sql("decisions.validation.cached_cost_usd", cached)?.unwrap_or_default())
}

/// A decision's cost at live prices: what it spent, or for a cached one what it cost when it
/// was first made (as a backtest run's cost counts it).
pub fn full_cost(row: &DecisionRow) -> StoreResult<Decimal> {
    Ok(row.fields.cost_usd.unwrap_or_default() + cached_cost(row.fields.validation.as_deref())?)
}

/// Every decision of strategy `strategy_id` outside backtests (its primary's and its
/// challenger's shadow ones), oldest first.
pub fn of_strategy(conn: &Connection, strategy_id: i64) -> StoreResult<Vec<DecisionRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM decisions WHERE strategy_id = ?1 AND backtest_id IS NULL
         ORDER BY decided_at, id"
    ))?;
    let rows = stmt.query_map([strategy_id], read_row)?;
    collect(rows)
}

/// The cache key: hex SHA-256 of the model, a NUL, and the whole conversation text.
pub fn cache_key(model: &str, prompt: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(model.as_bytes());
    hasher.update([0u8]);
    hasher.update(prompt.as_bytes());
    hex::encode(hasher.finalize())
}

/// A cached model reply.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedReply {
    pub response: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost_usd: Option<Decimal>,
}

pub fn cache_get(conn: &Connection, key: &str) -> StoreResult<Option<CachedReply>> {
    let row = conn
        .query_row(
            "SELECT response, prompt_tokens, completion_tokens, cost_usd FROM llm_cache
             WHERE key = ?1",
            [key],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            },
        )
        .optional()?;
    row.map(|(response, prompt_tokens, completion_tokens, cost)| {
        Ok(CachedReply {
            response,
            prompt_tokens,
            completion_tokens,
            cost_usd: opt_dec_from_sql("llm_cache.cost_usd", cost)?,
        })
    })
    .transpose()
}

pub fn cache_put(
    conn: &Connection,
    key: &str,
    model: &str,
    reply: &CachedReply,
    now_ms: TimestampMs,
) -> StoreResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO llm_cache
            (key, model, response, prompt_tokens, completion_tokens, cost_usd, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            key,
            model,
            reply.response,
            reply.prompt_tokens,
            reply.completion_tokens,
            reply.cost_usd.map(dec_to_sql),
            now_ms
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> RiskVerdict {
        RiskVerdict::Refused {
            reasons: vec!["portfolio heat 7.1 % > cap 6 %".into()],
            checks: vec![
                Check {
                    name: "long_only".into(),
                    passed: true,
                    detail: "BUY opens a long".into(),
                },
                Check {
                    name: "portfolio_heat".into(),
                    passed: false,
                    detail: "7.1 % > 6 %".into(),
                },
            ],
        }
    }

    #[test]
    fn decision_record_round_trips_through_its_column_with_checks_and_reasons() {
        let rec = DecisionRecord::of_execution(Some(refused()), "refused by risk").unwrap();
        let back = DecisionRecord::from_column(&rec.to_column());
        assert_eq!(back, rec);
        assert_eq!(back.checks().len(), 2);
        assert_eq!(back.refusal_reasons(), ["portfolio heat 7.1 % > cap 6 %"]);
        let paused = DecisionRecord::of_execution(None, "trading is paused").unwrap();
        assert_eq!(DecisionRecord::from_column(&paused.to_column()), paused);
        assert_eq!(DecisionRecord::of_execution(None, ""), None);
    }

    #[test]
    fn decision_records_written_before_the_type_still_load() {
        // The shape `record_decision` wrote with json!() before this type existed.
        let old = serde_json::json!({"verdict": refused(), "execution": "refused"}).to_string();
        let rec = DecisionRecord::from_column(&old);
        assert_eq!(rec.verdict, Some(refused()));
        assert_eq!(rec.execution, "refused");
        let odd = DecisionRecord::from_column("not json");
        assert!(odd.verdict.is_none());
        assert!(odd.not_evaluated.unwrap().contains("not json"));
    }
    use crate::store::Store;
    use rust_decimal_macros::dec;

    fn row(at: i64, strategy: Option<i64>, cost: Option<Decimal>) -> NewDecision {
        NewDecision {
            strategy_id: strategy,
            symbol: "BTCUSDT".into(),
            engine: "llm".into(),
            action: "HOLD".into(),
            outcome: "hold".into(),
            input_snapshot: "{}".into(),
            prompt_tokens: Some(10),
            completion_tokens: Some(5),
            cost_usd: cost,
            decided_at: at,
            ..NewDecision::default()
        }
    }

    #[test]
    fn a_decision_round_trips_with_exact_cost_and_order_ids() {
        let store = Store::open_in_memory().unwrap();
        let mut d = row(1_000, None, Some(dec!(0.0037756)));
        d.error = Some("timeout".into());
        let id = insert(store.conn(), &d).unwrap();
        set_order_ids(store.conn(), id, &["tm-1".into()]).unwrap();
        let back = get(store.conn(), id).unwrap().unwrap();
        d.order_ids = vec!["tm-1".into()];
        assert_eq!(back.fields, d);
    }

    #[test]
    fn totals_group_by_utc_day_and_strategy_and_budget_counts_one_day() {
        let store = Store::open_in_memory().unwrap();
        store
            .conn()
            .execute(
                "INSERT INTO strategies (id, name, created_at, updated_at) VALUES (1, 's', 0, 0)",
                [],
            )
            .unwrap();
        let strategy = Some(1);
        // Day 0 (1970-01-01): 0.10 + 0.05; day 1: 0.20; a rules decision without cost.
        insert(store.conn(), &row(1_000, strategy, Some(dec!(0.10)))).unwrap();
        insert(store.conn(), &row(2_000, None, Some(dec!(0.05)))).unwrap();
        insert(store.conn(), &row(DAY_MS + 5, strategy, Some(dec!(0.20)))).unwrap();
        insert(store.conn(), &row(DAY_MS + 6, None, None)).unwrap();
        // A reflection on day 1 for strategy 1: in the budget and in the totals.
        let reflection = crate::store::reflections::NewReflection {
            position_id: crate::store::positions::insert(
                store.conn(),
                "paper",
                strategy,
                &crate::domain::trading::Position {
                    symbol: crate::domain::Symbol::new("BTCUSDT").unwrap(),
                    side: crate::domain::trading::PositionSide::Long,
                    quantity: crate::domain::money::Qty(dec!(1)),
                    entry_price: crate::domain::money::Price(dec!(1)),
                    stop_loss: None,
                    take_profit: None,
                    realized_pnl: crate::domain::money::Quote(dec!(0)),
                    fees_paid: crate::domain::money::Quote(dec!(0)),
                    opened_at: 0,
                    closed_at: Some(DAY_MS),
                },
                0,
            )
            .unwrap(),
            strategy_id: strategy,
            symbol: "BTCUSDT".into(),
            created_at: DAY_MS + 7,
            thesis: "t".into(),
            outcome: "o".into(),
            reflection: "r".into(),
            prompt_tokens: Some(30),
            completion_tokens: Some(5),
            cost_usd: Some(dec!(0.01)),
        };
        crate::store::reflections::insert(store.conn(), &reflection).unwrap();
        assert_eq!(spent_on_day(store.conn(), 50_000).unwrap(), dec!(0.15));
        assert_eq!(spent_on_day(store.conn(), DAY_MS + 1).unwrap(), dec!(0.21));
        let (days, strategies) = cost_totals(store.conn()).unwrap();
        assert_eq!(days.len(), 2);
        assert_eq!(days[0].key, "1970-01-01");
        assert_eq!(days[0].cost_usd, dec!(0.15));
        assert_eq!((days[1].decisions, days[1].reflections), (2, 1));
        assert_eq!(days[1].prompt_tokens, 50);
        // The day's total is what the budget counted.
        assert_eq!(days[1].cost_usd, dec!(0.21));
        // Strategy 1: 0.10 + 0.20 + the reflection's 0.01; no strategy: 0.05 + nothing.
        assert_eq!(strategies.len(), 2);
        let one = strategies.iter().find(|s| s.key == "1").unwrap();
        assert_eq!(one.cost_usd, dec!(0.31));
        let none = strategies.iter().find(|s| s.key == "none").unwrap();
        assert_eq!((none.cost_usd, none.decisions), (dec!(0.05), 2));
    }

    #[test]
    fn backtest_decisions_stay_out_of_the_live_log_prompts_and_budget_and_sum_by_run() {
        let store = Store::open_in_memory().unwrap();
        let c = store.conn();
        let run =
            crate::store::backtests::create(c, "llm:m", "BTCUSDT", "1h", &serde_json::json!({}), 0)
                .unwrap();
        let mut d = row(1_000, None, Some(dec!(0.5)));
        d.backtest_id = Some(run);
        d.validation = Some(r#"{"cached_cost_usd":"0.25"}"#.into());
        insert(c, &d).unwrap();
        insert(c, &row(2_000, None, Some(dec!(0.1)))).unwrap();
        assert_eq!(recent(c, 10).unwrap().len(), 1);
        assert_eq!(
            recent_for_symbol(c, "BTCUSDT", 10_000, 10).unwrap().len(),
            1
        );
        assert_eq!(spent_on_day(c, 5_000).unwrap(), dec!(0.1));
        assert_eq!(of_backtest(c, run, 10).unwrap().len(), 1);
        let cost = backtest_cost(c, run).unwrap();
        assert_eq!((cost.decisions, cost.cost_usd), (1, dec!(0.5)));
        assert_eq!(cost.full_cost_usd(), dec!(0.75));
    }

    #[test]
    fn cache_key_depends_on_model_and_prompt_and_round_trips() {
        assert_ne!(cache_key("a", "p"), cache_key("b", "p"));
        assert_ne!(cache_key("a", "p"), cache_key("a", "q"));
        // The NUL separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(cache_key("ab", "c"), cache_key("a", "bc"));
        let store = Store::open_in_memory().unwrap();
        let key = cache_key("m", "p");
        assert!(cache_get(store.conn(), &key).unwrap().is_none());
        let reply = CachedReply {
            response: "{}".into(),
            prompt_tokens: Some(3),
            completion_tokens: Some(4),
            cost_usd: Some(dec!(0.001)),
        };
        cache_put(store.conn(), &key, "m", &reply, 0).unwrap();
        assert_eq!(cache_get(store.conn(), &key).unwrap(), Some(reply));
    }
}
