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
/// for the per-strategy decision runs, backtests for the on-demand queue.
pub fn component_of(job: &str) -> &'static str {
    match job {
        "monitor_orders" | "update_prices" | "reconcile" => "exchange",
        "run_backtest" => "backtests",
        j if j.starts_with("autonomous_trading") => "trading",
        _ => "scheduler",
    }
}

/// Health per component from the jobs' last runs: a component is healthy when the latest run of
/// each of its jobs succeeded.
pub fn components_from_jobs(jobs: &[JobHealth]) -> Vec<ComponentHealth> {
    let mut out: BTreeMap<&'static str, ComponentHealth> = BTreeMap::new();
    for j in jobs {
        let name = component_of(&j.job);
        let entry = out.entry(name).or_insert_with(|| ComponentHealth {
            component: name.to_string(),
            healthy: true,
            detail: "ok".into(),
            last_success: None,
            last_run: None,
        });
        entry.last_run = entry.last_run.max(j.last_run);
        entry.last_success = entry.last_success.max(j.last_success);
        // The latest run failed when its error is newer than its latest success.
        if let Some((at, error)) = &j.last_error
            && j.last_success.is_none_or(|ok| *at > ok)
        {
            entry.healthy = false;
            entry.detail = format!("{}: {error}", j.job);
        }
    }
    out.into_values().collect()
}

/// Remembers each component's last state and says when it changed.
#[derive(Debug, Default)]
pub struct HealthTracker {
    last: BTreeMap<String, (bool, String)>,
}

impl HealthTracker {
    /// Record an observation; `Some` when the component's health differs from the last one
    /// (the first observation of a component always counts).
    pub fn observe(&mut self, component: &str, healthy: bool, detail: &str) -> Option<(bool, String)> {
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
    fn a_component_is_unhealthy_while_its_latest_run_failed() {
        let jobs = [
            job("monitor_orders", Some(100), Some((200, "timeout"))),
            job("update_prices", Some(300), None),
            job("autonomous_trading:demo", Some(400), Some((50, "old failure"))),
        ];
        let c = components_from_jobs(&jobs);
        let exchange = c.iter().find(|c| c.component == "exchange").unwrap();
        assert!(!exchange.healthy);
        assert_eq!(exchange.detail, "monitor_orders: timeout");
        assert_eq!(exchange.last_success, Some(300));
        let trading = c.iter().find(|c| c.component == "trading").unwrap();
        assert!(trading.healthy, "an error older than the last success is over");
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
