//! Streamed answers (feature `tower`) keep their ticket until the last event, and the
//! usage they report at the end settles the token budget:
//!
//! - OpenAI-style, from a `#[llmiter]` function: it returns the response's byte stream
//!   wrapped in `Metered::from_current`, so the call's ticket stays with the stream
//!   after the function returns; the final chunk's `usage`
//!   (`stream_options.include_usage`) replaces the estimate.
//! - Anthropic-style, through the tower layer: the response body holds the ticket;
//!   `message_start` and `message_delta` carry the usage.
//!
//! `cargo run --example streaming --features tower` talks to an embedded mock provider
//! (its `/v1/chat/completions` and `/v1/messages` stream when asked to).

mod common;

use bytes::Bytes;
use common::{BoxError, ChatError};
use futures_util::{Stream, StreamExt};
use http_body_util::BodyExt;
use ratellmiter::stream::Metered;
use ratellmiter::tower::Layer;
use ratellmiter::{BucketRateLimiter, llmiter, monitor};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The text of a stream's `data:` events: OpenAI's `delta.content` or Anthropic's
/// `delta.text`.
fn text_of(events: &[u8]) -> String {
    String::from_utf8_lossy(events)
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|e| {
            let delta = &e["choices"][0]["delta"]["content"];
            delta
                .as_str()
                .or(e["delta"]["text"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// An OpenAI-style streamed completion, paced by the "stream-openai" service; the
/// stream it returns holds the call's ticket.
#[llmiter(service = "stream-openai")]
async fn ask_openai(
    client: &reqwest::Client,
    base_url: &str,
    question: &str,
) -> Result<Metered<impl Stream<Item = reqwest::Result<Bytes>> + use<>>, ChatError> {
    let mut body = common::request_body("gpt-4o-mini", question);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let response = client
        .post(format!("{base_url}/chat/completions"))
        .json(&body)
        .send()
        .await?;
    let response = ratellmiter::reqwest::check(response).await?;
    Ok(Metered::from_current(response.bytes_stream()))
}

/// What one streamed answer said and what it settled.
#[derive(Debug)]
pub struct Streamed {
    /// The answer's text.
    pub text: String,
    /// The tokens the limiter's budget holds for it once the stream ended.
    pub tokens: u64,
}

/// One OpenAI-style stream through `#[llmiter]`, read to its end.
pub async fn openai(base_url: &str) -> Result<Streamed, BoxError> {
    let limiter = monitor().add_service(
        "stream-openai",
        BucketRateLimiter::builder().rpm(600).tpm(100_000).build()?,
    )?;
    let mut stream = ask_openai(&reqwest::Client::new(), base_url, "Stream me an answer").await?;
    let mut events = Vec::new();
    while let Some(chunk) = stream.next().await {
        assert_eq!(limiter.stats().in_flight, 1, "the stream holds the ticket");
        events.extend_from_slice(&chunk?);
    }
    drop(stream);
    Ok(Streamed {
        text: text_of(&events),
        tokens: limiter.stats().tokens_in_window,
    })
}

/// One Anthropic-style stream (`POST /v1/messages`) through the tower layer.
pub async fn anthropic(base_url: &str) -> Result<Streamed, BoxError> {
    let limiter = BucketRateLimiter::builder().rpm(600).tpm(100_000).build()?;
    let client = Layer::new(limiter.clone())
        .settle_usage(true)
        .layer(common::reqwest_service(reqwest::Client::new()));
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": true,
        "messages": [{"role": "user", "content": "Stream me an answer"}],
    });
    let request = http::Request::post(format!("{base_url}/messages"))
        .header("content-type", "application/json")
        .body(reqwest::Body::from(body.to_string()))?;
    let mut body = client.oneshot(request).await?.into_body();
    let mut events = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            events.extend_from_slice(data);
        }
    }
    drop(body);
    Ok(Streamed {
        text: text_of(&events),
        tokens: limiter.stats().tokens_in_window,
    })
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (base_url, _mock) = common::base_url(600).await;
    for (style, streamed) in [
        ("OpenAI", openai(&base_url).await?),
        ("Anthropic", anthropic(&base_url).await?),
    ] {
        println!(
            "{style}: {:?}, {} tokens settled",
            streamed.text, streamed.tokens
        );
    }
    Ok(())
}
