//! Runs examples/tower_layer.rs and examples/streaming.rs against the mock provider
//! over real HTTP on 127.0.0.1.

// Each example has its own `mod common;`, loaded once per example on purpose.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/tower_layer.rs"]
mod tower_layer;

#[allow(dead_code)]
#[path = "../examples/streaming.rs"]
mod streaming;

use ratellmiter_sim::{MockServer, Provider, ProviderConfig};

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

/// Two models of 10 calls each, their limiters told 600 rpm, the provider allowing 300
/// rpm per model (5 a second): every call is answered once, every refusal was re-sent
/// by the layer, and the answers' usage is what the budgets hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_example_answers_every_call_per_model() {
    let server = mock(300).await;
    let stats = tower_layer::run(&server.base_url(), &["layer-a", "layer-b"], 600, 10)
        .await
        .unwrap();
    let seen = server.metrics();
    assert_eq!(seen.accepted, 20);
    let refused: u64 = stats.values().map(|s| s.rate_limited).sum();
    assert_eq!(refused, seen.rejected, "every refusal re-sent by the layer");
    for (model, s) in &stats {
        assert_eq!((s.finished, s.in_flight), (10, 0), "{model}");
        // "What is i + i?" is 14 or 15 characters: 4 prompt tokens; 64 completion.
        assert_eq!(
            s.tokens_in_window,
            10 * 68,
            "{model}: the usage, not 10 × 100"
        );
    }
}

/// "Stream me an answer" is 19 characters: 5 prompt tokens; 64 completion tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_streaming_example_settles_both_styles_of_stream() {
    let server = mock(600).await;
    for streamed in [
        streaming::openai(&server.base_url()).await.unwrap(),
        streaming::anthropic(&server.base_url()).await.unwrap(),
    ] {
        assert_eq!(streamed.text, "This is a mock completion.");
        assert_eq!(streamed.tokens, 5 + 64);
    }
}
