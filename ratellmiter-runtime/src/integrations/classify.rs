//! What an HTTP answer says about rate limiting, from its status, headers and (for a
//! refusal) its body: one verdict for the tower layer, the reqwest middleware and
//! [`check`](crate::reqwest::check).

use std::time::Duration;

use crate::headers::{
    RateLimitHeaders, classify, is_daily_quota_id, is_final_code, parse_reset,
    retry_after_in_message,
};
use crate::rate_limit::RateLimit;

/// How the limiter treats one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// An answer (a success, or an error that is no rate limit): passed on.
    Answer,
    /// Refused for the rate limit (429, 529, 503 with `retry-after`): pause and re-send.
    RateLimited {
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Refused for a spent quota (a [final code](crate::headers::FINAL_ERROR_CODES) in
    /// the body): passed on at once, without pausing.
    QuotaSpent,
}

/// Whether the status alone makes `status` an answer; otherwise the body decides
/// between [`Verdict::RateLimited`] and [`Verdict::QuotaSpent`].
pub(crate) fn is_answer(status: u16, headers: &RateLimitHeaders) -> bool {
    classify(status, headers.retry_after, false).is_none()
}

/// The verdict on a refusal whose body is `body`, with its error code (a final code
/// first) and message.
pub(crate) fn refusal(
    status: u16,
    headers: &RateLimitHeaders,
    body: &[u8],
) -> (Verdict, Option<String>, Option<String>) {
    let body = error_fields(body);
    let mut codes = body.codes;
    // A final code decides the kind, so it is the one shown.
    codes.sort_by_key(|c| !is_final_code(c));
    let code = codes.into_iter().next();
    let is_final = code.as_deref().is_some_and(is_final_code) || body.daily;
    // A header says when first; else the body (Gemini's `retryDelay`, OpenAI's "try
    // again in 93ms").
    let retry_after = headers.retry_after.or(body.retry_after);
    let message = body.message;
    let verdict = match classify(status, retry_after, is_final) {
        Some(limit) if limit.is_final() => Verdict::QuotaSpent,
        Some(limit) => Verdict::RateLimited {
            retry_after: limit.retry_after(),
        },
        None => Verdict::Answer,
    };
    (verdict, code, message)
}

impl Verdict {
    /// The verdict as the rate limit it is, if any.
    pub(crate) fn limit(self) -> Option<RateLimit> {
        match self {
            Verdict::Answer => None,
            Verdict::RateLimited { retry_after } => Some(RateLimit::retry(retry_after)),
            Verdict::QuotaSpent => Some(RateLimit::final_quota()),
        }
    }
}

/// What an error body says.
#[derive(Debug, Default)]
struct Body {
    /// `error.code`, then `error.type` (OpenAI, Anthropic), then `error.status` (Gemini).
    codes: Vec<String>,
    message: Option<String>,
    /// Gemini's `RetryInfo.retryDelay`, else a wait named in the message.
    retry_after: Option<Duration>,
    /// A Gemini `QuotaFailure` names a per-day quota.
    daily: bool,
}

/// The fields of an OpenAI-, Anthropic- or Gemini-style error body.
fn error_fields(body: &[u8]) -> Body {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Body::default();
    };
    // Gemini's REST errors are an object; some of its gateways wrap it in an array.
    let error = match &json {
        serde_json::Value::Array(a) => &a.first().unwrap_or(&serde_json::Value::Null)["error"],
        _ => &json["error"],
    };
    let text = |key: &str| error[key].as_str().map(str::to_owned);
    let message = text("message");
    let details = error["details"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let of_type = |suffix: &'static str| {
        details
            .iter()
            .filter(move |d| d["@type"].as_str().is_some_and(|t| t.ends_with(suffix)))
    };
    let delay = of_type("google.rpc.RetryInfo")
        .find_map(|d| d["retryDelay"].as_str().and_then(|v| parse_reset(v.trim())));
    let daily = of_type("google.rpc.QuotaFailure").any(|d| {
        d["violations"].as_array().is_some_and(|v| {
            v.iter()
                .any(|v| v["quotaId"].as_str().is_some_and(is_daily_quota_id))
        })
    });
    Body {
        codes: [text("code"), text("type"), text("status")]
            .into_iter()
            .flatten()
            .collect(),
        retry_after: delay.or_else(|| message.as_deref().and_then(retry_after_in_message)),
        message,
        daily,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_code_in_a_429_body_is_final_and_shown_first() {
        let body = br#"{"error": {"type": "insufficient_quota", "code": "rate_limit_exceeded", "message": "pay"}}"#;
        let (verdict, code, message) = refusal(429, &RateLimitHeaders::default(), body);
        assert_eq!(verdict, Verdict::QuotaSpent);
        assert_eq!(code.as_deref(), Some("insufficient_quota"));
        assert_eq!(message.as_deref(), Some("pay"));
    }

    #[test]
    fn a_429_is_a_rate_limit_whatever_its_body() {
        let headers = RateLimitHeaders {
            retry_after: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        assert!(!is_answer(429, &headers));
        assert!(!is_answer(503, &headers));
        assert!(is_answer(503, &RateLimitHeaders::default()));
        assert_eq!(
            refusal(429, &headers, b"not json").0,
            Verdict::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }

    /// Gemini's 429 names no retry-after header: the body's `RetryInfo.retryDelay` is
    /// the wait; a `QuotaFailure` naming a per-day quota is final (waiting cannot cure
    /// it before the day's reset).
    #[test]
    fn gemini_retry_info_and_daily_quota_failures() {
        let per_minute =
            br#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [
              {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
               "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"}]}}"#;
        assert_eq!(
            refusal(429, &RateLimitHeaders::default(), per_minute).0,
            Verdict::RateLimited {
                retry_after: Some(Duration::from_millis(34_400))
            }
        );
        let per_day =
            br#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
            "details": [
              {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
               "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]},
              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}]}}"#;
        let (verdict, code, _) = refusal(429, &RateLimitHeaders::default(), per_day);
        assert_eq!(verdict, Verdict::QuotaSpent);
        assert_eq!(code.as_deref(), Some("RESOURCE_EXHAUSTED"));
    }

    /// OpenAI's "Please try again in 93ms" is the wait when no header names one; a
    /// header wins over the message.
    #[test]
    fn openai_try_again_in_the_message() {
        let body = br#"{"error": {"type": "tokens", "code": "rate_limit_exceeded",
            "message": "Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29900, Requested 200. Please try again in 93ms. Visit https://platform.openai.com/account/rate-limits"}}"#;
        assert_eq!(
            refusal(429, &RateLimitHeaders::default(), body).0,
            Verdict::RateLimited {
                retry_after: Some(Duration::from_millis(93))
            }
        );
        let headers = RateLimitHeaders {
            retry_after: Some(Duration::from_secs(2)),
            ..Default::default()
        };
        assert_eq!(
            refusal(429, &headers, body).0,
            Verdict::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }
}
