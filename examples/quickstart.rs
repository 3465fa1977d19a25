//! The smallest useful program: many concurrent chat completions through one limiter,
//! which spreads them evenly under the provider's limit so none is refused.
//!
//! `cargo run --example quickstart --features reqwest` talks to an embedded mock provider (600 rpm);
//! set `OPENAI_BASE_URL` to point it at another OpenAI-compatible server.

mod common;

use ratellmiter::{BucketRateLimiter, Stats, llmiter, monitor};

/// One chat completion, paced by the "quickstart-model" limiter: it waits for a ticket,
/// and after a 429 it is re-run from the front of the line.
#[llmiter(service = "quickstart-model")]
async fn ask(
    client: &reqwest::Client,
    base_url: &str,
    question: &str,
) -> Result<String, common::ChatError> {
    common::chat(client, base_url, "gpt-4o-mini", question).await
}

/// Sends `calls` completions at once to `base_url` through a limiter at `rpm`, and
/// returns the limiter's counters.
pub async fn run(base_url: &str, rpm: u32, calls: usize) -> Result<Stats, common::ChatError> {
    // One limiter per model, registered by name so every part of the program shares it.
    let limiter = monitor()
        .add_service("quickstart-model", BucketRateLimiter::new(rpm))
        .expect("the service is registered once");
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..calls {
        let (client, base_url) = (client.clone(), base_url.to_owned());
        tasks.spawn(async move {
            let question = format!("Question {i}: what is the capital of France?");
            ask(&client, &base_url, &question).await
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
