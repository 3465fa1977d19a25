//! Runs every example's logic against the mock provider over real HTTP on 127.0.0.1.
//! Rates are high and workloads small so the whole file takes about a second; what is
//! checked is that every call is answered exactly once and none is refused.

// Each example is a program of its own with its own `mod common;`: including the four
// here loads that file four times, as four separate modules, on purpose.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

#[allow(dead_code)]
#[path = "../examples/multi_model.rs"]
mod multi_model;

#[allow(dead_code)]
#[path = "../examples/blocking.rs"]
mod blocking;

#[allow(dead_code)]
#[path = "../examples/openai_chat.rs"]
mod openai_chat;

use ratellmiter::BucketRateLimiter;
use ratellmiter_sim::{MockServer, Provider, ProviderConfig};

/// A mock provider at `rpm`, with no latency.
async fn mock(rpm: u32) -> MockServer {
    let provider = Provider::new(ProviderConfig {
        rpm,
        ..Default::default()
    })
    .unwrap();
    ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_answers_every_call_without_a_429() {
    let server = mock(6_000).await;
    let stats = quickstart::run(&server.base_url(), 6_000, 20)
        .await
        .unwrap();
    assert_eq!(
        (stats.issued, stats.finished, stats.rate_limited),
        (20, 20, 0)
    );
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (20, 0));
    assert!(seen.max_attempted_in_any_1s <= 100, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_model_paces_each_model_apart() {
    let server = mock(60_000).await;
    let per_model = multi_model::run(&server.base_url(), 10, 10).await.unwrap();
    assert_eq!(per_model.len(), 3);
    for (model, stats) in &per_model {
        assert_eq!((stats.finished, stats.rate_limited), (10, 0), "{model}");
    }
    // Three limiters at 6 000, 12 000 and 1 200 rpm: o1's is ten times gpt-4o-mini's.
    let rates: Vec<f64> = per_model.iter().map(|(_, s)| s.limit_rate).collect();
    assert_eq!(rates, [100.0, 200.0, 20.0]);
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (30, 0));
}

#[test]
fn blocking_threads_share_one_limiter() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(mock(6_000));
    let stats = blocking::run(&server.base_url(), 6_000, 3, 5).unwrap();
    assert_eq!(
        (stats.issued, stats.finished, stats.rate_limited),
        (15, 15, 0)
    );
    assert_eq!(server.metrics().accepted, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_reconciles_the_token_estimate_with_usage() {
    let server = mock(600).await;
    let endpoint = openai_chat::Endpoint {
        base_url: server.base_url(),
        api_key: Some("sk-test".into()),
        model: "gpt-4o-mini".into(),
    };
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .tpm(100_000)
        .build()
        .unwrap();
    let (answer, used) =
        openai_chat::ask(&limiter, &endpoint, "What is the capital of France?", 1_000)
            .await
            .unwrap();
    assert!(!answer.is_empty());
    // 64 completion tokens asked for plus the prompt (30 characters ÷ 4, rounded up).
    assert_eq!(used, 64 + 8);
    assert_eq!(
        limiter.stats().tokens_in_window,
        used,
        "the estimate of 1 000 was refunded"
    );
}
