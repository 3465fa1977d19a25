//! Three models with three different limits, used at once: each gets its own limiter,
//! registered under the model's name, so a burst on one never slows the others.
//!
//! `cargo run --example multi_model --features reqwest` talks to an embedded mock provider; set
//! `OPENAI_BASE_URL` to point it at another OpenAI-compatible server.

mod common;

use ratellmiter::{BucketRateLimiter, Stats, llmiter, monitor};

/// One chat completion, paced by the limiter registered under the model's name
/// (`service = model` is evaluated for each call).
#[llmiter(service = model)]
async fn ask(
    client: &reqwest::Client,
    base_url: &str,
    model: &str,
    question: &str,
) -> Result<String, common::ChatError> {
    common::chat(client, base_url, model, question).await
}

/// The models and their requests per minute.
pub const MODELS: [(&str, u32); 3] = [("gpt-4o", 600), ("gpt-4o-mini", 1200), ("o1", 120)];

/// Sends `calls` completions to each model at once, each model's through its own
/// limiter at its rate scaled by `scale`; returns each model's counters.
pub async fn run(
    base_url: &str,
    scale: u32,
    calls: usize,
) -> Result<Vec<(&'static str, Stats)>, common::ChatError> {
    let client = reqwest::Client::new();
    for (model, rpm) in MODELS {
        monitor()
            .add_service(model, BucketRateLimiter::new(rpm * scale))
            .expect("each model is registered once");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..calls {
        for (model, _) in MODELS {
            let (client, base_url) = (client.clone(), base_url.to_owned());
            tasks.spawn(async move {
                let question = format!("Question {i} for {model}");
                ask(&client, &base_url, model, &question).await
            });
        }
    }
    while let Some(answer) = tasks.join_next().await {
        answer.expect("no call panics")?;
    }
    Ok(MODELS
        .iter()
        .map(|&(model, _)| (model, monitor().limiter(model).stats()))
        .collect())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (base_url, _mock) = common::base_url(600).await;
    for (model, stats) in run(&base_url, 1, 20).await? {
        println!(
            "{model}: {} answered, {} refused",
            stats.finished, stats.rate_limited
        );
    }
    Ok(())
}
