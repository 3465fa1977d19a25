//! OpenAI's rate-limit response headers and their duration format (`6m0s`, `1s`, `250ms`).

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::model::{LimitState, RateLimitHeaders};

/// `x-ratelimit-limit-requests`: requests per minute.
pub const LIMIT_REQUESTS: &str = "x-ratelimit-limit-requests";
/// `x-ratelimit-remaining-requests`: requests left in the sliding minute.
pub const REMAINING_REQUESTS: &str = "x-ratelimit-remaining-requests";
/// `x-ratelimit-reset-requests`: time until a request's worth of capacity returns.
pub const RESET_REQUESTS: &str = "x-ratelimit-reset-requests";
/// `x-ratelimit-limit-tokens`: tokens per minute.
pub const LIMIT_TOKENS: &str = "x-ratelimit-limit-tokens";
/// `x-ratelimit-remaining-tokens`: tokens left in the sliding minute.
pub const REMAINING_TOKENS: &str = "x-ratelimit-remaining-tokens";
/// `x-ratelimit-reset-tokens`: time until the oldest counted tokens leave the minute.
pub const RESET_TOKENS: &str = "x-ratelimit-reset-tokens";
/// `retry-after`: whole seconds, rounded up.
pub const RETRY_AFTER: &str = "retry-after";
/// `retry-after-ms`: milliseconds, rounded up.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// Formats a duration the way OpenAI's reset headers do (Go's notation), rounded up to
/// the millisecond so a client that waits for it is never early.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter_sim::headers::format_duration;
/// assert_eq!(format_duration(Duration::from_secs(360)), "6m0s");
/// assert_eq!(format_duration(Duration::from_secs(1)), "1s");
/// assert_eq!(format_duration(Duration::from_micros(249_001)), "250ms");
/// assert_eq!(format_duration(Duration::from_millis(17_280)), "17.28s");
/// assert_eq!(format_duration(Duration::from_millis(3_690_500)), "1h1m30.5s");
/// assert_eq!(format_duration(Duration::ZERO), "0s");
/// ```
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (hours, minutes) = (ms / 3_600_000, ms / 60_000 % 60);
    let (seconds, millis) = (ms / 1000 % 60, ms % 1000);
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    if millis > 0 {
        let _ = write!(out, ".{}", format!("{millis:03}").trim_end_matches('0'));
    }
    out.push('s');
    out
}

/// The `x-ratelimit-*` headers for `headers` (token headers only when tokens are limited).
pub(crate) fn rate_limit(headers: &RateLimitHeaders) -> HeaderMap {
    let mut map = HeaderMap::new();
    let mut put = |names: [&'static str; 3], state: &LimitState| {
        map.insert(HeaderName::from_static(names[0]), state.limit.into());
        map.insert(HeaderName::from_static(names[1]), state.remaining.into());
        insert_text(&mut map, names[2], format_duration(state.reset));
    };
    put(
        [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS],
        &headers.requests,
    );
    if let Some(tokens) = &headers.tokens {
        put([LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS], tokens);
    }
    map
}

/// Anthropic's `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` for
/// `headers`, the reset an RFC 3339 time from `now` (`2024-05-01T12:00:30Z`).
pub(crate) fn anthropic(headers: &RateLimitHeaders, now: SystemTime) -> HeaderMap {
    let mut map = HeaderMap::new();
    let mut put = |kind: &str, state: &LimitState| {
        let name = |part: &str| format!("anthropic-ratelimit-{kind}-{part}");
        for (part, value) in [
            ("limit", state.limit.to_string()),
            ("remaining", state.remaining.to_string()),
            ("reset", rfc3339(now + state.reset)),
        ] {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name(part)),
                HeaderValue::try_from(value),
            ) {
                map.insert(n, v);
            }
        }
    };
    put("requests", &headers.requests);
    if let Some(tokens) = &headers.tokens {
        put("tokens", tokens);
    }
    map
}

/// `t` as an RFC 3339 UTC time, whole seconds rounded up.
fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Adds `retry-after` (whole seconds) and `retry-after-ms`, both rounded up.
pub(crate) fn insert_retry_after(map: &mut HeaderMap, retry_after: Duration) {
    let nanos = retry_after.as_nanos();
    let secs = u64::try_from(nanos.div_ceil(1_000_000_000)).unwrap_or(u64::MAX);
    let millis = u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX);
    map.insert(HeaderName::from_static(RETRY_AFTER), secs.into());
    map.insert(HeaderName::from_static(RETRY_AFTER_MS), millis.into());
}

fn insert_text(map: &mut HeaderMap, name: &'static str, value: String) {
    // Our values are ASCII digits and unit letters; a failure would only drop the header.
    if let Ok(value) = HeaderValue::try_from(value) {
        map.insert(HeaderName::from_static(name), value);
    }
}
