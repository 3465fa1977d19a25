//! What `#[llmiter]` and `#[derive(IsRateLimit)]` expansions call. Not public API:
//! only the macros of the same version use it (the facade pins `ratellmiter-macros`
//! exactly).

pub use core::time::Duration;
pub use ratellmiter_runtime::{
    AcquireError, BucketRateLimiter, Call, IsRateLimit, Monitor, Priority, RateLimit, monitor,
};

/// `limiter = <expr>`: anything that gives a limiter, taken as an owned handle (one
/// budget, shared) so the expression's borrows end before the attempts start.
#[diagnostic::on_unimplemented(
    message = "`limiter = …` needs a `BucketRateLimiter`, found `{Self}`",
    label = "not a limiter",
    note = "give a `BucketRateLimiter` or a `&BucketRateLimiter` (a cheap handle: clone it rather than wrap it in an `Arc`); to pick a limiter by name, write `service = …`"
)]
pub trait AsLimiter {
    /// A handle on the same limiter.
    fn to_limiter(&self) -> BucketRateLimiter;
}

impl AsLimiter for BucketRateLimiter {
    fn to_limiter(&self) -> BucketRateLimiter {
        self.clone()
    }
}

impl<T: AsLimiter + ?Sized> AsLimiter for &T {
    fn to_limiter(&self) -> BucketRateLimiter {
        (**self).to_limiter()
    }
}

/// An owned argument copied for each attempt: `Clone`, with an error that says why.
#[diagnostic::on_unimplemented(
    message = "`#[llmiter]` re-runs the call after a rate limit, so it clones this argument for each attempt, but `{Self}` is not `Clone`",
    label = "cloned for each attempt",
    note = "implement or derive `Clone` for it, take it by reference, or write `#[llmiter(max_retries = 0)]` to run the call once without cloning"
)]
pub trait RetryArg: Sized {
    /// `Clone::clone`.
    fn clone_for_attempt(&self) -> Self;
}

impl<T: Clone> RetryArg for T {
    fn clone_for_attempt(&self) -> Self {
        self.clone()
    }
}

/// The function's own error for a ticket it could not get (`timeout`, `tokens`).
#[diagnostic::on_unimplemented(
    message = "`#[llmiter(timeout = …)]` and `#[llmiter(tokens = …)]` need a `Result` return type, found `{Self}`",
    label = "cannot carry an `AcquireError`",
    note = "return `Result<T, E>` with `E: From<ratellmiter::AcquireError>`"
)]
pub trait FromAcquireError {
    /// `Err(E::from(e))`.
    fn from_acquire_error(e: AcquireError) -> Self;
}

impl<T, E: From<AcquireError>> FromAcquireError for Result<T, E> {
    fn from_acquire_error(e: AcquireError) -> Self {
        Err(E::from(e))
    }
}

/// The outcome of a call that gave up waiting: `Err(E::from(e))`.
pub fn acquire_failed<R: FromAcquireError>(e: AcquireError) -> R {
    R::from_acquire_error(e)
}

/// The outcome of a call with neither deadline nor token cost, which always gets a
/// ticket.
pub fn always_issued<R>(outcome: Result<R, AcquireError>) -> R {
    match outcome {
        Ok(r) => r,
        Err(e) => unreachable!("a call without deadline or token cost always gets a ticket: {e}"),
    }
}

/// A service name or request id as written: `&str`, `String`, `Arc<str>`, …
pub fn as_str<S: AsRef<str> + ?Sized>(s: &S) -> &str {
    s.as_ref()
}

/// `max_retries = 0`: the body runs at most once, so it may own its arguments.
pub fn once<T>(f: impl FnOnce() -> T) -> impl FnMut() -> T {
    let mut f = Some(f);
    move || match f.take() {
        Some(f) => f(),
        None => unreachable!("a call with `max_retries = 0` runs once"),
    }
}

/// The type of a `#[retry_after]` field: how long the server asked to wait.
#[diagnostic::on_unimplemented(
    message = "a `#[retry_after]` field must be a `Duration` or an `Option<Duration>`, found `{Self}`",
    label = "not a `Duration`",
    note = "convert the server's value when building the error (`Duration::from_secs(n)`), or parse headers with `ratellmiter::headers::RateLimitHeaders`"
)]
pub trait RetryAfter {
    /// The wait, if known.
    fn retry_after(&self) -> Option<Duration>;
}

impl RetryAfter for Duration {
    fn retry_after(&self) -> Option<Duration> {
        Some(*self)
    }
}

impl RetryAfter for Option<Duration> {
    fn retry_after(&self) -> Option<Duration> {
        *self
    }
}
