//! Feature `http`: `HttpError` classifies any error that carries an `http::StatusCode`
//! (and, when it kept them, the response headers), and `current().observe_headers`
//! reads an `http::HeaderMap` into the limiter.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use ratellmiter_runtime::http::{HasStatus, HttpError};
use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, RateLimit, TryAcquireError, current};

fn response(status: u16, headers: &[(&'static str, &'static str)]) -> Response<()> {
    let mut r = Response::builder().status(status);
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    r.body(()).unwrap()
}

#[test]
fn statuses_with_and_without_retry_after() {
    let kind = |r: Response<()>| HttpError(r).rate_limit();
    let wait = Some(Duration::from_secs(5));
    assert_eq!(
        kind(response(429, &[("retry-after", "5")])),
        Some(RateLimit::retry(wait))
    );
    assert_eq!(kind(response(529, &[])), Some(RateLimit::retry(None)));
    assert_eq!(
        kind(response(503, &[("retry-after-ms", "5000")])),
        Some(RateLimit::retry(wait))
    );
    assert_eq!(kind(response(503, &[])), None);
    assert_eq!(kind(response(500, &[("retry-after", "5")])), None);
    // A bare status code has no headers.
    assert!(
        HttpError(StatusCode::TOO_MANY_REQUESTS)
            .rate_limit()
            .is_some()
    );
    assert!(
        HttpError(StatusCode::SERVICE_UNAVAILABLE)
            .rate_limit()
            .is_none()
    );
}

/// An error type of one's own that kept the status and headers.
#[derive(Debug)]
struct ApiFailure {
    status: Option<StatusCode>,
    headers: HeaderMap,
}

impl HasStatus for ApiFailure {
    fn status(&self) -> Option<StatusCode> {
        self.status
    }
    fn headers(&self) -> Option<&HeaderMap> {
        Some(&self.headers)
    }
}

#[test]
fn errors_of_ones_own_through_has_status() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "retry-after",
        HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
    );
    let e = HttpError(ApiFailure {
        status: Some(StatusCode::TOO_MANY_REQUESTS),
        headers: headers.clone(),
    });
    // A date long past: retry now.
    assert_eq!(
        e.rate_limit().and_then(|r| r.retry_after()),
        Some(Duration::ZERO)
    );
    let no_response = HttpError(ApiFailure {
        status: None,
        headers,
    });
    assert!(no_response.rate_limit().is_none());
}

/// `remaining: 0` read from a `HeaderMap` inside a call holds the limiter until the reset.
#[tokio::test(start_paused = true)]
async fn observe_headers_holds_the_limiter_until_the_reset() {
    let limiter = BucketRateLimiter::new(6_000);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from_static("0"),
    );
    headers.insert(
        "x-ratelimit-reset-requests",
        HeaderValue::from_static("20s"),
    );
    headers.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from_static("not a number"),
    );
    let out: Result<(), HttpError<StatusCode>> = limiter
        .run(|| async {
            current().observe_headers(&headers);
            Ok(())
        })
        .await;
    out.unwrap();
    let start = tokio::time::Instant::now();
    match limiter.acquire().try_now() {
        Err(TryAcquireError::NotBefore(at)) => assert_eq!(at - start, Duration::from_secs(20)),
        other => panic!("expected a hold of 20 s: {other:?}"),
    }
    drop(limiter.acquire().await.unwrap());
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    // Outside a call, nothing happens: the next ticket is one ramp step away, not 20 s.
    current().observe_headers(&headers);
    match limiter.acquire().try_now() {
        Err(TryAcquireError::NotBefore(at)) => {
            assert!(at - start < Duration::from_secs(21), "{at:?}")
        }
        other => panic!("{other:?}"),
    }
}
