//! Runs examples/async_openai.rs against the mock provider over real HTTP on 127.0.0.1:
//! every question is answered once, with its tokens reported, and none is refused.

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
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (10, 0));
}
