//! The trading circuit breaker: Active → ReduceOnly / Halted when a loss rule trips or the kill
//! switch is pulled, back to Active after a cooldown, at the UTC day roll or by a manual reset.
//! Pure: the caller passes the time and the measurements, and persists the transitions returned.

use super::config::{BreakerAction, BreakerRecovery, RiskConfig};
use crate::domain::market::candle::TimestampMs;
use crate::domain::money::Quote;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

const DAY_MS: TimestampMs = 86_400_000;

/// Whether new entries may be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Active,
    ReduceOnly,
    Halted,
}

impl BreakerState {
    /// The text stored in `circuit_breaker_state.state`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Active => "active",
            BreakerState::ReduceOnly => "reduce_only",
            BreakerState::Halted => "halted",
        }
    }

    /// How the faces show it.
    pub const fn label(self) -> &'static str {
        match self {
            BreakerState::Active => "ACTIVE",
            BreakerState::ReduceOnly => "REDUCE ONLY",
            BreakerState::Halted => "HALTED",
        }
    }
}

impl From<BreakerAction> for BreakerState {
    fn from(action: BreakerAction) -> Self {
        match action {
            BreakerAction::ReduceOnly => BreakerState::ReduceOnly,
            BreakerAction::Halted => BreakerState::Halted,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BreakerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(BreakerState::Active),
            "reduce_only" => Ok(BreakerState::ReduceOnly),
            "halted" => Ok(BreakerState::Halted),
            other => Err(format!("unknown breaker state {other:?}")),
        }
    }
}

/// Why the breaker moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerReason {
    DailyLossLimit,
    ConsecutiveLosses,
    DrawdownLimit,
    ManualKill,
    /// An operator's pause (`trademind pause`, `p` in the TUI): stored apart from the kill
    /// switch so the faces can say which one stopped trading. Rows written before it existed
    /// say `manual_kill` for both.
    ManualPause,
    ManualReset,
    CooldownElapsed,
    DayRolled,
}

impl BreakerReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerReason::DailyLossLimit => "daily_loss_limit",
            BreakerReason::ConsecutiveLosses => "consecutive_losses",
            BreakerReason::DrawdownLimit => "drawdown_limit",
            BreakerReason::ManualKill => "manual_kill",
            BreakerReason::ManualPause => "manual_pause",
            BreakerReason::ManualReset => "manual_reset",
            BreakerReason::CooldownElapsed => "cooldown_elapsed",
            BreakerReason::DayRolled => "day_rolled",
        }
    }
}

impl fmt::Display for BreakerReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BreakerReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            BreakerReason::DailyLossLimit,
            BreakerReason::ConsecutiveLosses,
            BreakerReason::DrawdownLimit,
            BreakerReason::ManualKill,
            BreakerReason::ManualPause,
            BreakerReason::ManualReset,
            BreakerReason::CooldownElapsed,
            BreakerReason::DayRolled,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or_else(|| format!("unknown breaker reason {s:?}"))
    }
}

/// One state change, for the caller to persist, publish and alert on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerTransition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: BreakerReason,
    pub at: TimestampMs,
    /// When an automatic recovery is due (cooldown end or next UTC midnight); `None` = manual.
    pub until: Option<TimestampMs>,
}

/// A closed trade: its net PnL and when it closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedTrade {
    pub pnl: Quote,
    pub closed_at: TimestampMs,
}

/// What the breaker looks at on each evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerInputs<'a> {
    /// Today's loss (realised + unrealised) as % of start-of-day equity; positive = losing.
    pub daily_loss_pct: Decimal,
    /// Drawdown from peak equity, %.
    pub drawdown_pct: Decimal,
    /// Closed trades, oldest first.
    pub closed_trades: &'a [ClosedTrade],
}

/// The breaker's current state, restored from the latest persisted transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitBreaker {
    pub state: BreakerState,
    pub reason: Option<BreakerReason>,
    /// When the current state began.
    pub since: TimestampMs,
    /// When an automatic recovery is due.
    pub until: Option<TimestampMs>,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::active_since(0)
    }
}

/// Start of the next UTC day after `at`.
pub fn next_utc_midnight(at: TimestampMs) -> TimestampMs {
    (at.div_euclid(DAY_MS) + 1) * DAY_MS
}

/// Losing trades in a row at the end of `trades` (a zero PnL ends the streak).
pub fn consecutive_losses(trades: &[ClosedTrade]) -> u32 {
    let n = trades
        .iter()
        .rev()
        .take_while(|t| t.pnl.get() < Decimal::ZERO)
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl CircuitBreaker {
    pub fn active_since(since: TimestampMs) -> Self {
        CircuitBreaker {
            state: BreakerState::Active,
            reason: None,
            since,
            until: None,
        }
    }

    pub fn is_active(&self) -> bool {
        self.state == BreakerState::Active
    }

    fn apply(
        &mut self,
        to: BreakerState,
        reason: BreakerReason,
        at: TimestampMs,
        until: Option<TimestampMs>,
    ) -> BreakerTransition {
        let t = BreakerTransition {
            from: self.state,
            to,
            reason,
            at,
            until,
        };
        self.state = to;
        self.reason = Some(reason);
        self.since = at;
        self.until = until;
        t
    }

    fn recovery_time(
        recovery: BreakerRecovery,
        config: &RiskConfig,
        at: TimestampMs,
    ) -> Option<TimestampMs> {
        match recovery {
            BreakerRecovery::Cooldown => Some(at + i64::from(config.cooldown_minutes) * 60_000),
            BreakerRecovery::DayRoll => Some(next_utc_midnight(at)),
            BreakerRecovery::Manual => None,
        }
    }

    /// Recover if a due recovery time has passed, then trip on the first rule that fires.
    /// Rules are checked worst first: drawdown, daily loss, consecutive losses. A rule trips
    /// only from Active, or to escalate ReduceOnly to Halted. Losing streaks count only trades
    /// closed after the breaker last became Active, so a cooldown is not re-tripped by the
    /// same losses. A drawdown or daily loss that still stands after a recovery or a manual
    /// reset trips again at once: the limit is not waived; re-base the peak (or raise the
    /// limit) to resume.
    pub fn evaluate(
        &mut self,
        inputs: &BreakerInputs<'_>,
        config: &RiskConfig,
        now: TimestampMs,
    ) -> Vec<BreakerTransition> {
        let mut out = Vec::new();
        if let (false, Some(until)) = (self.is_active(), self.until)
            && now >= until
        {
            let reason = if self.reason == Some(BreakerReason::DailyLossLimit)
                && config.daily_loss_recovery == BreakerRecovery::DayRoll
            {
                BreakerReason::DayRolled
            } else {
                BreakerReason::CooldownElapsed
            };
            out.push(self.apply(BreakerState::Active, reason, now, None));
        }
        let since = self.since;
        let streak_trades: Vec<ClosedTrade> = inputs
            .closed_trades
            .iter()
            .copied()
            .filter(|t| t.closed_at > since || (self.is_active() && self.reason.is_none()))
            .collect();
        let rules = [
            (
                inputs.drawdown_pct >= config.max_drawdown_pct,
                BreakerReason::DrawdownLimit,
                config.drawdown_action,
                config.drawdown_recovery,
            ),
            (
                inputs.daily_loss_pct >= config.max_daily_loss_pct,
                BreakerReason::DailyLossLimit,
                config.daily_loss_action,
                config.daily_loss_recovery,
            ),
            (
                config.consecutive_losses_limit > 0
                    && consecutive_losses(&streak_trades) >= config.consecutive_losses_limit,
                BreakerReason::ConsecutiveLosses,
                config.consecutive_losses_action,
                config.consecutive_losses_recovery,
            ),
        ];
        for (fired, reason, action, recovery) in rules {
            if !fired {
                continue;
            }
            let to = BreakerState::from(action);
            let escalates = self.state == BreakerState::ReduceOnly && to == BreakerState::Halted;
            if self.is_active() || escalates {
                let until = Self::recovery_time(recovery, config, now);
                out.push(self.apply(to, reason, now, until));
                break;
            }
        }
        out
    }

    /// The manual kill switch: stop now, recover only by a manual reset.
    pub fn kill(&mut self, config: &RiskConfig, now: TimestampMs) -> BreakerTransition {
        self.apply(
            config.kill_action.into(),
            BreakerReason::ManualKill,
            now,
            None,
        )
    }

    /// An operator's pause: the same stop as the kill switch (and cleared the same way, by a
    /// manual reset), told apart by its reason.
    pub fn pause(&mut self, config: &RiskConfig, now: TimestampMs) -> BreakerTransition {
        self.apply(
            config.kill_action.into(),
            BreakerReason::ManualPause,
            now,
            None,
        )
    }

    /// Whether an operator stopped trading (pause or kill switch), as opposed to a loss rule.
    pub fn is_manually_stopped(&self) -> bool {
        !self.is_active()
            && matches!(
                self.reason,
                Some(BreakerReason::ManualKill | BreakerReason::ManualPause)
            )
    }

    /// Manual reset to Active (`None` when already Active with nothing to clear).
    pub fn reset(&mut self, now: TimestampMs) -> Option<BreakerTransition> {
        if self.is_active() {
            return None;
        }
        Some(self.apply(BreakerState::Active, BreakerReason::ManualReset, now, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    // 2026-11-24T10:00:00Z
    const T0: TimestampMs = 1_795_514_400_000;

    fn quiet() -> BreakerInputs<'static> {
        BreakerInputs {
            daily_loss_pct: dec!(0),
            drawdown_pct: dec!(0),
            closed_trades: &[],
        }
    }

    #[test]
    fn next_midnight_is_the_start_of_the_next_utc_day() {
        // T0 is 10:00 UTC; midnight is 14 h later.
        assert_eq!(next_utc_midnight(T0), T0 + 14 * 3_600_000);
        assert_eq!(next_utc_midnight(T0 + 14 * 3_600_000), T0 + 38 * 3_600_000);
    }

    #[test]
    fn daily_loss_at_the_limit_halts_until_the_day_rolls() {
        let c = RiskConfig::default(); // 3 %, halted, day_roll
        let mut b = CircuitBreaker::default();
        let below = BreakerInputs {
            daily_loss_pct: dec!(2.99),
            ..quiet()
        };
        assert!(b.evaluate(&below, &c, T0).is_empty());
        let at_limit = BreakerInputs {
            daily_loss_pct: dec!(3),
            ..quiet()
        };
        let ts = b.evaluate(&at_limit, &c, T0);
        assert_eq!(
            ts,
            vec![BreakerTransition {
                from: BreakerState::Active,
                to: BreakerState::Halted,
                reason: BreakerReason::DailyLossLimit,
                at: T0,
                until: Some(T0 + 14 * 3_600_000),
            }]
        );
        // one ms before midnight: still halted
        assert!(b.evaluate(&quiet(), &c, T0 + 14 * 3_600_000 - 1).is_empty());
        let ts = b.evaluate(&quiet(), &c, T0 + 14 * 3_600_000);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0].to, BreakerState::Active);
        assert_eq!(ts[0].reason, BreakerReason::DayRolled);
    }

    #[test]
    fn consecutive_losses_reduce_only_then_cooldown_does_not_retrip_on_the_same_losses() {
        let c = RiskConfig::default(); // 3 losses, reduce_only, 60 min cooldown
        let trades = [
            ClosedTrade {
                pnl: Quote(dec!(5)),
                closed_at: T0 - 4000,
            },
            ClosedTrade {
                pnl: Quote(dec!(-1)),
                closed_at: T0 - 3000,
            },
            ClosedTrade {
                pnl: Quote(dec!(-2)),
                closed_at: T0 - 2000,
            },
        ];
        let mut b = CircuitBreaker::default();
        let two = BreakerInputs {
            closed_trades: &trades,
            ..quiet()
        };
        assert!(b.evaluate(&two, &c, T0).is_empty());
        let mut more = trades.to_vec();
        more.push(ClosedTrade {
            pnl: Quote(dec!(-3)),
            closed_at: T0 - 1000,
        });
        let three = BreakerInputs {
            closed_trades: &more,
            ..quiet()
        };
        let ts = b.evaluate(&three, &c, T0);
        assert_eq!(ts[0].to, BreakerState::ReduceOnly);
        assert_eq!(ts[0].reason, BreakerReason::ConsecutiveLosses);
        assert_eq!(ts[0].until, Some(T0 + 60 * 60_000));
        let ts = b.evaluate(&three, &c, T0 + 60 * 60_000);
        assert_eq!(ts.len(), 1, "{ts:?}");
        assert_eq!(ts[0].reason, BreakerReason::CooldownElapsed);
        assert!(b.is_active());
        // three fresh losses after the recovery trip it again
        let later = T0 + 60 * 60_000;
        for k in 1..=3 {
            more.push(ClosedTrade {
                pnl: Quote(dec!(-1)),
                closed_at: later + k,
            });
        }
        let ts = b.evaluate(
            &BreakerInputs {
                closed_trades: &more,
                ..quiet()
            },
            &c,
            later + 10,
        );
        assert_eq!(ts[0].to, BreakerState::ReduceOnly);
    }

    #[test]
    fn drawdown_limit_halts_and_needs_a_manual_reset() {
        let c = RiskConfig::default(); // 15 %, halted, manual
        let mut b = CircuitBreaker::default();
        let dd = BreakerInputs {
            drawdown_pct: dec!(15),
            ..quiet()
        };
        let ts = b.evaluate(&dd, &c, T0);
        assert_eq!(ts[0].to, BreakerState::Halted);
        assert_eq!(ts[0].reason, BreakerReason::DrawdownLimit);
        assert_eq!(ts[0].until, None);
        assert!(b.evaluate(&quiet(), &c, T0 + 30 * DAY_MS).is_empty());
        let t = b.reset(T0 + 30 * DAY_MS).unwrap();
        assert_eq!((t.from, t.to), (BreakerState::Halted, BreakerState::Active));
        assert_eq!(t.reason, BreakerReason::ManualReset);
        assert!(b.reset(T0 + 30 * DAY_MS).is_none());
    }

    #[test]
    fn reduce_only_escalates_to_halted_but_halted_does_not_step_down() {
        let c = RiskConfig::default();
        let mut b = CircuitBreaker {
            state: BreakerState::ReduceOnly,
            reason: Some(BreakerReason::ConsecutiveLosses),
            since: T0,
            until: Some(T0 + 3_600_000),
        };
        let ts = b.evaluate(
            &BreakerInputs {
                daily_loss_pct: dec!(4),
                ..quiet()
            },
            &c,
            T0 + 1,
        );
        assert_eq!(ts[0].from, BreakerState::ReduceOnly);
        assert_eq!(ts[0].to, BreakerState::Halted);
        let c2 = RiskConfig {
            drawdown_action: BreakerAction::ReduceOnly,
            ..RiskConfig::default()
        };
        assert!(
            b.evaluate(
                &BreakerInputs {
                    drawdown_pct: dec!(20),
                    ..quiet()
                },
                &c2,
                T0 + 2
            )
            .is_empty()
        );
        assert_eq!(b.state, BreakerState::Halted);
    }

    #[test]
    fn kill_switch_uses_the_configured_action_and_only_manual_reset_clears_it() {
        let c = RiskConfig::default();
        let mut b = CircuitBreaker::default();
        let t = b.kill(&c, T0);
        assert_eq!(
            (t.from, t.to, t.reason),
            (
                BreakerState::Active,
                BreakerState::Halted,
                BreakerReason::ManualKill
            )
        );
        assert!(b.evaluate(&quiet(), &c, T0 + 365 * DAY_MS).is_empty());
        let soft = RiskConfig {
            kill_action: BreakerAction::ReduceOnly,
            ..RiskConfig::default()
        };
        let mut b2 = CircuitBreaker::default();
        assert_eq!(b2.kill(&soft, T0).to, BreakerState::ReduceOnly);
    }

    #[test]
    fn each_rule_action_is_configurable() {
        let c = RiskConfig {
            daily_loss_action: BreakerAction::ReduceOnly,
            daily_loss_recovery: BreakerRecovery::Cooldown,
            cooldown_minutes: 5,
            ..RiskConfig::default()
        };
        let mut b = CircuitBreaker::default();
        let ts = b.evaluate(
            &BreakerInputs {
                daily_loss_pct: dec!(3.5),
                ..quiet()
            },
            &c,
            T0,
        );
        assert_eq!(ts[0].to, BreakerState::ReduceOnly);
        assert_eq!(ts[0].until, Some(T0 + 5 * 60_000));
        let ts = b.evaluate(&quiet(), &c, T0 + 5 * 60_000);
        assert_eq!(ts[0].reason, BreakerReason::CooldownElapsed);
    }

    #[test]
    fn consecutive_losses_rule_zero_is_off() {
        let c = RiskConfig {
            consecutive_losses_limit: 0,
            ..RiskConfig::default()
        };
        let trades: Vec<ClosedTrade> = (0..10)
            .map(|k| ClosedTrade {
                pnl: Quote(dec!(-1)),
                closed_at: T0 + k,
            })
            .collect();
        let mut b = CircuitBreaker::default();
        assert!(
            b.evaluate(
                &BreakerInputs {
                    closed_trades: &trades,
                    ..quiet()
                },
                &c,
                T0 + 100
            )
            .is_empty()
        );
        assert_eq!(consecutive_losses(&trades), 10);
    }
}
