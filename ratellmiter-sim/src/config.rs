//! The limits of one simulated model, their validation, and the errors that name a bad field.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// The per-minute window every limit is also enforced over.
pub const MINUTE: Duration = Duration::from_secs(60);

/// A setting that cannot work, naming the field (and the model, for a per-model config).
///
/// ```
/// use ratellmiter_sim::{Provider, ProviderConfig};
/// let err = Provider::new(ProviderConfig { rpm: 0, ..Default::default() }).unwrap_err();
/// assert_eq!(err.field(), "rpm");
/// assert!(err.to_string().contains("`rpm`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    model: Option<String>,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            model: None,
            message: message.into(),
        }
    }

    pub(crate) fn for_model(mut self, model: &str) -> Self {
        self.model = Some(model.to_owned());
        self
    }

    /// The name of the refused setting, as spelled in [`ProviderConfig`].
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The model whose config was refused, if it was not the default config.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`", self.field)?;
        if let Some(model) = &self.model {
            write!(f, " for model `{model}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Anthropic's acceleration limit: a sharp jump in traffic is refused even under the
/// per-minute limit.
///
/// The model: a request is accepted only if the accepted requests in the last second,
/// this one included, number at most `max(floor, factor × accepted in the second
/// before)`. Windows are `(now − 1 s, now]` and `(now − 2 s, now − 1 s]`. Only
/// accepted requests count as traffic, so refused bursts do not raise the allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccelerationLimit {
    /// Growth allowed from one second to the next (at least 1.0).
    pub factor: f64,
    /// Requests per second always allowed, however quiet the second before (at least 1).
    pub floor: u32,
}

impl AccelerationLimit {
    /// Factor 2 from a floor of a quarter of the per-second rate `rpm / 60` (at least 1).
    ///
    /// ```
    /// use ratellmiter_sim::AccelerationLimit;
    /// assert_eq!(AccelerationLimit::for_rpm(600), AccelerationLimit { factor: 2.0, floor: 3 });
    /// ```
    pub fn for_rpm(rpm: u32) -> Self {
        Self {
            factor: 2.0,
            floor: rpm.div_ceil(240).max(1),
        }
    }
}

/// After `threshold` rate-limit refusals within `window`, everything is refused for
/// `duration` ("throttled to a very slow rate").
///
/// Only refusals for the client's own excess count (requests, tokens, acceleration);
/// outage refusals do not. Refusals during the penalty neither count nor extend it,
/// so a client that keeps hammering is released on time: the penalty models the
/// provider's reaction to one burst, not a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PenaltyBox {
    /// Refusals that trigger the penalty (at least 1).
    pub threshold: u32,
    /// Sliding window the refusals are counted over (`(now − window, now]`).
    pub window: Duration,
    /// How long everything is refused once triggered.
    pub duration: Duration,
}

impl Default for PenaltyBox {
    /// 20 refusals within 10 s put the client in the box for 60 s.
    fn default() -> Self {
        Self {
            threshold: 20,
            window: Duration::from_secs(10),
            duration: Duration::from_secs(60),
        }
    }
}

/// How long an accepted request takes, drawn from a generator seeded by
/// [`ProviderConfig::seed`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Uniform in `[min, max]`.
    Uniform {
        /// Shortest latency.
        min: Duration,
        /// Longest latency.
        max: Duration,
    },
    /// Log-normal: `median × e^(sigma × Z)` with `Z` standard normal, the usual shape of
    /// service latencies (a long right tail).
    LogNormal {
        /// The median latency.
        median: Duration,
        /// Spread of the logarithm (0 gives the median every time).
        sigma: f64,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Self::Fixed(Duration::ZERO)
    }
}

/// Whose shape the server's refusals take (the pure model's decisions are the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorStyle {
    /// OpenAI's: `{"error": {"message", "type", "code"}}`, `x-ratelimit-*` and
    /// `retry-after`/`retry-after-ms` headers.
    #[default]
    OpenAi,
    /// Gemini's `RESOURCE_EXHAUSTED`: no rate-limit or retry-after header; the body's
    /// `details` carry a `QuotaFailure` naming the quota (per minute or per day) and a
    /// `RetryInfo.retryDelay` (`"34s"`) when the wait is known.
    Gemini,
    /// Anthropic's: `{"type": "error", "error": {"type": "rate_limit_error", "message"}}`,
    /// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` headers (the
    /// reset an RFC 3339 time) and `retry-after`.
    Anthropic,
}

/// The limits and behaviour of one simulated model. Build with struct update syntax
/// from [`Default`]; [`Provider::new`](crate::Provider::new) validates it.
///
/// Every per-minute limit is enforced *quantized*, as OpenAI documents: over the
/// sliding window `quantum` it allows `ceil(limit × quantum / 60 s)`, and over the
/// sliding 60 s window the full limit. A sliding window of length `w` ending at `now`
/// is `(now − w, now]`, so a request exactly `w` after another no longer shares its
/// window.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Requests per minute (at least 1).
    pub rpm: u32,
    /// Tokens per minute, when tokens are limited too (at least 1).
    pub tpm: Option<u64>,
    /// Window the per-minute limits are quantized over (default 1 s; 60 s disables the
    /// quantization).
    pub quantum: Duration,
    /// Anthropic-style acceleration limit, off by default.
    pub acceleration: Option<AccelerationLimit>,
    /// Intervals since the scenario start during which every request is refused.
    pub outages: Vec<Range<Duration>>,
    /// Intervals since the model's first request during which every request is
    /// refused (`--outage +5..+35`): outages a client can line up with its own start
    /// without knowing when the server started. A window starting at 0 refuses the
    /// first request too.
    pub outages_after_first_request: Vec<Range<Duration>>,
    /// HTTP status of outage refusals: 429 (default), 503, or 529 (Anthropic's "overloaded").
    pub outage_status: u16,
    /// Penalty box after repeated refusals, off by default.
    pub penalty: Option<PenaltyBox>,
    /// Whether refusals for requests, tokens, acceleration and penalties carry the time
    /// until the request would be accepted (default true).
    pub retry_after: bool,
    /// Whether outage refusals carry the time to the outage's end (default false:
    /// outages are unannounced).
    pub outage_retry_after: bool,
    /// Refuse everything as OpenAI's final `insufficient_quota`, which clients must not
    /// retry (default false).
    pub quota_exhausted: bool,
    /// Latency of accepted requests.
    pub latency: Latency,
    /// Seed of the latency generator: the same seed gives the same latencies.
    pub seed: u64,
    /// Input tokens per minute (Anthropic's ITPM), over a sliding minute.
    pub input_tpm: Option<u64>,
    /// Output tokens per minute (Anthropic's OTPM): a request is charged its output
    /// reservation (`max_tokens`) up front, corrected by
    /// [`Provider::answered`](crate::Provider::answered).
    pub output_tpm: Option<u64>,
    /// Requests per day (Gemini's and Groq's RPD).
    pub rpd: Option<u64>,
    /// Tokens per day (Groq's TPD).
    pub tpd: Option<u64>,
    /// When the first day ends, after the scenario start; the next days are 24 h each
    /// (default 24 h: the scenario starts at the day boundary).
    pub first_day_end: Duration,
    /// At most this many accepted requests unanswered at once
    /// ([`Provider::answered`](crate::Provider::answered) ends one).
    pub max_concurrent: Option<u32>,
    /// The shape of refusals over HTTP (default OpenAI's).
    pub error_style: ErrorStyle,
}

impl Default for ProviderConfig {
    /// 600 rpm, no token limit, 1 s quantum, no acceleration limit, outages or penalty,
    /// retry-after on (off for outages), zero latency, seed 0.
    fn default() -> Self {
        Self {
            rpm: 600,
            tpm: None,
            quantum: Duration::from_secs(1),
            acceleration: None,
            outages: Vec::new(),
            outages_after_first_request: Vec::new(),
            outage_status: 429,
            penalty: None,
            retry_after: true,
            outage_retry_after: false,
            quota_exhausted: false,
            latency: Latency::default(),
            seed: 0,
            input_tpm: None,
            output_tpm: None,
            rpd: None,
            tpd: None,
            first_day_end: Duration::from_secs(86_400),
            max_concurrent: None,
            error_style: ErrorStyle::OpenAi,
        }
    }
}

impl ProviderConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rpm == 0 {
            return Err(ConfigError::new("rpm", "must be at least 1"));
        }
        for (field, v) in [
            ("tpm", self.tpm),
            ("input_tpm", self.input_tpm),
            ("output_tpm", self.output_tpm),
            ("rpd", self.rpd),
            ("tpd", self.tpd),
            ("max_concurrent", self.max_concurrent.map(u64::from)),
        ] {
            if v == Some(0) {
                return Err(ConfigError::new(field, "must be at least 1 when set"));
            }
        }
        if self.quantum.is_zero() || self.quantum > MINUTE {
            return Err(ConfigError::new(
                "quantum",
                format!("must be in (0, 60s], got {:?}", self.quantum),
            ));
        }
        if let Some(a) = self.acceleration {
            if !(a.factor.is_finite() && a.factor >= 1.0) {
                return Err(ConfigError::new(
                    "acceleration.factor",
                    format!("must be a finite number ≥ 1, got {}", a.factor),
                ));
            }
            if a.floor == 0 {
                return Err(ConfigError::new("acceleration.floor", "must be at least 1"));
            }
        }
        if let Some(o) = self
            .outages
            .iter()
            .chain(&self.outages_after_first_request)
            .find(|o| o.start >= o.end)
        {
            return Err(ConfigError::new(
                "outages",
                format!("each outage must end after it starts, got {o:?}"),
            ));
        }
        if ![429, 503, 529].contains(&self.outage_status) {
            return Err(ConfigError::new(
                "outage_status",
                format!("must be 429, 503 or 529, got {}", self.outage_status),
            ));
        }
        if let Some(p) = self.penalty {
            if p.threshold == 0 {
                return Err(ConfigError::new("penalty.threshold", "must be at least 1"));
            }
            if p.window.is_zero() {
                return Err(ConfigError::new("penalty.window", "must be positive"));
            }
            if p.duration.is_zero() {
                return Err(ConfigError::new("penalty.duration", "must be positive"));
            }
        }
        match self.latency {
            Latency::Uniform { min, max } if min > max => Err(ConfigError::new(
                "latency",
                format!("uniform min {min:?} exceeds max {max:?}"),
            )),
            Latency::LogNormal { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => {
                Err(ConfigError::new(
                    "latency",
                    format!("log-normal sigma must be finite and ≥ 0, got {sigma}"),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Requests allowed in one `quantum`: `ceil(rpm × quantum / 60 s)`.
    ///
    /// ```
    /// use ratellmiter_sim::ProviderConfig;
    /// assert_eq!(ProviderConfig { rpm: 600, ..Default::default() }.requests_per_quantum(), 10);
    /// assert_eq!(ProviderConfig { rpm: 100, ..Default::default() }.requests_per_quantum(), 2);
    /// ```
    pub fn requests_per_quantum(&self) -> u64 {
        self.per_quantum(u64::from(self.rpm))
    }

    /// Tokens allowed in one `quantum`: `ceil(tpm × quantum / 60 s)`, when tokens are
    /// limited. A single request larger than this (but within `tpm`) is still accepted
    /// into a quantum holding no other tokens: a request is refused as too large only
    /// when it exceeds the whole minute's budget, as OpenAI's "Request too large".
    pub fn tokens_per_quantum(&self) -> Option<u64> {
        self.tpm.map(|tpm| self.per_quantum(tpm))
    }

    /// `ceil(per_minute × quantum / 60 s)`.
    pub(crate) fn per_quantum(&self, per_minute: u64) -> u64 {
        let scaled = u128::from(per_minute) * self.quantum.as_nanos();
        u64::try_from(scaled.div_ceil(MINUTE.as_nanos())).unwrap_or(u64::MAX)
    }
}

/// An outage window as `llmiter mock-server --outage` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutageWindow {
    /// `START..END`: seconds since the server (the scenario) started.
    FromStart(Range<Duration>),
    /// `+START..+END`: seconds since the model's first request.
    FromFirstRequest(Range<Duration>),
}

impl ProviderConfig {
    /// Adds `window` to [`ProviderConfig::outages`] or
    /// [`ProviderConfig::outages_after_first_request`], as it counts.
    pub fn with_outage(mut self, window: OutageWindow) -> Self {
        match window {
            OutageWindow::FromStart(w) => self.outages.push(w),
            OutageWindow::FromFirstRequest(w) => self.outages_after_first_request.push(w),
        }
        self
    }
}

/// Parses an outage spec: `START..END` in seconds since the server started, or
/// `+START..+END` in seconds since the model's first request; fractions allowed, an
/// `s` after a number too.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter_sim::{OutageWindow, parse_outage};
/// let s = Duration::from_secs;
/// assert_eq!(parse_outage("10..40").unwrap(), OutageWindow::FromStart(s(10)..s(40)));
/// assert_eq!(
///     parse_outage("0.5..2").unwrap(),
///     OutageWindow::FromStart(Duration::from_millis(500)..s(2))
/// );
/// assert_eq!(
///     parse_outage("+5s..+35s").unwrap(),
///     OutageWindow::FromFirstRequest(s(5)..s(35))
/// );
/// assert_eq!(parse_outage("40..10").unwrap_err().field(), "outage");
/// assert_eq!(parse_outage("+5..35").unwrap_err().field(), "outage");
/// ```
pub fn parse_outage(spec: &str) -> Result<OutageWindow, ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(
            "outage",
            format!(
                "expected START..END in seconds since the server started, like 10..40, or \
                 +START..+END since the first request, like +5..+35; {why} in {spec:?}"
            ),
        )
    };
    let (start, end) = spec.split_once("..").ok_or_else(|| bad("no `..`"))?;
    let (start, end) = (start.trim(), end.trim());
    let relative = start.starts_with('+');
    if relative != end.starts_with('+') {
        return Err(bad("give both ends with `+` or neither"));
    }
    let secs = |s: &str| {
        let number = s.trim_start_matches('+');
        let number = number.strip_suffix('s').unwrap_or(number);
        number
            .parse::<f64>()
            .ok()
            .and_then(|v| Duration::try_from_secs_f64(v).ok())
            .ok_or_else(|| bad(&format!("`{s}` is not a number of seconds ≥ 0")))
    };
    let (start, end) = (secs(start)?, secs(end)?);
    if start >= end {
        return Err(bad("the end is not after the start"));
    }
    Ok(if relative {
        OutageWindow::FromFirstRequest(start..end)
    } else {
        OutageWindow::FromStart(start..end)
    })
}
