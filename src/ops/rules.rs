//! The alert rules, evaluated every `alerts.evaluation_interval` for every integration:
//! down for longer than `down_for`, error rate above `error_rate`, p95 latency above
//! `p95_latency`, sync success below `sync_success_rate`. A rule that holds raises its alert
//! (which fires once, see `alerts`); a rule that no longer holds resolves it.
//!
//! Rates come from this process's rolling window (`ops::window`); availability and outages
//! from the checks every process records. With several processes each judges its own traffic.

use std::sync::Arc;
use std::time::Duration;

use super::alerts::{self, kind, NewAlert, Severity};
use super::health;
use super::window::{self, WindowStats};
use crate::integrations::registry::IntegrationRegistry;
use crate::jobs::now_ms;
use crate::jobs::worker::blocking;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct Thresholds {
    pub down_for: Duration,
    pub error_rate: f64,
    pub p95_latency: Duration,
    pub sync_success_rate: f64,
    /// Fewer requests (or syncs) than this in the window say nothing about a rate.
    pub min_samples: u64,
}

/// Which rules hold for one integration: (alert kind, severity, message) for each.
pub fn breaches(
    thresholds: &Thresholds,
    stats: &WindowStats,
    down_since: Option<i64>,
    now: i64,
) -> Vec<(&'static str, Option<(Severity, String)>)> {
    let name = &stats.integration;
    let down = down_since
        .filter(|since| now - since >= thresholds.down_for.as_millis() as i64)
        .map(|since| {
            (
                Severity::Critical,
                format!("{name} has been down for {} minutes", (now - since) / 60_000),
            )
        });
    let error_rate = stats
        .error_rate
        .filter(|r| stats.requests >= thresholds.min_samples && *r > thresholds.error_rate)
        .map(|r| {
            (
                Severity::Warning,
                format!(
                    "{name}: {:.0} % of {} requests failed in the last {} s",
                    r * 100.0,
                    stats.requests,
                    stats.window_seconds
                ),
            )
        });
    let latency = stats
        .p95_latency_seconds
        .filter(|p| stats.requests >= thresholds.min_samples && *p > thresholds.p95_latency.as_secs_f64())
        .map(|p| {
            (
                Severity::Warning,
                format!("{name}: p95 latency {p:.1} s over the last {} s", stats.window_seconds),
            )
        });
    let syncs = stats
        .sync_success_rate
        .filter(|r| stats.syncs >= thresholds.min_samples && *r < thresholds.sync_success_rate)
        .map(|r| {
            (
                Severity::Warning,
                format!("{name}: only {:.0} % of {} syncs succeeded", r * 100.0, stats.syncs),
            )
        });
    vec![
        (kind::INTEGRATION_DOWN, down),
        (kind::ERROR_RATE, error_rate),
        (kind::LATENCY, latency),
        (kind::SYNC_SUCCESS, syncs),
    ]
}

/// Evaluates every rule for every integration once.
pub fn evaluate(store: &Store, names: &[String], thresholds: &Thresholds) -> Result<(), StoreError> {
    let mut judged = Vec::new();
    for name in names {
        let down_since = health::of(store, name)?.down_since;
        judged.push((
            name,
            breaches(thresholds, &window::snapshot(name), down_since, now_ms()),
        ));
    }
    // One write transaction for the whole evaluation, not one per rule.
    store.write(|tx| {
        let backend = tx.backend();
        for (name, rules) in &judged {
            for (alert_kind, breach) in rules {
                match breach {
                    Some((severity, message)) => {
                        let alert = NewAlert::new(alert_kind, name.as_str(), *severity, message.clone());
                        alerts::raise_on(tx.connection(), backend, &alert)?;
                    }
                    None => {
                        alerts::resolve_on(tx.connection(), backend, alert_kind, name)?;
                    }
                }
            }
        }
        Ok::<(), StoreError>(())
    })
}

/// Evaluates every `interval` until `shutdown`.
pub async fn run(
    store: Store,
    registry: Arc<IntegrationRegistry>,
    thresholds: Thresholds,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let names: Vec<String> = registry.all().iter().map(|a| a.name().to_string()).collect();
    loop {
        let (s, n, t) = (store.clone(), names.clone(), thresholds.clone());
        if let Err(error) = blocking(move || evaluate(&s, &n, &t)).await {
            tracing::warn!(%error, "could not evaluate the alert rules");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds() -> Thresholds {
        Thresholds {
            down_for: Duration::from_secs(300),
            error_rate: 0.10,
            p95_latency: Duration::from_secs(5),
            sync_success_rate: 0.90,
            min_samples: 10,
        }
    }

    fn stats() -> WindowStats {
        WindowStats {
            integration: "nppes".into(),
            window_seconds: 300,
            requests: 100,
            errors: 0,
            refused: 0,
            error_rate: Some(0.0),
            p95_latency_seconds: Some(0.2),
            syncs: 20,
            sync_failures: 0,
            sync_success_rate: Some(1.0),
        }
    }

    fn holding(b: &[(&'static str, Option<(Severity, String)>)]) -> Vec<&'static str> {
        b.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| *k).collect()
    }

    #[test]
    fn each_rule_holds_only_beyond_its_threshold() {
        let now = 10_000_000;
        assert!(holding(&breaches(&thresholds(), &stats(), None, now)).is_empty());
        // Down for 4 minutes: not yet; for 5: yes.
        assert!(holding(&breaches(&thresholds(), &stats(), Some(now - 240_000), now)).is_empty());
        assert_eq!(
            holding(&breaches(&thresholds(), &stats(), Some(now - 300_000), now)),
            [kind::INTEGRATION_DOWN]
        );
        let mut s = stats();
        s.error_rate = Some(0.10);
        assert!(
            holding(&breaches(&thresholds(), &s, None, now)).is_empty(),
            "10 % is not above 10 %"
        );
        s.error_rate = Some(0.11);
        s.p95_latency_seconds = Some(5.5);
        s.sync_success_rate = Some(0.85);
        assert_eq!(
            holding(&breaches(&thresholds(), &s, None, now)),
            [kind::ERROR_RATE, kind::LATENCY, kind::SYNC_SUCCESS]
        );
        // Too few samples to judge a rate.
        s.requests = 3;
        s.syncs = 2;
        assert!(holding(&breaches(&thresholds(), &s, None, now)).is_empty());
    }
}
