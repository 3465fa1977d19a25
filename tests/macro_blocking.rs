//! `#[llmiter]` on a plain `fn`: for blocking clients, on threads that drive no async
//! runtime. Blocking waits use the real clock, so the rate limits here ask for 1 ms
//! and the limiter's ramp starts at 250 tickets per second (60 000 rpm).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ratellmiter::{BucketRateLimiter, IsRateLimit, RateLimit, llmiter};

#[derive(Debug, PartialEq)]
struct Refused;

impl IsRateLimit for Refused {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(Some(Duration::from_millis(1))))
    }
}

struct Counter {
    calls: u32,
}

impl Counter {
    /// `&mut self` in a blocking attempt: each attempt reborrows it.
    #[llmiter(limiter = limiter, max_retries = 3)]
    fn bump(&mut self, limiter: &BucketRateLimiter, refusals: u32) -> Result<u32, Refused> {
        self.calls += 1;
        if self.calls <= refusals {
            Err(Refused)
        } else {
            Ok(self.calls)
        }
    }
}

#[llmiter(limiter = limiter)]
fn owned(
    limiter: &BucketRateLimiter,
    calls: Arc<AtomicU32>,
    prompt: String,
) -> Result<String, Refused> {
    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
        return Err(Refused);
    }
    Ok(prompt)
}

#[test]
fn a_blocking_fn_is_retried_on_its_thread() {
    let l = BucketRateLimiter::new(60_000);
    let calls = Arc::new(AtomicU32::new(0));
    assert_eq!(owned(&l, calls.clone(), "p".into()), Ok("p".to_owned()));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let s = l.stats();
    assert_eq!(
        (s.issued, s.rate_limited, s.finished, s.in_flight),
        (3, 2, 1, 0)
    );

    let mut counter = Counter { calls: 0 };
    assert_eq!(
        counter.bump(&l, 10),
        Err(Refused),
        "max_retries = 3: four attempts"
    );
    assert_eq!(counter.calls, 4);
}

#[tokio::test]
async fn spawn_blocking_is_the_way_from_async_code() {
    let l = BucketRateLimiter::new(600);
    let calls = Arc::new(AtomicU32::new(2)); // no refusals left
    let task = (l.clone(), calls.clone());
    let out = tokio::task::spawn_blocking(move || owned(&task.0, task.1, "ok".into()))
        .await
        .unwrap();
    assert_eq!(out, Ok("ok".to_owned()));
    assert_eq!(l.stats().finished, 1);
}

#[tokio::test]
#[should_panic(
    expected = "call it through `tokio::task::spawn_blocking`, or make the function `async`"
)]
async fn on_a_runtime_thread_it_panics_instead_of_stalling() {
    let l = BucketRateLimiter::new(600);
    let _ = owned(&l, Arc::new(AtomicU32::new(2)), "never".into());
}
