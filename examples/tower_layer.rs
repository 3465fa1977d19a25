//! The tower layer over a plain HTTP client (feature `tower`): one limiter per model
//! from the monitor (`Layer::by_model`), picked from each request's JSON `model`; the
//! provider's rate-limit headers reach the limiter; a 429 is re-sent from the front of
//! the line; the answers' `usage` settles the token budgets. The client underneath is
//! reqwest as a tower service, in a `ServiceBuilder` stack beside tower's own layers.
//!
//! `cargo run --example tower_layer --features tower` talks to an embedded mock
//! provider (300 rpm, while the limiters are told 600); `OPENAI_BASE_URL` points it
//! elsewhere (`http://` only: this build has no TLS).

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{BoxError, reqwest_service};
use http_body_util::BodyExt;
use ratellmiter::tower::Layer;
use ratellmiter::{BucketRateLimiter, Stats, monitor};
use tower::{ServiceBuilder, ServiceExt};

/// Asks `per_model` questions of each of `models` at once, each model's limiter at
/// `rpm` and 200 000 tokens a minute; returns each model's limiter stats.
pub async fn run(
    base_url: &str,
    models: &[&str],
    rpm: u32,
    per_model: usize,
) -> Result<BTreeMap<String, Stats>, BoxError> {
    for model in models {
        let limiter = BucketRateLimiter::builder().rpm(rpm).tpm(200_000).build()?;
        monitor().add_service(model, limiter)?;
    }
    let client = ServiceBuilder::new()
        .concurrency_limit(64) // tower's own layers compose with it
        .layer(Layer::by_model().tokens(|_| 100).settle_usage(true))
        .service(reqwest_service(reqwest::Client::new()));
    let mut calls = tokio::task::JoinSet::new();
    for (i, model) in models
        .iter()
        .cycle()
        .take(models.len() * per_model)
        .enumerate()
    {
        let body = common::request_body(model, &format!("What is {i} + {i}?"));
        let request = http::Request::post(format!("{base_url}/chat/completions"))
            .header("content-type", "application/json")
            .body(reqwest::Body::from(body.to_string()))?;
        let client = client.clone();
        calls.spawn(async move {
            let response = client.oneshot(request).await?;
            let status = response.status();
            let body: Bytes = response.into_body().collect().await?.to_bytes();
            if !status.is_success() {
                return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)).into());
            }
            let answer: serde_json::Value = serde_json::from_slice(&body)?;
            Ok::<_, BoxError>(common::answer(&answer))
        });
    }
    for answer in calls.join_all().await {
        answer?;
    }
    Ok(models
        .iter()
        .map(|m| (m.to_string(), monitor().limiter(m).stats()))
        .collect())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (base_url, _mock) = common::base_url(300).await;
    let stats = run(&base_url, &["gpt-4o-mini", "gpt-4o"], 600, 20).await?;
    for (model, s) in stats {
        println!(
            "{model}: {} answers, {} rate limits re-sent, {} tokens settled",
            s.finished, s.rate_limited, s.tokens_in_window
        );
    }
    Ok(())
}
