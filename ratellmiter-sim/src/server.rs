//! An HTTP server over the [`Provider`] model speaking OpenAI's chat-completions wire
//! format, with the rate-limit headers and 429 bodies real clients parse.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/messages` (Anthropic's shape),
//! `GET /v1/models`, `GET /metrics` (the [`Metrics`] as JSON) and `GET /log` (every
//! [`RequestRecord`] as JSON). With `"stream": true` an accepted completion comes as
//! server-sent events [`STREAM_EVENT_INTERVAL`] apart, its usage at the end: OpenAI's
//! final `usage` chunk (when `stream_options.include_usage` is set) or Anthropic's
//! `message_delta`. [`in_process`] serves the same routes without a socket, so tests
//! in tokio's paused time stay exact.
//!
//! The server's clock is [`tokio::time::Instant`] since [`spawn`], so outage windows
//! count from there (those of `outages_after_first_request` from each model's first
//! request) and tests under tokio's paused time stay deterministic.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::ErrorStyle;
use crate::headers;
use crate::metrics::{Metrics, RequestRecord};
use crate::model::{Decision, Provider, RejectKind, Rejected};

/// Completion tokens charged when a request sets no `max_tokens`.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 16;

/// The time between two server-sent events of a streamed completion.
pub const STREAM_EVENT_INTERVAL: Duration = Duration::from_millis(10);

/// The text of every mock completion, streamed a word per event.
const COMPLETION_TEXT: &str = "This is a mock completion.";

/// A running mock provider. Dropping it stops the server too, without waiting.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

#[derive(Debug)]
struct Shared {
    provider: Mutex<Provider>,
    start: Instant,
    completions: AtomicU64,
}

impl Shared {
    fn provider(&self) -> MutexGuard<'_, Provider> {
        // The model never panics while locked, but a poisoned lock must not take the server down.
        self.provider.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts serving `provider` on `addr` (port 0 picks a free port) in a background task.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use ratellmiter_sim::{Provider, ProviderConfig, server};
/// let provider = Provider::new(ProviderConfig::default()).unwrap();
/// let mock = server::spawn(provider, "127.0.0.1:0".parse().unwrap()).await.unwrap();
/// assert!(mock.base_url().starts_with("http://127.0.0.1:"));
/// assert_eq!(mock.metrics().requests, 0);
/// mock.shutdown().await.unwrap();
/// # });
/// ```
pub async fn spawn(provider: Provider, addr: SocketAddr) -> io::Result<MockServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let InProcess {
        shared,
        router: app,
    } = in_process(provider);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // A dropped sender stops the server as surely as a sent value.
                let _ = stopped.await;
            })
            .await
    });
    tracing::debug!(%addr, "mock provider listening");
    Ok(MockServer {
        addr,
        shared,
        stop: Some(stop),
        task: Some(task),
    })
}

/// The server's routes over `provider` as an in-process tower service: the same
/// statuses, headers and bodies as [`spawn`]'s, without a socket, so a test in tokio's
/// paused time sees exact times. Its clock starts now.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use ratellmiter_sim::{Provider, ProviderConfig, server};
/// use tower::ServiceExt;
/// let mock = server::in_process(Provider::new(ProviderConfig::default()).unwrap());
/// let request = axum::http::Request::post("/v1/chat/completions")
///     .header("content-type", "application/json")
///     .body(axum::body::Body::from(r#"{"model": "m", "messages": []}"#))
///     .unwrap();
/// let response = mock.router().oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// assert_eq!(mock.metrics().accepted, 1);
/// # });
/// ```
pub fn in_process(provider: Provider) -> InProcess {
    let shared = Arc::new(Shared {
        provider: Mutex::new(provider),
        start: Instant::now(),
        completions: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics))
        .route("/log", get(log))
        .with_state(Arc::clone(&shared));
    InProcess { shared, router }
}

/// The mock provider's routes without a server: see [`in_process`].
#[derive(Debug, Clone)]
pub struct InProcess {
    shared: Arc<Shared>,
    router: Router,
}

impl InProcess {
    /// The routes, a `tower::Service<http::Request<B>>` (cheap to clone).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Summary of every request so far.
    pub fn metrics(&self) -> Metrics {
        self.shared.provider().metrics()
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.shared.provider().log().to_vec()
    }
}

/// Serves `provider` on `addr` until ctrl-c, then shuts down and returns the metrics:
/// the body of a standalone `mock-server` command. Use [`spawn`] to learn a port-0 address.
pub async fn serve(provider: Provider, addr: SocketAddr) -> io::Result<Metrics> {
    let server = spawn(provider, addr).await?;
    tracing::info!(base_url = %server.base_url(), "mock provider listening; ctrl-c stops it");
    tokio::signal::ctrl_c().await?;
    let metrics = server.metrics();
    server.shutdown().await?;
    Ok(metrics)
}

impl MockServer {
    /// The bound address (with the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The server clock: time since [`spawn`], as the model sees it.
    pub fn elapsed(&self) -> Duration {
        self.shared.start.elapsed()
    }

    /// Summary of every request so far.
    pub fn metrics(&self) -> Metrics {
        self.shared.provider().metrics()
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.shared.provider().log().to_vec()
    }

    /// Stops accepting connections and waits for those open to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The part of OpenAI's chat-completions request the mock reads.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<ChatMessage>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The wire format a route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    /// A string, an array of content parts, or null.
    #[serde(default)]
    content: Value,
}

impl ChatRequest {
    /// Prompt tokens estimated as characters / 4, rounded up.
    fn prompt_tokens(&self) -> u64 {
        let text_chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count() as u64);
        let chars: u64 = self
            .messages
            .iter()
            .map(|m| match &m.content {
                Value::Array(parts) => parts.iter().map(|p| text_chars(&p["text"])).sum(),
                content => text_chars(content),
            })
            .sum();
        chars.div_ceil(4)
    }

    fn completion_tokens(&self) -> u64 {
        self.max_tokens
            .or(self.max_completion_tokens)
            .unwrap_or(DEFAULT_COMPLETION_TOKENS)
    }
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    complete(&shared, body, Style::OpenAi).await
}

/// Anthropic's `POST /v1/messages`, over the same model.
async fn messages(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<ChatRequest>, JsonRejection>,
) -> Response {
    complete(&shared, body, Style::Anthropic).await
}

async fn complete(
    shared: &Shared,
    body: Result<Json<ChatRequest>, JsonRejection>,
    style: Style,
) -> Response {
    let request = match body {
        Ok(Json(request)) => request,
        Err(rejection) => {
            let body = error_body(&rejection.body_text(), "invalid_request_error", None);
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let (prompt, completion) = (request.prompt_tokens(), request.completion_tokens());
    let tokens = prompt.saturating_add(completion);
    let (decision, error_style) = {
        let mut provider = shared.provider();
        let decision = provider.request(shared.start.elapsed(), &request.model, tokens);
        (decision, provider.config(&request.model).error_style)
    };
    tracing::debug!(model = %request.model, tokens, ?decision, "chat completion");
    let mut headers = match error_style {
        ErrorStyle::OpenAi => headers::rate_limit(decision.headers()),
        // Gemini sends no rate-limit header at all.
        ErrorStyle::Gemini => axum::http::HeaderMap::new(),
        ErrorStyle::Anthropic => headers::anthropic(decision.headers(), SystemTime::now()),
    };
    match decision {
        Decision::Accept(accepted) => {
            tokio::time::sleep(accepted.latency).await;
            // The call is answered: it no longer counts as in flight.
            shared
                .provider()
                .answered(&request.model, accepted.id, completion);
            let n = shared.completions.fetch_add(1, Ordering::Relaxed) + 1;
            let answer = Answer {
                n,
                model: request.model.clone(),
                prompt,
                completion,
            };
            if request.stream {
                let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
                let events = match style {
                    Style::OpenAi => answer.openai_events(include_usage),
                    Style::Anthropic => answer.anthropic_events(),
                };
                return (headers, event_stream(events)).into_response();
            }
            let body = match style {
                Style::OpenAi => answer.openai(),
                Style::Anthropic => answer.anthropic(),
            };
            (headers, Json(body)).into_response()
        }
        Decision::Reject(rejected) if error_style == ErrorStyle::Gemini => {
            // Gemini says nothing in headers: the wait and the quota are in the body.
            let status =
                StatusCode::from_u16(rejected.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let body = gemini_refusal(&rejected, &request.model);
            (status, Json(body)).into_response()
        }
        Decision::Reject(rejected) if error_style == ErrorStyle::Anthropic => {
            if let Some(retry_after) = rejected.retry_after {
                headers::insert_retry_after(&mut headers, retry_after);
            }
            let status =
                StatusCode::from_u16(rejected.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let message =
                refusal_body(&rejected, &request.model, tokens)["error"]["message"].clone();
            let kind = if rejected.status == 529 {
                "overloaded_error"
            } else {
                "rate_limit_error"
            };
            let body = json!({"type": "error", "error": {"type": kind, "message": message}});
            (status, headers, Json(body)).into_response()
        }
        Decision::Reject(rejected) => {
            if let Some(retry_after) = rejected.retry_after {
                headers::insert_retry_after(&mut headers, retry_after);
            }
            let status =
                StatusCode::from_u16(rejected.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let mut body = refusal_body(&rejected, &request.model, tokens);
            if style == Style::Anthropic {
                // Anthropic's envelope: {"type": "error", "error": {"type", "message"}}.
                body["type"] = json!("error");
            }
            (status, headers, Json(body)).into_response()
        }
    }
}

/// An accepted completion, in either wire format.
struct Answer {
    n: u64,
    model: String,
    prompt: u64,
    completion: u64,
}

impl Answer {
    fn openai(&self) -> Value {
        json!({
            "id": format!("chatcmpl-mock-{}", self.n),
            "object": "chat.completion",
            "created": unix_now(),
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": COMPLETION_TEXT},
                "finish_reason": "stop",
            }],
            "usage": self.openai_usage(),
        })
    }

    fn openai_usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt.saturating_add(self.completion),
        })
    }

    /// `chat.completion.chunk`s: one per word, the finish, the usage when asked for
    /// (`choices` empty, as OpenAI sends it), then `[DONE]`.
    fn openai_events(&self, include_usage: bool) -> Vec<(Option<&'static str>, String)> {
        let chunk = |choices: Value, usage: Value| {
            json!({
                "id": format!("chatcmpl-mock-{}", self.n),
                "object": "chat.completion.chunk",
                "created": unix_now(),
                "model": self.model,
                "choices": choices,
                "usage": usage,
            })
            .to_string()
        };
        let delta = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "finish_reason": finish}]);
        let mut events = vec![(
            None,
            chunk(
                delta(json!({"role": "assistant", "content": ""}), Value::Null),
                Value::Null,
            ),
        )];
        for word in words() {
            events.push((
                None,
                chunk(delta(json!({"content": word}), Value::Null), Value::Null),
            ));
        }
        events.push((None, chunk(delta(json!({}), json!("stop")), Value::Null)));
        if include_usage {
            events.push((None, chunk(json!([]), self.openai_usage())));
        }
        events.push((None, "[DONE]".to_owned()));
        events
    }

    fn anthropic(&self) -> Value {
        json!({
            "id": format!("msg_mock_{}", self.n),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [{"type": "text", "text": COMPLETION_TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": self.prompt, "output_tokens": self.completion},
        })
    }

    /// Anthropic's event sequence: `message_start` (input tokens), a text block a word
    /// per delta, `message_delta` with the cumulative output tokens, `message_stop`.
    fn anthropic_events(&self) -> Vec<(Option<&'static str>, String)> {
        let mut events = vec![
            (
                Some("message_start"),
                json!({"type": "message_start", "message": {
                    "id": format!("msg_mock_{}", self.n), "type": "message", "role": "assistant",
                    "model": self.model, "content": [], "stop_reason": null,
                    "usage": {"input_tokens": self.prompt, "output_tokens": 1},
                }}),
            ),
            (
                Some("content_block_start"),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        for word in words() {
            events.push((
                Some("content_block_delta"),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}),
            ));
        }
        events.extend([
            (
                Some("content_block_stop"),
                json!({"type": "content_block_stop", "index": 0}),
            ),
            (
                Some("message_delta"),
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                       "usage": {"output_tokens": self.completion}}),
            ),
            (Some("message_stop"), json!({"type": "message_stop"})),
        ]);
        events
            .into_iter()
            .map(|(name, data)| (name, data.to_string()))
            .collect()
    }
}

/// The completion's words, each with the space before it.
fn words() -> impl Iterator<Item = String> {
    COMPLETION_TEXT.split(' ').enumerate().map(|(i, w)| {
        if i == 0 {
            w.to_owned()
        } else {
            format!(" {w}")
        }
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A `text/event-stream` body sending `events` (`event:` name, `data:`)
/// [`STREAM_EVENT_INTERVAL`] apart; it stops early when the client goes away.
fn event_stream(events: Vec<(Option<&'static str>, String)>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(1);
    tokio::spawn(async move {
        for (i, (name, data)) in events.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(STREAM_EVENT_INTERVAL).await;
            }
            let event = match name {
                Some(name) => format!("event: {name}\ndata: {data}\n\n"),
                None => format!("data: {data}\n\n"),
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(Receiver(rx)),
    )
        .into_response()
}

/// The receiving end of a channel as a stream.
struct Receiver<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// OpenAI's error body for a refusal; the `type` says which limit was hit.
fn refusal_body(r: &Rejected, model: &str, tokens: u64) -> Value {
    let rate_limited = Some("rate_limit_exceeded");
    let try_again = r
        .retry_after
        .map(|d| format!(" Please try again in {}.", headers::format_duration(d)))
        .unwrap_or_default();
    let rpm = r.headers.requests.limit;
    let tpm = r.headers.tokens.map_or(0, |t| t.limit);
    let (message, kind, code) = match r.kind {
        RejectKind::Requests => (
            format!(
                "Rate limit reached for {model} on requests per min (RPM): Limit {rpm}.{try_again}"
            ),
            "requests",
            rate_limited,
        ),
        RejectKind::Tokens => (
            format!(
                "Rate limit reached for {model} on tokens per min (TPM): Limit {tpm}, Requested {tokens}.{try_again}"
            ),
            "tokens",
            rate_limited,
        ),
        RejectKind::TooLarge => (
            format!(
                "Request too large for {model} on tokens per min (TPM): Limit {tpm}, Requested {tokens}. \
                 The input or output tokens must be reduced in order to run successfully."
            ),
            "tokens",
            rate_limited,
        ),
        RejectKind::Acceleration => (
            format!(
                "Rate limit reached for {model}: the request rate rose too sharply (acceleration limit). \
                 Ramp up gradually.{try_again}"
            ),
            "requests",
            rate_limited,
        ),
        RejectKind::Penalty => (
            format!(
                "Rate limit reached for {model}: too many rate-limited requests, throttled.{try_again}"
            ),
            "requests",
            rate_limited,
        ),
        RejectKind::Outage => (
            format!(
                "The server is currently overloaded (simulated outage), please try again later.{try_again}"
            ),
            match r.status {
                503 => "server_error",
                529 => "overloaded_error",
                _ => "requests",
            },
            rate_limited.filter(|_| r.status == 429),
        ),
        RejectKind::InsufficientQuota => (
            "You exceeded your current quota, please check your plan and billing details."
                .to_owned(),
            "insufficient_quota",
            Some("insufficient_quota"),
        ),
        RejectKind::InputTokens | RejectKind::OutputTokens => (
            // Anthropic's wording: its limits are per kind of token.
            format!(
                "This request would exceed the rate limit for your organization of {} {} tokens per minute for {model}.{try_again}",
                r.headers.tokens.map_or(0, |t| t.limit),
                if r.kind == RejectKind::InputTokens {
                    "input"
                } else {
                    "output"
                },
            ),
            "rate_limit_error",
            rate_limited,
        ),
        RejectKind::RequestsPerDay | RejectKind::TokensPerDay => (
            // Gemini's RESOURCE_EXHAUSTED names the per-day quota that is spent.
            format!(
                "You exceeded your current quota. Quota exceeded for metric: {}, limit per day for {model}.",
                if r.kind == RejectKind::RequestsPerDay {
                    "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
                } else {
                    "GenerateContentInputTokensPerDayPerProjectPerModel-FreeTier"
                }
            ),
            "requests",
            rate_limited,
        ),
        RejectKind::Concurrency => (
            format!("Too many concurrent requests for {model}.{try_again}"),
            "requests",
            rate_limited,
        ),
    };
    error_body(&message, kind, code)
}

/// Gemini's `RESOURCE_EXHAUSTED` body: a `QuotaFailure` naming the quota that refused
/// and, when the wait is known, a `RetryInfo` with it (`"34s"`, `"0.250s"`).
fn gemini_refusal(r: &Rejected, model: &str) -> Value {
    let quota_id = match r.kind {
        RejectKind::RequestsPerDay => "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        RejectKind::TokensPerDay => "GenerateContentInputTokensPerDayPerProjectPerModel-FreeTier",
        RejectKind::Tokens | RejectKind::TooLarge | RejectKind::InputTokens => {
            "GenerateContentInputTokensPerModelPerMinute-FreeTier"
        }
        RejectKind::OutputTokens => "GenerateContentOutputTokensPerModelPerMinute-FreeTier",
        _ => "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
    };
    let mut details = vec![json!({
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": model},
        }],
    })];
    if let Some(wait) = r.retry_after {
        // protobuf's Duration in JSON: seconds with up to 9 decimals, rounded up to
        // the millisecond so a client waiting for it is never early.
        let ms = wait.as_nanos().div_ceil(1_000_000);
        let delay = if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{}.{:03}s", ms / 1000, ms % 1000)
        };
        details.push(json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": delay,
        }));
    }
    json!({"error": {
        "code": r.status,
        "message": format!("You exceeded your current quota, please check your plan and billing details. Quota exceeded for metric: {quota_id}, model: {model}."),
        "status": if r.status == 429 { "RESOURCE_EXHAUSTED" } else { "UNAVAILABLE" },
        "details": details,
    }})
}

fn error_body(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

async fn models(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let provider = shared.provider();
    let data: Vec<Value> = provider
        .models()
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "ratellmiter-sim"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Json<Metrics> {
    Json(shared.provider().metrics())
}

async fn log(State(shared): State<Arc<Shared>>) -> Json<Vec<RequestRecord>> {
    Json(shared.provider().log().to_vec())
}
