//! Runs examples/async_openai.rs against the mock provider over real HTTP on 127.0.0.1:
//! every question is answered once, its tokens settle the limiter's budget, and the
//! refusals of a slower provider are all seen (and waited out) by the limiter.

#[allow(dead_code)]
#[path = "../examples/async_openai.rs"]
mod async_openai_example;

use ratellmiter_sim::{Provider, ProviderConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_openai_example_answers_every_question() {
    let provider = Provider::new(ProviderConfig {
        rpm: 6_000,
        ..Default::default()
    })
    .unwrap();
    let server = ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (stats, tokens) = async_openai_example::run(&server.base_url(), 6_000, 10)
        .await
        .unwrap();
    assert_eq!((stats.finished, stats.rate_limited), (10, 0));
    // Each question is 4 to 5 prompt tokens ("What is n + n?" / 4) plus 16 completion.
    assert!((200..=220).contains(&tokens), "{tokens}");
    assert_eq!(
        stats.tokens_in_window, tokens,
        "the answers' usage, not 10 × 100 estimated"
    );
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (10, 0));
}

/// 20 questions at once, the limiter told 600 rpm, the provider allowing 5 a second:
/// every refusal reaches the limiter (async-openai never sees one) and every question
/// is answered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_layer_a_slower_provider_s_refusals_are_waited_out() {
    let provider = Provider::new(ProviderConfig {
        rpm: 300,
        ..Default::default()
    })
    .unwrap();
    let server = ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (stats, _) = async_openai_example::run(&server.base_url(), 600, 20)
        .await
        .unwrap();
    let seen = server.metrics();
    assert_eq!((stats.finished, seen.accepted), (20, 20));
    assert!(seen.rejected > 0, "{seen:?}");
    assert_eq!(
        stats.rate_limited, seen.rejected,
        "each refusal seen by the limiter"
    );
}
