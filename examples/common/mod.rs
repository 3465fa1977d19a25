//! What every example shares: one OpenAI chat completion over reqwest that reports a
//! 429 as a rate limit, and the base URL to call (`OPENAI_BASE_URL`, or the embedded
//! mock provider).

// Each example uses part of this module; the rest is dead code in its build.
#![allow(dead_code)]

use std::time::Duration;

use ratellmiter::IsRateLimit;
use ratellmiter_sim::{MockServer, Provider, ProviderConfig};

/// Why a completion failed.
#[derive(Debug)]
pub enum ChatError {
    /// HTTP 429 (or 503/529): the provider's rate limit.
    RateLimited {
        /// The provider's `retry-after`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// Anything else.
    Other(String),
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatError::RateLimited { retry_after } => {
                write!(f, "rate limited (retry-after {retry_after:?})")
            }
            ChatError::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ChatError {}

/// The limiter waits out rate limits and re-runs the call; every other error goes
/// straight to the caller.
impl IsRateLimit for ChatError {
    fn is_rate_limit(&self) -> bool {
        matches!(self, ChatError::RateLimited { .. })
    }
    fn retry_after(&self) -> Option<Duration> {
        match self {
            ChatError::RateLimited { retry_after } => *retry_after,
            ChatError::Other(_) => None,
        }
    }
}

/// The JSON body of a chat completion asking `question` of `model`.
pub fn request_body(model: &str, question: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 64,
    })
}

/// Turns a response's status into the error the limiter understands.
pub fn check(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), ChatError> {
    match status.as_u16() {
        200..=299 => Ok(()),
        429 | 503 | 529 => Err(ChatError::RateLimited {
            retry_after: headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.trim().parse::<f64>().ok())
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok()),
        }),
        other => Err(ChatError::Other(format!("unexpected HTTP {other}"))),
    }
}

/// The error type the tower examples box everything into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// reqwest as a tower service over `http` types, for the layer to wrap.
pub fn reqwest_service(
    client: reqwest::Client,
) -> impl tower::Service<
    http::Request<reqwest::Body>,
    Response = http::Response<reqwest::Body>,
    Error = BoxError,
    Future: Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: http::Request<reqwest::Body>| {
        let client = client.clone();
        async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            Ok::<_, BoxError>(http::Response::from(response))
        }
    })
}

/// The answer's text in a chat completion's JSON body.
pub fn answer(body: &serde_json::Value) -> String {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// One chat completion; returns the answer's text.
pub async fn chat(
    client: &reqwest::Client,
    base_url: &str,
    model: &str,
    question: &str,
) -> Result<String, ChatError> {
    let response = client
        .post(format!("{base_url}/chat/completions"))
        .json(&request_body(model, question))
        .send()
        .await
        .map_err(|e| ChatError::Other(e.to_string()))?;
    check(response.status(), response.headers())?;
    let body: serde_json::Value = response
        .json()
        .await
        .map_err(|e| ChatError::Other(e.to_string()))?;
    Ok(answer(&body))
}

/// `OPENAI_BASE_URL` if set; otherwise a mock provider at `rpm` on 127.0.0.1 (kept
/// alive by the returned server).
pub async fn base_url(rpm: u32) -> (String, Option<MockServer>) {
    if let Ok(url) = std::env::var("OPENAI_BASE_URL") {
        return (url.trim_end_matches('/').to_owned(), None);
    }
    let provider = Provider::new(ProviderConfig {
        rpm,
        ..Default::default()
    })
    .expect("a valid mock configuration");
    let server = ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .expect("a free port on 127.0.0.1");
    (server.base_url(), Some(server))
}
