//! The layers every outbound call goes through, composed in a [`Guard`] per integration:
//! circuit breaker → rate limit → per-attempt timeout → the call, retried with backoff while
//! the caller's time budget lasts. Every attempt is recorded in [`crate::ops::metrics`].

mod breaker;
mod limiter;
mod retry;

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

pub use breaker::{BreakerConfig, CircuitBreaker, CircuitState, Clock, Permit, Refused, TokioClock};
pub use limiter::{InvalidRateLimit, RateLimit, RateLimited, RateLimiter};
pub use retry::{parse_retry_after, RetryPolicy};

use crate::ops::metrics::{self, Outcome};

/// What the guard needs to know about an adapter's error.
pub trait Transient {
    /// Worth trying again (5xx, 429, connection failure), as opposed to an answer that will not
    /// change (not found, bad request). Only transient errors count against the circuit.
    fn is_transient(&self) -> bool;
    /// The server's `Retry-After`, if it sent one.
    fn retry_after(&self) -> Option<Duration>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// The longest one attempt may take (less when the caller's budget has less left).
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    pub rate_limit: Option<RateLimit>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            rate_limit: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("integration {integration}: {source}")]
    RateLimit {
        integration: String,
        source: InvalidRateLimit,
    },
    #[error("integration {integration}: the timeout, max_attempts and failure_threshold must be above zero")]
    Zero { integration: String },
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError<E> {
    #[error("circuit open; try again in {retry_in:?}")]
    CircuitOpen { retry_in: Duration },
    #[error("rate limited; try again in {retry_in:?}")]
    RateLimited { retry_in: Duration },
    /// No answer within the time: the budget ran out, or the last attempt timed out.
    #[error("timed out")]
    TimedOut,
    /// The last error the integration gave.
    #[error("{0}")]
    Failed(E),
}

impl<E: Transient> GuardError<E> {
    /// When a job queue should try again: the server's Retry-After, the breaker's cool-down or
    /// the limiter's wait; None when nothing says (use the queue's own backoff).
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            GuardError::CircuitOpen { retry_in } | GuardError::RateLimited { retry_in } => Some(*retry_in),
            GuardError::TimedOut => None,
            GuardError::Failed(e) => e.retry_after(),
        }
    }
}

/// One integration's resilience layers; share it (it is `Sync`) between all calls to that
/// integration, so that the breaker and the rate limit see them all.
pub struct Guard {
    name: String,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    limiter: Option<RateLimiter>,
    /// Set by a `Retry-After`: no call goes out before it, whichever caller (a write, a job, the
    /// health check) makes it, because the integration asked all of us to wait.
    hold_until: std::sync::Mutex<Option<Instant>>,
}

impl Guard {
    pub fn new(name: &str, config: GuardConfig) -> Result<Guard, ConfigError> {
        if config.timeout.is_zero() || config.retry.max_attempts == 0 || config.breaker.failure_threshold == 0 {
            return Err(ConfigError::Zero {
                integration: name.to_owned(),
            });
        }
        let limiter = config
            .rate_limit
            .map(RateLimiter::new)
            .transpose()
            .map_err(|source| ConfigError::RateLimit {
                integration: name.to_owned(),
                source,
            })?;
        Ok(Guard {
            name: name.to_owned(),
            timeout: config.timeout,
            retry: config.retry,
            breaker: CircuitBreaker::new(name, config.breaker),
            limiter,
            hold_until: std::sync::Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// For health reporting.
    pub fn circuit_state(&self) -> CircuitState {
        self.breaker.state()
    }

    /// Runs `op` through the layers, retrying transient failures while `budget` lasts: the call
    /// returns within `budget` whatever happens. `operation` names the call in the metrics.
    pub async fn call<T, E, F, Fut>(&self, operation: &str, budget: Duration, mut op: F) -> Result<T, GuardError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Transient + std::fmt::Display,
    {
        let deadline = Instant::now() + budget;
        let mut retries = self.retry.start();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let held = *self.hold_until.lock().expect("hold lock");
            if let Some(until) = held.filter(|until| *until > Instant::now()) {
                if until > deadline {
                    self.record(operation, Duration::ZERO, Outcome::RateLimited);
                    return Err(GuardError::RateLimited {
                        retry_in: until - Instant::now(),
                    });
                }
                tokio::time::sleep_until(until).await;
            }
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(refused) => {
                    self.record(operation, Duration::ZERO, Outcome::CircuitOpen);
                    let retry_in = match refused {
                        Refused::Open { retry_in } => retry_in,
                        // The probe is over within one attempt's timeout.
                        Refused::ProbeInFlight => self.timeout,
                    };
                    return Err(GuardError::CircuitOpen { retry_in });
                }
            };
            if let Some(limiter) = &self.limiter {
                if let Err(RateLimited { retry_in }) = limiter.acquire(deadline).await {
                    self.record(operation, Duration::ZERO, Outcome::RateLimited);
                    return Err(GuardError::RateLimited { retry_in });
                }
            }

            let started = Instant::now();
            let attempt_timeout = self.timeout.min(deadline.saturating_duration_since(started));
            let result = tokio::time::timeout(attempt_timeout, op()).await;
            let latency = started.elapsed();

            let error = match result {
                Ok(Ok(value)) => {
                    permit.success();
                    self.record(operation, latency, Outcome::Ok);
                    return Ok(value);
                }
                Ok(Err(e)) if !e.is_transient() => {
                    // The integration answered: it is up, whatever the answer.
                    permit.success();
                    self.record(operation, latency, Outcome::Permanent);
                    return Err(GuardError::Failed(e));
                }
                Ok(Err(e)) => {
                    permit.failure();
                    self.record(operation, latency, Outcome::Transient);
                    tracing::debug!(integration = %self.name, operation, attempt, error = %e, "transient failure");
                    GuardError::Failed(e)
                }
                Err(_elapsed) => {
                    permit.failure();
                    self.record(operation, latency, Outcome::Timeout);
                    tracing::debug!(integration = %self.name, operation, attempt, "attempt timed out");
                    GuardError::TimedOut
                }
            };

            let retry_after = match &error {
                GuardError::Failed(e) => e.retry_after(),
                _ => None,
            };
            if let Some(wait) = retry_after {
                let until = Instant::now() + wait;
                let mut hold = self.hold_until.lock().expect("hold lock");
                *hold = Some(hold.map_or(until, |h| h.max(until)));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Giving up early when the wait would not fit leaves the rest of the budget to the
            // caller, who can queue the work for later (see GuardError::retry_in).
            let Some(wait) = retries.next_wait(retry_after, remaining) else {
                return Err(error);
            };
            tracing::debug!(integration = %self.name, operation, attempt, ?wait, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn record(&self, operation: &str, latency: Duration, outcome: Outcome) {
        metrics::record_request(&self.name, operation, latency, outcome);
    }
}

#[cfg(test)]
mod tests;
