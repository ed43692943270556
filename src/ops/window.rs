//! Rolling statistics per integration over a sliding window (5 minutes by default), kept in this
//! process's memory for the alert rules (error rate, p95 latency, sync success rate) and the
//! health report, without a round trip to Prometheus.
//!
//! Fed by [`super::metrics::record_request`] and [`super::metrics::record_sync`].
//!
//! Memory bound: per integration at most [`MAX_SAMPLES`] requests (40 bytes each) and
//! [`MAX_SAMPLES`] syncs are kept, about 0.6 MB at worst. Past that the oldest are dropped
//! early, so under heavy load the statistics describe the latest [`MAX_SAMPLES`] requests
//! rather than the whole window. p95 is then exact over what is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::metrics::Outcome;

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Samples kept per integration and kind (requests, syncs).
pub const MAX_SAMPLES: usize = 10_000;

/// Where "now" comes from, so that tests can move time by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// One integration's statistics over the window. Rates and the percentile are None when there
/// is nothing to compute them from, so that an idle integration does not look broken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowStats {
    pub integration: String,
    pub window_seconds: u64,
    /// Attempts that reached the integration.
    pub requests: u64,
    /// Of those, the ones that did not succeed (transient, permanent, timeout).
    pub errors: u64,
    /// Calls refused locally (circuit open, rate limited): not in `requests` nor the latency.
    pub refused: u64,
    /// errors / requests.
    pub error_rate: Option<f64>,
    /// Nearest-rank 95th percentile of the latencies of `requests`.
    pub p95_latency_seconds: Option<f64>,
    pub syncs: u64,
    pub sync_failures: u64,
    /// (syncs - sync_failures) / syncs.
    pub sync_success_rate: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Ok,
    Error,
    Refused,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    at: Instant,
    latency: Duration,
    kind: Kind,
}

#[derive(Debug, Default)]
struct Series {
    requests: VecDeque<Request>,
    syncs: VecDeque<(Instant, bool)>,
}

impl Series {
    fn forget_before(&mut self, cutoff: Option<Instant>) {
        let Some(cutoff) = cutoff else { return };
        while self.requests.front().is_some_and(|r| r.at < cutoff) {
            self.requests.pop_front();
        }
        while self.syncs.front().is_some_and(|&(at, _)| at < cutoff) {
            self.syncs.pop_front();
        }
    }
}

/// The statistics of every integration seen so far.
pub struct Windows {
    window: Duration,
    clock: Arc<dyn Clock>,
    series: Mutex<HashMap<String, Series>>,
}

impl Windows {
    pub fn new(window: Duration) -> Windows {
        Windows::with_clock(window, Arc::new(SystemClock))
    }

    pub fn with_clock(window: Duration, clock: Arc<dyn Clock>) -> Windows {
        Windows {
            window,
            clock,
            series: Mutex::new(HashMap::new()),
        }
    }

    fn cutoff(&self, now: Instant) -> Option<Instant> {
        // None early in the process's life, when the window reaches back before the clock's origin.
        now.checked_sub(self.window)
    }

    fn with_series<R>(&self, integration: &str, f: impl FnOnce(&mut Series, Instant) -> R) -> R {
        let now = self.clock.now();
        // A panic elsewhere while holding the lock leaves consistent deques: keep going.
        let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        // One small allocation per outbound call is nothing next to the call itself.
        let series = all.entry(integration.to_owned()).or_default();
        series.forget_before(self.cutoff(now));
        f(series, now)
    }

    pub fn record_request(&self, integration: &str, latency: Duration, outcome: Outcome) {
        let kind = match outcome {
            Outcome::Ok => Kind::Ok,
            _ if !outcome.reached_integration() => Kind::Refused,
            _ => Kind::Error,
        };
        self.with_series(integration, |series, at| {
            if series.requests.len() == MAX_SAMPLES {
                series.requests.pop_front();
            }
            series.requests.push_back(Request { at, latency, kind });
        });
    }

    pub fn record_sync(&self, integration: &str, success: bool) {
        self.with_series(integration, |series, at| {
            if series.syncs.len() == MAX_SAMPLES {
                series.syncs.pop_front();
            }
            series.syncs.push_back((at, success));
        });
    }

    pub fn snapshot(&self, integration: &str) -> WindowStats {
        let window_seconds = self.window.as_secs();
        let mut latencies = Vec::new();
        let (mut errors, mut refused, mut syncs, mut sync_failures) = (0u64, 0u64, 0u64, 0u64);
        {
            let now = self.clock.now();
            let mut all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = all.get_mut(integration) {
                series.forget_before(self.cutoff(now));
                for r in &series.requests {
                    match r.kind {
                        Kind::Ok => latencies.push(r.latency),
                        Kind::Error => {
                            errors += 1;
                            latencies.push(r.latency);
                        }
                        Kind::Refused => refused += 1,
                    }
                }
                for &(_, success) in &series.syncs {
                    syncs += 1;
                    sync_failures += u64::from(!success);
                }
            }
        }
        // Sorting outside the lock: recording must not wait for a snapshot.
        let requests = latencies.len() as u64;
        latencies.sort_unstable();
        WindowStats {
            integration: integration.to_owned(),
            window_seconds,
            requests,
            errors,
            refused,
            error_rate: ratio(errors, requests),
            p95_latency_seconds: percentile(&latencies, 95).map(|d| d.as_secs_f64()),
            syncs,
            sync_failures,
            sync_success_rate: ratio(syncs - sync_failures, syncs),
        }
    }

    /// Every integration seen, by name.
    pub fn all(&self) -> Vec<WindowStats> {
        let mut names: Vec<String> = {
            let all = self.series.lock().unwrap_or_else(PoisonError::into_inner);
            all.keys().cloned().collect()
        };
        names.sort();
        names.iter().map(|name| self.snapshot(name)).collect()
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `pct` % of the
/// values at or below it.
fn percentile(sorted: &[Duration], pct: usize) -> Option<Duration> {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

static GLOBAL: OnceLock<Windows> = OnceLock::new();

/// The process-wide statistics that the metrics functions feed.
pub fn global() -> &'static Windows {
    GLOBAL.get_or_init(|| Windows::new(DEFAULT_WINDOW))
}

pub fn snapshot(integration: &str) -> WindowStats {
    global().snapshot(integration)
}

pub fn all() -> Vec<WindowStats> {
    global().all()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn windows() -> (Windows, Arc<ManualClock>) {
        // Start well past the clock's origin so the window can reach back a full 5 minutes.
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now() + Duration::from_secs(3600))));
        (Windows::with_clock(DEFAULT_WINDOW, clock.clone()), clock)
    }

    #[test]
    fn p95_of_a_known_set() {
        let (w, _) = windows();
        // 1..=100 ms in shuffled order: the 95th value is 95 ms.
        for i in (1..=100u64).map(|i| (i * 37) % 100 + 1) {
            w.record_request("nppes", Duration::from_millis(i), Outcome::Ok);
        }
        let stats = w.snapshot("nppes");
        assert_eq!(stats.requests, 100);
        assert_eq!(stats.p95_latency_seconds, Some(0.095));

        assert_eq!(percentile(&[Duration::from_secs(7)], 95), Some(Duration::from_secs(7)));
        assert_eq!(percentile(&[], 95), None);
    }

    #[test]
    fn error_rate_counts_failed_attempts_but_not_local_refusals() {
        let (w, _) = windows();
        for _ in 0..8 {
            w.record_request("nppes", Duration::from_millis(100), Outcome::Ok);
        }
        w.record_request("nppes", Duration::from_millis(100), Outcome::Transient);
        w.record_request("nppes", Duration::from_secs(10), Outcome::Timeout);
        w.record_request("nppes", Duration::ZERO, Outcome::CircuitOpen);
        w.record_request("nppes", Duration::ZERO, Outcome::RateLimited);
        let stats = w.snapshot("nppes");
        assert_eq!((stats.requests, stats.errors, stats.refused), (10, 2, 2));
        assert_eq!(stats.error_rate, Some(0.2));
        assert_eq!(stats.p95_latency_seconds, Some(10.0));
    }

    #[test]
    fn samples_older_than_the_window_drop_out() {
        let (w, clock) = windows();
        w.record_request("nppes", Duration::from_secs(9), Outcome::Transient);
        w.record_sync("nppes", false);
        clock.advance(Duration::from_secs(240));
        w.record_request("nppes", Duration::from_millis(50), Outcome::Ok);
        w.record_sync("nppes", true);

        let stats = w.snapshot("nppes");
        assert_eq!((stats.requests, stats.errors, stats.syncs), (2, 1, 2));
        assert_eq!(stats.sync_success_rate, Some(0.5));

        // 5 min 1 s after the first samples, 61 s after the second ones.
        clock.advance(Duration::from_secs(61));
        let stats = w.snapshot("nppes");
        assert_eq!((stats.requests, stats.errors), (1, 0));
        assert_eq!(stats.error_rate, Some(0.0));
        assert_eq!(stats.p95_latency_seconds, Some(0.05));
        assert_eq!(
            (stats.syncs, stats.sync_failures, stats.sync_success_rate),
            (1, 0, Some(1.0))
        );

        clock.advance(Duration::from_secs(300));
        let stats = w.snapshot("nppes");
        assert_eq!((stats.requests, stats.syncs), (0, 0));
        assert_eq!(
            (stats.error_rate, stats.p95_latency_seconds, stats.sync_success_rate),
            (None, None, None)
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let (w, _) = windows();
        for _ in 0..MAX_SAMPLES + 5 {
            w.record_request("nppes", Duration::from_millis(1), Outcome::Ok);
        }
        assert_eq!(w.snapshot("nppes").requests, MAX_SAMPLES as u64);
    }

    #[test]
    fn all_lists_every_integration_by_name() {
        let (w, _) = windows();
        w.record_sync("payer-feed", true);
        w.record_request("nppes", Duration::from_millis(1), Outcome::Ok);
        let names: Vec<String> = w.all().into_iter().map(|s| s.integration).collect();
        assert_eq!(names, ["nppes", "payer-feed"]);
        assert_eq!(w.snapshot("unknown").requests, 0);
    }
}
