//! async-openai's real client paced by the tower layer (feature `async-openai`): the
//! limiter is the client's HTTP service, so every request waits for its ticket with a
//! token estimate, the provider's rate-limit headers (`retry-after` included) reach the
//! limiter, a 429 is re-sent from the front of the line before async-openai sees it,
//! and the answer's `usage` settles the token budget.
//!
//! `cargo run --example async_openai --features async-openai` talks to an embedded mock
//! provider; set `OPENAI_BASE_URL` (with its `/v1`) and `OPENAI_API_KEY` for a real
//! one (an `http://` one: this build has no TLS; enable async-openai's `rustls` feature
//! for `https://`).

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use ratellmiter::tower::Layer;
use ratellmiter::{BucketRateLimiter, Stats};

/// A client for `base_url` whose HTTP service is paced by `limiter`. The plain
/// `ReqwestService` leaves the retries to the limiter: async-openai's default service
/// retries 429s itself, where the limiter cannot see them.
pub fn client(base_url: &str, limiter: &BucketRateLimiter) -> Client<OpenAIConfig> {
    let mut config = OpenAIConfig::new().with_api_base(base_url);
    if let Ok(key) = std::env::var("OPENAI_API_KEY") {
        config = config.with_api_key(key);
    }
    let layer = Layer::new(limiter.clone())
        .tokens(|_| 100) // the estimate, charged until the answer says better
        .settle_usage(true);
    Client::with_config(config)
        .with_http_service(layer.layer(ReqwestService::new(Default::default())))
}

fn question(n: usize) -> Result<CreateChatCompletionRequest, OpenAIError> {
    CreateChatCompletionRequestArgs::default()
        .model(std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into()))
        .messages([ChatCompletionRequestUserMessage::from(format!("What is {n} + {n}?")).into()])
        .max_completion_tokens(16u32)
        .build()
}

/// Asks `questions` questions at once through one limiter at `rpm` and 200 000 tokens
/// a minute; returns the limiter's stats and the tokens the provider reported.
pub async fn run(base_url: &str, rpm: u32, questions: usize) -> Result<(Stats, u64), OpenAIError> {
    let limiter = BucketRateLimiter::builder()
        .rpm(rpm)
        .tpm(200_000)
        .build()
        .expect("a valid limiter");
    let client = client(base_url, &limiter);
    let mut calls = tokio::task::JoinSet::new();
    for n in 0..questions {
        let client = client.clone();
        calls.spawn(async move {
            let answer = client.chat().create(question(n)?).await?;
            Ok::<_, OpenAIError>(answer.usage.map_or(0, |u| u64::from(u.total_tokens)))
        });
    }
    let mut tokens = 0;
    for used in calls.join_all().await {
        tokens += used?;
    }
    Ok((limiter.stats(), tokens))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The embedded mock allows 300 rpm; the limiter is told 600 and learns the rest.
    let (base_url, _mock) = match std::env::var("OPENAI_BASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let config = ratellmiter_sim::ProviderConfig {
                rpm: 300,
                ..Default::default()
            };
            let provider = ratellmiter_sim::Provider::new(config)?;
            let mock = ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into()).await?;
            (mock.base_url(), Some(mock))
        }
    };
    let (stats, tokens) = run(&base_url, 600, 20).await?;
    println!(
        "{} answers, {tokens} tokens, {} rate limits, learned rate {:.1}/s",
        stats.finished, stats.rate_limited, stats.learned_rate
    );
    Ok(())
}
