//! The smallest useful program: many concurrent chat completions through one limiter,
//! which spreads them evenly under the provider's limit so none is refused.
//!
//! `cargo run --example quickstart` talks to an embedded mock provider (600 rpm);
//! set `OPENAI_BASE_URL` to point it at another OpenAI-compatible server.

mod common;

use std::sync::Arc;

use ratellmiter::{BucketRateLimiter, Stats, monitor};

/// Sends `calls` completions at once to `base_url` through a limiter at `rpm`, and
/// returns the limiter's counters.
pub async fn run(base_url: &str, rpm: u32, calls: usize) -> Result<Stats, common::ChatError> {
    // One limiter per model, registered by name so every part of the program shares it.
    let limiter = monitor().add_service("quickstart-model", BucketRateLimiter::new(rpm));
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..calls {
        let (limiter, client, base_url) =
            (Arc::clone(&limiter), client.clone(), base_url.to_owned());
        tasks.spawn(async move {
            let question = format!("Question {i}: what is the capital of France?");
            // Waits for a ticket, makes the call, and after a 429 re-runs it first in line.
            limiter
                .run(|| common::chat(&client, &base_url, "gpt-4o-mini", &question))
                .await
        });
    }
    while let Some(answer) = tasks.join_next().await {
        answer.expect("no call panics")?;
    }
    Ok(limiter.stats())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (base_url, _mock) = common::base_url(600).await;
    let stats = run(&base_url, 600, 60).await?;
    println!(
        "{} calls answered, {} refused by the provider",
        stats.finished, stats.rate_limited
    );
    Ok(())
}
