//! Feature `reqwest` against the mock provider over real HTTP on 127.0.0.1: `check`
//! feeds every response's headers to the limiter and turns refusals into
//! `RateLimitError`s; `reqwest::Error` statuses are classified. No test waits out a
//! pause: each asserts what one response or one limiter decision says.

use std::ops::Range;
use std::time::Duration;

use ratellmiter_runtime::reqwest::{RateLimitError, check};
use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, RateLimit, TryAcquireError};
use ratellmiter_sim::{MockServer, Provider, ProviderConfig};
use serde_json::json;

async fn mock(config: ProviderConfig) -> MockServer {
    let provider = Provider::new(config).unwrap();
    ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

/// An outage over the whole test, refused with `status`.
fn outage(status: u16, retry_after: bool) -> ProviderConfig {
    const WHOLE_TEST: Range<Duration> = Duration::ZERO..Duration::from_secs(3_600);
    ProviderConfig {
        outages: vec![WHOLE_TEST],
        outage_status: status,
        outage_retry_after: retry_after,
        ..Default::default()
    }
}

async fn post(client: &reqwest::Client, server: &MockServer) -> reqwest::Response {
    client
        .post(format!("{}/chat/completions", server.base_url()))
        .header("content-type", "application/json")
        .body(json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]}).to_string())
        .send()
        .await
        .unwrap()
}

#[derive(Debug)]
enum ChatError {
    Http(reqwest::Error),
    RateLimited(RateLimitError),
}

impl From<reqwest::Error> for ChatError {
    fn from(e: reqwest::Error) -> Self {
        Self::Http(e)
    }
}

impl From<RateLimitError> for ChatError {
    fn from(e: RateLimitError) -> Self {
        Self::RateLimited(e)
    }
}

impl IsRateLimit for ChatError {
    fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            Self::Http(e) => e.rate_limit(),
            Self::RateLimited(e) => e.rate_limit(),
        }
    }
}

/// Five requests a minute, the limiter at 6 000 rpm: after the fifth answer says
/// `remaining: 0` (reset in about a minute), the limiter gives no ticket — before any
/// 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_of_accepted_responses_hold_the_limiter_before_a_429() {
    let server = mock(ProviderConfig {
        rpm: 5,
        quantum: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let (client, limiter) = (reqwest::Client::new(), BucketRateLimiter::new(6_000));
    for _ in 0..5 {
        let out: Result<u16, ChatError> = limiter
            .run(|| async { Ok(check(post(&client, &server).await).await?.status().as_u16()) })
            .await;
        assert_eq!(out.unwrap(), 200);
    }
    match limiter.acquire().try_now() {
        Err(TryAcquireError::NotBefore(at)) => {
            let wait = at - tokio::time::Instant::now();
            assert!(wait > Duration::from_secs(55), "free again in {wait:?}")
        }
        other => panic!("the limiter should hold until the reset: {other:?}"),
    }
    assert_eq!(limiter.stats().rate_limited, 0);
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (5, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_becomes_a_rate_limit_error_with_its_retry_after() {
    let server = mock(ProviderConfig {
        rpm: 1,
        quantum: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let client = reqwest::Client::new();
    assert!(check(post(&client, &server).await).await.is_ok());
    let e = check(post(&client, &server).await).await.unwrap_err();
    assert_eq!(e.status(), 429);
    assert_eq!(e.code(), Some("rate_limit_exceeded"));
    assert!(e.message().unwrap().contains("Rate limit reached"), "{e}");
    // The mock sends retry-after-ms, exact to the millisecond: just under a minute.
    let wait = e.rate_limit().and_then(|r| r.retry_after()).unwrap();
    assert!(
        (Duration::from_secs(59)..=Duration::from_secs(60)).contains(&wait),
        "{wait:?}"
    );
    assert_eq!(e.rate_limit(), Some(RateLimit::retry(Some(wait))));
    assert_eq!(e.headers().requests.unwrap().remaining, 0);
    assert!(e.to_string().starts_with("rate limited: HTTP 429"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_529_and_503_with_retry_after_are_rate_limits() {
    let client = reqwest::Client::new();

    let overloaded = mock(outage(529, false)).await;
    let e = check(post(&client, &overloaded).await).await.unwrap_err();
    assert_eq!(
        (e.status().as_u16(), e.rate_limit()),
        (529, Some(RateLimit::retry(None)))
    );
    // As a reqwest status error, too.
    let e = post(&client, &overloaded)
        .await
        .error_for_status()
        .unwrap_err();
    assert!(e.rate_limit().is_some());

    let unavailable = mock(outage(503, true)).await;
    let e = check(post(&client, &unavailable).await).await.unwrap_err();
    assert_eq!(e.status(), 503);
    assert!(e.rate_limit().is_some_and(|r| !r.is_final()));
    assert!(e.rate_limit().and_then(|r| r.retry_after()).unwrap() > Duration::from_secs(3_500));

    // A 503 without retry-after is a plain server error, left to the caller.
    let down = mock(outage(503, false)).await;
    let response = check(post(&client, &down).await).await.unwrap();
    let e = response.error_for_status().unwrap_err();
    assert_eq!(e.status().unwrap(), 503);
    assert!(e.rate_limit().is_none());
}

/// `insufficient_quota` in the body of a 429 is final: the call returns at once, the
/// limiter does not pause, nothing is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_quota_is_final() {
    let server = mock(ProviderConfig {
        quota_exhausted: true,
        ..Default::default()
    })
    .await;
    let (client, limiter) = (reqwest::Client::new(), BucketRateLimiter::new(6_000));
    let out: Result<(), ChatError> = limiter
        .call()
        .max_retries(5)
        .run(|| async {
            check(post(&client, &server).await).await?;
            Ok(())
        })
        .await
        .unwrap();
    let Err(ChatError::RateLimited(e)) = out else {
        panic!("expected the quota error, got {out:?}");
    };
    assert_eq!(e.code(), Some("insufficient_quota"));
    assert_eq!(e.rate_limit(), Some(RateLimit::final_quota()));
    assert!(
        e.to_string().starts_with("quota exhausted: HTTP 429"),
        "{e}"
    );
    let stats = limiter.stats();
    assert_eq!(
        (stats.issued, stats.rate_limited, stats.paused),
        (1, 0, false)
    );
    assert_eq!(server.metrics().requests, 1);
}

/// Connection errors carry no status: not rate limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_not_a_rate_limit() {
    let server = mock(ProviderConfig::default()).await;
    let url = format!("{}/chat/completions", server.base_url());
    server.shutdown().await.unwrap();
    let e = reqwest::Client::new().post(url).send().await.unwrap_err();
    assert!(e.rate_limit().is_none());
}

/// A limiter that learns its limits starts at a guess (10 rpm, no token budget) and,
/// after the first answer's `x-ratelimit-limit-*` headers, has the mock's configured
/// limits: 450 rpm and 90 000 tpm.
#[tokio::test]
async fn limits_learned_from_the_first_answer_match_the_providers() {
    let server = mock(ProviderConfig {
        rpm: 450,
        tpm: Some(90_000),
        ..Default::default()
    })
    .await;
    let limiter = BucketRateLimiter::builder()
        .rpm(10)
        .learn_limits(true)
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let out: Result<(), ChatError> = limiter
        .run(|| async {
            check(post(&client, &server).await).await?;
            Ok(())
        })
        .await;
    out.unwrap();
    let cfg = limiter.config();
    assert_eq!((cfg.rpm, cfg.tpm), (450, Some(90_000)));
    assert_eq!(limiter.stats().limit_rate, 450.0 / 60.0);
}
