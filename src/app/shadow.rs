//! Shadow decisions: a strategy may name a challenger (another model and/or prompt template,
//! `strategy add … --challenger-model M --challenger-prompt FILE`, kept in the strategy's
//! parameters under `challenger`). Each cycle the challenger decides on the input the primary
//! decided on; its decision is recorded with outcome `shadow` and filled on the strategy's
//! virtual paper book (`shadow_fills`). Nothing here holds an exchange: a shadow decision
//! cannot place an order.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::app::decide::{AnyEngine, DecisionEngine, EngineError, EngineOutput, api_key, record};
use crate::config::Settings;
use crate::domain::Quote;
use crate::domain::decision::DecisionInput;
use crate::domain::decision::shadow::{ShadowBook, ShadowFill};
use crate::secrets::SecretKind;
use crate::services::notification::ResendClient;
use crate::store::strategies::StrategyRow;
use crate::store::{Store, StoreError, decisions as recorder, shadow as fills};

/// The outcome column of a challenger's decision: it is recorded, never executed, and kept
/// out of the primary's prompt history.
pub const SHADOW_OUTCOME: &str = "shadow";

/// A strategy's challenger, as stored in its parameters (`{"challenger": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Challenger {
    /// The model the challenger asks (default: `llm.model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The prompt template it uses (default: `llm.prompt_template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PathBuf>,
}

impl Challenger {
    /// The challenger a strategy's parameters name, if any (a malformed entry is none, logged).
    pub fn of(parameters: &serde_json::Value) -> Option<Challenger> {
        let value = parameters.get("challenger")?;
        match serde_json::from_value::<Challenger>(value.clone()) {
            Ok(c) if c.model.is_some() || c.prompt.is_some() => Some(c),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "a strategy's challenger entry is malformed: no shadow decisions");
                None
            }
        }
    }

    /// Write the challenger into a strategy's parameters.
    pub fn store_in(&self, parameters: &mut serde_json::Value) {
        if let (Some(map), Ok(value)) = (parameters.as_object_mut(), serde_json::to_value(self)) {
            map.insert("challenger".into(), value);
        }
    }

    /// The settings the challenger's engine is built from: the user's, with its model and
    /// template.
    pub fn settings(&self, settings: &Settings) -> Settings {
        let mut s = settings.clone();
        if let Some(model) = &self.model {
            s.llm.model = model.clone();
        }
        if let Some(prompt) = &self.prompt {
            s.llm.prompt_template = Some(prompt.clone());
        }
        s
    }
}

/// Why a shadow decision could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the primary decision #{0} is not in the database")]
    NoPrimary(i64),
    #[error("the input of decision #{id} cannot be read back: {reason}")]
    Input { id: i64, reason: String },
}

/// The challenger's engine for `strategy`, or `None` when it names none or no Grok key is
/// configured (logged: the primary still trades).
pub async fn challenger_engine(
    settings: &Settings,
    strategy: &StrategyRow,
    store: Arc<Mutex<Store>>,
    mailer: impl Future<Output = Option<ResendClient>>,
) -> Result<Option<AnyEngine>, EngineError> {
    let Some(challenger) = Challenger::of(&strategy.parameters) else {
        return Ok(None);
    };
    let Some(key) = api_key(settings, SecretKind::Grok).await? else {
        tracing::warn!(
            strategy = %strategy.name,
            "the strategy names a challenger but no Grok key is configured: no shadow decisions"
        );
        return Ok(None);
    };
    let settings = challenger.settings(settings);
    let (engine, _) =
        crate::app::decide::build_engine_with(&settings, Some("llm"), store, mailer, Some(key))
            .await?;
    Ok(Some(engine))
}

/// A challenger with the virtual book it trades on.
pub struct ShadowJob {
    pub engine: AnyEngine,
    /// Where the challenger's decisions and fills are recorded.
    pub store: Arc<Mutex<Store>>,
    /// The cash the virtual book starts with (`trading.paper_starting_balance`).
    pub starting_cash: Quote,
    /// The fee charged on each virtual fill (the paper exchange's rate).
    pub fee_rate: Decimal,
}

impl ShadowJob {
    /// A job for `engine` with the book and fee the settings give the paper exchange.
    pub fn new(engine: AnyEngine, store: Arc<Mutex<Store>>, settings: &Settings) -> Self {
        let (starting_cash, fee_rate) = book_terms(settings);
        ShadowJob {
            engine,
            store,
            starting_cash,
            fee_rate,
        }
    }
}

/// The starting cash and fee rate of every virtual book: the paper exchange's. The leaderboard
/// rebuilds the books on the same terms.
pub fn book_terms(settings: &Settings) -> (Quote, Decimal) {
    let starting_cash = settings
        .trading
        .paper_starting_balance
        .parse::<Decimal>()
        .unwrap_or(Decimal::from(10_000));
    (Quote(starting_cash), settings.exchange.paper.fee_rate)
}

/// What one shadow decision did.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowReport {
    pub decision_id: i64,
    pub fill: Option<ShadowFill>,
}

fn lock(store: &Mutex<Store>) -> Result<std::sync::MutexGuard<'_, Store>, StoreError> {
    store
        .lock()
        .map_err(|_| StoreError::Conflict("the database lock was poisoned by a panic".into()))
}

/// Let the challenger decide on the input of the primary's decision `primary_id`; record and
/// fill its decision on the virtual book of `strategy_id`.
pub async fn shadow_decide(
    job: &ShadowJob,
    strategy_id: i64,
    primary_id: i64,
) -> Result<ShadowReport, ShadowError> {
    let row = recorder::get(lock(&job.store)?.conn(), primary_id)?
        .ok_or(ShadowError::NoPrimary(primary_id))?;
    let input: DecisionInput =
        serde_json::from_str(&row.fields.input_snapshot).map_err(|e| ShadowError::Input {
            id: primary_id,
            reason: e.to_string(),
        })?;
    let out = job.engine.decide(&input).await;
    record_shadow(job, strategy_id, &input, &out)
}

/// Record a challenger's decision and fill it on the virtual book, in one transaction.
pub fn record_shadow(
    job: &ShadowJob,
    strategy_id: i64,
    input: &DecisionInput,
    out: &EngineOutput,
) -> Result<ShadowReport, ShadowError> {
    let db = lock(&job.store)?;
    crate::store::write_tx(db.conn(), |c| {
        let id = record(
            &db,
            input,
            out,
            Some(strategy_id),
            SHADOW_OUTCOME,
            None,
            None,
        )?;
        let fill = if out.error.is_none() && out.validated.is_valid() {
            let history = fills::fills_of(c, strategy_id)?;
            let book = ShadowBook::from_fills(job.starting_cash, history.iter().map(|r| &r.fill));
            book.fill_for(&out.validated.decision, input.price, job.fee_rate)
        } else {
            None
        };
        if let Some(fill) = &fill {
            fills::insert(c, strategy_id, id, fill, input.now_ms)?;
        }
        Ok::<_, ShadowError>(ShadowReport {
            decision_id: id,
            fill,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenger_stored_in_parameters_builds_settings_with_its_model_and_template() {
        let mut parameters = serde_json::json!({"max_entries": 1});
        Challenger {
            model: Some("grok-4-challenger".into()),
            prompt: Some(PathBuf::from("/tmp/challenger.txt")),
        }
        .store_in(&mut parameters);
        assert_eq!(parameters["max_entries"], 1);
        let challenger = Challenger::of(&parameters).unwrap();
        let settings = challenger.settings(&Settings::default());
        assert_eq!(settings.llm.model, "grok-4-challenger");
        assert_eq!(
            settings.llm.prompt_template,
            Some(PathBuf::from("/tmp/challenger.txt"))
        );
        assert_eq!(Challenger::of(&serde_json::json!({})), None);
        assert_eq!(Challenger::of(&serde_json::json!({"challenger": {}})), None);
    }
}
