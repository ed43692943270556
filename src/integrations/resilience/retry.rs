//! When to try an outbound call again: exponential backoff with jitter (backon), stretched to
//! honour the server's `Retry-After`, and never past the caller's deadline.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; 1 turns retrying off.
    pub max_attempts: u32,
    /// The wait after the first failure; each later wait doubles.
    pub initial_delay: Duration,
    /// Where the doubling stops.
    pub max_delay: Duration,
    /// Adds a random share (0 to 100 %) of each wait, so that callers that failed together do
    /// not all come back together. A wait can then reach twice `max_delay`.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The waits of one call, in order.
    pub(crate) fn start(&self) -> Retries {
        let mut builder = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1) as usize);
        if self.jitter {
            builder = builder.with_jitter();
        }
        Retries {
            backoff: builder.build(),
        }
    }
}

pub(crate) struct Retries {
    backoff: <ExponentialBuilder as BackoffBuilder>::Backoff,
}

impl Retries {
    /// How long to wait before the next attempt, or None to give up: the attempts are spent, or
    /// the wait (at least `retry_after` when the server asked for one) would leave no time
    /// before the deadline, `remaining` from now.
    pub(crate) fn next_wait(&mut self, retry_after: Option<Duration>, remaining: Duration) -> Option<Duration> {
        // backon computes in f32 (200 ms comes out as 200.000003 ms): round to whole
        // milliseconds, the timer's resolution, which would otherwise round it up to 201 ms.
        let backoff = whole_millis(self.backoff.next()?);
        let wait = backoff.max(retry_after.unwrap_or_default());
        (wait < remaining).then_some(wait)
    }
}

fn whole_millis(d: Duration) -> Duration {
    let millis = (d.as_micros() + 500) / 1000;
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// Parses an HTTP `Retry-After` value: delay seconds, or an HTTP date (a date in the past
/// means "now").
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(at.with_timezone(&chrono::Utc));
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            jitter: false,
        }
    }

    const PLENTY: Duration = Duration::from_secs(3600);

    #[test]
    fn waits_double_up_to_the_maximum_and_stop_after_the_attempts() {
        let mut retries = policy(5).start();
        let waits: Vec<_> = std::iter::from_fn(|| retries.next_wait(None, PLENTY)).collect();
        let ms = Duration::from_millis;
        assert_eq!(waits, [ms(100), ms(200), ms(300), ms(300)]);
        assert_eq!(policy(1).start().next_wait(None, PLENTY), None);
    }

    #[test]
    fn jitter_stays_within_one_extra_wait() {
        let mut retries = RetryPolicy {
            jitter: true,
            ..policy(2)
        }
        .start();
        let wait = retries.next_wait(None, PLENTY).unwrap();
        assert!(
            wait >= Duration::from_millis(100) && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
    }

    #[test]
    fn retry_after_stretches_the_wait_but_not_past_the_deadline() {
        let mut retries = policy(5).start();
        let wait = retries.next_wait(Some(Duration::from_secs(2)), PLENTY);
        assert_eq!(wait, Some(Duration::from_secs(2)));
        // A shorter Retry-After than the backoff does not shorten it.
        let wait = retries.next_wait(Some(Duration::from_millis(1)), PLENTY);
        assert_eq!(wait, Some(Duration::from_millis(200)));
        assert_eq!(
            retries.next_wait(Some(Duration::from_secs(30)), Duration::from_secs(29)),
            None
        );
        assert_eq!(retries.next_wait(None, Duration::from_millis(300)), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_717); // Sun, 06 Nov 1994 08:48:37 GMT
        assert_eq!(parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
