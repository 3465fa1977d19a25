//! Feature `async-openai`: the real async-openai client pointed at the mock provider
//! over HTTP on 127.0.0.1; its `OpenAIError`s for 429s, 529s and spent quotas are
//! classified, and calls run under the limiter.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, RateLimit};
use ratellmiter_sim::{MockServer, Provider, ProviderConfig};

async fn mock(config: ProviderConfig) -> (MockServer, Client<OpenAIConfig>) {
    let provider = Provider::new(config).unwrap();
    let server = ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    // Without async-openai's own retry layer, so its 429s reach the limiter.
    let client = Client::with_config(OpenAIConfig::new().with_api_base(server.base_url()))
        .with_http_service(ReqwestService::new(Default::default()));
    (server, client)
}

fn request() -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .messages([ChatCompletionRequestUserMessage::from("What is the capital of France?").into()])
        .max_completion_tokens(8u32)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_under_the_limiter_and_a_429_is_a_rate_limit() {
    let (server, client) = mock(ProviderConfig {
        rpm: 2,
        quantum: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let limiter = BucketRateLimiter::new(6_000);
    for _ in 0..2 {
        let answer = limiter
            .run(|| async { client.chat().create(request()).await })
            .await
            .unwrap();
        assert_eq!(answer.usage.unwrap().completion_tokens, 8);
    }
    // The third is refused: a rate limit, not final, without retry-after (the client
    // keeps no headers).
    let e = client.chat().create(request()).await.unwrap_err();
    let OpenAIError::ApiError(api) = &e else {
        panic!("expected an API error, got {e:?}");
    };
    assert_eq!(api.status_code, 429);
    assert_eq!(api.api_error.code.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(e.rate_limit(), Some(RateLimit::retry(None)));
    assert!(e.rate_limit().is_some_and(|r| !r.is_final()));
    // Three requests: the client did not retry the 429 behind the limiter's back.
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overloaded_529_is_a_rate_limit_and_insufficient_quota_is_final() {
    let (_overloaded, client) = mock(ProviderConfig {
        outages: vec![Duration::ZERO..Duration::from_secs(3_600)],
        outage_status: 529,
        ..Default::default()
    })
    .await;
    let e = client.chat().create(request()).await.unwrap_err();
    assert_eq!(e.rate_limit(), Some(RateLimit::retry(None)));

    let (server, client) = mock(ProviderConfig {
        quota_exhausted: true,
        ..Default::default()
    })
    .await;
    let limiter = BucketRateLimiter::new(6_000);
    let e = limiter
        .call()
        .max_retries(5)
        .run(|| async { client.chat().create(request()).await })
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.rate_limit().is_some_and(|r| r.is_final()), "{e:?}");
    assert_eq!(e.rate_limit(), Some(RateLimit::final_quota()));
    // Returned at once: one request, no pause.
    assert_eq!(server.metrics().requests, 1);
    assert!(!limiter.stats().paused);
}

#[test]
fn client_side_errors_are_not_rate_limits() {
    let e = OpenAIError::InvalidArgument("no model".into());
    assert_eq!(e.rate_limit(), None);
}

/// Through the layer as its HTTP service, async-openai's refusals reach the limiter
/// with their headers: the server's `retry-after` (1.5 s, to the end of an announced
/// outage) sets the pause, not the 10 s probe interval async-openai's error would leave
/// (its errors keep no headers), and the call succeeds on its re-send; the answer's
/// usage settles the token budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_layer_the_limiter_sees_retry_after_and_re_sends_first() {
    let provider = Provider::new(ProviderConfig {
        outages: vec![Duration::ZERO..Duration::from_millis(1_500)],
        outage_retry_after: true,
        ..Default::default()
    })
    .unwrap();
    let server = ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let limiter = BucketRateLimiter::builder()
        .rpm(6_000)
        .tpm(1_000_000)
        .build()
        .unwrap();
    let layer = ratellmiter_runtime::tower::Layer::new(limiter.clone()).settle_usage(true);
    let client = Client::with_config(OpenAIConfig::new().with_api_base(server.base_url()))
        .with_http_service(layer.layer(ReqwestService::new(Default::default())));

    let answer = client.chat().create(request()).await.unwrap();
    let usage = answer.usage.unwrap();
    let log = server.log();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    let resent = log[1].at;
    assert!(
        resent >= Duration::from_millis(1_500),
        "after the retry-after: {resent:?}"
    );
    assert!(
        resent < Duration::from_secs(3),
        "not a 10 s probe: {resent:?}"
    );
    let s = limiter.stats();
    assert_eq!((s.rate_limited, s.finished, s.in_flight), (1, 1, 0));
    assert_eq!(s.tokens_in_window, u64::from(usage.total_tokens));
}
