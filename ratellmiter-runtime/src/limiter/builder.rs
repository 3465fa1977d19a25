//! [`LimiterBuilder`]: every setting of a limiter, validated at `build()`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::BucketRateLimiter;
use crate::config::{ConfigError, DayReset, LimiterConfig, RampShape};
use crate::shared::SharedBackend;

/// Builds a [`BucketRateLimiter`] with settings other than rateLLMiter's defaults.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use ratellmiter::BucketRateLimiter;
///
/// let limiter = BucketRateLimiter::builder()
///     .rpm(500)
///     .tpm(200_000)
///     .ramp_start(0.22)
///     .ramp_step(1.0) // slow start: doubling each second
///     .probe_interval(Duration::from_secs(10))
///     .probe_factor(1.5)
///     .probe_max(Duration::from_secs(65))
///     .max_retries(20)
///     .adaptive(true)
///     .build()
///     .unwrap();
/// assert_eq!(limiter.config().tpm, Some(200_000));
/// assert_eq!(BucketRateLimiter::builder().rpm(0).build().unwrap_err().field(), "rpm");
/// // A token budget alone is not enough: the request budget is required.
/// assert_eq!(BucketRateLimiter::builder().tpm(1_000).build().unwrap_err().field(), "rpm");
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LimiterBuilder {
    cfg: LimiterConfig,
    /// Whether a request budget was given: `build()` refuses a limiter without one.
    rpm_given: bool,
    name: Option<String>,
    shared: Option<Arc<dyn SharedBackend>>,
    wall_clock: Option<SystemTime>,
}

impl LimiterBuilder {
    /// Requests per minute: required (here or through [`config`](Self::config)).
    pub fn rpm(mut self, rpm: u32) -> Self {
        self.cfg.rpm = rpm;
        self.rpm_given = true;
        self
    }
    /// Tokens per minute, beside the requests per minute: input and output together
    /// (OpenAI's TPM).
    pub fn tpm(mut self, tpm: u64) -> Self {
        self.cfg.tpm = Some(tpm);
        self
    }
    /// Input tokens per minute (Anthropic's and Gemini's ITPM), charged with each
    /// call's input estimate (or its total, when it gives no split).
    pub fn input_tpm(mut self, n: u64) -> Self {
        self.cfg.input_tpm = Some(n);
        self
    }
    /// Output tokens per minute (Anthropic's OTPM), charged with each call's output
    /// reservation (its `max_tokens`) and corrected by the reported usage.
    pub fn output_tpm(mut self, n: u64) -> Self {
        self.cfg.output_tpm = Some(n);
        self
    }
    /// Requests per day: a quota counted from the day boundary
    /// ([`day_reset`](Self::day_reset)). Once spent a call fails at once with
    /// [`AcquireError::QuotaExhausted`](crate::AcquireError::QuotaExhausted), unless its
    /// deadline lets it wait for the reset.
    pub fn rpd(mut self, n: u64) -> Self {
        self.cfg.rpd = Some(n);
        self
    }
    /// Tokens per day (Groq's TPD), a quota like [`rpd`](Self::rpd).
    pub fn tpd(mut self, n: u64) -> Self {
        self.cfg.tpd = Some(n);
        self
    }
    /// When the daily quotas start again (default: UTC midnight).
    pub fn day_reset(mut self, reset: DayReset) -> Self {
        self.cfg.day_reset = reset;
        self
    }
    /// At most `n` tickets out at once: a ticket comes back when its call ends, any
    /// way (return, error, panic, cancellation), or when a streamed answer ends.
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.cfg.max_in_flight = Some(n);
        self
    }
    /// Configure the budgets from the first answer's `*-limit-*` headers
    /// (`x-ratelimit-limit-{requests,tokens}` of OpenAI and Groq,
    /// `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-limit`), for a
    /// user who does not know their tier: the configured `rpm` paces the calls until the
    /// first answer comes. A request limit whose reset is more than a minute away (Groq)
    /// is taken as `rpd`. Headers reach the limiter through the integrations
    /// (`reqwest::check`, the tower layer) or `current().observe_rate_limits`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use ratellmiter::{BucketRateLimiter, current, headers::RateLimitHeaders};
    ///
    /// let limiter = BucketRateLimiter::builder().rpm(10).learn_limits(true).build().unwrap();
    /// let answer = [
    ///     ("anthropic-ratelimit-requests-limit", "50"),
    ///     ("anthropic-ratelimit-input-tokens-limit", "30000"),
    ///     ("anthropic-ratelimit-output-tokens-limit", "8000"),
    /// ];
    /// let headers = RateLimitHeaders::parse(|n| answer.iter().find(|h| h.0 == n).map(|h| h.1));
    /// let out: Result<(), std::io::Error> = limiter
    ///     .run(|| async { current().observe_rate_limits(&headers); Ok(()) })
    ///     .await;
    /// out.unwrap();
    /// let cfg = limiter.config();
    /// assert_eq!((cfg.rpm, cfg.input_tpm, cfg.output_tpm), (50, Some(30_000), Some(8_000)));
    /// # }
    /// ```
    pub fn learn_limits(mut self, on: bool) -> Self {
        self.cfg.learn_limits = on;
        self
    }
    /// The wall-clock time now, from which the day boundaries of the daily quotas are
    /// counted (default `SystemTime::now()`): a test in virtual time sets the simulated
    /// day's start here.
    pub fn wall_clock(mut self, now: SystemTime) -> Self {
        self.wall_clock = Some(now);
        self
    }
    /// Share of the full rate a ramp starts at (default 0.22).
    pub fn ramp_start(mut self, share: f64) -> Self {
        self.cfg.ramp_start = share;
        self
    }
    /// How fast the ramp climbs each second (default 1.0: the rate doubles; see
    /// [`LimiterConfig::ramp_step`]).
    pub fn ramp_step(mut self, share: f64) -> Self {
        self.cfg.ramp_step = share;
        self
    }
    /// The shape of the ramp (default [`RampShape::SlowStart`]; rateLLMiter's is
    /// [`RampShape::Linear`]).
    pub fn ramp_shape(mut self, shape: RampShape) -> Self {
        self.cfg.ramp_shape = shape;
        self
    }
    /// First wait before a probe when the error gave no `retry_after` (default 10 s).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.cfg.probe_initial = interval;
        self
    }
    /// Growth of the probe interval per failed probe (default 1.5).
    pub fn probe_factor(mut self, factor: f64) -> Self {
        self.cfg.probe_factor = factor;
        self
    }
    /// Longest probe interval (default 65 s).
    pub fn probe_max(mut self, max: Duration) -> Self {
        self.cfg.probe_max = max;
        self
    }
    /// How long a probe may go unanswered before it counts as refused (default 60 s; see
    /// [`LimiterConfig::probe_timeout`]).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.cfg.probe_timeout = timeout;
        self
    }
    /// Re-runs after a rate limit before the error is returned (default 20).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.cfg.max_retries = n;
        self
    }
    /// Learn a lower rate from repeated rate limits (default on).
    pub fn adaptive(mut self, on: bool) -> Self {
        self.cfg.adaptive = on;
        self
    }
    /// High-priority tickets allowed in a row while normal calls wait (default 3).
    pub fn high_priority_streak(mut self, n: u32) -> Self {
        self.cfg.high_priority_streak = n;
        self
    }
    /// The service name used in logs (set by the monitor when registered).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Every setting at once.
    pub fn config(mut self, cfg: LimiterConfig) -> Self {
        self.cfg = cfg;
        self.rpm_given = true;
        self
    }
    /// Shares the budget with every process using the same store and key, e.g. a
    /// `RedisBackend` (feature `redis`): the rate then holds across all of them. See
    /// [`crate::shared`]. [`try_now`](crate::Acquire::try_now) never gets a
    /// ticket from a shared limiter, since asking the store means waiting.
    pub fn shared(mut self, backend: impl SharedBackend) -> Self {
        self.shared = Some(Arc::new(backend));
        self
    }
    /// Validates the settings and makes the limiter; without an `rpm` (a `tpm` alone is
    /// not a request budget) it says so.
    pub fn build(self) -> Result<BucketRateLimiter, ConfigError> {
        // A wrong value is named first; then a missing request budget.
        self.cfg.validate()?;
        if !self.rpm_given {
            return Err(ConfigError::new(
                "rpm",
                "not set: every limiter needs a request budget, e.g. `.rpm(500)`",
            ));
        }
        let limiter = BucketRateLimiter::from_config(self.cfg, self.wall_clock)?;
        if let Some(name) = self.name {
            limiter.set_name(&name);
        }
        if let Some(backend) = self.shared {
            limiter.share(backend);
        }
        Ok(limiter)
    }
}
