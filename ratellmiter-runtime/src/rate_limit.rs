//! How the runtime tells a rate limit from any other error: [`IsRateLimit`] on error
//! types (its one method gives a [`RateLimit`] verdict), [`CallOutcome`] on return
//! types, and [`RateLimitedService`] for services that can say themselves whether they
//! still refuse calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::BucketRateLimiter;

/// The two kinds of rate limit, as [`RateLimit::kind`] gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateLimitKind {
    /// A rate limit worth waiting out: the limiter pauses, probes, and re-runs the call.
    Retry,
    /// Looks like a rate limit but waiting will not help (a spend limit, a daily quota
    /// spent: OpenAI's `insufficient_quota`, Anthropic's `enforced_spend_limit_reached`):
    /// returned to the caller at once, without pausing the limiter.
    Final,
}

/// The verdict of an error that is a rate limit: its [kind](RateLimitKind) and, for one
/// worth waiting out, how long the server asked to wait.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::{RateLimit, RateLimitKind};
///
/// let wait = RateLimit::retry(Some(Duration::from_secs(2)));
/// assert_eq!((wait.kind(), wait.retry_after()), (RateLimitKind::Retry, Some(Duration::from_secs(2))));
/// let spent = RateLimit::final_quota();
/// assert!(spent.is_final() && spent.retry_after().is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    kind: RateLimitKind,
    retry_after: Option<Duration>,
}

impl RateLimit {
    /// A rate limit worth waiting out, after `retry_after` when the server said.
    pub const fn retry(retry_after: Option<Duration>) -> Self {
        Self {
            kind: RateLimitKind::Retry,
            retry_after,
        }
    }

    /// A rate limit that waiting cannot cure (a quota spent): the call fails at once and
    /// the limiter does not pause.
    pub const fn final_quota() -> Self {
        Self {
            kind: RateLimitKind::Final,
            retry_after: None,
        }
    }

    /// Which kind of rate limit this is.
    pub const fn kind(&self) -> RateLimitKind {
        self.kind
    }

    /// How long the server asked to wait (`retry-after`), if it said; always `None` for
    /// a final one.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// True for a [final](RateLimitKind::Final) rate limit.
    pub const fn is_final(&self) -> bool {
        matches!(self.kind, RateLimitKind::Final)
    }
}

/// Tells the limiter whether an error is a rate limit (HTTP 429 and its kin), through
/// one method, so a type wrapping another error forwards everything or nothing.
///
/// Derive it: `#[rate_limit]` marks a variant that is a rate limit (a field marked
/// `#[retry_after]`, of type `Duration` or `Option<Duration>`, says how long to wait),
/// `#[rate_limit(final)]` one that waiting cannot cure, and
/// `#[rate_limit(transparent)]` a single-field variant (or newtype struct) whose error
/// decides; other variants are not rate limits.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::{IsRateLimit, RateLimit};
///
/// #[derive(Debug, IsRateLimit)]
/// enum MyError {
///     #[rate_limit]
///     RateLimited { #[retry_after] wait: Option<Duration> },
///     #[rate_limit(final)]
///     QuotaExhausted,
///     #[rate_limit(transparent)]
///     Io(std::io::Error),
///     Other(String),
/// }
///
/// let e = MyError::RateLimited { wait: Some(Duration::from_secs(3)) };
/// assert_eq!(e.rate_limit(), Some(RateLimit::retry(Some(Duration::from_secs(3)))));
/// assert_eq!(MyError::QuotaExhausted.rate_limit(), Some(RateLimit::final_quota()));
/// assert_eq!(MyError::Other("bad request".into()).rate_limit(), None);
/// ```
///
/// By hand, the same is one `match`:
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::{IsRateLimit, RateLimit};
///
/// #[derive(Debug)]
/// enum MyError { RateLimited { wait: Option<Duration> }, QuotaExhausted, Io(std::io::Error), Other(String) }
///
/// impl IsRateLimit for MyError {
///     fn rate_limit(&self) -> Option<RateLimit> {
///         match self {
///             MyError::RateLimited { wait } => Some(RateLimit::retry(*wait)),
///             MyError::QuotaExhausted => Some(RateLimit::final_quota()),
///             MyError::Io(e) => e.rate_limit(),
///             MyError::Other(_) => None,
///         }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `IsRateLimit`",
    label = "the limiter cannot tell whether this error is a rate limit",
    note = "derive it (`#[derive(ratellmiter::IsRateLimit)]`, marking rate-limit variants `#[rate_limit]`) or implement `fn rate_limit(&self) -> Option<ratellmiter::RateLimit>`"
)]
pub trait IsRateLimit {
    /// `Some` when the server refused the call for its rate limit: whether waiting helps
    /// and how long it asked to wait. `None` for any other error, which goes straight
    /// to the caller.
    fn rate_limit(&self) -> Option<RateLimit>;
}

/// A box or `Arc` of an error classifies as the error does.
macro_rules! forward_is_rate_limit {
    ($($wrapper:ident),*) => {$(
        impl<E: IsRateLimit + ?Sized> IsRateLimit for $wrapper<E> {
            fn rate_limit(&self) -> Option<RateLimit> {
                (**self).rate_limit()
            }
        }
    )*};
}

forward_is_rate_limit!(Box, Arc);

/// I/O errors are never rate limits: a refused connection is not a 429.
impl IsRateLimit for std::io::Error {
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }
}

/// A call that cannot fail is never rate limited.
impl IsRateLimit for std::convert::Infallible {
    fn rate_limit(&self) -> Option<RateLimit> {
        None
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
    /// What this outcome says about rate limiting: `None` for a success or another error.
    fn rate_limit(&self) -> Option<RateLimit>;
}

impl<T, E: IsRateLimit> CallOutcome for Result<T, E> {
    fn rate_limit(&self) -> Option<RateLimit> {
        self.as_ref().err().and_then(IsRateLimit::rate_limit)
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
/// use ratellmiter::{BoxFuture, BucketRateLimiter, RateLimitedService};
///
/// struct Mistral { shared: BucketRateLimiter }
///
/// impl RateLimitedService for Mistral {
///     fn service_name(&self) -> &str { "mistral" }
///     fn is_blocked(&self) -> BoxFuture<'_, bool> {
///         // Send "What is the capital of France?" and report whether it was refused.
///         Box::pin(async { false })
///     }
///     fn limiter(&self, _model: Option<&str>) -> BucketRateLimiter {
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
    fn limiter(&self, model: Option<&str>) -> BucketRateLimiter;
}
