//! What a provider's response says about its limits: the rate-limit headers of OpenAI
//! and Anthropic parsed into [`RateLimitHeaders`], and [`classify`], which turns a
//! status and what the body said into a [`RateLimit`].
//!
//! Nothing here depends on an HTTP crate: [`RateLimitHeaders::parse`] reads headers
//! through a closure `Fn(&str) -> Option<&str>` (header name, lower case, to value), so
//! any client's header map fits. The `http` feature adds
//! `RateLimitHeaders::from_header_map` and `Current::observe_headers`.
//!
//! Headers read:
//!
//! | header | format |
//! | --- | --- |
//! | `retry-after-ms` (OpenAI) | milliseconds, preferred over `retry-after` |
//! | `retry-after` | seconds, or an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) |
//! | `x-ratelimit-remaining-requests`, `x-ratelimit-remaining-tokens` | a count |
//! | `x-ratelimit-reset-requests`, `x-ratelimit-reset-tokens` | a duration: `6m0s`, `1s`, `250ms`, `1h2m3.5s` |
//! | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining` | a count |
//! | `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset` | an RFC 3339 time: `2024-05-01T12:00:30Z` |
//!
//! A malformed value is ignored with a `tracing` debug event; parsing never panics.
//!
//! ```
//! use std::time::Duration;
//! use ratellmiter::headers::{Budget, RateLimitHeaders};
//!
//! let response = [
//!     ("x-ratelimit-remaining-requests", "0"),
//!     ("x-ratelimit-reset-requests", "1.5s"),
//!     ("x-ratelimit-remaining-tokens", "149984"),
//!     ("x-ratelimit-reset-tokens", "6m0s"),
//!     ("retry-after", "not a number"), // ignored
//! ];
//! let h = RateLimitHeaders::parse(|name| {
//!     response.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
//! });
//! assert_eq!(h.requests, Some(Budget { remaining: 0, reset: Duration::from_millis(1500) }));
//! assert_eq!(h.tokens, Some(Budget { remaining: 149_984, reset: Duration::from_secs(360) }));
//! assert_eq!(h.retry_after, None);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::rate_limit::RateLimit;

/// Error codes (OpenAI's `code` or `type`, Anthropic's `error.type`) of refusals that
/// waiting cannot cure: a quota or spend limit, not a rate.
pub const FINAL_ERROR_CODES: &[&str] = &[
    "insufficient_quota",
    "billing_hard_limit_reached",
    "enforced_spend_limit_reached",
];

pub use crate::pacer::Budget;

/// The rate-limit headers of one response. Absent or malformed headers leave their
/// field `None`; a budget needs both its `remaining` and its `reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitHeaders {
    /// How long the server asked to wait (`retry-after-ms`, else `retry-after`).
    pub retry_after: Option<Duration>,
    /// The requests-per-minute budget.
    pub requests: Option<Budget>,
    /// The tokens-per-minute budget (for Anthropic, the most restrictive token limit).
    pub tokens: Option<Budget>,
    /// Anthropic's input-tokens budget.
    pub input_tokens: Option<Budget>,
    /// Anthropic's output-tokens budget.
    pub output_tokens: Option<Budget>,
    /// The limits themselves (`x-ratelimit-limit-*`, `anthropic-ratelimit-*-limit`),
    /// from which [`learn_limits`](crate::LimiterBuilder::learn_limits) configures a
    /// limiter.
    pub limits: Limits,
}

/// The limits a response's `*-limit-*` headers name (absent or malformed: `None`).
///
/// OpenAI's `x-ratelimit-limit-requests` is per minute; Groq's is per day, which shows
/// in its reset (`x-ratelimit-reset-requests` of more than a minute): a limiter that
/// learns from it takes it as `rpd` then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Limits {
    /// Requests (per minute, or per day as said above).
    pub requests: Option<u64>,
    /// Tokens per minute, input and output together.
    pub tokens: Option<u64>,
    /// Anthropic's input tokens per minute.
    pub input_tokens: Option<u64>,
    /// Anthropic's output tokens per minute.
    pub output_tokens: Option<u64>,
}

impl RateLimitHeaders {
    /// Parses the headers `get` returns (it is called with lower-case names), reading
    /// HTTP dates and RFC 3339 times against the system clock.
    pub fn parse<'h>(get: impl Fn(&str) -> Option<&'h str>) -> Self {
        Self::parse_at(get, SystemTime::now())
    }

    /// [`parse`](Self::parse) with `now` as the time the response arrived.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// use ratellmiter::headers::{Budget, RateLimitHeaders};
    ///
    /// // 2024-05-01T12:00:00Z
    /// let now = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
    /// let h = RateLimitHeaders::parse_at(
    ///     |name| match name {
    ///         "anthropic-ratelimit-requests-remaining" => Some("3"),
    ///         "anthropic-ratelimit-requests-reset" => Some("2024-05-01T12:00:30Z"),
    ///         "retry-after" => Some("Wed, 01 May 2024 12:00:07 GMT"),
    ///         _ => None,
    ///     },
    ///     now,
    /// );
    /// assert_eq!(h.requests, Some(Budget { remaining: 3, reset: Duration::from_secs(30) }));
    /// assert_eq!(h.retry_after, Some(Duration::from_secs(7)));
    /// ```
    pub fn parse_at<'h>(get: impl Fn(&str) -> Option<&'h str>, now: SystemTime) -> Self {
        let header = |name: &str, parse: &dyn Fn(&str) -> Option<Duration>| {
            let value = get(name)?;
            logged(name, value, parse(value.trim()))
        };
        let count = |name: &str| {
            let value = get(name)?;
            logged(name, value, value.trim().parse::<u64>().ok())
        };
        let until = |t: &str| parse_rfc3339(t).map(|at| at.duration_since(now).unwrap_or_default());
        let openai = |kind: &str| {
            let remaining = count(&format!("x-ratelimit-remaining-{kind}"));
            let reset = header(&format!("x-ratelimit-reset-{kind}"), &parse_reset);
            Some(Budget {
                remaining: remaining?,
                reset: reset?,
            })
        };
        let anthropic = |kind: &str| {
            let remaining = count(&format!("anthropic-ratelimit-{kind}-remaining"));
            let reset = header(&format!("anthropic-ratelimit-{kind}-reset"), &until);
            Some(Budget {
                remaining: remaining?,
                reset: reset?,
            })
        };
        let limit = |kind: &str| {
            count(&format!("x-ratelimit-limit-{kind}"))
                .or_else(|| count(&format!("anthropic-ratelimit-{kind}-limit")))
        };
        Self {
            limits: Limits {
                requests: limit("requests"),
                tokens: limit("tokens"),
                input_tokens: limit("input-tokens"),
                output_tokens: limit("output-tokens"),
            },
            retry_after: header("retry-after-ms", &parse_millis)
                .or_else(|| header("retry-after", &|v| parse_retry_after(v, now))),
            requests: openai("requests").or_else(|| anthropic("requests")),
            tokens: openai("tokens").or_else(|| anthropic("tokens")),
            input_tokens: anthropic("input-tokens"),
            output_tokens: anthropic("output-tokens"),
        }
    }

    /// Each family's budget, for the limiter's holds: requests, tokens, input tokens,
    /// output tokens. Each family holds the budget of its own kind.
    pub(crate) fn families(&self) -> [Option<Budget>; 4] {
        [
            self.requests,
            self.tokens,
            self.input_tokens,
            self.output_tokens,
        ]
    }

    /// The budgets these limits stand for, as a limiter's settings.
    pub(crate) fn learned(&self) -> crate::pacer::Learned {
        let l = &self.limits;
        // Groq's request limit is per day: its reset is then hours, not seconds.
        let daily = self
            .requests
            .is_some_and(|b| b.reset > Duration::from_secs(60));
        let split = l.input_tokens.is_some() || l.output_tokens.is_some();
        crate::pacer::Learned {
            rpm: l.requests.filter(|_| !daily),
            rpd: l.requests.filter(|_| daily),
            // Anthropic's `tokens` limit is the tightest of the input and output ones.
            tpm: l.tokens.filter(|_| !split),
            input_tpm: l.input_tokens,
            output_tpm: l.output_tokens,
        }
    }

    /// The tightest token budget: the one with the fewest tokens left among
    /// [`tokens`](Self::tokens), [`input_tokens`](Self::input_tokens) and
    /// [`output_tokens`](Self::output_tokens).
    pub fn token_budget(&self) -> Option<Budget> {
        [self.tokens, self.input_tokens, self.output_tokens]
            .into_iter()
            .flatten()
            .min_by_key(|b| (b.remaining, std::cmp::Reverse(b.reset)))
    }
}

/// The wait an error message names, as OpenAI's 429 bodies do ("Please try again in
/// 93ms.", "… in 1.5s.", "… in 6m0s."): a retry-after when no header says so.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::headers::retry_after_in_message;
/// let m = "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000. Please try again in 93ms.";
/// assert_eq!(retry_after_in_message(m), Some(Duration::from_millis(93)));
/// assert_eq!(retry_after_in_message("Please try again in 1.5s. Visit …"), Some(Duration::from_millis(1_500)));
/// assert_eq!(retry_after_in_message("Please try again later."), None);
/// ```
pub fn retry_after_in_message(message: &str) -> Option<Duration> {
    const MARK: &str = "try again in ";
    let at = message.to_ascii_lowercase().find(MARK)? + MARK.len();
    let word = message[at..].split_whitespace().next()?;
    parse_reset(word.trim_end_matches(['.', ',', ';', ')']))
}

/// Whether a Gemini `QuotaFailure` quota id names a per-day quota
/// (`GenerateRequestsPerDayPerProjectPerModel-FreeTier`): waiting minutes cannot cure
/// it, so the refusal is final until the day's reset.
///
/// ```
/// use ratellmiter::headers::is_daily_quota_id;
/// assert!(is_daily_quota_id("GenerateRequestsPerDayPerProjectPerModel-FreeTier"));
/// assert!(!is_daily_quota_id("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"));
/// ```
pub fn is_daily_quota_id(id: &str) -> bool {
    id.contains("PerDay")
}

/// Whether an error code means a quota or spend limit (see [`FINAL_ERROR_CODES`]).
pub fn is_final_code(code: &str) -> bool {
    FINAL_ERROR_CODES.contains(&code)
}

/// What a response says about rate limiting: `429 Too Many Requests` and Anthropic's
/// `529 Overloaded` are rate limits, and so is `503 Service Unavailable` when it came
/// with a `retry-after`; `is_final` (the body named a [final code](FINAL_ERROR_CODES))
/// makes any of them [final](RateLimit::final_quota); any other status is not a rate
/// limit (`None`).
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::RateLimit;
/// use ratellmiter::headers::classify;
///
/// let wait = Some(Duration::from_secs(2));
/// assert_eq!(classify(429, wait, false), Some(RateLimit::retry(wait)));
/// assert_eq!(classify(529, None, false), Some(RateLimit::retry(None)));
/// assert_eq!(classify(503, wait, false), Some(RateLimit::retry(wait)));
/// assert_eq!(classify(503, None, false), None);
/// assert_eq!(classify(429, None, true), Some(RateLimit::final_quota()));
/// assert_eq!(classify(500, None, false), None);
/// ```
pub fn classify(status: u16, retry_after: Option<Duration>, is_final: bool) -> Option<RateLimit> {
    match status {
        _ if is_final => Some(RateLimit::final_quota()),
        429 | 529 => Some(RateLimit::retry(retry_after)),
        503 if retry_after.is_some() => Some(RateLimit::retry(retry_after)),
        _ => None,
    }
}

/// A `retry-after` value: delay-seconds (`120`, fractions accepted) or an HTTP date,
/// read against `now` (a date already past means no wait).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.starts_with(|c: char| c.is_ascii_digit()) {
        return parse_decimal(value, NANOS_PER_SEC);
    }
    parse_http_date(value).map(|at| at.duration_since(now).unwrap_or_default())
}

/// A reset duration as OpenAI writes it (Go's notation: `6m0s`, `1s`, `250ms`,
/// `1h2m3.5s`, `17.28s`; units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`), or a bare number
/// of seconds as other providers write it.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::headers::parse_reset;
/// assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
/// assert_eq!(parse_reset("250ms"), Some(Duration::from_millis(250)));
/// assert_eq!(parse_reset("1h2m3.5s"), Some(Duration::from_millis(3_723_500)));
/// assert_eq!(parse_reset("17.28s"), Some(Duration::from_millis(17_280)));
/// assert_eq!(parse_reset("2"), Some(Duration::from_secs(2)));
/// assert_eq!(parse_reset("-1s"), None);
/// assert_eq!(parse_reset("5 parsecs"), None);
/// ```
pub fn parse_reset(value: &str) -> Option<Duration> {
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_decimal(value, NANOS_PER_SEC);
    }
    let mut rest = value;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let (unit, tail) = UNITS
            .iter()
            .find_map(|&(name, nanos)| tail.strip_prefix(name).map(|t| (nanos, t)))?;
        nanos = nanos.checked_add(decimal_nanos(number, unit)?)?;
        rest = tail;
    }
    duration_from_nanos(nanos)
}

/// Go's duration units, longest first where one is a prefix of another (`ms` before `m`).
const UNITS: [(&str, u128); 7] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("h", 3_600 * NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("s", NANOS_PER_SEC),
];

const NANOS_PER_SEC: u128 = 1_000_000_000;

fn parse_millis(value: &str) -> Option<Duration> {
    parse_decimal(value, 1_000_000)
}

/// A non-negative decimal number of `unit` nanoseconds.
fn parse_decimal(value: &str, unit: u128) -> Option<Duration> {
    duration_from_nanos(decimal_nanos(value, unit)?)
}

/// `number × unit` in nanoseconds, exactly for up to nine fractional digits (further
/// digits are below a nanosecond for every unit we read and are dropped).
fn decimal_nanos(number: &str, unit: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole_nanos = if whole.is_empty() {
        0
    } else {
        whole.parse::<u128>().ok()?.checked_mul(unit)?
    };
    let fraction = &fraction[..fraction.len().min(9)];
    let fraction_nanos = if fraction.is_empty() {
        0
    } else {
        let scale = 10u128.pow(fraction.len() as u32);
        fraction.parse::<u128>().ok()? * unit / scale
    };
    whole_nanos.checked_add(fraction_nanos)
}

fn duration_from_nanos(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

/// An HTTP date in the IMF-fixdate form every server sends (RFC 7231 §7.1.1.1):
/// `Sun, 06 Nov 1994 08:49:37 GMT`, read by the `httpdate` crate.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ratellmiter::headers::parse_http_date;
/// assert_eq!(
///     parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
///     Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
/// );
/// assert_eq!(parse_http_date("Sun, 31 Feb 1994 08:49:37 GMT"), None);
/// ```
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    // httpdate also reads the obsolete RFC 850 and asctime forms, which no provider
    // sends; the fixed-length form with its comma after the day name is the only one
    // taken (29 bytes).
    if value.len() != 29 || value.as_bytes()[3] != b',' {
        return None;
    }
    httpdate::parse_http_date(value).ok()
}

/// An RFC 3339 time, as Anthropic's reset headers carry it: `2024-05-01T12:00:30Z`,
/// with optional fractional seconds and a `Z` or `±hh:mm` offset.
///
/// Read here rather than by a date crate: `humantime` takes no offsets, and `jiff`'s
/// ISO 8601 parser also takes forms RFC 3339 forbids (`+0200`), so neither reads
/// exactly this format. (Go-style durations, [`parse_reset`], likewise: `humantime`
/// takes no fractions such as OpenAI's `17.28s`.)
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ratellmiter::headers::parse_rfc3339;
/// let t = UNIX_EPOCH + Duration::from_millis(1_714_564_830_250);
/// assert_eq!(parse_rfc3339("2024-05-01T12:00:30.25Z"), Some(t));
/// assert_eq!(parse_rfc3339("2024-05-01T14:00:30.25+02:00"), Some(t));
/// assert_eq!(parse_rfc3339("2024-05-01 12:00:30"), None); // no offset
/// ```
pub fn parse_rfc3339(value: &str) -> Option<SystemTime> {
    let date = value.get(..10)?;
    let separator = value.get(10..11)?;
    let rest = value.get(11..)?;
    if !matches!(separator, "T" | "t" | " ") {
        return None;
    }
    let mut fields = date.split('-');
    let (year, month, day) = (fields.next()?, fields.next()?, fields.next()?);
    let (hour, minute, second) = parse_clock(rest.get(..8)?)?;
    let mut rest = rest.get(8..)?;
    let mut nanos = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if len == 0 {
            return None;
        }
        nanos = decimal_nanos(&format!("0.{}", &fraction[..len]), NANOS_PER_SEC)? as u32;
        rest = &fraction[len..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (h, m) = rest.get(1..)?.split_once(':')?;
            let (h, m) = (fixed_digits(h, 2)?, fixed_digits(m, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * i64::from(h * 3600 + m * 60)
        }
    };
    CivilTime {
        year: fixed_digits(year, 4)? as i64,
        month: fixed_digits(month, 2)?,
        day: fixed_digits(day, 2)?,
        hour,
        minute,
        second,
        nanos,
        offset_secs,
    }
    .to_system_time()
}

/// `hh:mm:ss`, range-checked (a leap second `60` is accepted).
fn parse_clock(value: &str) -> Option<(u32, u32, u32)> {
    let mut fields = value.split(':');
    let (h, m, s) = (
        fixed_digits(fields.next()?, 2)?,
        fixed_digits(fields.next()?, 2)?,
        fixed_digits(fields.next()?, 2)?,
    );
    (fields.next().is_none() && h < 24 && m < 60 && s <= 60).then_some((h, m, s))
}

/// Exactly `len` ASCII digits.
fn fixed_digits(value: &str, len: usize) -> Option<u32> {
    (value.len() == len && value.bytes().all(|b| b.is_ascii_digit()))
        .then(|| value.parse().ok())
        .flatten()
}

/// A calendar date and time with its offset from UTC.
struct CivilTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    offset_secs: i64,
}

impl CivilTime {
    fn to_system_time(&self) -> Option<SystemTime> {
        let leap = self.year % 4 == 0 && (self.year % 100 != 0 || self.year % 400 == 0);
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let max_day = *month_days.get(self.month.checked_sub(1)? as usize)?;
        if self.day == 0 || self.day > max_day {
            return None;
        }
        let secs = days_from_civil(self.year, self.month, self.day) * 86_400
            + i64::from(self.hour * 3600 + self.minute * 60 + self.second)
            - self.offset_secs;
        let at = Duration::new(secs.unsigned_abs(), 0);
        let base = if secs >= 0 {
            UNIX_EPOCH.checked_add(at)?
        } else {
            UNIX_EPOCH.checked_sub(at)?
        };
        base.checked_add(Duration::from_nanos(u64::from(self.nanos)))
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `parsed`, with a debug event when the header's value could not be read.
fn logged<T>(name: &str, value: &str, parsed: Option<T>) -> Option<T> {
    if parsed.is_none() {
        tracing::debug!(
            header = name,
            value,
            "ignored a malformed rate-limit header"
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn leap_days_are_checked() {
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("2023-02-29T00:00:00Z").is_none());
        assert!(parse_rfc3339("2000-02-29T00:00:00Z").is_some());
        assert!(parse_rfc3339("1900-02-29T00:00:00Z").is_none());
    }
}
