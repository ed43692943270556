//! Rate limits, so that an abusive or broken client cannot starve the others: one budget per
//! client (by the client id of its token) and one per peer IP address, each a number of
//! requests per minute that may be spent in a burst and refills evenly (GCRA, governor).
//!
//! The budgets live in this process's memory: with several server processes each allows its
//! own share. That is deliberate: a limit that needs a database round trip per request would
//! itself be the bottleneck it is meant to prevent.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Requests per minute; None turns a limit off.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitSettings {
    pub per_client: Option<NonZeroU32>,
    pub per_ip: Option<NonZeroU32>,
}

/// The rate limit was reached; the caller may try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: u64,
}

impl From<Throttled> for crate::fhir::FhirError {
    fn from(t: Throttled) -> Self {
        crate::fhir::FhirError::Throttled {
            retry_after: t.retry_after,
        }
    }
}

pub struct Limits {
    per_client: Option<Keyed<String>>,
    per_ip: Option<Keyed<IpAddr>>,
}

struct Keyed<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

/// Forget idle keys now and then, so that many one-off callers do not grow memory forever.
const SWEEP_EVERY: u64 = 4096;

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(per_minute: NonZeroU32) -> Keyed<K> {
        Keyed {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            checks: AtomicU64::new(0),
        }
    }

    fn check(&self, key: &K) -> Result<(), Throttled> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Whole seconds, rounded up: a client that waits as told is let through.
            Throttled {
                retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Limits {
        Limits {
            per_client: settings.per_client.map(Keyed::new),
            per_ip: settings.per_ip.map(Keyed::new),
        }
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.per_ip.as_ref().map_or(Ok(()), |l| l.check(&ip))
    }

    pub fn check_client(&self, client_id: &str) -> Result<(), Throttled> {
        self.per_client
            .as_ref()
            .map_or(Ok(()), |l| l.check(&client_id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_budget_is_told_when_to_come_back() {
        let limits = Limits::new(LimitSettings {
            per_client: NonZeroU32::new(3),
            per_ip: None,
        });
        for _ in 0..3 {
            limits.check_client("a").unwrap();
        }
        let throttled = limits.check_client("a").unwrap_err();
        assert!((1..=20).contains(&throttled.retry_after), "{throttled:?}");
        limits.check_client("b").expect("each client has its own budget");
        limits
            .check_ip("127.0.0.1".parse().unwrap())
            .expect("no IP limit configured");
    }
}
