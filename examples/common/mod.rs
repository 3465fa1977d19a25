//! What every example shares: one OpenAI chat completion over reqwest, its error type
//! (rate limits read by the `reqwest` integration), and the base URL to call
//! (`OPENAI_BASE_URL`, or the embedded mock provider).

// Each example uses part of this module; the rest is dead code in its build.
#![allow(dead_code)]

use ratellmiter::IsRateLimit;
use ratellmiter::reqwest::{RateLimitError, check};
use ratellmiter_sim::{MockServer, Provider, ProviderConfig};

/// Why a completion failed. The derive forwards both variants to the integration's own
/// verdict: a 429 (or 529, or 503 with `retry-after`) pauses the limiter for its
/// `retry-after` and re-runs the call, `insufficient_quota` comes back at once, and
/// every other failure goes straight to the caller.
#[derive(Debug, IsRateLimit)]
pub enum ChatError {
    /// Refused for a rate limit, as `ratellmiter::reqwest::check` read the response
    /// (boxed: it carries the response's rate-limit headers; the box forwards too).
    #[rate_limit(transparent)]
    RateLimited(Box<RateLimitError>),
    /// Any other failure: no connection, an error status (`error_for_status`), a body
    /// that is not JSON.
    #[rate_limit(transparent)]
    Http(reqwest::Error),
}

impl From<RateLimitError> for ChatError {
    fn from(e: RateLimitError) -> Self {
        ChatError::RateLimited(Box::new(e))
    }
}

impl From<reqwest::Error> for ChatError {
    fn from(e: reqwest::Error) -> Self {
        ChatError::Http(e)
    }
}

impl std::fmt::Display for ChatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChatError::RateLimited(e) => e.fmt(f),
            ChatError::Http(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ChatError {}

/// The JSON body of a chat completion asking `question` of `model`.
pub fn request_body(model: &str, question: &str) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 64,
    })
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
        .await?;
    // A rate limit becomes a `RateLimitError` (and every response's rate-limit headers
    // reach the limiter); any other error status, a 500 say, a `reqwest::Error`.
    let body: serde_json::Value = check(response).await?.error_for_status()?.json().await?;
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
