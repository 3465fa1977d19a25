//! reqwest (feature `reqwest`): [`check`] turns a refused response into a
//! [`RateLimitError`] and feeds every response's rate-limit headers to
//! [`current()`](crate::current()); [`IsRateLimit`] is implemented for
//! [`reqwest::Error`](::reqwest::Error) too.
//!
//! ```no_run
//! use ratellmiter::{BucketRateLimiter, IsRateLimit};
//! use ratellmiter::reqwest::{check, RateLimitError};
//!
//! #[derive(Debug, IsRateLimit)]
//! enum ChatError {
//!     #[rate_limit(transparent)]
//!     Http(reqwest::Error),
//!     #[rate_limit(transparent)]
//!     RateLimited(RateLimitError),
//! }
//! impl From<reqwest::Error> for ChatError { fn from(e: reqwest::Error) -> Self { Self::Http(e) } }
//! impl From<RateLimitError> for ChatError { fn from(e: RateLimitError) -> Self { Self::RateLimited(e) } }
//!
//! # async fn ask(limiter: &BucketRateLimiter, client: &reqwest::Client, url: &str) -> Result<String, ChatError> {
//! limiter
//!     .run(|| async {
//!         let response = check(client.post(url).body("{}").send().await?).await?;
//!         Ok(response.error_for_status()?.text().await?)
//!     })
//!     .await
//! # }
//! ```

use ::reqwest::{Response, StatusCode};

use super::classify::{is_answer, refusal};
use crate::current;
use crate::headers::{RateLimitHeaders, classify};
use crate::rate_limit::{IsRateLimit, RateLimit};

/// A response refused for a rate limit: status 429 or 529, or 503 with `retry-after`.
#[derive(Debug, Clone)]
pub struct RateLimitError {
    status: StatusCode,
    // Boxed: an error enum holding it stays small (clippy's `large_enum_variant`).
    headers: Box<RateLimitHeaders>,
    code: Option<String>,
    message: Option<String>,
    limit: RateLimit,
}

impl RateLimitError {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response's rate-limit headers.
    pub fn headers(&self) -> &RateLimitHeaders {
        &self.headers
    }

    /// The error code of the body (OpenAI's `error.code`, else `error.type`; Anthropic's
    /// `error.type`), if it had one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The body's `error.message`, if it had one.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

impl std::fmt::Display for RateLimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.limit.is_final() {
            "quota exhausted"
        } else {
            "rate limited"
        };
        write!(f, "{what}: HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {message}")?;
        }
        if let Some(wait) = self.headers.retry_after {
            write!(f, "; retry after {wait:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RateLimitError {}

/// Always a rate limit: final for a [final code](crate::headers::FINAL_ERROR_CODES),
/// else worth waiting out for the response's `retry-after`.
impl IsRateLimit for RateLimitError {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(self.limit)
    }
}

/// `reqwest::Error` (feature `reqwest`): a status error from
/// [`Response::error_for_status`] is a rate limit for 429 and 529.
/// A 503 is not: the error no longer has the `retry-after` that would make it one (use
/// [`check`], which reads the headers first).
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
impl IsRateLimit for ::reqwest::Error {
    fn rate_limit(&self) -> Option<RateLimit> {
        classify(self.status()?.as_u16(), None, false)
    }
}

/// Reports `response`'s rate-limit headers to the current call, so the limiter holds
/// before the provider's budget is spent; then returns the response, or a
/// [`RateLimitError`] when the provider refused it for a rate limit (429, 529, 503 with
/// `retry-after`). For a refusal it reads the body, where a
/// [final code](crate::headers::FINAL_ERROR_CODES) such as `insufficient_quota` makes
/// the error final. Other statuses, errors included, come back untouched.
pub async fn check(response: Response) -> Result<Response, RateLimitError> {
    let headers = RateLimitHeaders::from_header_map(response.headers());
    current().observe_rate_limits(&headers);
    let status = response.status();
    if is_answer(status.as_u16(), &headers) {
        return Ok(response);
    }
    // The body only adds detail to the error; a body that cannot be read leaves none.
    let body = response.bytes().await.unwrap_or_default();
    let (verdict, code, message) = refusal(status.as_u16(), &headers, &body);
    let limit = verdict
        .limit()
        .expect("a status that is no answer is a refusal, whatever its body");
    Err(RateLimitError {
        status,
        headers: Box::new(headers),
        limit,
        code,
        message,
    })
}
