//! Component health: which part of the system works, derived from the scheduler's recorded
//! runs (so `trademind status` in another process sees the same as the running daemon), and a
//! tracker that reports only changes, for the event bus.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::store::jobs::JobHealth;

/// One component as the health view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    pub component: String,
    pub healthy: bool,
    /// The last error, or "ok".
    pub detail: String,
    pub last_success: Option<i64>,
    pub last_run: Option<i64>,
}

/// The component a job's runs speak for: the exchange for the order and price jobs, trading
/// for the per-strategy decision runs, backtests for the on-demand queue; the daemon's streams
/// record their state changes as runs of `market_stream:<SYMBOL>` and `user_data_stream`.
pub fn component_of(job: &str) -> &'static str {
    match job {
        "monitor_orders" | "update_prices" | "reconcile" => "exchange",
        "run_backtest" => "backtests",
        "user_data_stream" => "user_data_stream",
        j if j.starts_with("market_stream") => "market_stream",
        j if j.starts_with("autonomous_trading") => "trading",
        _ => "scheduler",
    }
}

/// Health per component from the jobs' last runs: a component is as healthy as its most
/// recent run (of any of its jobs) — a failed reconciliation followed by a good order poll
/// (which reconciles first) is healthy again.
pub fn components_from_jobs(jobs: &[JobHealth]) -> Vec<ComponentHealth> {
    let mut latest: BTreeMap<&'static str, (&JobHealth, ComponentHealth)> = BTreeMap::new();
    for j in jobs {
        let name = component_of(&j.job);
        let failed = j
            .last_error
            .as_ref()
            .is_some_and(|(at, _)| j.last_success.is_none_or(|ok| *at > ok));
        let view = ComponentHealth {
            component: name.to_string(),
            healthy: !failed,
            detail: match (&j.last_error, failed) {
                (Some((_, e)), true) => format!("{}: {e}", j.job),
                _ => "ok".into(),
            },
            last_success: j.last_success,
            last_run: j.last_run,
        };
        match latest.get_mut(name) {
            None => {
                latest.insert(name, (j, view));
            }
            Some((best, current)) => {
                let last_success = current.last_success.max(view.last_success);
                if j.last_run > best.last_run {
                    *best = j;
                    *current = view;
                }
                current.last_success = last_success;
                current.last_run = current.last_run.max(j.last_run);
            }
        }
    }
    latest.into_values().map(|(_, v)| v).collect()
}

/// Remembers each component's last state and says when it changed.
#[derive(Debug, Default)]
pub struct HealthTracker {
    last: BTreeMap<String, (bool, String)>,
}

impl HealthTracker {
    /// Record an observation; `Some` when the component's health differs from the last one
    /// (the first observation of a component always counts).
    pub fn observe(
        &mut self,
        component: &str,
        healthy: bool,
        detail: &str,
    ) -> Option<(bool, String)> {
        let now = (healthy, detail.to_string());
        // Detail changes of a healthy component (its timestamps) are not news.
        let changed = match self.last.get(component) {
            None => true,
            Some((was, old)) => *was != healthy || (!healthy && *old != detail),
        };
        self.last.insert(component.to_string(), now.clone());
        changed.then_some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, success: Option<i64>, error: Option<(i64, &str)>) -> JobHealth {
        JobHealth {
            job: name.into(),
            last_run: [success, error.map(|e| e.0)].into_iter().flatten().max(),
            last_success: success,
            last_error: error.map(|(at, e)| (at, e.to_string())),
            runs: 2,
        }
    }

    #[test]
    fn a_component_is_as_healthy_as_its_most_recent_run() {
        let jobs = [
            job("monitor_orders", Some(100), Some((400, "timeout"))),
            job("update_prices", Some(300), None),
            job(
                "autonomous_trading:demo",
                Some(400),
                Some((50, "old failure")),
            ),
        ];
        let c = components_from_jobs(&jobs);
        let exchange = c.iter().find(|c| c.component == "exchange").unwrap();
        assert!(!exchange.healthy);
        assert_eq!(exchange.detail, "monitor_orders: timeout");
        assert_eq!(exchange.last_success, Some(300));
        assert_eq!(exchange.last_run, Some(400));
        // A later good price update makes the exchange healthy again.
        let recovered = components_from_jobs(&[
            job("monitor_orders", Some(100), Some((400, "timeout"))),
            job("update_prices", Some(500), None),
        ]);
        assert!(recovered[0].healthy);
        assert_eq!(recovered[0].detail, "ok");
        let trading = c.iter().find(|c| c.component == "trading").unwrap();
        assert!(
            trading.healthy,
            "an error older than the last success is over"
        );
    }

    #[test]
    fn tracker_reports_changes_only() {
        let mut t = HealthTracker::default();
        assert_eq!(t.observe("exchange", true, "ok"), Some((true, "ok".into())));
        assert_eq!(t.observe("exchange", true, "ok"), None);
        assert_eq!(
            t.observe("exchange", false, "timeout"),
            Some((false, "timeout".into()))
        );
        assert_eq!(t.observe("exchange", false, "timeout"), None);
        assert!(t.observe("exchange", true, "ok").is_some());
    }
}
