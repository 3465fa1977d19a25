//! A real OpenAI-compatible client: `OPENAI_BASE_URL` (with its `/v1`), the bearer
//! token in `OPENAI_API_KEY`, the model in `OPENAI_MODEL`. The limiter is told each
//! call's token estimate and, from the response's `usage`, what it really cost.
//!
//! Without `OPENAI_BASE_URL` it talks to an embedded mock provider. This build of
//! reqwest has no TLS: point it at `http://` servers (a local proxy or gateway), or
//! enable one of reqwest's TLS features for `https://`.

mod common;

use ratellmiter::{BucketRateLimiter, current};

/// The provider to call.
pub struct Endpoint {
    /// `…/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// The model.
    pub model: String,
}

/// Asks `question` through `limiter`, estimating `estimate` tokens; returns the answer
/// and the tokens the provider said it used.
pub async fn ask(
    limiter: &BucketRateLimiter,
    endpoint: &Endpoint,
    question: &str,
    estimate: u64,
) -> Result<(String, u64), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let answer = limiter
        .call()
        .tokens(estimate)
        .run(|| async {
            let mut request = client
                .post(format!("{}/chat/completions", endpoint.base_url))
                .json(&common::request_body(&endpoint.model, question));
            if let Some(key) = &endpoint.api_key {
                request = request.bearer_auth(key);
            }
            let response = ratellmiter::reqwest::check(request.send().await?).await?;
            let body: serde_json::Value = response.error_for_status()?.json().await?;
            let used = body["usage"]["total_tokens"].as_u64().unwrap_or(estimate);
            // Corrects the budget: a refund when the estimate was too high.
            current().record_usage(used);
            Ok::<_, common::ChatError>((common::answer(&body), used))
        })
        .await??;
    Ok(answer)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (base_url, _mock) = common::base_url(500).await;
    let endpoint = Endpoint {
        base_url,
        api_key: std::env::var("OPENAI_API_KEY").ok(),
        model: std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into()),
    };
    let limiter = BucketRateLimiter::builder().rpm(500).tpm(200_000).build()?;
    let (answer, used) = ask(&limiter, &endpoint, "What is the capital of France?", 200).await?;
    println!("{answer} ({used} tokens)");
    Ok(())
}
