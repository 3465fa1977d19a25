//! What an HTTP answer says about rate limiting, from its status, headers and (for a
//! refusal) its body: one verdict for the tower layer, the reqwest middleware and
//! [`check`](crate::reqwest::check).

use std::time::Duration;

use crate::headers::{RateLimitHeaders, classify, is_final_code};
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
    let (mut codes, message) = error_fields(body);
    // A final code decides the kind, so it is the one shown.
    codes.sort_by_key(|c| !is_final_code(c));
    let code = codes.into_iter().next();
    let is_final = code.as_deref().is_some_and(is_final_code);
    let verdict = match classify(status, headers.retry_after, is_final) {
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

/// The codes (`error.code`, then `error.type`) and the message of an OpenAI- or
/// Anthropic-style error body.
fn error_fields(body: &[u8]) -> (Vec<String>, Option<String>) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (Vec::new(), None);
    };
    let error = &json["error"];
    let text = |key: &str| error[key].as_str().map(str::to_owned);
    let codes = [text("code"), text("type")].into_iter().flatten().collect();
    (codes, text("message"))
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
}
