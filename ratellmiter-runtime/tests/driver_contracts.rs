//! Small promises of the drivers that mutation testing (issue 19, `scripts/mutants.sh`)
//! found no test checking: what `current()` tells the body of a call, and what the
//! limiter's `Debug` shows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratellmiter_runtime::headers::Budget;
use ratellmiter_runtime::{
    BucketRateLimiter, DayReset, IsRateLimit, LimiterConfig, RampShape, RateLimit, current,
};
use tokio::time::Instant;

#[derive(Debug)]
struct Refused;

impl IsRateLimit for Refused {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(None))
    }
}

/// The first attempt is refused without a `retry_after`: the limiter pauses, and the
/// re-run after the pause is the probe; `current().is_probe()` says so in that attempt
/// only, and the call after it is an ordinary one again.
#[tokio::test(start_paused = true)]
async fn current_says_which_attempt_is_the_probe() {
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .adaptive(false)
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out: Result<(), Refused> = limiter
        .run(|| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push(current().is_probe());
                if seen.len() == 1 {
                    Err(Refused)
                } else {
                    Ok(())
                }
            }
        })
        .await;
    assert!(out.is_ok());
    let after: Result<bool, Refused> = limiter.run(|| async { Ok(current().is_probe()) }).await;
    assert_eq!(*seen.lock().unwrap(), [false, true]);
    assert!(
        !after.unwrap(),
        "the call after a successful probe is not one"
    );
    assert!(!current().is_probe(), "outside a call");
}

#[tokio::test]
async fn debug_output_names_the_limiter_and_its_rate() {
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .name("openai/gpt-4o")
        .build()
        .unwrap();
    let shown = format!("{limiter:?}");
    assert!(shown.starts_with("BucketRateLimiter {"), "{shown}");
    assert!(shown.contains("rpm: 600"), "{shown}");
    assert!(shown.contains("openai/gpt-4o"), "{shown}");
    assert_eq!(
        format!("{:?}", current()),
        "Current { active: false, request_id: None }"
    );
}

/// What the body of a call reports through `current().observe_budget` reaches the
/// limiter: no request left for 5 s holds the next call until then.
#[tokio::test(start_paused = true)]
async fn a_budget_observed_through_current_holds_the_next_call() {
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .adaptive(false)
        .build()
        .unwrap();
    let start = Instant::now();
    let out: Result<(), Refused> = limiter
        .run(|| async {
            current().observe_budget(
                Some(Budget {
                    remaining: 0,
                    reset: Duration::from_secs(5),
                }),
                None,
            );
            Ok(())
        })
        .await;
    assert!(out.is_ok());
    drop(limiter.acquire().await.unwrap());
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(5),
        "held until the reset"
    );
}

#[derive(Debug)]
struct RefusedBriefly;

impl IsRateLimit for RefusedBriefly {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(Some(Duration::from_millis(1))))
    }
}

/// `run_blocking` re-queues only its re-runs as retries: the first attempt is a new
/// call (nothing re-issued yet when its body runs), the second a re-issue. Real
/// threads, so the refusal asks for a 1 ms pause only.
#[test]
fn run_blocking_marks_only_its_re_runs_as_retries() {
    let limiter = BucketRateLimiter::builder()
        .rpm(6_000)
        .ramp_start(1.0)
        .adaptive(false)
        .build()
        .unwrap();
    let mut reissued_seen = Vec::new();
    let out: Result<(), RefusedBriefly> = limiter.run_blocking(|| {
        reissued_seen.push(limiter.stats().reissued);
        if reissued_seen.len() == 1 {
            Err(RefusedBriefly)
        } else {
            Ok(())
        }
    });
    assert!(out.is_ok());
    assert_eq!(reissued_seen, [0, 1]);
    let s = limiter.stats();
    assert_eq!((s.issued, s.reissued, s.rate_limited), (2, 1, 1));
}

/// `run_blocking` on a thread that drives an async runtime panics, naming the fix,
/// even when a ticket is free (waiting there would stall the runtime's tasks).
#[tokio::test(start_paused = true)]
#[should_panic(expected = "call it through `tokio::task::spawn_blocking`")]
async fn run_blocking_on_an_async_thread_panics_naming_the_fix() {
    let limiter = BucketRateLimiter::new(600);
    let _: Result<(), Refused> = limiter.run_blocking(|| Ok(()));
}

/// Every setting of the builder reaches the limiter, each setter keeping what the
/// others set (the request budget first: a builder that forgot it refuses to build).
#[test]
fn every_builder_setting_reaches_the_limiter() {
    let l = BucketRateLimiter::builder()
        .config(LimiterConfig {
            rpm: 1,
            ..LimiterConfig::default()
        })
        .rpm(500)
        .tpm(200_000)
        .input_tpm(100_000)
        .output_tpm(20_000)
        .rpd(10_000)
        .tpd(5_000_000)
        .day_reset(DayReset::Rolling)
        .max_in_flight(7)
        .learn_limits(true)
        .wall_clock(std::time::SystemTime::UNIX_EPOCH)
        .ramp_start(0.5)
        .ramp_step(0.25)
        .ramp_shape(RampShape::Linear)
        .probe_interval(Duration::from_secs(3))
        .probe_factor(2.0)
        .probe_max(Duration::from_secs(30))
        .probe_timeout(Duration::from_secs(20))
        .max_retries(5)
        .adaptive(false)
        .high_priority_streak(2)
        .name("every-setting")
        .build()
        .unwrap();
    assert_eq!(
        l.config(),
        LimiterConfig {
            rpm: 500,
            tpm: Some(200_000),
            input_tpm: Some(100_000),
            output_tpm: Some(20_000),
            rpd: Some(10_000),
            tpd: Some(5_000_000),
            day_reset: DayReset::Rolling,
            max_in_flight: Some(7),
            learn_limits: true,
            ramp_start: 0.5,
            ramp_step: 0.25,
            ramp_shape: RampShape::Linear,
            probe_initial: Duration::from_secs(3),
            probe_factor: 2.0,
            probe_max: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(20),
            max_retries: 5,
            adaptive: false,
            high_priority_streak: 2,
        }
    );
    assert_eq!(l.name(), "every-setting");
}

/// An awaited `Acquire` shows where it is: not polled yet, waiting in line, done.
#[tokio::test(start_paused = true)]
async fn an_acquire_future_shows_its_state() {
    use std::future::IntoFuture;
    let limiter = BucketRateLimiter::new(60);
    let first = limiter.acquire().await.unwrap();
    let mut second = limiter.acquire().into_future();
    assert_eq!(
        format!("{second:?}"),
        r#"AcquireFuture { state: "start", .. }"#
    );
    // Polled once: in line behind the first ticket's slot.
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut second)
            .await
            .is_err()
    );
    assert_eq!(
        format!("{second:?}"),
        r#"AcquireFuture { state: "waiting", .. }"#
    );
    drop((&mut second).await.unwrap());
    assert_eq!(
        format!("{second:?}"),
        r#"AcquireFuture { state: "done", .. }"#
    );
    drop(first);
}
