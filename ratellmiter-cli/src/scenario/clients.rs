//! The clients compared: no limiter with exponential backoff, a governor token bucket
//! with the same backoff, rateLLMiter's own algorithm (ported in
//! [`super::rate_llmiter`]), and ratellmiter.

use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use ratellmiter_runtime::{AcquireError, BucketRateLimiter, IsRateLimit, Usage, current};
use ratellmiter_sim::Ask;
use tokio::time::Instant;

use super::CallSpec;
use super::openai_client::Stack;
use super::rate_llmiter::RateLlmiter;
use super::transport::{ApiError, Reply, Transport};

/// Retries after a rate limit, for every client: ratellmiter's default `max_retries`.
pub const MAX_RETRIES: u32 = 20;

/// Which client makes the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    /// No limiter: exponential backoff with jitter (backon: 1 s doubling to 60 s).
    Backoff,
    /// A governor token bucket at the configured rate, plus the same backoff.
    Governor,
    /// ratellmiter with everything on: adaptive limit, token budget, provider headers.
    Ratellmiter,
    /// rateLLMiter's algorithm, ported from its Python source: per-second buckets that
    /// ramp, a pause and probes after a rate limit, retry-after ignored.
    RateLlmiter,
    /// async-openai's client with its default retries (exponential backoff on 429 and
    /// 5xx, honouring `retry-after`, three retries).
    AsyncOpenai,
    /// async-openai's client with ratellmiter's tower layer as its HTTP service.
    AsyncOpenaiLayer,
}

impl ClientKind {
    /// Every client, in table order.
    pub const ALL: [ClientKind; 6] = [
        ClientKind::Backoff,
        ClientKind::Governor,
        ClientKind::AsyncOpenai,
        ClientKind::RateLlmiter,
        ClientKind::Ratellmiter,
        ClientKind::AsyncOpenaiLayer,
    ];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            ClientKind::Backoff => "backoff (backon)",
            ClientKind::Governor => "governor + backoff",
            ClientKind::RateLlmiter => "rateLLMiter (port)",
            ClientKind::Ratellmiter => "ratellmiter",
            ClientKind::AsyncOpenai => "async-openai's own retries",
            ClientKind::AsyncOpenaiLayer => "async-openai + ratellmiter layer",
        }
    }

    /// What separates this client from the one before it in [`ClientKind::ALL`].
    pub fn difference(self) -> &'static str {
        match self {
            ClientKind::Backoff => {
                "no limiter: every call at once, each 429 retried after an exponential \
                 backoff with jitter (1 s doubling to 60 s)"
            }
            ClientKind::Governor => {
                "+ a token bucket at the configured rate: a full bucket goes at once, then \
                 one call per 60/rpm s; 429s get the same backoff"
            }
            ClientKind::RateLlmiter => {
                "instead of a bucket and backoff, per-second batches released by a 1 s tick, \
                 ramping up, and after a 429 a pause until a probe (every 10 s, growing \
                 ×1.5, never reset) gets through; retry-after ignored"
            }
            ClientKind::AsyncOpenai => {
                "async-openai's client alone: each 429 retried after its own exponential \
                 backoff (honouring retry-after), three retries, then the error"
            }
            ClientKind::Ratellmiter => {
                "tickets spread 60/rpm s apart (no clumps), a slow start after a jump, \
                 retry-after and rate-limit headers obeyed, a learned ceiling and token \
                 budgets"
            }
            ClientKind::AsyncOpenaiLayer => {
                "async-openai's client with ratellmiter's tower layer as its HTTP service: \
                 the pacing above, and the layer sees the headers async-openai's errors drop"
            }
        }
    }
}

/// What a client is told about one model's limits. Only ratellmiter uses more than
/// `rpm`: the others have no way to say the rest.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Configured {
    /// Requests per minute the user configured.
    pub rpm: u32,
    /// Tokens per minute the user configured, if any.
    pub tpm: Option<u64>,
    /// Input tokens per minute, if any.
    pub input_tpm: Option<u64>,
    /// Output tokens per minute, if any.
    pub output_tpm: Option<u64>,
    /// Requests per day, if any, with the wall-clock time at the scenario start (the
    /// day ends at the next UTC midnight).
    pub rpd: Option<(u64, SystemTime)>,
    /// Calls in flight at most, if capped.
    pub max_in_flight: Option<u32>,
}

/// One model's client state.
#[derive(Clone)]
pub enum ModelClient {
    /// Backoff only.
    Backoff,
    /// A token bucket on tokio's clock, and that clock.
    Governor(Arc<GovernorLimiter>, TokioClock),
    /// A ratellmiter limiter; `headers` says whether to feed it the provider's budget.
    Limiter {
        /// The limiter of this model.
        limiter: BucketRateLimiter,
        /// Feed `x-ratelimit-*` to the limiter.
        headers: bool,
    },
    /// async-openai's client over this stack.
    AsyncOpenai(Stack),
    /// rateLLMiter's algorithm.
    RateLlmiter(RateLlmiter),
}

/// governor's direct limiter, reading tokio's clock so it runs in paused time too.
pub type GovernorLimiter =
    RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<TokioInstant>>;

impl ModelClient {
    /// The client of `kind` for a model configured at `cfg`. Must run inside the tokio
    /// runtime that drives the calls (limiters read its clock).
    pub fn new(kind: ClientKind, cfg: Configured) -> anyhow::Result<Self> {
        Ok(match kind {
            ClientKind::Backoff => ModelClient::Backoff,
            ClientKind::Governor => {
                let rpm = NonZeroU32::new(cfg.rpm)
                    .ok_or_else(|| anyhow::anyhow!("invalid `rpm`: must be at least 1"))?;
                let clock = TokioClock {
                    origin: Instant::now(),
                };
                ModelClient::Governor(
                    Arc::new(RateLimiter::direct_with_clock(
                        Quota::per_minute(rpm),
                        clock,
                    )),
                    clock,
                )
            }
            ClientKind::Ratellmiter => ModelClient::Limiter {
                limiter: full_limiter(cfg)?,
                headers: true,
            },
            ClientKind::AsyncOpenai => ModelClient::AsyncOpenai(Stack::OwnRetries),
            ClientKind::AsyncOpenaiLayer => {
                ModelClient::AsyncOpenai(Stack::Layer(full_limiter(cfg)?))
            }
            ClientKind::RateLlmiter => ModelClient::RateLlmiter(RateLlmiter::new(cfg.rpm)),
        })
    }

    /// Makes the call `spec` for `model`, retrying rate limits the client's way; the
    /// last error when retries run out.
    pub async fn call(
        &self,
        transport: &Transport,
        model: &str,
        spec: &CallSpec,
        seed: u64,
    ) -> Result<Reply, ApiError> {
        let tokens = spec.tokens;
        let ask = Ask {
            input: spec.input,
            output: spec.reserve,
        };
        let send = || transport.send_kinds(model, tokens, ask, spec.used_output);
        match self {
            ModelClient::Backoff => {
                send.retry(backoff(seed))
                    .sleep(tokio::time::sleep)
                    .when(|e: &ApiError| e.rate_limit().is_some())
                    .await
            }
            ModelClient::Governor(bucket, clock) => {
                (|| async {
                    until_ready(bucket, clock).await;
                    send().await
                })
                .retry(backoff(seed))
                .sleep(tokio::time::sleep)
                .when(|e: &ApiError| e.rate_limit().is_some())
                .await
            }
            ModelClient::Limiter { limiter, headers } => {
                let call = limiter.call();
                let call = if limiter.config().tpm.is_some() {
                    call.tokens(tokens)
                } else {
                    call
                };
                let by_kind = spec.input > 0 || spec.reserve > 0;
                let call = if by_kind {
                    call.input_tokens(spec.input).output_tokens(spec.reserve)
                } else {
                    call
                };
                let out = call
                    .run(|| async {
                        let reply = send().await;
                        if let Ok(r) = &reply {
                            if by_kind {
                                current().record_usage(Usage::new(spec.input, spec.used_output));
                            } else {
                                current().record_usage(r.tokens);
                            }
                            if *headers {
                                current()
                                    .observe_budget(budget(r.requests_left), budget(r.tokens_left));
                            }
                        }
                        reply
                    })
                    .await;
                out.map_err(|e| match e {
                    AcquireError::QuotaExhausted { .. } => ApiError::QuotaExhausted,
                    e => ApiError::Other(e.to_string()),
                })?
            }
            ModelClient::AsyncOpenai(stack) => {
                super::openai_client::call(stack, transport, model, tokens).await
            }
            ModelClient::RateLlmiter(limiter) => {
                // The service's `ratellmiter_is_llm_blocked`: one small completion.
                let (probe_transport, probe_model) = (transport.clone(), model.to_owned());
                let probe = move || {
                    let (transport, model) = (probe_transport.clone(), probe_model.clone());
                    async move {
                        matches!(
                            transport.send(&model, 1).await,
                            Err(ApiError::RateLimited { .. })
                        )
                    }
                };
                limiter.run(send, probe).await
            }
        }
    }
}

/// ratellmiter with everything on, at the configured limits.
fn full_limiter(cfg: Configured) -> anyhow::Result<BucketRateLimiter> {
    let mut b = BucketRateLimiter::builder().rpm(cfg.rpm);
    if let Some(tpm) = cfg.tpm {
        b = b.tpm(tpm);
    }
    if let Some(n) = cfg.input_tpm {
        b = b.input_tpm(n);
    }
    if let Some(n) = cfg.output_tpm {
        b = b.output_tpm(n);
    }
    if let Some((n, now)) = cfg.rpd {
        b = b.rpd(n).wall_clock(now);
    }
    if let Some(n) = cfg.max_in_flight {
        b = b.max_in_flight(n);
    }
    Ok(b.max_retries(MAX_RETRIES).build()?)
}

/// Exponential backoff with jitter, seeded per call so runs repeat exactly.
fn backoff(seed: u64) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_jitter()
        .with_jitter_seed(seed)
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_max_times(MAX_RETRIES as usize)
}

/// Waits for a cell of `bucket`: governor's `until_ready`, sleeping on tokio's clock
/// (governor's own sleeps use real time).
async fn until_ready(bucket: &GovernorLimiter, clock: &TokioClock) {
    while let Err(not_until) = bucket.check() {
        tokio::time::sleep(not_until.wait_time_from(clock.now())).await;
    }
}

/// A governor clock over tokio's (possibly paused) clock.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

/// An instant of [`TokioClock`]: nanoseconds since a fixed origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TokioInstant(u64);

impl Add<Nanos> for TokioInstant {
    type Output = Self;
    fn add(self, other: Nanos) -> Self {
        Self(self.0.saturating_add(other.as_u64()))
    }
}

impl Reference for TokioInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_sub(earlier.0))
    }
    fn saturating_sub(&self, duration: Nanos) -> Self {
        Self(self.0.saturating_sub(duration.as_u64()))
    }
}

impl Clock for TokioClock {
    type Instant = TokioInstant;
    fn now(&self) -> TokioInstant {
        let since = Instant::now().saturating_duration_since(self.origin);
        TokioInstant(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// A reply's `(remaining, reset)` as the limiter takes it.
fn budget(left: Option<(u64, Duration)>) -> Option<ratellmiter_runtime::headers::Budget> {
    left.map(|(remaining, reset)| ratellmiter_runtime::headers::Budget { remaining, reset })
}
