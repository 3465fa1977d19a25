//! How the runtime tells a rate limit from any other error: [`IsRateLimit`] on error
//! types, [`CallOutcome`] on return types, and [`RateLimitedService`] for services
//! that can say themselves whether they still refuse calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::BucketRateLimiter;

/// What an error says about rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitKind {
    /// Not a rate limit: the error goes straight to the caller.
    NotRateLimit,
    /// A rate limit worth waiting out: the limiter pauses, probes, and re-runs the call.
    Retry {
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// Looks like a rate limit but waiting will not help (a spend limit, a daily quota
    /// spent: OpenAI's `insufficient_quota`, Anthropic's `enforced_spend_limit_reached`):
    /// returned to the caller at once, without pausing the limiter.
    Final,
}

/// Tells the limiter whether an error is a rate limit (HTTP 429 and its kin).
///
/// ```
/// use ratellmiter_runtime::IsRateLimit;
/// use std::time::Duration;
///
/// #[derive(Debug)]
/// enum MyError { RateLimited { retry_after: Option<Duration> }, QuotaExhausted, Other(String) }
///
/// impl IsRateLimit for MyError {
///     fn is_rate_limit(&self) -> bool {
///         matches!(self, MyError::RateLimited { .. } | MyError::QuotaExhausted)
///     }
///     fn retry_after(&self) -> Option<Duration> {
///         match self { MyError::RateLimited { retry_after } => *retry_after, _ => None }
///     }
///     fn is_final(&self) -> bool {
///         matches!(self, MyError::QuotaExhausted)
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `IsRateLimit`",
    label = "the limiter cannot tell whether this error is a rate limit",
    note = "implement `ratellmiter::IsRateLimit` for `{Self}`: `fn is_rate_limit(&self) -> bool`"
)]
pub trait IsRateLimit {
    /// True when the server refused the call for its rate limit.
    fn is_rate_limit(&self) -> bool;

    /// How long the server asked to wait (`retry-after`), if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// True for a rate limit that waiting cannot cure (a quota spent for the day): the
    /// call fails at once and the limiter does not pause.
    fn is_final(&self) -> bool {
        false
    }

    /// The classification the limiter acts on; built from the three methods above.
    fn rate_limit_kind(&self) -> RateLimitKind {
        if !self.is_rate_limit() {
            RateLimitKind::NotRateLimit
        } else if self.is_final() {
            RateLimitKind::Final
        } else {
            RateLimitKind::Retry {
                retry_after: self.retry_after(),
            }
        }
    }
}

/// A box or `Arc` of an error classifies as the error does.
macro_rules! forward_is_rate_limit {
    ($($wrapper:ident),*) => {$(
        impl<E: IsRateLimit + ?Sized> IsRateLimit for $wrapper<E> {
            fn is_rate_limit(&self) -> bool {
                (**self).is_rate_limit()
            }
            fn retry_after(&self) -> Option<Duration> {
                (**self).retry_after()
            }
            fn is_final(&self) -> bool {
                (**self).is_final()
            }
            fn rate_limit_kind(&self) -> RateLimitKind {
                (**self).rate_limit_kind()
            }
        }
    )*};
}

forward_is_rate_limit!(Box, Arc);

/// I/O errors are never rate limits: a refused connection is not a 429.
impl IsRateLimit for std::io::Error {
    fn is_rate_limit(&self) -> bool {
        false
    }
}

/// A call that cannot fail is never rate limited.
impl IsRateLimit for std::convert::Infallible {
    fn is_rate_limit(&self) -> bool {
        false
    }
}

/// The return type of a rate-limited call: says whether the call hit a rate limit.
/// Implemented for every `Result<T, E>` with `E: IsRateLimit`, whatever alias names it.
#[diagnostic::on_unimplemented(
    message = "`#[llmiter]` needs a function returning `Result<T, E>` with `E: IsRateLimit`, found `{Self}`",
    label = "this return type cannot carry a rate-limit error",
    note = "return a `Result` whose error type implements `ratellmiter::IsRateLimit`"
)]
pub trait CallOutcome {
    /// What this outcome says about rate limiting.
    fn rate_limit_kind(&self) -> RateLimitKind;
}

impl<T, E: IsRateLimit> CallOutcome for Result<T, E> {
    fn rate_limit_kind(&self) -> RateLimitKind {
        match self {
            Ok(_) => RateLimitKind::NotRateLimit,
            Err(e) => e.rate_limit_kind(),
        }
    }
}

/// A boxed future, as [`RateLimitedService::is_blocked`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// rateLLMiter's interface for a service with its own probe: after a rate limit the
/// limiter asks [`is_blocked`](Self::is_blocked) instead of risking a real call.
///
/// Several model names may share one limiter (Mistral, Fireworks) or each have their
/// own (OpenAI, Google): [`limiter`](Self::limiter) decides. Register it with
/// [`Monitor::add_rate_limited_service`](crate::Monitor::add_rate_limited_service).
///
/// ```
/// use std::sync::Arc;
/// use ratellmiter_runtime::{BoxFuture, BucketRateLimiter, RateLimitedService};
///
/// struct Mistral { shared: Arc<BucketRateLimiter> }
///
/// impl RateLimitedService for Mistral {
///     fn service_name(&self) -> &str { "mistral" }
///     fn is_blocked(&self) -> BoxFuture<'_, bool> {
///         // Send "What is the capital of France?" and report whether it was refused.
///         Box::pin(async { false })
///     }
///     fn limiter(&self, _model: Option<&str>) -> Arc<BucketRateLimiter> {
///         self.shared.clone() // one budget for all models
///     }
/// }
/// ```
pub trait RateLimitedService: Send + Sync + 'static {
    /// The name used in logs and graphs.
    fn service_name(&self) -> &str;
    /// Whether the server still refuses calls. Called once per probe, never concurrently.
    fn is_blocked(&self) -> BoxFuture<'_, bool>;
    /// The limiter serving `model` (`None`: the service's default).
    fn limiter(&self, model: Option<&str>) -> Arc<BucketRateLimiter>;
}
