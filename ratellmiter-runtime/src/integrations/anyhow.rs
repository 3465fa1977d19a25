//! anyhow (feature `anyhow`): [`IsRateLimit`] for [`anyhow::Error`](::anyhow::Error).

use std::error::Error;
use std::time::Duration;

use crate::rate_limit::{IsRateLimit, RateLimitKind};

/// Looks along the error's chain (its context layers and sources, outermost first) for
/// an error of a supported type that is a rate limit: `reqwest::Error` and
/// `ratellmiter::reqwest::RateLimitError` with feature `reqwest`, `OpenAIError` with
/// feature `async-openai`. Any other error (an I/O error, a type of your own) is not a
/// rate limit.
///
/// ```
/// use anyhow::Context;
/// use ratellmiter_runtime::IsRateLimit;
///
/// let io = std::io::Error::other("connection reset");
/// let e = anyhow::Error::new(io).context("asking the model");
/// assert!(!e.is_rate_limit());
/// ```
impl IsRateLimit for ::anyhow::Error {
    fn is_rate_limit(&self) -> bool {
        self.rate_limit_kind() != RateLimitKind::NotRateLimit
    }

    fn retry_after(&self) -> Option<Duration> {
        match self.rate_limit_kind() {
            RateLimitKind::Retry { retry_after } => retry_after,
            _ => None,
        }
    }

    fn is_final(&self) -> bool {
        self.rate_limit_kind() == RateLimitKind::Final
    }

    /// The kind of the first rate limit along the chain, outermost first.
    fn rate_limit_kind(&self) -> RateLimitKind {
        self.chain()
            .map(kind_of)
            .find(|k| *k != RateLimitKind::NotRateLimit)
            .unwrap_or(RateLimitKind::NotRateLimit)
    }
}

/// What one link of the chain says, for the types the enabled features know.
#[cfg_attr(
    not(any(feature = "reqwest", feature = "async-openai")),
    allow(unused_variables)
)]
fn kind_of(e: &(dyn Error + 'static)) -> RateLimitKind {
    #[cfg(feature = "reqwest")]
    {
        if let Some(e) = e.downcast_ref::<crate::reqwest::RateLimitError>() {
            return e.rate_limit_kind();
        }
        if let Some(e) = e.downcast_ref::<::reqwest::Error>() {
            return e.rate_limit_kind();
        }
    }
    #[cfg(feature = "async-openai")]
    {
        if let Some(e) = e.downcast_ref::<::async_openai::error::OpenAIError>() {
            return e.rate_limit_kind();
        }
    }
    RateLimitKind::NotRateLimit
}
