//! Feature `reqwest-middleware`: the middleware in a chain after reqwest-tracing's,
//! against the mock provider over real HTTP on 127.0.0.1.

use std::time::Duration;

use ratellmiter_runtime::BucketRateLimiter;
use ratellmiter_runtime::reqwest_middleware::Middleware;
use ratellmiter_runtime::tower::Layer;
use ratellmiter_sim::{MockServer, Provider, ProviderConfig};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::json;

async fn mock(config: ProviderConfig) -> MockServer {
    ratellmiter_sim::spawn(Provider::new(config).unwrap(), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

fn client(limiter: &BucketRateLimiter) -> ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(reqwest_tracing::TracingMiddleware::default())
        .with(Middleware::from(
            Layer::new(limiter.clone()).settle_usage(true),
        ))
        .build()
}

fn chat(stream: bool) -> String {
    json!({
        "model": "m",
        "max_tokens": 10,
        "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    })
    .to_string()
}

/// An announced outage of 1 s: the refusal pauses the limiter for the server's
/// `retry-after`, the request is re-sent and answered; the caller sees only the answer,
/// whose usage (8 + 10 tokens) settles the budget once the body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_re_sent_after_the_servers_retry_after() {
    let server = mock(ProviderConfig {
        outages: vec![Duration::ZERO..Duration::from_secs(1)],
        outage_retry_after: true,
        ..Default::default()
    })
    .await;
    let limiter = BucketRateLimiter::builder()
        .rpm(6_000)
        .tpm(1_000_000)
        .build()
        .unwrap();
    let response = client(&limiter)
        .post(format!("{}/chat/completions", server.base_url()))
        .header("content-type", "application/json")
        .body(chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        limiter.stats().in_flight,
        1,
        "the body holds the ticket until read"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["usage"]["total_tokens"], 18);
    let log = server.log();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(3)).contains(&log[1].at),
        "{:?}",
        log[1].at
    );
    let s = limiter.stats();
    assert_eq!(
        (s.rate_limited, s.in_flight, s.tokens_in_window),
        (1, 0, 18)
    );
}

/// A streamed answer through the chain holds its ticket until its last event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_holds_its_ticket_to_the_end() {
    let server = mock(ProviderConfig::default()).await;
    let limiter = BucketRateLimiter::builder()
        .rpm(6_000)
        .tpm(1_000_000)
        .build()
        .unwrap();
    let mut response = client(&limiter)
        .post(format!("{}/chat/completions", server.base_url()))
        .header("content-type", "application/json")
        .body(chat(true))
        .send()
        .await
        .unwrap();
    let mut events = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        events += chunk.windows(6).filter(|w| w == b"data: ").count();
        assert_eq!(limiter.stats().in_flight, 1);
    }
    assert_eq!(events, 9);
    let s = limiter.stats();
    assert_eq!((s.in_flight, s.tokens_in_window), (0, 18));
}
