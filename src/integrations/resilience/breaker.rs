//! A circuit breaker per integration, so that a service that is down is left alone for a while
//! instead of being hammered, and callers fail fast meanwhile.
//!
//! Closed → (N consecutive transient failures) → Open for a cool-down → HalfOpen: one probe call
//! goes through while everyone else is refused → Closed if it succeeds, Open again if it fails.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::ops::metrics::{self, CircuitGauge};

/// Where "now" comes from; tests move it by hand. Tokio's clock follows paused test time too.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before a probe is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(60),
        }
    }
}

/// For health reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    /// Refusing calls until then.
    Open {
        until: Instant,
    },
    /// The cool-down is over: the next call (or the one in flight) is the probe.
    HalfOpen,
}

impl CircuitState {
    fn gauge(self) -> CircuitGauge {
        match self {
            CircuitState::Closed => CircuitGauge::Closed,
            CircuitState::Open { .. } => CircuitGauge::Open,
            CircuitState::HalfOpen => CircuitGauge::HalfOpen,
        }
    }
}

/// Why a call may not go through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Open for this much longer.
    Open { retry_in: Duration },
    /// Half-open and the probe is still running.
    ProbeInFlight,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed { consecutive_failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

pub struct CircuitBreaker {
    name: String,
    config: BreakerConfig,
    clock: Arc<dyn Clock>,
    phase: Mutex<Phase>,
}

impl CircuitBreaker {
    pub fn new(name: &str, config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::with_clock(name, config, Arc::new(TokioClock))
    }

    pub fn with_clock(name: &str, config: BreakerConfig, clock: Arc<dyn Clock>) -> CircuitBreaker {
        metrics::set_circuit_state(name, CircuitGauge::Closed);
        CircuitBreaker {
            name: name.to_owned(),
            config,
            clock,
            phase: Mutex::new(Phase::Closed {
                consecutive_failures: 0,
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The state now (an expired cool-down reads as half-open).
    pub fn state(&self) -> CircuitState {
        let mut phase = self.lock();
        self.expire_cool_down(&mut phase);
        public_state(*phase)
    }

    /// Asks to make a call. The permit says how it went; dropped without a word (the call was
    /// cancelled, or never made) it changes nothing, and frees the probe slot if it held it.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Refused> {
        let mut phase = self.lock();
        self.expire_cool_down(&mut phase);
        match *phase {
            Phase::Closed { .. } => Ok(Permit::new(self, false)),
            Phase::Open { until } => Err(Refused::Open {
                retry_in: until.saturating_duration_since(self.clock.now()),
            }),
            Phase::HalfOpen { probing: true } => Err(Refused::ProbeInFlight),
            Phase::HalfOpen { probing: false } => {
                *phase = Phase::HalfOpen { probing: true };
                Ok(Permit::new(self, true))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // Every update leaves a valid phase, so a poisoned lock is still usable.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expire_cool_down(&self, phase: &mut Phase) {
        if let Phase::Open { until } = *phase {
            if self.clock.now() >= until {
                self.set(phase, Phase::HalfOpen { probing: false });
            }
        }
    }

    fn set(&self, phase: &mut Phase, next: Phase) {
        let changed = public_state(*phase).gauge() != public_state(next).gauge();
        *phase = next;
        if changed {
            let state = public_state(next);
            tracing::info!(integration = %self.name, ?state, "circuit breaker changed state");
            metrics::set_circuit_state(&self.name, state.gauge());
        }
    }

    fn open(&self, phase: &mut Phase) {
        let until = self.clock.now() + self.config.cool_down;
        self.set(phase, Phase::Open { until });
    }

    fn finish(&self, probe: bool, outcome: Option<bool>) {
        let mut phase = self.lock();
        match (*phase, probe, outcome) {
            (Phase::HalfOpen { probing: true }, true, None) => self.set(&mut phase, Phase::HalfOpen { probing: false }),
            (Phase::HalfOpen { probing: true }, true, Some(true)) => self.set(
                &mut phase,
                Phase::Closed {
                    consecutive_failures: 0,
                },
            ),
            (Phase::HalfOpen { probing: true }, true, Some(false)) => self.open(&mut phase),
            (Phase::Closed { .. }, false, Some(true)) => {
                *phase = Phase::Closed {
                    consecutive_failures: 0,
                }
            }
            (Phase::Closed { consecutive_failures }, false, Some(false)) => {
                let consecutive_failures = consecutive_failures + 1;
                if consecutive_failures >= self.config.failure_threshold {
                    self.open(&mut phase);
                } else {
                    *phase = Phase::Closed { consecutive_failures };
                }
            }
            // A call let through while closed that ends after the circuit opened says nothing
            // about the integration now: the probe decides.
            _ => {}
        }
    }
}

fn public_state(phase: Phase) -> CircuitState {
    match phase {
        Phase::Closed { .. } => CircuitState::Closed,
        Phase::Open { until } => CircuitState::Open { until },
        Phase::HalfOpen { .. } => CircuitState::HalfOpen,
    }
}

/// Leave to make one call; report how it went with [`Permit::success`] or [`Permit::failure`].
#[must_use = "a permit reports how the call went"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, probe: bool) -> Permit<'a> {
        Permit {
            breaker,
            probe,
            reported: false,
        }
    }

    /// Whether this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The integration answered (a definite "no", such as not found, counts: it is up).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.finish(self.probe, Some(true));
    }

    /// A transient failure: error 5xx or 429, connection failure, timeout.
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.finish(self.probe, Some(false));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.finish(self.probe, None);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        pub(crate) fn new() -> Arc<ManualClock> {
            Arc::new(ManualClock(Mutex::new(Instant::now())))
        }

        pub(crate) fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    fn breaker() -> (CircuitBreaker, Arc<ManualClock>) {
        let clock = ManualClock::new();
        (
            CircuitBreaker::with_clock("test", BreakerConfig::default(), clock.clone()),
            clock,
        )
    }

    fn fail_times(b: &CircuitBreaker, n: u32) {
        for _ in 0..n {
            b.try_acquire().expect("closed").failure();
        }
    }

    #[test]
    fn opens_after_five_consecutive_failures_for_the_cool_down() {
        let (b, clock) = breaker();
        fail_times(&b, 4);
        assert_eq!(b.state(), CircuitState::Closed);
        fail_times(&b, 1);
        let until = clock.now() + Duration::from_secs(60);
        assert_eq!(b.state(), CircuitState::Open { until });

        clock.advance(Duration::from_secs(59));
        assert_eq!(
            b.try_acquire().err(),
            Some(Refused::Open {
                retry_in: Duration::from_secs(1)
            })
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.state(), CircuitState::HalfOpen);
    }

    #[test]
    fn a_success_resets_the_count() {
        let (b, _) = breaker();
        fail_times(&b, 4);
        b.try_acquire().unwrap().success();
        fail_times(&b, 4);
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn half_open_lets_one_probe_through_and_closes_on_success() {
        let (b, clock) = breaker();
        fail_times(&b, 5);
        clock.advance(Duration::from_secs(60));

        let probe = b.try_acquire().expect("the probe");
        assert!(probe.is_probe());
        assert_eq!(b.try_acquire().err(), Some(Refused::ProbeInFlight));
        assert_eq!(b.try_acquire().err(), Some(Refused::ProbeInFlight));
        probe.success();

        assert_eq!(b.state(), CircuitState::Closed);
        let permit = b.try_acquire().expect("closed again");
        assert!(!permit.is_probe());
    }

    #[test]
    fn a_failed_probe_opens_again() {
        let (b, clock) = breaker();
        fail_times(&b, 5);
        clock.advance(Duration::from_secs(61));
        b.try_acquire().unwrap().failure();
        assert_eq!(
            b.state(),
            CircuitState::Open {
                until: clock.now() + Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn a_dropped_probe_frees_the_slot_without_deciding() {
        let (b, clock) = breaker();
        fail_times(&b, 5);
        clock.advance(Duration::from_secs(60));
        drop(b.try_acquire().unwrap());
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.try_acquire().unwrap().is_probe());
    }

    #[test]
    fn late_results_of_calls_made_while_closed_do_not_decide() {
        let (b, _) = breaker();
        let late_ok = b.try_acquire().unwrap();
        let late_failure = b.try_acquire().unwrap();
        fail_times(&b, 5);
        let open = b.state();
        late_ok.success();
        late_failure.failure();
        assert_eq!(b.state(), open);
    }
}
