//! `#[derive(IsRateLimit)]` as the retry loop sees it: a `#[rate_limit]` variant with a
//! `#[retry_after]` field is waited out for that long and re-run, a `#[rate_limit(final)]`
//! one comes back after one attempt without pausing, a transparent one takes its
//! wrapped error's verdict, and an unmarked one is returned as it is.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ratellmiter::{BucketRateLimiter, IsRateLimit, llmiter};
use tokio::time::Instant;

#[derive(Debug, PartialEq, IsRateLimit)]
enum Inner {
    #[rate_limit(final)]
    QuotaSpent,
}

#[derive(Debug, PartialEq, IsRateLimit)]
enum ApiError {
    #[rate_limit]
    Busy {
        #[retry_after]
        wait: Duration,
    },
    #[rate_limit(final)]
    QuotaSpent,
    #[rate_limit(transparent)]
    Wrapped(Inner),
    BadRequest,
}

/// Answers with `errors` in turn, then `Ok`; counts the attempts.
#[llmiter(limiter = limiter)]
async fn call(
    limiter: &BucketRateLimiter,
    attempts: &AtomicU32,
    errors: &[ApiError],
) -> Result<u32, ApiError> {
    let n = attempts.fetch_add(1, Ordering::SeqCst);
    match errors.get(n as usize) {
        Some(ApiError::Busy { wait }) => Err(ApiError::Busy { wait: *wait }),
        Some(ApiError::QuotaSpent) => Err(ApiError::QuotaSpent),
        Some(ApiError::Wrapped(_)) => Err(ApiError::Wrapped(Inner::QuotaSpent)),
        Some(ApiError::BadRequest) => Err(ApiError::BadRequest),
        None => Ok(n + 1),
    }
}

fn limiter() -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(6_000)
        .adaptive(false)
        .build()
        .unwrap()
}

/// Two refusals asking for 3 s each: the third attempt answers, after about 6 s (the
/// limiter's own pacing adds a few ms).
#[tokio::test(start_paused = true)]
async fn a_rate_limit_waits_its_retry_after_and_is_re_run() {
    let (l, attempts) = (limiter(), AtomicU32::new(0));
    let busy = || ApiError::Busy {
        wait: Duration::from_secs(3),
    };
    let t0 = Instant::now();
    assert_eq!(call(&l, &attempts, &[busy(), busy()]).await, Ok(3));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(7),
        "{took:?}"
    );
    assert_eq!(l.stats().rate_limited, 2);
}

/// Final, directly or through `transparent`: one attempt, returned at once, no pause.
#[tokio::test(start_paused = true)]
async fn a_final_rate_limit_returns_at_once() {
    for error in [ApiError::QuotaSpent, ApiError::Wrapped(Inner::QuotaSpent)] {
        let (l, attempts) = (limiter(), AtomicU32::new(0));
        let t0 = Instant::now();
        let got = call(&l, &attempts, &[error]).await;
        assert!(matches!(
            got,
            Err(ApiError::QuotaSpent | ApiError::Wrapped(_))
        ));
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert!(t0.elapsed() < Duration::from_secs(1));
        let s = l.stats();
        assert!(!s.paused && s.rate_limited == 0, "{s:?}");
    }
}

/// Unmarked: not a rate limit, one attempt, the error as it is.
#[tokio::test(start_paused = true)]
async fn an_unmarked_variant_is_returned_as_it_is() {
    let (l, attempts) = (limiter(), AtomicU32::new(0));
    assert_eq!(
        call(&l, &attempts, &[ApiError::BadRequest]).await,
        Err(ApiError::BadRequest)
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(l.stats().rate_limited, 0);
}
