//! Reflections on closed positions (#20): after a trading step has booked a close (and let go
//! of its lock), the strategy's LLM engine is asked once how the outcome compares with the
//! thesis the position was opened on. The call is budget-checked and costed like a decision's;
//! an over-budget or failed reflection is skipped with a logged reason and never touches the
//! close.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::app::decide::LlmEngine;
use crate::domain::decision::reflection::{
    parse_reflection, reflection_json_schema, reflection_question, thesis_text,
};
use crate::domain::decision::{ClosedOutcome, Thesis};
use crate::domain::trading::OrderStatus;
use crate::domain::trading::order::OrderPurpose;
use crate::services::llm::ChatMessage;
use crate::services::llm::prompt::{REFLECTION_SYSTEM_PROMPT, untrusted_block};
use crate::store::reflections::{self, NewReflection};
use crate::store::{Store, StoreError, orders, positions};

/// A closed position to reflect on.
struct Closed {
    position_id: i64,
    symbol: String,
    thesis: Thesis,
    outcome: ClosedOutcome,
}

/// What became of one closed position.
#[derive(Debug, Clone, PartialEq)]
pub enum Reflected {
    /// Stored with this row id.
    Stored(i64),
    /// Not asked or not stored, with the reason.
    Skipped(String),
}

fn lock(store: &Mutex<Store>) -> Result<std::sync::MutexGuard<'_, Store>, StoreError> {
    store
        .lock()
        .map_err(|_| StoreError::Conflict("the database lock was poisoned by a panic".into()))
}

/// The closes of `strategy_id` on `connection` since `since_ms` not reflected on yet and not in
/// `tried` (each is tried once: a skipped one is not asked again every cycle).
fn pending(
    store: &Mutex<Store>,
    connection: &str,
    strategy_id: i64,
    since_ms: i64,
    tried: &Mutex<HashSet<i64>>,
) -> Result<Vec<Closed>, StoreError> {
    let db = lock(store)?;
    let c = db.conn();
    let mut tried = tried
        .lock()
        .map_err(|_| StoreError::Conflict("the reflection list was poisoned".into()))?;
    let mut out = Vec::new();
    for id in reflections::unreflected_closes(c, connection, Some(strategy_id), since_ms)? {
        if !tried.insert(id) {
            continue;
        }
        let Some(row) = positions::get(c, id)? else {
            continue;
        };
        let position_orders = orders::of_position(c, id)?;
        // Opened by hand or by rules: there is no thesis to hold the outcome against.
        let Some(thesis) = crate::store::account::position_thesis(c, id)? else {
            continue;
        };
        let exit = position_orders
            .iter()
            .filter(|o| o.order.status == OrderStatus::Filled && o.purpose != OrderPurpose::Entry)
            .filter_map(|o| o.order.average_fill_price())
            .next_back();
        let p = &row.position;
        out.push(Closed {
            position_id: id,
            symbol: p.symbol.to_string(),
            thesis,
            outcome: ClosedOutcome {
                entry: p.entry_price,
                exit,
                realised_pnl: p.realized_pnl,
                stop_loss: crate::store::account::initial_stop(&position_orders).or(p.stop_loss),
                opened_at: p.opened_at,
                closed_at: p.closed_at.unwrap_or(p.opened_at),
            },
        });
    }
    Ok(out)
}

/// Reflect on every new close of the strategy (see the module doc). `now_ms` is the time the
/// reflection is made and charged to.
pub async fn reflect_on_closes(
    engine: &LlmEngine,
    connection: &str,
    strategy_id: i64,
    since_ms: i64,
    tried: &Mutex<HashSet<i64>>,
    now_ms: i64,
) -> Vec<Reflected> {
    let closed = match pending(engine.store(), connection, strategy_id, since_ms, tried) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(strategy_id, error = %e, "cannot read closed positions: no reflection");
            return vec![Reflected::Skipped(e.to_string())];
        }
    };
    let mut out = Vec::with_capacity(closed.len());
    for c in closed {
        let result = reflect_one(engine, strategy_id, &c, now_ms).await;
        match &result {
            Reflected::Stored(id) => tracing::info!(
                strategy_id,
                position = c.position_id,
                reflection = id,
                "reflection on a closed position stored"
            ),
            Reflected::Skipped(reason) => tracing::warn!(
                strategy_id, position = c.position_id, reason = %reason,
                "reflection on a closed position skipped"
            ),
        }
        out.push(result);
    }
    out
}

async fn reflect_one(engine: &LlmEngine, strategy_id: i64, c: &Closed, now_ms: i64) -> Reflected {
    // Before the call, like every decision's call.
    if let Err(reason) = engine.check_budget_with(now_ms, rust_decimal::Decimal::ZERO) {
        return Reflected::Skipped(reason);
    }
    let outcome = c.outcome.describe();
    let fenced = untrusted_block(&[
        ("reasoning", &c.thesis.reasoning),
        ("invalidated if", &c.thesis.invalidation),
    ]);
    let messages = [
        ChatMessage::system(REFLECTION_SYSTEM_PROMPT),
        ChatMessage::user(reflection_question(&c.symbol, &fenced, &outcome)),
    ];
    let reply = match engine
        .client()
        .complete(&messages, &reflection_json_schema())
        .await
    {
        Ok(r) => r,
        Err(e) => return Reflected::Skipped(format!("the reflection request failed: {e}")),
    };
    // A paid reply without a reflection is stored with empty text, so its cost still counts.
    let (text, unparsed) = match parse_reflection(&reply.content) {
        Ok(t) => (t, None),
        Err(e) => (String::new(), Some(e)),
    };
    let row = NewReflection {
        position_id: c.position_id,
        strategy_id: Some(strategy_id),
        symbol: c.symbol.clone(),
        created_at: now_ms,
        thesis: thesis_text(&c.thesis),
        outcome,
        reflection: text,
        prompt_tokens: reply.prompt_tokens.and_then(|t| i64::try_from(t).ok()),
        completion_tokens: reply.completion_tokens.and_then(|t| i64::try_from(t).ok()),
        cost_usd: reply.cost_usd,
    };
    let stored = lock(engine.store()).and_then(|db| reflections::insert(db.conn(), &row));
    match (stored, unparsed) {
        (Err(e), _) => Reflected::Skipped(format!("cannot store the reflection: {e}")),
        (Ok(_), Some(e)) => Reflected::Skipped(e),
        (Ok(id), None) => Reflected::Stored(id),
    }
}
