//! anyhow (feature `anyhow`): [`IsRateLimit`] for [`anyhow::Error`](::anyhow::Error).

use crate::rate_limit::{IsRateLimit, RateLimit};
use std::error::Error;

/// `anyhow::Error` (feature `anyhow`): looks along the error's chain (its context layers and sources, outermost first) for
/// an error of a supported type that is a rate limit: `reqwest::Error` and
/// `ratellmiter::reqwest::RateLimitError` with feature `reqwest`, `OpenAIError` with
/// feature `async-openai`. Any other error (an I/O error, a type of your own) is not a
/// rate limit.
///
/// ```
/// use anyhow::Context;
/// use ratellmiter::IsRateLimit;
///
/// let io = std::io::Error::other("connection reset");
/// let e = anyhow::Error::new(io).context("asking the model");
/// assert_eq!(e.rate_limit(), None);
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "anyhow")))]
impl IsRateLimit for ::anyhow::Error {
    /// The first rate limit along the chain, outermost first.
    fn rate_limit(&self) -> Option<RateLimit> {
        self.chain().find_map(rate_limit_of)
    }
}

/// What one link of the chain says, for the types the enabled features know.
#[cfg_attr(
    not(any(feature = "reqwest", feature = "async-openai")),
    allow(unused_variables)
)]
fn rate_limit_of(e: &(dyn Error + 'static)) -> Option<RateLimit> {
    #[cfg(feature = "reqwest")]
    {
        if let Some(e) = e.downcast_ref::<crate::reqwest::RateLimitError>() {
            return e.rate_limit();
        }
        if let Some(e) = e.downcast_ref::<::reqwest::Error>() {
            return e.rate_limit();
        }
    }
    #[cfg(feature = "async-openai")]
    {
        if let Some(e) = e.downcast_ref::<::async_openai::error::OpenAIError>() {
            return e.rate_limit();
        }
    }
    None
}
