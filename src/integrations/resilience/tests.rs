//! Guard tests on tokio's paused clock: sleeps and timeouts advance virtual time at once, so
//! the timings asserted are exact and do not depend on the machine's speed.

use std::cell::{Cell, RefCell};
use std::fmt;

use tokio::time::sleep;

use super::*;

#[derive(Debug, Clone, Copy)]
struct TestError {
    transient: bool,
    retry_after: Option<Duration>,
}

const UNAVAILABLE: TestError = TestError {
    transient: true,
    retry_after: None,
};
const NOT_FOUND: TestError = TestError {
    transient: false,
    retry_after: None,
};

fn too_many_requests(retry_after: Duration) -> TestError {
    TestError {
        transient: true,
        retry_after: Some(retry_after),
    }
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "test error (transient: {})", self.transient)
    }
}

impl Transient for TestError {
    fn is_transient(&self) -> bool {
        self.transient
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

fn config(max_attempts: u32) -> GuardConfig {
    GuardConfig {
        timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            jitter: false,
        },
        breaker: BreakerConfig::default(),
        rate_limit: None,
    }
}

fn guard(max_attempts: u32) -> Guard {
    Guard::new("test", config(max_attempts)).unwrap()
}

const BUDGET: Duration = Duration::from_secs(30);

/// An op that gives the scripted results in turn (then the last one forever), noting when each
/// call started.
struct Script {
    results: Vec<Result<u32, TestError>>,
    calls: RefCell<Vec<Instant>>,
}

impl Script {
    fn new(results: Vec<Result<u32, TestError>>) -> Script {
        Script {
            results,
            calls: RefCell::new(Vec::new()),
        }
    }

    fn op(&self) -> impl FnMut() -> std::future::Ready<Result<u32, TestError>> + '_ {
        move || {
            let mut calls = self.calls.borrow_mut();
            calls.push(Instant::now());
            let i = (calls.len() - 1).min(self.results.len() - 1);
            std::future::ready(self.results[i])
        }
    }

    fn count(&self) -> usize {
        self.calls.borrow().len()
    }

    fn gaps(&self) -> Vec<Duration> {
        self.calls.borrow().windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn retries_transient_failures_then_succeeds() {
    let script = Script::new(vec![Err(UNAVAILABLE), Err(UNAVAILABLE), Ok(7)]);
    let result = guard(3).call("lookup", BUDGET, script.op()).await;
    assert_eq!(result.unwrap(), 7);
    assert_eq!(script.gaps(), [Duration::from_millis(100), Duration::from_millis(200)]);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_the_attempts_with_the_last_error() {
    let script = Script::new(vec![Err(UNAVAILABLE)]);
    let result = guard(3).call("lookup", BUDGET, script.op()).await;
    assert!(matches!(result, Err(GuardError::Failed(e)) if e.transient));
    assert_eq!(script.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn honours_retry_after() {
    let script = Script::new(vec![Err(too_many_requests(Duration::from_secs(7))), Ok(1)]);
    let result = guard(3).call("lookup", BUDGET, script.op()).await;
    assert_eq!(result.unwrap(), 1);
    assert_eq!(script.gaps(), [Duration::from_secs(7)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_budget_returns_at_once_with_retry_in() {
    let script = Script::new(vec![Err(too_many_requests(Duration::from_secs(30))), Ok(1)]);
    let start = Instant::now();
    let error = guard(3)
        .call("lookup", Duration::from_secs(5), script.op())
        .await
        .unwrap_err();
    assert_eq!(Instant::now(), start);
    assert_eq!(script.count(), 1);
    assert!(matches!(error, GuardError::Failed(_)));
    assert_eq!(error.retry_in(), Some(Duration::from_secs(30)));
}

#[tokio::test(start_paused = true)]
async fn retry_after_holds_every_later_call_until_it_passes() {
    let g = guard(3);
    let limited = Script::new(vec![Err(too_many_requests(Duration::from_secs(30)))]);
    let _ = g.call("lookup", Duration::from_secs(5), limited.op()).await;
    // Another caller, ten seconds later: refused without a request, told when to come back.
    sleep(Duration::from_secs(10)).await;
    let other = Script::new(vec![Ok(2)]);
    let error = g.call("lookup", Duration::from_secs(5), other.op()).await.unwrap_err();
    assert_eq!(other.count(), 0);
    assert!(matches!(error, GuardError::RateLimited { .. }));
    assert_eq!(error.retry_in(), Some(Duration::from_secs(20)));
    // A caller with the time to wait waits, then asks.
    let start = Instant::now();
    assert_eq!(g.call("lookup", Duration::from_secs(60), other.op()).await.unwrap(), 2);
    assert_eq!(Instant::now() - start, Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_non_transient_error_is_not_retried_and_does_not_trip_the_breaker() {
    let guard = guard(3);
    for _ in 0..10 {
        let script = Script::new(vec![Err(NOT_FOUND), Ok(1)]);
        let error = guard.call("lookup", BUDGET, script.op()).await.unwrap_err();
        assert!(matches!(error, GuardError::Failed(e) if !e.transient));
        assert_eq!(error.retry_in(), None);
        assert_eq!(script.count(), 1);
    }
    assert_eq!(guard.circuit_state(), CircuitState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_slow_op_is_cut_by_the_timeout_and_the_budget_holds_overall() {
    let guard = guard(10);
    let calls = Cell::new(0);
    let start = Instant::now();
    let result = guard
        .call("lookup", Duration::from_secs(5), || {
            calls.set(calls.get() + 1);
            async {
                sleep(Duration::from_secs(60)).await;
                Ok::<u32, TestError>(1)
            }
        })
        .await;
    assert!(matches!(result, Err(GuardError::TimedOut)));
    // 0–2 s timed out, wait 0.1 s, 2.1–4.1 s timed out, wait 0.2 s, 4.3–5 s cut at the deadline.
    assert_eq!(Instant::now() - start, Duration::from_secs(5));
    assert_eq!(calls.get(), 3);
}

/// Five calls of one attempt each that fail transiently.
async fn trip(guard: &Guard) {
    for _ in 0..5 {
        let script = Script::new(vec![Err(UNAVAILABLE)]);
        let _ = guard.call("lookup", BUDGET, script.op()).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_breaker_opens_after_five_transient_failures_and_refuses_without_calling() {
    let guard = guard(1);
    trip(&guard).await;
    assert!(matches!(guard.circuit_state(), CircuitState::Open { .. }));

    sleep(Duration::from_secs(20)).await;
    let script = Script::new(vec![Ok(1)]);
    let error = guard.call("lookup", BUDGET, script.op()).await.unwrap_err();
    assert!(matches!(error, GuardError::CircuitOpen { .. }));
    assert_eq!(error.retry_in(), Some(Duration::from_secs(40)));
    assert_eq!(script.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_a_single_probe_through_then_closes_on_success() {
    let guard = guard(1);
    trip(&guard).await;
    sleep(Duration::from_secs(60)).await;
    assert_eq!(guard.circuit_state(), CircuitState::HalfOpen);

    let others = Cell::new(0);
    let probe = guard.call("lookup", BUDGET, || async {
        sleep(Duration::from_secs(1)).await;
        Ok::<u32, TestError>(1)
    });
    let concurrent = async {
        // Let the probe start first.
        tokio::task::yield_now().await;
        guard
            .call("lookup", BUDGET, || {
                others.set(others.get() + 1);
                std::future::ready(Ok::<u32, TestError>(2))
            })
            .await
    };
    let (probe, concurrent) = tokio::join!(probe, concurrent);
    assert_eq!(probe.unwrap(), 1);
    let refused = concurrent.unwrap_err();
    assert!(matches!(refused, GuardError::CircuitOpen { .. }));
    assert_eq!(refused.retry_in(), Some(Duration::from_secs(2)), "the attempt timeout");
    assert_eq!(others.get(), 0);

    assert_eq!(guard.circuit_state(), CircuitState::Closed);
    let script = Script::new(vec![Ok(3)]);
    assert_eq!(guard.call("lookup", BUDGET, script.op()).await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_the_circuit_again() {
    let guard = guard(3);
    trip(&guard).await;
    sleep(Duration::from_secs(60)).await;

    let probe = Script::new(vec![Err(UNAVAILABLE)]);
    let error = guard.call("lookup", BUDGET, probe.op()).await.unwrap_err();
    // The retry after the failed probe meets the open circuit.
    assert!(matches!(error, GuardError::CircuitOpen { .. }));
    assert_eq!(error.retry_in(), Some(Duration::from_millis(59_900)));
    assert_eq!(probe.count(), 1);
    assert!(matches!(guard.circuit_state(), CircuitState::Open { .. }));
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_waits_within_the_budget_or_refuses() {
    let guard = Guard::new(
        "test",
        GuardConfig {
            rate_limit: Some(RateLimit {
                requests: 3,
                window: Duration::from_secs(1),
            }),
            ..config(1)
        },
    )
    .unwrap();
    let script = Script::new(vec![Ok(1)]);
    for _ in 0..3 {
        guard.call("lookup", BUDGET, script.op()).await.unwrap();
    }

    let start = Instant::now();
    let error = guard
        .call("lookup", Duration::from_millis(100), script.op())
        .await
        .unwrap_err();
    assert_eq!(Instant::now(), start);
    assert!(matches!(error, GuardError::RateLimited { retry_in } if retry_in > Duration::from_millis(300)));
    assert_eq!(script.count(), 3);

    guard.call("lookup", Duration::from_secs(1), script.op()).await.unwrap();
    assert!(Instant::now() - start >= Duration::from_millis(333));
    assert_eq!(script.count(), 4);
}

#[test]
fn invalid_configs_are_refused() {
    let zero_limit = GuardConfig {
        rate_limit: Some(RateLimit {
            requests: 0,
            window: Duration::from_secs(1),
        }),
        ..config(3)
    };
    assert!(matches!(
        Guard::new("x", zero_limit),
        Err(ConfigError::RateLimit { .. })
    ));
    assert!(matches!(Guard::new("x", config(0)), Err(ConfigError::Zero { .. })));
}
