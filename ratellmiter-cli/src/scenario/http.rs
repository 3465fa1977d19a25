//! One OpenAI chat completion over HTTP with reqwest: the call the demo and the
//! `openai_chat` example make, turning a 429/503/529 into [`ApiError::RateLimited`].

use std::time::Duration;

use ratellmiter_sim::headers::{RETRY_AFTER, RETRY_AFTER_MS};

use super::transport::{ApiError, Reply};

/// `POST {base_url}/chat/completions` (`base_url` as in `OPENAI_BASE_URL`, with its `/v1`) asking for about `tokens` tokens.
pub async fn chat_completion(
    client: &reqwest::Client,
    base_url: &str,
    model: &str,
    tokens: u64,
) -> Result<Reply, ApiError> {
    let body = serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": tokens,
    });
    let response = client
        .post(format!(
            "{}/chat/completions",
            base_url.trim_end_matches('/')
        ))
        .json(&body)
        .send()
        .await
        .map_err(|e| ApiError::Other(format!("request failed: {e}")))?;
    let status = response.status().as_u16();
    if matches!(status, 429 | 503 | 529) {
        return Err(ApiError::RateLimited {
            status,
            retry_after: retry_after(response.headers()),
        });
    }
    if !response.status().is_success() {
        return Err(ApiError::Other(format!("unexpected HTTP {status}")));
    }
    let json: serde_json::Value = response
        .json()
        .await
        .map_err(|e| ApiError::Other(format!("bad response body: {e}")))?;
    Ok(Reply {
        tokens: json["usage"]["total_tokens"].as_u64().unwrap_or(tokens),
        requests_left: None,
        tokens_left: None,
    })
}

/// `retry-after-ms` (OpenAI) first, else `retry-after` in seconds; malformed values
/// are ignored, as a missing header is.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    number(RETRY_AFTER_MS)
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
        .or_else(|| number(RETRY_AFTER).and_then(|s| Duration::try_from_secs_f64(s).ok()))
}
