//! Prometheus metrics for the outbound integrations (NPPES, payer feeds, ...), through the
//! `metrics` facade so that the code that records does not depend on the exporter.
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `providercard_integration_request_duration_seconds` | histogram (0.01 … 30 s) | integration, operation, outcome |
//! | `providercard_integration_requests_total` | counter | integration, operation, outcome |
//! | `providercard_integration_errors_total` | counter | integration, kind |
//! | `providercard_integration_syncs_total` | counter | integration, result = `success` \| `failure` |
//! | `providercard_integration_last_successful_sync_timestamp_seconds` | gauge (Unix seconds) | integration |
//! | `providercard_integration_circuit_state` | gauge: 0 closed, 1 half-open, 2 open | integration |
//!
//! `outcome` and `kind` take the values of [`Outcome::as_str`]: `ok`, `transient`, `permanent`,
//! `timeout`, `circuit_open`, `rate_limited` (`kind` never `ok`). Calls refused locally
//! (`circuit_open`, `rate_limited`) are counted but kept out of the duration histogram: they
//! never reached the integration, and their zero latencies would drag the percentiles down.
//!
//! [`record_request`] and [`record_sync`] also feed the in-process rolling window
//! ([`super::window`]) that the alert rules read.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUEST_DURATION: &str = "providercard_integration_request_duration_seconds";
pub const REQUESTS_TOTAL: &str = "providercard_integration_requests_total";
pub const ERRORS_TOTAL: &str = "providercard_integration_errors_total";
pub const SYNCS_TOTAL: &str = "providercard_integration_syncs_total";
pub const LAST_SUCCESSFUL_SYNC: &str = "providercard_integration_last_successful_sync_timestamp_seconds";
pub const CIRCUIT_STATE: &str = "providercard_integration_circuit_state";

/// Fine enough below a second for p50 and wide enough for p99 of slow bulk calls.
pub const DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often the exporter folds recorded histogram samples into its buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// How one attempt at an outbound call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    /// A failure worth retrying (5xx, 429, connection reset, ...).
    Transient,
    /// A failure that retrying will not fix (4xx, malformed answer, ...).
    Permanent,
    /// The attempt ran past its timeout.
    Timeout,
    /// Refused locally: the circuit breaker is open.
    CircuitOpen,
    /// Refused locally: the rate limit would not allow a call before the deadline.
    RateLimited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Transient => "transient",
            Outcome::Permanent => "permanent",
            Outcome::Timeout => "timeout",
            Outcome::CircuitOpen => "circuit_open",
            Outcome::RateLimited => "rate_limited",
        }
    }

    /// Whether the call was sent to the integration at all (as opposed to refused locally).
    pub fn reached_integration(self) -> bool {
        !matches!(self, Outcome::CircuitOpen | Outcome::RateLimited)
    }
}

/// The circuit breaker's state as exported: 0 closed, 1 half-open, 2 open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitGauge {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// The builder both the process-wide recorder and the tests use, so they export the same shape.
fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), DURATION_BUCKETS)
        .expect("the bucket list is not empty")
}

fn describe() {
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Latency of outbound integration calls, one observation per attempt"
    );
    describe_counter!(
        REQUESTS_TOTAL,
        "Outbound integration call attempts, refused ones included"
    );
    describe_counter!(
        ERRORS_TOTAL,
        "Outbound integration call attempts that did not succeed, by kind"
    );
    describe_counter!(SYNCS_TOTAL, "Integration sync runs, by result");
    describe_gauge!(
        LAST_SUCCESSFUL_SYNC,
        Unit::Seconds,
        "Unix time of the last successful sync of an integration"
    );
    describe_gauge!(CIRCUIT_STATE, "Circuit breaker state: 0 closed, 1 half-open, 2 open");
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
///
/// If another recorder was installed first, that one keeps receiving the metrics and the handle
/// returned here renders nothing: this is logged, not fatal, since metrics must never stop
/// the directory from serving.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will be empty");
            }
            describe();
            let upkeep = handle.clone();
            // Without a regular upkeep, histogram samples pile up between scrapes.
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// The exposition text for `GET /metrics` (installs the recorder on first use).
pub fn render() -> String {
    install().render()
}

/// Records one attempt at an outbound call.
pub fn record_request(integration: &str, operation: &str, latency: Duration, outcome: Outcome) {
    let labels = [
        ("integration", integration.to_owned()),
        ("operation", operation.to_owned()),
        ("outcome", outcome.as_str().to_owned()),
    ];
    counter!(REQUESTS_TOTAL, &labels).increment(1);
    if outcome.reached_integration() {
        histogram!(REQUEST_DURATION, &labels).record(latency.as_secs_f64());
    }
    if outcome != Outcome::Ok {
        counter!(ERRORS_TOTAL, "integration" => integration.to_owned(), "kind" => outcome.as_str()).increment(1);
    }
    super::window::global().record_request(integration, latency, outcome);
}

/// Records the end of a sync run of an integration; `at` is when it finished.
pub fn record_sync(integration: &str, success: bool, at: SystemTime) {
    let result = if success { "success" } else { "failure" };
    counter!(SYNCS_TOTAL, "integration" => integration.to_owned(), "result" => result).increment(1);
    if success {
        let unix_seconds = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        gauge!(LAST_SUCCESSFUL_SYNC, "integration" => integration.to_owned()).set(unix_seconds);
    }
    super::window::global().record_sync(integration, success);
}

pub fn set_circuit_state(integration: &str, state: CircuitGauge) {
    gauge!(CIRCUIT_STATE, "integration" => integration.to_owned()).set(state as u8 as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_local(record: impl FnOnce()) -> String {
        let recorder = builder().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe();
            record();
        });
        handle.render()
    }

    #[test]
    fn requests_are_exported_with_buckets_counters_and_error_kinds() {
        let text = render_local(|| {
            record_request("nppes", "lookup", Duration::from_millis(200), Outcome::Ok);
            record_request("nppes", "lookup", Duration::from_millis(3), Outcome::Ok);
            record_request("nppes", "lookup", Duration::from_secs(12), Outcome::Timeout);
            record_request("nppes", "lookup", Duration::ZERO, Outcome::CircuitOpen);
        });
        let lines: Vec<&str> = text.lines().collect();
        let has = |line: &str| lines.contains(&line);

        let ok = r#"integration="nppes",operation="lookup",outcome="ok""#;
        assert!(
            has(&format!("{REQUEST_DURATION}_bucket{{{ok},le=\"0.01\"}} 1")),
            "{text}"
        );
        assert!(
            has(&format!("{REQUEST_DURATION}_bucket{{{ok},le=\"0.25\"}} 2")),
            "{text}"
        );
        assert!(
            has(&format!("{REQUEST_DURATION}_bucket{{{ok},le=\"+Inf\"}} 2")),
            "{text}"
        );
        assert!(has(&format!("{REQUEST_DURATION}_count{{{ok}}} 2")), "{text}");
        let timeout = r#"integration="nppes",operation="lookup",outcome="timeout""#;
        assert!(
            has(&format!("{REQUEST_DURATION}_bucket{{{timeout},le=\"10\"}} 0")),
            "{text}"
        );
        assert!(
            has(&format!("{REQUEST_DURATION}_bucket{{{timeout},le=\"30\"}} 1")),
            "{text}"
        );
        // Refused calls are counted, but not timed.
        assert!(!text.contains(r#"outcome="circuit_open",le="#), "{text}");
        assert!(has(&format!(
            "{REQUESTS_TOTAL}{{integration=\"nppes\",operation=\"lookup\",outcome=\"circuit_open\"}} 1"
        )));
        assert!(has(&format!("{REQUESTS_TOTAL}{{{ok}}} 2")), "{text}");
        assert!(
            has(&format!("{ERRORS_TOTAL}{{integration=\"nppes\",kind=\"timeout\"}} 1")),
            "{text}"
        );
        assert!(has(&format!(
            "{ERRORS_TOTAL}{{integration=\"nppes\",kind=\"circuit_open\"}} 1"
        )));
        assert!(!text.contains(r#"kind="ok""#), "{text}");
        assert!(text.contains(&format!("# TYPE {REQUEST_DURATION} histogram")), "{text}");
    }

    #[test]
    fn syncs_and_circuit_state_are_exported() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let text = render_local(|| {
            record_sync("payer-feed", true, at);
            record_sync("payer-feed", false, at + Duration::from_secs(60));
            set_circuit_state("payer-feed", CircuitGauge::Open);
        });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&r#"providercard_integration_syncs_total{integration="payer-feed",result="success"} 1"#));
        assert!(lines.contains(&r#"providercard_integration_syncs_total{integration="payer-feed",result="failure"} 1"#));
        // A failed sync leaves the last successful time alone.
        assert!(lines.contains(
            &r#"providercard_integration_last_successful_sync_timestamp_seconds{integration="payer-feed"} 1700000000"#
        ));
        assert!(lines.contains(&r#"providercard_integration_circuit_state{integration="payer-feed"} 2"#));
    }
}
