//! Errors that carry an HTTP status (feature `http`): [`HasStatus`] says where the status
//! and headers are, and [`HttpError`] makes such an error an
//! [`IsRateLimit`]. Also reads an [`http::HeaderMap`](::http::HeaderMap) into
//! [`RateLimitHeaders`].
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use ratellmiter::http::{HasStatus, HttpError};
//! use ratellmiter::{IsRateLimit, RateLimit};
//!
//! #[derive(Debug)]
//! struct ApiFailure { status: StatusCode, headers: HeaderMap }
//!
//! impl HasStatus for ApiFailure {
//!     fn status(&self) -> Option<StatusCode> { Some(self.status) }
//!     fn headers(&self) -> Option<&HeaderMap> { Some(&self.headers) }
//! }
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("retry-after", "3".parse().unwrap());
//! let e = HttpError(ApiFailure { status: StatusCode::SERVICE_UNAVAILABLE, headers });
//! // A 503 that says when to come back:
//! assert_eq!(e.rate_limit(), Some(RateLimit::retry(Some(std::time::Duration::from_secs(3)))));
//! ```

use ::http::{HeaderMap, Response, StatusCode};

use crate::headers::{RateLimitHeaders, classify};
use crate::rate_limit::{IsRateLimit, RateLimit};

/// An error (or response) that may carry an HTTP status and the response's headers.
pub trait HasStatus {
    /// The response status, if the error came from a response.
    fn status(&self) -> Option<StatusCode>;

    /// The response headers, if the error kept them (for `retry-after`).
    fn headers(&self) -> Option<&HeaderMap> {
        None
    }
}

impl HasStatus for StatusCode {
    fn status(&self) -> Option<StatusCode> {
        Some(*self)
    }
}

impl<B> HasStatus for Response<B> {
    fn status(&self) -> Option<StatusCode> {
        Some(Response::status(self))
    }

    fn headers(&self) -> Option<&HeaderMap> {
        Some(Response::headers(self))
    }
}

/// An error with an HTTP status, as a rate limit when the status is 429 or 529, or 503
/// with a `retry-after` header. A wrapper rather than a blanket impl, so it never
/// collides with `IsRateLimit` impls of your own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError<E>(pub E);

impl<E> From<E> for HttpError<E> {
    fn from(e: E) -> Self {
        HttpError(e)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for HttpError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for HttpError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl<E: HasStatus> IsRateLimit for HttpError<E> {
    fn rate_limit(&self) -> Option<RateLimit> {
        let status = self.0.status()?;
        let retry_after = self
            .0
            .headers()
            .and_then(|h| RateLimitHeaders::from_header_map(h).retry_after);
        classify(status.as_u16(), retry_after, false)
    }
}

impl RateLimitHeaders {
    /// Parses the rate-limit headers of an [`http::HeaderMap`] (values
    /// that are not visible ASCII are ignored).
    ///
    /// ```
    /// use http::HeaderMap;
    /// use ratellmiter::headers::RateLimitHeaders;
    /// let mut map = HeaderMap::new();
    /// map.insert("retry-after-ms", "1500".parse().unwrap());
    /// let h = RateLimitHeaders::from_header_map(&map);
    /// assert_eq!(h.retry_after, Some(std::time::Duration::from_millis(1500)));
    /// ```
    pub fn from_header_map(map: &HeaderMap) -> Self {
        Self::parse(|name| map.get(name)?.to_str().ok())
    }
}
