//! Feature `anyhow`: a rate limit is found anywhere along an `anyhow::Error`'s chain,
//! among the supported types (`RateLimitError` and `reqwest::Error` from the mock
//! provider over HTTP, async-openai's `OpenAIError`); other errors are not rate limits.

use std::time::Duration;

use anyhow::Context;
use async_openai::error::{ApiError, ApiErrorResponse, OpenAIError};
use ratellmiter_runtime::reqwest::check;
use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, RateLimit};
use ratellmiter_sim::{MockServer, Provider, ProviderConfig};

async fn mock(config: ProviderConfig) -> MockServer {
    ratellmiter_sim::spawn(Provider::new(config).unwrap(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

async fn post(server: &MockServer) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", server.base_url()))
        .header("content-type", "application/json")
        .body(r#"{"model": "m", "messages": [{"role": "user", "content": "Hi"}]}"#)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_found_under_context_layers() {
    let server = mock(ProviderConfig {
        rpm: 1,
        quantum: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    check(post(&server).await).await.unwrap();

    // The checked-response error, two context layers down.
    let refused = check(post(&server).await).await.unwrap_err();
    let wait = refused.rate_limit().and_then(|r| r.retry_after());
    assert!(wait.is_some());
    let e = anyhow::Error::new(refused)
        .context("asking gpt-4o")
        .context("summarising the report");
    assert_eq!(e.rate_limit(), Some(RateLimit::retry(wait)));
    assert_eq!(e.rate_limit().and_then(|r| r.retry_after()), wait);

    // A reqwest status error, through `?` into anyhow with context.
    let status_error: anyhow::Result<reqwest::Response> = post(&server)
        .await
        .error_for_status()
        .context("asking gpt-4o");
    let e = status_error.unwrap_err();
    assert!(e.rate_limit().is_some_and(|r| !r.is_final()));
    assert_eq!(e.rate_limit().and_then(|r| r.retry_after()), None);
}

#[test]
fn openai_errors_and_their_final_codes_are_found() {
    let api = |status: u16, code: &str| {
        OpenAIError::ApiError(ApiErrorResponse {
            status_code: status.try_into().unwrap(),
            api_error: ApiError {
                message: "refused".into(),
                code: Some(code.into()),
                ..Default::default()
            },
        })
    };
    let e = anyhow::Error::new(api(429, "rate_limit_exceeded")).context("chat");
    assert_eq!(e.rate_limit(), Some(RateLimit::retry(None)));
    let e = anyhow::Error::new(api(429, "insufficient_quota")).context("chat");
    assert!(e.rate_limit().is_some_and(|r| r.is_final()));
    let e = anyhow::Error::new(api(400, "invalid_request_error"));
    assert!(e.rate_limit().is_none());
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_not_rate_limits_and_go_straight_back() {
    let e = anyhow::Error::new(std::io::Error::other("connection reset")).context("chat");
    assert_eq!(e.rate_limit(), None);
    let e = anyhow::anyhow!("429 Too Many Requests"); // text is not a type
    assert!(e.rate_limit().is_none());

    let limiter = BucketRateLimiter::new(600);
    let mut attempts = 0;
    let out: anyhow::Result<()> = limiter
        .run(|| {
            attempts += 1;
            async { Err(anyhow::anyhow!("bad prompt")) }
        })
        .await;
    assert!(out.is_err());
    assert_eq!((attempts, limiter.stats().rate_limited), (1, 0));
}
