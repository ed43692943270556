//! A client-side rate limit per integration, so that we stay within what the remote service
//! allows (NPPES: 200 requests per 5 minutes) instead of learning it from 429s.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::Quota;
use tokio::time::Instant;

/// `requests` per `window`, which may all be spent in a burst; they come back evenly, one every
/// `window / requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
}

impl RateLimit {
    /// The NPPES registry API's published limit.
    pub const NPPES: RateLimit = RateLimit {
        requests: 200,
        window: Duration::from_secs(5 * 60),
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit: no permit before the deadline; one is free in {retry_in:?}")]
pub struct RateLimited {
    pub retry_in: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate limit {requests} per {window:?}: both must be above zero")]
pub struct InvalidRateLimit {
    pub requests: u32,
    pub window: Duration,
}

/// Governor's view of tokio's clock, so that paused test time drives the limiter as well.
#[derive(Debug, Clone)]
struct TokioTime {
    origin: Instant,
}

impl GovernorClock for TokioTime {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

type Gcra = governor::RateLimiter<NotKeyed, InMemoryState, TokioTime, NoOpMiddleware<Duration>>;

pub struct RateLimiter {
    gcra: Gcra,
    clock: TokioTime,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Result<RateLimiter, InvalidRateLimit> {
        let invalid = || InvalidRateLimit {
            requests: limit.requests,
            window: limit.window,
        };
        let burst = NonZeroU32::new(limit.requests).ok_or_else(invalid)?;
        let quota = Quota::with_period(limit.window / limit.requests)
            .ok_or_else(invalid)?
            .allow_burst(burst);
        let clock = TokioTime { origin: Instant::now() };
        Ok(RateLimiter {
            gcra: governor::RateLimiter::direct_with_clock(quota, clock.clone()),
            clock,
        })
    }

    /// Takes a permit, waiting for one only if it comes before `deadline`; otherwise returns at
    /// once with how long until one is free.
    pub async fn acquire(&self, deadline: Instant) -> Result<(), RateLimited> {
        loop {
            let wait = match self.gcra.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => not_until.wait_time_from(self.clock.now()),
            };
            if Instant::now() + wait > deadline {
                return Err(RateLimited { retry_in: wait });
            }
            // Another caller may take the permit first: then check again.
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three_per_second() -> RateLimiter {
        RateLimiter::new(RateLimit {
            requests: 3,
            window: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn allows_the_burst_then_waits_for_the_next_permit_within_the_deadline() {
        let limiter = three_per_second();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(1);
        for _ in 0..3 {
            limiter.acquire(deadline).await.unwrap();
        }
        assert_eq!(Instant::now(), start, "the burst does not wait");

        limiter.acquire(deadline).await.unwrap();
        let waited = Instant::now() - start;
        // One permit comes back every 333 ms.
        assert!(
            waited >= Duration::from_millis(333) && waited < Duration::from_millis(340),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_at_once_when_the_next_permit_is_past_the_deadline() {
        let limiter = three_per_second();
        let start = Instant::now();
        let deadline = start + Duration::from_millis(100);
        for _ in 0..3 {
            limiter.acquire(deadline).await.unwrap();
        }
        let refused = limiter.acquire(deadline).await.unwrap_err();
        assert_eq!(Instant::now(), start, "a refusal does not wait");
        assert!(
            refused.retry_in > Duration::from_millis(300) && refused.retry_in <= Duration::from_millis(334),
            "{refused:?}"
        );
    }

    #[test]
    fn a_zero_limit_is_refused() {
        for (requests, window) in [(0, Duration::from_secs(1)), (3, Duration::ZERO)] {
            assert!(RateLimiter::new(RateLimit { requests, window }).is_err());
        }
        assert!(RateLimiter::new(RateLimit::NPPES).is_ok());
    }
}
