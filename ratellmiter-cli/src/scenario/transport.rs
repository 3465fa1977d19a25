//! How a workload's calls reach the mock provider: straight into the pure model in
//! virtual time, or over real HTTP to its OpenAI-compatible server.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ratellmiter_runtime::{IsRateLimit, RateLimit};
use ratellmiter_sim::{Ask, Decision, Provider};
use tokio::time::Instant;

/// A successful completion: the tokens the provider charged and what its rate-limit
/// headers said is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    /// `usage.total_tokens` of the response.
    pub tokens: u64,
    /// `(remaining, reset in)` of the request budget, when the provider said.
    pub requests_left: Option<(u64, Duration)>,
    /// `(remaining, reset in)` of the token budget, when the provider said.
    pub tokens_left: Option<(u64, Duration)>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// The provider refused the call (429, or 503/529 in an outage).
    RateLimited {
        /// The HTTP status.
        status: u16,
        /// The provider's `retry-after`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The client's daily quota is spent: the limiter failed the call at once, naming
    /// when the quota comes back, instead of sending it.
    QuotaExhausted,
    /// Anything else: a broken connection, an unexpected status, a bad body.
    Other(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::RateLimited {
                status,
                retry_after,
            } => write!(
                f,
                "rate limited (HTTP {status}, retry-after {retry_after:?})"
            ),
            ApiError::QuotaExhausted => f.write_str("the day's quota is spent"),
            ApiError::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ApiError {}

impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            ApiError::RateLimited { retry_after, .. } => Some(RateLimit::retry(*retry_after)),
            ApiError::QuotaExhausted | ApiError::Other(_) => None,
        }
    }
}

/// The way to the provider; cheap to clone.
#[derive(Clone)]
pub enum Transport {
    /// The pure model, asked at `now` = tokio's (possibly paused) clock since `origin`;
    /// an accepted call then sleeps its latency.
    Model {
        /// The shared provider model.
        provider: Arc<Mutex<Provider>>,
        /// Time zero of the scenario.
        origin: Instant,
    },
    /// The OpenAI-compatible server at `base_url` (`http://127.0.0.1:PORT/v1`).
    Http {
        /// The HTTP client (one connection pool for every call).
        client: reqwest::Client,
        /// Where the server listens.
        base_url: String,
    },
}

impl Transport {
    /// One chat completion for `model`, costing about `tokens` tokens.
    pub async fn send(&self, model: &str, tokens: u64) -> Result<Reply, ApiError> {
        self.send_kinds(model, tokens, Ask::default(), 0).await
    }

    /// One chat completion for `model` of `ask.input` input tokens reserving
    /// `ask.output` (its `max_tokens`; `tokens` is their total) whose answer uses
    /// `used_output`. Over HTTP only the total is sent.
    pub async fn send_kinds(
        &self,
        model: &str,
        tokens: u64,
        ask: Ask,
        used_output: u64,
    ) -> Result<Reply, ApiError> {
        match self {
            Transport::Model { provider, origin } => {
                let now = Instant::now().saturating_duration_since(*origin);
                let decision = provider.lock().request_kinds(now, model, tokens, ask);
                match decision {
                    Decision::Accept(a) => {
                        tokio::time::sleep(a.latency).await;
                        // Ends the request in flight and corrects its output reservation.
                        provider.lock().answered(model, a.id, used_output);
                        Ok(Reply {
                            tokens: a.tokens,
                            requests_left: Some((
                                a.headers.requests.remaining,
                                a.headers.requests.reset,
                            )),
                            tokens_left: a.headers.tokens.map(|t| (t.remaining, t.reset)),
                        })
                    }
                    Decision::Reject(r) => Err(ApiError::RateLimited {
                        status: r.status,
                        retry_after: r.retry_after,
                    }),
                }
            }
            Transport::Http { client, base_url } => {
                super::http::chat_completion(client, base_url, model, tokens).await
            }
        }
    }
}
