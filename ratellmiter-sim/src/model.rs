//! The pure provider model: per-model limits checked against a `now` since the scenario
//! start, with no clock, I/O or sleeping, so it runs in virtual time.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Latency, MINUTE, ProviderConfig};
use crate::kinds::{Ask, DayCount, Ledger};
use crate::metrics::{Metrics, RequestRecord};
use crate::window::SlidingWindow;

/// The window of Anthropic-style acceleration limits.
const SECOND: Duration = Duration::from_secs(1);

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectKind {
    /// Over the request limit of the quantum or of the minute.
    Requests,
    /// Over the token limit of the quantum or of the minute.
    Tokens,
    /// More tokens than the whole minute allows: waiting cannot help.
    TooLarge,
    /// A sharp jump from a low recent rate (see [`AccelerationLimit`](crate::AccelerationLimit)).
    Acceleration,
    /// Inside an outage window.
    Outage,
    /// In the penalty box (see [`PenaltyBox`](crate::PenaltyBox)).
    Penalty,
    /// The account's quota is exhausted: final, never to be retried.
    InsufficientQuota,
    /// Over the input tokens per minute.
    InputTokens,
    /// Over the output tokens per minute (reservations included).
    OutputTokens,
    /// The day's requests are spent, until the day boundary.
    RequestsPerDay,
    /// The day's tokens are spent, until the day boundary.
    TokensPerDay,
    /// Too many requests in flight.
    Concurrency,
}

/// One limit's state as the `x-ratelimit-*` headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    /// The per-minute limit.
    pub limit: u64,
    /// What is left of it in the sliding 60 s window, after this request if accepted.
    pub remaining: u64,
    /// Time until `remaining` next grows: the oldest use in the window leaves it (zero
    /// when the window is empty). A sliding window never "resets" at once, so this is
    /// the soonest moment capacity returns.
    pub reset: Duration,
}

/// The rate-limit header values of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// Requests per minute.
    pub requests: LimitState,
    /// Tokens per minute, when tokens are limited.
    pub tokens: Option<LimitState>,
}

/// An accepted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Identifies the request for [`Provider::answered`].
    pub id: u64,
    /// How long the provider takes to answer.
    pub latency: Duration,
    /// Tokens charged.
    pub tokens: u64,
    /// Rate-limit state after this request.
    pub headers: RateLimitHeaders,
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// HTTP status: 429, or the configured outage status.
    pub status: u16,
    /// Why.
    pub kind: RejectKind,
    /// Time until the same request would be accepted if nothing else arrived (for an
    /// outage, until its end), when the config announces it. Outages not yet begun are
    /// not foreseen.
    pub retry_after: Option<Duration>,
    /// Rate-limit state (the refused request is not counted).
    pub headers: RateLimitHeaders,
}

/// What the provider does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Served after [`Accepted::latency`].
    Accept(Accepted),
    /// Refused with an error status.
    Reject(Rejected),
}

impl Decision {
    /// Whether the request was accepted.
    pub fn is_accept(&self) -> bool {
        matches!(self, Self::Accept(_))
    }

    /// Why it was refused, if it was.
    pub fn reject_kind(&self) -> Option<RejectKind> {
        match self {
            Self::Accept(_) => None,
            Self::Reject(r) => Some(r.kind),
        }
    }

    /// The refusal's retry-after, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Accept(_) => None,
            Self::Reject(r) => r.retry_after,
        }
    }

    /// The rate-limit header values, present either way.
    pub fn headers(&self) -> &RateLimitHeaders {
        match self {
            Self::Accept(a) => &a.headers,
            Self::Reject(r) => &r.headers,
        }
    }
}

/// A simulated provider: one set of limits per model (a default for unknown models)
/// and the record of every request.
///
/// Each model name, configured or not, has its own limits state, as at OpenAI. A clone
/// forks the whole state, to ask "what if" without disturbing the original.
/// `now` must not go backwards; an earlier `now` is taken as the latest seen.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter_sim::{Provider, ProviderConfig, RejectKind};
///
/// let small = ProviderConfig { rpm: 60, ..Default::default() };
/// let mut provider = Provider::new(ProviderConfig::default())?.with_model("small", small)?;
/// let t = Duration::from_millis(10);
/// assert!(provider.request(t, "small", 100).is_accept());
/// // 60 rpm allows one request per second: the second one waits for the first to leave.
/// let refused = provider.request(t, "small", 100);
/// assert_eq!(refused.reject_kind(), Some(RejectKind::Requests));
/// assert_eq!(refused.retry_after(), Some(Duration::from_secs(1)));
/// // Another model has its own limits.
/// assert!(provider.request(t, "other", 100).is_accept());
/// # Ok::<(), ratellmiter_sim::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Provider {
    default: ProviderConfig,
    configured: Vec<String>,
    models: BTreeMap<String, ModelState>,
    log: Vec<RequestRecord>,
    last_now: Duration,
}

impl Provider {
    /// A provider whose every model follows `default`.
    pub fn new(default: ProviderConfig) -> Result<Self, ConfigError> {
        default.validate()?;
        Ok(Self {
            default,
            configured: Vec::new(),
            models: BTreeMap::new(),
            log: Vec::new(),
            last_now: Duration::ZERO,
        })
    }

    /// Gives `model` its own limits.
    pub fn with_model(
        mut self,
        model: impl Into<String>,
        config: ProviderConfig,
    ) -> Result<Self, ConfigError> {
        let model = model.into();
        config.validate().map_err(|e| e.for_model(&model))?;
        if !self.configured.contains(&model) {
            self.configured.push(model.clone());
        }
        self.models.insert(model, ModelState::new(config));
        Ok(self)
    }

    /// The configured model names, in the order they were added.
    pub fn models(&self) -> &[String] {
        &self.configured
    }

    /// The limits that apply to `model`.
    pub fn config(&self, model: &str) -> &ProviderConfig {
        self.models.get(model).map_or(&self.default, |m| &m.config)
    }

    /// Decides `model`'s request of `tokens` tokens at `now`, and records it.
    pub fn request(&mut self, now: Duration, model: &str, tokens: u64) -> Decision {
        self.request_kinds(now, model, tokens, Ask::default())
    }

    /// Decides `model`'s request at `now` of `ask.input` input tokens reserving
    /// `ask.output` output tokens (`tokens`, their total, counts against `tpm`). Once
    /// answered, [`answered`](Self::answered) corrects the output and ends the request.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ratellmiter_sim::{Ask, Decision, Provider, ProviderConfig, RejectKind};
    ///
    /// let config = ProviderConfig { output_tpm: Some(2_000), ..Default::default() };
    /// let mut provider = Provider::new(config)?;
    /// let ask = Ask { input: 100, output: 1_024 };
    /// let Decision::Accept(a) = provider.request_kinds(Duration::ZERO, "m", 1_124, ask) else { panic!() };
    /// let second = provider.request_kinds(Duration::from_secs(1), "m", 1_124, ask);
    /// assert_eq!(second.reject_kind(), Some(RejectKind::OutputTokens));
    /// provider.answered("m", a.id, 300); // the answer used 300: 724 come back
    /// assert!(provider.request_kinds(Duration::from_secs(2), "m", 1_124, ask).is_accept());
    /// # Ok::<(), ratellmiter_sim::ConfigError>(())
    /// ```
    pub fn request_kinds(&mut self, now: Duration, model: &str, tokens: u64, ask: Ask) -> Decision {
        let now = now.max(self.last_now);
        self.last_now = now;
        let state = match self.models.get_mut(model) {
            Some(state) => state,
            None => self
                .models
                .entry(model.to_owned())
                .or_insert_with(|| ModelState::new(self.default.clone())),
        };
        let decision = state.request(now, tokens, ask, self.log.len() as u64);
        self.log.push(RequestRecord {
            at: now,
            model: model.to_owned(),
            tokens,
            input: ask.input,
            status: match &decision {
                Decision::Accept(_) => 200,
                Decision::Reject(r) => r.status,
            },
            rejection: decision.reject_kind(),
        });
        decision
    }

    /// The answer to `model`'s request `id` used `output` output tokens: the output
    /// budget gets back the rest of the reservation, and the request no longer counts as
    /// in flight.
    pub fn answered(&mut self, model: &str, id: u64, output: u64) {
        if let Some(state) = self.models.get_mut(model) {
            state.output.correct(id, output);
            state.in_flight = state.in_flight.saturating_sub(1);
        }
    }

    /// Every request so far, in order.
    pub fn log(&self) -> &[RequestRecord] {
        &self.log
    }

    /// Summary of every request so far.
    pub fn metrics(&self) -> Metrics {
        Metrics::from_records(&self.log)
    }
}

/// One model's limits and the traffic they have seen.
#[derive(Debug, Clone)]
struct ModelState {
    config: ProviderConfig,
    requests: SlidingWindow,
    tokens: SlidingWindow,
    /// Times of refusals that count toward the penalty box.
    refusals: SlidingWindow,
    penalty_until: Option<Duration>,
    /// When this model's first request came: the origin of
    /// [`ProviderConfig::outages_after_first_request`].
    first_request: Option<Duration>,
    rng: ChaCha8Rng,
    input: Ledger,
    output: Ledger,
    day_requests: DayCount,
    day_tokens: DayCount,
    in_flight: u32,
}

impl ModelState {
    fn new(config: ProviderConfig) -> Self {
        Self {
            // ChaCha8 rather than `StdRng`: its stream is fixed across `rand` versions, so
            // a seed names the same latencies for good.
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            requests: SlidingWindow::default(),
            tokens: SlidingWindow::default(),
            refusals: SlidingWindow::default(),
            penalty_until: None,
            first_request: None,
            input: Ledger::default(),
            output: Ledger::default(),
            day_requests: DayCount::default(),
            day_tokens: DayCount::default(),
            in_flight: 0,
        }
    }

    fn request(&mut self, now: Duration, tokens: u64, ask: Ask, id: u64) -> Decision {
        self.first_request.get_or_insert(now);
        self.requests.prune(now, MINUTE);
        self.tokens.prune(now, MINUTE);
        if let Some(p) = self.config.penalty {
            self.refusals.prune(now, p.window);
        }
        if self.penalty_until.is_some_and(|until| until <= now) {
            self.penalty_until = None;
        }

        let refusal = match self.refusal(now, tokens) {
            None => self.kind_refusal(now, tokens, ask),
            other => other,
        };
        let (kind, mut retry_at) = match refusal {
            None => return Decision::Accept(self.accept(now, tokens, ask, id)),
            Some(refusal) => refusal,
        };
        if matches!(
            kind,
            RejectKind::Requests | RejectKind::Tokens | RejectKind::Acceleration
        ) {
            self.count_toward_penalty(now);
            // The refusal that fills the box already announces the wait to its end.
            if let Some(until) = self.penalty_until {
                retry_at = self.ready_at(until, tokens);
            }
        }
        let announce = match kind {
            RejectKind::Outage => self.config.outage_retry_after,
            RejectKind::InsufficientQuota | RejectKind::TooLarge | RejectKind::Concurrency => false,
            _ => self.config.retry_after,
        };
        Decision::Reject(Rejected {
            status: if kind == RejectKind::Outage {
                self.config.outage_status
            } else {
                429
            },
            kind,
            retry_after: retry_at
                .filter(|_| announce)
                .map(|at| at.saturating_sub(now)),
            headers: self.headers(now),
        })
    }

    /// Why a request at `now` is refused and when it would be accepted, or `None` to accept.
    fn refusal(&self, now: Duration, tokens: u64) -> Option<(RejectKind, Option<Duration>)> {
        if self.config.quota_exhausted {
            return Some((RejectKind::InsufficientQuota, None));
        }
        if let Some(end) = self.outage_end(now) {
            return Some((RejectKind::Outage, Some(end)));
        }
        if let Some(until) = self.penalty_until {
            return Some((RejectKind::Penalty, self.ready_at(until, tokens)));
        }
        let c = &self.config;
        let kind = if !self.fits(&self.requests, now, c.rpm.into(), 1) {
            RejectKind::Requests
        } else if c.tpm.is_some_and(|tpm| tokens > tpm) {
            return Some((RejectKind::TooLarge, None));
        } else if c
            .tpm
            .is_some_and(|tpm| !self.fits(&self.tokens, now, tpm, tokens))
        {
            RejectKind::Tokens
        } else if self.accelerates(now) {
            RejectKind::Acceleration
        } else {
            return None;
        };
        Some((kind, self.ready_at(now, tokens)))
    }

    /// The refusal by the limits by kind (see [`crate::kinds`]), if any, and when the
    /// request would fit them (for a daily limit, the day boundary).
    fn kind_refusal(
        &mut self,
        now: Duration,
        tokens: u64,
        ask: Ask,
    ) -> Option<(RejectKind, Option<Duration>)> {
        let c = &self.config;
        let (_, day_end) = DayCount::day_of(now, c.first_day_end);
        if c.rpd
            .is_some_and(|n| self.day_requests.used(now, c.first_day_end) >= n)
        {
            return Some((RejectKind::RequestsPerDay, Some(day_end)));
        }
        if c.tpd
            .is_some_and(|n| self.day_tokens.used(now, c.first_day_end) + tokens > n)
        {
            return Some((RejectKind::TokensPerDay, Some(day_end)));
        }
        if c.max_concurrent.is_some_and(|n| self.in_flight >= n) {
            return Some((RejectKind::Concurrency, None));
        }
        if let Some(n) = c.input_tpm {
            let at = self.input.ready_at(now, n, ask.input);
            if at > now {
                return Some((RejectKind::InputTokens, Some(at)));
            }
        }
        if let Some(n) = c.output_tpm {
            let at = self.output.ready_at(now, n, ask.output);
            if at > now {
                return Some((RejectKind::OutputTokens, Some(at)));
            }
        }
        None
    }

    /// Whether `extra` fits under `per_minute`, both per quantum and per minute, at `now`.
    /// A quantum holds at least `extra`, so what fits in the minute is never too large
    /// for every quantum.
    fn fits(&self, window: &SlidingWindow, now: Duration, per_minute: u64, extra: u64) -> bool {
        let quantum = self.config.per_quantum(per_minute).max(extra);
        window.ready_at(now, self.config.quantum, quantum, extra) == Some(now)
            && window.ready_at(now, MINUTE, per_minute, extra) == Some(now)
    }

    /// Whether one more request at `t` would break the acceleration limit.
    fn accelerates(&self, t: Duration) -> bool {
        let Some(a) = self.config.acceleration else {
            return false;
        };
        let current = self.requests.sum(t, SECOND) + 1;
        let previous = self.requests.sum_previous(t, SECOND);
        current as f64 > f64::from(a.floor).max(a.factor * previous as f64)
    }

    /// The earliest time from `from` at which the request would be accepted if no other
    /// traffic arrived (`None` if never).
    fn ready_at(&self, from: Duration, tokens: u64) -> Option<Duration> {
        let c = &self.config;
        let rpm = u64::from(c.rpm);
        // The per-quantum and per-minute limits only loosen as traffic ages out, so the
        // latest of their ready times satisfies all of them from then on.
        let mut at = from
            .max(
                self.requests
                    .ready_at(from, c.quantum, c.requests_per_quantum(), 1)?,
            )
            .max(self.requests.ready_at(from, MINUTE, rpm, 1)?);
        if let Some(tpm) = c.tpm {
            at = at
                .max(self.tokens.ready_at(
                    from,
                    c.quantum,
                    c.per_quantum(tpm).max(tokens),
                    tokens,
                )?)
                .max(self.tokens.ready_at(from, MINUTE, tpm, tokens)?);
        }
        // The acceleration allowance can shrink as traffic ages out, so try each moment it
        // changes: when a recent request leaves the last second or the second before.
        // Once all have left it allows `floor` ≥ 1, so the search ends.
        let changes = self
            .requests
            .times_in(at, 2 * SECOND)
            .flat_map(|t| [t + SECOND, t + 2 * SECOND])
            .filter(|&t| t > at);
        let mut candidates: Vec<Duration> = std::iter::once(at).chain(changes).collect();
        candidates.sort_unstable();
        candidates.into_iter().find(|&t| !self.accelerates(t))
    }

    /// The end of the outage (outages chained end to end count as one) covering `now`.
    fn outage_end(&self, now: Duration) -> Option<Duration> {
        let c = &self.config;
        let after_first = self.first_request.into_iter().flat_map(|first| {
            c.outages_after_first_request
                .iter()
                .map(move |o| first + o.start..first + o.end)
        });
        let windows: Vec<Range<Duration>> = c.outages.iter().cloned().chain(after_first).collect();
        let mut end = windows.iter().find(|o| o.contains(&now))?.end;
        while let Some(next) = windows.iter().find(|o| o.contains(&end)) {
            end = next.end;
        }
        Some(end)
    }

    fn count_toward_penalty(&mut self, now: Duration) {
        let Some(p) = self.config.penalty else {
            return;
        };
        self.refusals.push(now, 1);
        if self.refusals.sum(now, p.window) >= u128::from(p.threshold) {
            self.penalty_until = Some(now + p.duration);
            self.refusals = SlidingWindow::default();
        }
    }

    fn accept(&mut self, now: Duration, tokens: u64, ask: Ask, id: u64) -> Accepted {
        self.requests.push(now, 1);
        self.tokens.push(now, tokens);
        self.input.push(now, id, ask.input);
        self.output.push(now, id, ask.output);
        let first_day_end = self.config.first_day_end;
        self.day_requests.add(now, first_day_end, 1);
        self.day_tokens.add(now, first_day_end, tokens);
        if self.config.max_concurrent.is_some() {
            self.in_flight += 1;
        }
        Accepted {
            id,
            latency: self.sample_latency(),
            tokens,
            headers: self.headers(now),
        }
    }

    fn sample_latency(&mut self) -> Duration {
        match self.config.latency {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => self.rng.random_range(min..=max),
            Latency::LogNormal { median, sigma } => {
                // Box–Muller: `1 − u` keeps the logarithm's argument in (0, 1].
                let (u1, u2): (f64, f64) = (self.rng.random(), self.rng.random());
                let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                Duration::try_from_secs_f64(median.as_secs_f64() * (sigma * z).exp())
                    .unwrap_or(Duration::MAX)
            }
        }
    }

    fn headers(&self, now: Duration) -> RateLimitHeaders {
        let state = |window: &SlidingWindow, limit: u64| LimitState {
            limit,
            remaining: limit
                .saturating_sub(u64::try_from(window.sum(now, MINUTE)).unwrap_or(u64::MAX)),
            reset: window
                .next_expiry(now, MINUTE)
                .map_or(Duration::ZERO, |at| at - now),
        };
        RateLimitHeaders {
            requests: state(&self.requests, self.config.rpm.into()),
            tokens: self.config.tpm.map(|tpm| state(&self.tokens, tpm)),
        }
    }
}
