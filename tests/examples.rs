//! Runs every example's logic against the mock provider over real HTTP on 127.0.0.1.
//! What is checked is that every call is answered exactly once and none is refused,
//! at a load the mock would refuse without the limiter: more calls at once than the
//! mock accepts in a second (`the_loads_here_are_refused_without_a_limiter` shows it).

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

use std::time::Duration;

use ratellmiter::BucketRateLimiter;
use ratellmiter_sim::{Decision, MockServer, Provider, ProviderConfig};

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

/// The same loads as below sent at once with no limiter: a mock at 600 rpm accepts 10
/// in its first second and refuses the rest (10 of quickstart's 20, 5 of blocking's 15).
#[test]
fn the_loads_here_are_refused_without_a_limiter() {
    for (calls, refused) in [(20, 10), (15, 5)] {
        let mut p = Provider::new(ProviderConfig {
            rpm: 600,
            ..Default::default()
        })
        .unwrap();
        let got = (0..calls)
            .filter(|_| matches!(p.request(Duration::ZERO, "m", 0), Decision::Reject(_)))
            .count();
        assert_eq!(got, refused, "{calls} calls at once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_answers_every_call_without_a_429() {
    // 20 calls at once against 600 rpm (10 a second): without the limiter 10 are refused.
    let server = mock(600).await;
    let stats = quickstart::run(&server.base_url(), 600, 20).await.unwrap();
    assert_eq!(
        (stats.issued, stats.finished, stats.rate_limited),
        (20, 20, 0)
    );
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (20, 0));
    assert!(seen.max_attempted_in_any_1s <= 10, "{seen:?}");
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
    // 15 calls from 3 threads against 600 rpm (10 a second): without the limiter 5 are
    // refused.
    let server = rt.block_on(mock(600));
    let stats = blocking::run(&server.base_url(), 600, 3, 5).unwrap();
    assert_eq!(
        (stats.issued, stats.finished, stats.rate_limited),
        (15, 15, 0)
    );
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (15, 0));
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
