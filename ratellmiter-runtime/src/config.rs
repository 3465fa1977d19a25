//! Validated settings for a limiter and for the monitor, and the errors that name a bad field.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The largest requests-per-minute a limiter accepts (100 000 per second).
pub const MAX_RPM: u32 = 6_000_000;
/// The largest tokens-per-minute budget a limiter accepts.
pub const MAX_TPM: u64 = 100_000_000_000;
/// The largest requests-per-day quota a limiter accepts.
pub const MAX_RPD: u64 = MAX_RPM as u64 * 1440;
/// The largest tokens-per-day quota a limiter accepts.
pub const MAX_TPD: u64 = MAX_TPM * 1440;
/// The longest probe interval a limiter accepts.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(3600);

/// A setting that cannot work, naming the field and the accepted range.
///
/// ```
/// use ratellmiter::BucketRateLimiter;
/// let err = BucketRateLimiter::try_new(0).unwrap_err();
/// assert_eq!(err.field(), "rpm");
/// assert!(err.to_string().contains("rpm"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    field: &'static str,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The name of the setting that was refused, as spelled in the builder.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Everything that shapes one limiter's pacing. Built and validated by
/// [`LimiterBuilder`](crate::LimiterBuilder); the defaults are rateLLMiter's.
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterConfig {
    /// Requests per minute.
    pub rpm: u32,
    /// Tokens per minute, when the provider also limits tokens (input and output
    /// together, or a call's `tokens` total).
    pub tpm: Option<u64>,
    /// Input (prompt) tokens per minute, as Anthropic and Gemini count them apart.
    pub input_tpm: Option<u64>,
    /// Output (completion) tokens per minute, charged with each call's output
    /// reservation (its `max_tokens`) and corrected by the reported usage.
    pub output_tpm: Option<u64>,
    /// Requests per day: a quota, not a pace (see [`crate::pacer`], "Budgets").
    pub rpd: Option<u64>,
    /// Tokens per day: a quota, not a pace.
    pub tpd: Option<u64>,
    /// When the daily budgets start again.
    pub day_reset: DayReset,
    /// At most this many tickets out at once (calls in flight).
    pub max_in_flight: Option<u32>,
    /// Configure the budgets from the first answer's `*-limit-*` headers (see
    /// [`LimiterBuilder::learn_limits`](crate::LimiterBuilder::learn_limits)).
    pub learn_limits: bool,
    /// Share of the full per-second rate at which a ramp starts (default 0.22: the first
    /// second stays under an acceleration limit's floor of a quarter of the rate;
    /// rateLLMiter: 0.25).
    pub ramp_start: f64,
    /// How fast the ramp climbs each second: with [`RampShape::SlowStart`] the share of
    /// the rate in force it adds (default 1.0: the rate doubles each second); with
    /// [`RampShape::Linear`] the share of the full rate (rateLLMiter: 0.10).
    pub ramp_step: f64,
    /// The shape of the ramp (see [`crate::pacer`], "Ramp").
    pub ramp_shape: RampShape,
    /// First wait before probing after a rate limit without `retry_after` (rateLLMiter: 10 s).
    pub probe_initial: Duration,
    /// Growth of the probe interval after each failed probe (rateLLMiter: 1.5).
    pub probe_factor: f64,
    /// Cap of the probe interval (rateLLMiter: 65 s).
    pub probe_max: Duration,
    /// How long a probe may go unanswered before it counts as refused and the next probe
    /// goes out on the probe schedule (default 60 s: longer than nearly every chat
    /// completion takes, so a slow but healthy probe is not taken for a refusal, yet short
    /// beside an incident, so a provider holding connections open costs a minute, not
    /// the rest of the run).
    pub probe_timeout: Duration,
    /// How often a call is re-run after a rate-limit error before the error is returned (rateLLMiter: 20).
    pub max_retries: u32,
    /// Whether repeated rate-limit episodes lower the rate the limiter allows (see [`crate::pacer`], "Adaptive limit").
    pub adaptive: bool,
    /// How many high-priority tickets may go out in a row while normal calls wait.
    pub high_priority_streak: u32,
}

/// How the allowed rate climbs after a jump in demand (see [`crate::pacer`], "Ramp").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RampShape {
    /// TCP's slow start: from `ramp_start`, the rate grows by `ramp_step` of itself each
    /// second (doubling by default) while calls wait; after a refusal it climbs on by a
    /// tenth of the full rate per second, and after a short pause it resumes at the rate
    /// the server was accepting. The default.
    #[default]
    SlowStart,
    /// rateLLMiter's: from `ramp_start`, `ramp_step` of the full rate more each second,
    /// and the ramp starts again after every pause.
    Linear,
}

impl LimiterConfig {
    /// rateLLMiter's pacing: a linear ramp from 25 % adding 10 % of the rate each second,
    /// restarted after every pause, and no learned limit.
    ///
    /// ```
    /// use ratellmiter::{BucketRateLimiter, LimiterConfig};
    /// let cfg = LimiterConfig { rpm: 500, ..LimiterConfig::ratellmiter() };
    /// let limiter = BucketRateLimiter::builder().config(cfg).build().unwrap();
    /// assert_eq!(limiter.config().ramp_step, 0.10);
    /// ```
    pub fn ratellmiter() -> Self {
        Self {
            ramp_start: 0.25,
            ramp_step: 0.10,
            ramp_shape: RampShape::Linear,
            adaptive: false,
            ..Self::default()
        }
    }
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            rpm: 300,
            tpm: None,
            input_tpm: None,
            output_tpm: None,
            rpd: None,
            tpd: None,
            day_reset: DayReset::default(),
            max_in_flight: None,
            learn_limits: false,
            ramp_start: 0.22,
            ramp_step: 1.0,
            ramp_shape: RampShape::SlowStart,
            probe_initial: Duration::from_secs(10),
            probe_factor: 1.5,
            probe_max: Duration::from_secs(65),
            probe_timeout: Duration::from_secs(60),
            max_retries: 20,
            adaptive: true,
            high_priority_streak: 3,
        }
    }
}

impl LimiterConfig {
    /// Checks every field, returning the first that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_rpm(self.rpm)?;
        if let Some(tpm) = self.tpm {
            validate_tpm(tpm)?;
        }
        for (field, value) in [
            ("input_tpm", self.input_tpm),
            ("output_tpm", self.output_tpm),
        ] {
            if let Some(v) = value {
                validate_tokens(field, v, MAX_TPM, "tokens per minute")?;
            }
        }
        if let Some(rpd) = self.rpd {
            validate_tokens("rpd", rpd, MAX_RPD, "requests per day")?;
        }
        if let Some(tpd) = self.tpd {
            validate_tokens("tpd", tpd, MAX_TPD, "tokens per day")?;
        }
        self.day_reset.validate()?;
        if self.max_in_flight == Some(0) {
            return Err(ConfigError::new(
                "max_in_flight",
                "must be at least 1 call in flight",
            ));
        }
        fraction("ramp_start", self.ramp_start)?;
        fraction("ramp_step", self.ramp_step)?;
        if self.probe_initial.is_zero() {
            return Err(ConfigError::new(
                "probe_interval",
                "must be longer than zero",
            ));
        }
        if self.probe_max > MAX_PROBE_INTERVAL {
            return Err(ConfigError::new("probe_max", "must be at most one hour"));
        }
        if self.probe_initial > self.probe_max {
            return Err(ConfigError::new(
                "probe_interval",
                format!(
                    "{:?} is longer than probe_max ({:?})",
                    self.probe_initial, self.probe_max
                ),
            ));
        }
        if self.probe_timeout.is_zero() || self.probe_timeout > MAX_PROBE_INTERVAL {
            return Err(ConfigError::new(
                "probe_timeout",
                format!(
                    "{:?} is not longer than zero and at most one hour",
                    self.probe_timeout
                ),
            ));
        }
        if !self.probe_factor.is_finite() || !(1.0..=10.0).contains(&self.probe_factor) {
            return Err(ConfigError::new(
                "probe_factor",
                format!("{} is not a number from 1 to 10", self.probe_factor),
            ));
        }
        Ok(())
    }
}

pub(crate) fn validate_rpm(rpm: u32) -> Result<(), ConfigError> {
    if rpm == 0 {
        return Err(ConfigError::new(
            "rpm",
            "must be at least 1 request per minute",
        ));
    }
    if rpm > MAX_RPM {
        return Err(ConfigError::new(
            "rpm",
            format!("{rpm} is above the supported maximum of {MAX_RPM} requests per minute"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_tpm(tpm: u64) -> Result<(), ConfigError> {
    validate_tokens("tpm", tpm, MAX_TPM, "tokens per minute")
}

/// A budget of at least one `unit` and at most `max`.
pub(crate) fn validate_tokens(
    field: &'static str,
    value: u64,
    max: u64,
    unit: &str,
) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::new(
            field,
            format!("must be at least 1 ({unit})"),
        ));
    }
    if value > max {
        return Err(ConfigError::new(
            field,
            format!("{value} is above the supported maximum of {max} {unit}"),
        ));
    }
    Ok(())
}

/// When the daily budgets (`rpd`, `tpd`) start again.
///
/// ```
/// use ratellmiter::{BucketRateLimiter, DayReset};
/// // Gemini's quotas reset at midnight Pacific time (UTC−8; UTC−7 in summer).
/// let limiter = BucketRateLimiter::builder()
///     .rpm(15)
///     .rpd(1_500)
///     .day_reset(DayReset::midnight(-8 * 3600))
///     .build()
///     .unwrap();
/// assert_eq!(limiter.config().rpd, Some(1_500));
/// let bad = BucketRateLimiter::builder().rpm(15).day_reset(DayReset::midnight(20 * 3600)).build();
/// assert_eq!(bad.unwrap_err().field(), "day_reset");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DayReset {
    /// The whole day's budget comes back at midnight in a zone `utc_offset_secs` east
    /// of UTC (negative west of it). The default is UTC midnight.
    Midnight {
        /// Seconds east of UTC, from −14 h to +14 h.
        utc_offset_secs: i32,
    },
    /// Each use comes back 24 h after it was made (a sliding window).
    Rolling,
}

impl Default for DayReset {
    fn default() -> Self {
        DayReset::Midnight { utc_offset_secs: 0 }
    }
}

impl DayReset {
    /// Midnight in the zone `utc_offset_secs` east of UTC.
    pub fn midnight(utc_offset_secs: i32) -> Self {
        DayReset::Midnight { utc_offset_secs }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            DayReset::Midnight { utc_offset_secs } if utc_offset_secs.abs() > 14 * 3600 => {
                Err(ConfigError::new(
                    "day_reset",
                    format!("a UTC offset of {utc_offset_secs} s is outside -14 h..=+14 h"),
                ))
            }
            _ => Ok(()),
        }
    }
}

fn fraction(field: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("{value} is not a share of the full rate in (0, 1]"),
        ))
    }
}

/// What the [`Monitor`](crate::Monitor) does with a service name nobody registered
/// (a typo such as `"gpt-4o-mni"`, or a name computed per call): set with
/// [`MonitorConfig::unknown_services`].
///
/// Whichever is chosen, at most [`max_unknown_services`](MonitorConfig::max_unknown_services)
/// limiters are ever created for unknown names, so the registry never grows without
/// bound; past that, the name is refused like [`Refuse`](Self::Refuse) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnknownServices {
    /// Creates a limiter at `default_rpm` and says so on stderr, once per name, even
    /// without a `tracing` subscriber (the default).
    #[default]
    Warn,
    /// Creates a limiter at `default_rpm` with only a `tracing` event: for programs that
    /// pick service names at run time on purpose.
    Create,
    /// Refuses the name: [`Monitor::try_limiter`](crate::Monitor::try_limiter) returns
    /// [`RegistryError::UnknownService`](crate::RegistryError::UnknownService), and
    /// [`Monitor::limiter`](crate::Monitor::limiter) (which `#[llmiter(service = …)]`
    /// calls) panics naming the service. For programs that register every service first.
    Refuse,
}

/// Settings of the [`Monitor`](crate::Monitor): the default rate for services nobody
/// configured, what happens to unknown service names, and where flow logs go.
///
/// ```
/// use ratellmiter::{MonitorConfig, UnknownServices};
/// let config = MonitorConfig::default()
///     .default_rpm(300)
///     .unknown_services(UnknownServices::Warn) // the default: a warning on stderr
///     .max_unknown_services(100)                // the default bound
///     .log_dir("ratellmiter_logs");
/// assert_eq!(config.get_default_rpm(), 300);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    pub(crate) default_rpm: u32,
    pub(crate) unknown_services: UnknownServices,
    pub(crate) max_unknown_services: usize,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) logging: bool,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<(String, String)>,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            default_rpm: 300,
            unknown_services: UnknownServices::Warn,
            max_unknown_services: 100,
            log_dir: None,
            logging: true,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }
}

impl MonitorConfig {
    /// Requests per minute of a service that was never added explicitly (rateLLMiter: 300).
    pub fn default_rpm(mut self, rpm: u32) -> Self {
        self.default_rpm = rpm;
        self
    }

    /// What an unknown service name gets (default: [`UnknownServices::Warn`]).
    pub fn unknown_services(mut self, policy: UnknownServices) -> Self {
        self.unknown_services = policy;
        self
    }

    /// At most this many limiters are created for unknown service names (default 100;
    /// the default service does not count); further unknown names are refused.
    pub fn max_unknown_services(mut self, max: usize) -> Self {
        self.max_unknown_services = max;
        self
    }

    /// Where flow logs go. Unset: `RATELLMITER_LOGS`, else `./ratellmiter_logs`.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// Turns flow logs on (the default) or off.
    pub fn logging(mut self, on: bool) -> Self {
        self.logging = on;
        self
    }

    /// Shares every service the monitor holds with every process using the same Redis
    /// (feature `redis`): each service's limiter — made at `default_rpm` or registered
    /// with [`Monitor::add_service`](crate::Monitor::add_service) — gets a
    /// [`RedisBackend`](crate::RedisBackend) keyed by the service's name under
    /// `prefix` (e.g. `"org-42:"`; `"ratellmiter:"` when empty). A limiter shared
    /// already keeps its own backend. A URL that cannot be parsed is refused by
    /// [`Monitor::try_set_config`](crate::Monitor::try_set_config), naming
    /// `redis_url`; a Redis that is down is not an error (each limiter paces alone until
    /// it answers).
    ///
    /// ```
    /// use ratellmiter::{Monitor, MonitorConfig};
    /// let monitor = Monitor::new();
    /// monitor.set_config(MonitorConfig::default().redis("redis://127.0.0.1:6379/", "org-42:"));
    /// assert!(monitor.try_set_config(MonitorConfig::default().redis("http://x", "")).is_err());
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: &str, prefix: &str) -> Self {
        self.redis = Some((url.into(), prefix.into()));
        self
    }

    /// The backend sharing service `name`, when [`redis`](Self::redis) is set.
    #[cfg(feature = "redis")]
    pub(crate) fn backend_for(
        &self,
        name: &str,
    ) -> Option<Result<crate::RedisBackend, ConfigError>> {
        let (url, prefix) = self.redis.as_ref()?;
        Some(
            crate::RedisBackend::new(url, name).map(|b| match prefix.as_str() {
                "" => b,
                p => b.prefix(p),
            }),
        )
    }

    /// The configured default requests per minute. Named as `std::process::Command`
    /// names its getters (`current_dir` / `get_current_dir`): the bare name is the
    /// setter of this builder-style type.
    pub fn get_default_rpm(&self) -> u32 {
        self.default_rpm
    }

    /// The directory logs go to, after applying rateLLMiter's rules.
    pub fn resolved_log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .or_else(|| std::env::var_os("RATELLMITER_LOGS").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("ratellmiter_logs"))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        validate_rpm(self.default_rpm).map_err(|e| ConfigError::new("default_rpm", e.message))?;
        #[cfg(feature = "redis")]
        if let Some(Err(e)) = self.backend_for("service") {
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(LimiterConfig, &str)> = vec![
            (
                LimiterConfig {
                    rpm: 0,
                    ..Default::default()
                },
                "rpm",
            ),
            (
                LimiterConfig {
                    rpm: u32::MAX,
                    ..Default::default()
                },
                "rpm",
            ),
            (
                LimiterConfig {
                    tpm: Some(0),
                    ..Default::default()
                },
                "tpm",
            ),
            (
                LimiterConfig {
                    tpm: Some(u64::MAX),
                    ..Default::default()
                },
                "tpm",
            ),
            (
                LimiterConfig {
                    ramp_start: f64::NAN,
                    ..Default::default()
                },
                "ramp_start",
            ),
            (
                LimiterConfig {
                    ramp_start: 1.5,
                    ..Default::default()
                },
                "ramp_start",
            ),
            (
                LimiterConfig {
                    ramp_step: -0.1,
                    ..Default::default()
                },
                "ramp_step",
            ),
            (
                LimiterConfig {
                    probe_factor: f64::INFINITY,
                    ..Default::default()
                },
                "probe_factor",
            ),
            (
                LimiterConfig {
                    probe_factor: 0.5,
                    ..Default::default()
                },
                "probe_factor",
            ),
            (
                LimiterConfig {
                    probe_initial: Duration::ZERO,
                    ..Default::default()
                },
                "probe_interval",
            ),
            (
                LimiterConfig {
                    probe_initial: Duration::from_secs(100),
                    ..Default::default()
                },
                "probe_interval",
            ),
            (
                LimiterConfig {
                    probe_max: Duration::from_secs(7200),
                    ..Default::default()
                },
                "probe_max",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert_eq!(err.field(), field, "{err}");
            assert!(err.to_string().contains(field));
        }
        assert!(LimiterConfig::default().validate().is_ok());
    }

    #[test]
    fn monitor_default_rpm_is_checked() {
        let err = MonitorConfig::default()
            .default_rpm(0)
            .validate()
            .unwrap_err();
        assert_eq!(err.field(), "default_rpm");
    }
}
