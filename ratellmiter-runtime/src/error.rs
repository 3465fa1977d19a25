//! Why a call could not get a ticket: the errors of the engine and of the limiter alike
//! (this module knows no other).

use std::time::Duration;

use tokio::time::Instant;

/// A ticket that could not be had: the wait ran past its deadline, or the call can
/// never fit the token budget. The queue is left as if the call never came.
///
/// `#[llmiter(timeout = …)]` and `#[llmiter(tokens = …)]` turn it into the function's
/// error type through `From<AcquireError>`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcquireError {
    /// No ticket came before the deadline.
    Timeout {
        /// How long the call waited before giving up.
        waited: Duration,
    },
    /// The call's token estimate exceeds the whole per-minute budget.
    CostExceedsBudget {
        /// The estimate.
        cost: u64,
        /// The tokens-per-minute budget.
        tpm: u64,
    },
}

impl std::fmt::Display for AcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcquireError::Timeout { waited } => {
                write!(
                    f,
                    "gave up waiting for a rate-limit ticket after {waited:?}"
                )
            }
            AcquireError::CostExceedsBudget { cost, tpm } => write!(
                f,
                "a call estimated at {cost} tokens can never run under a budget of {tpm} tokens per minute"
            ),
        }
    }
}

impl std::error::Error for AcquireError {}

/// Why a ticket asked for with [`Acquire::try_now`](crate::Acquire::try_now) did not
/// come at once. The limiter says when in [`Instant`]s; the engine
/// ([`Pacer::try_issue`](crate::pacer::Pacer::try_issue)), which reads no clock, in the
/// `Duration` since its origin.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use ratellmiter::{BucketRateLimiter, TryAcquireError};
/// let limiter = BucketRateLimiter::new(60);
/// let _first = limiter.acquire().try_now().unwrap();
/// match limiter.acquire().try_now() {
///     Err(TryAcquireError::NotBefore(at)) => assert!(at > tokio::time::Instant::now()),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryAcquireError<At = Instant> {
    /// No ticket is free before this time (if nobody queues first).
    NotBefore(At),
    /// Calls are queued ahead: taking a ticket would jump the line.
    Queued,
    /// The limiter is paused after a rate limit.
    Paused,
}

impl<At> TryAcquireError<At> {
    /// The same refusal with its time mapped (the engine's time to an instant).
    pub(crate) fn map_at<B>(self, f: impl FnOnce(At) -> B) -> TryAcquireError<B> {
        match self {
            TryAcquireError::NotBefore(at) => TryAcquireError::NotBefore(f(at)),
            TryAcquireError::Queued => TryAcquireError::Queued,
            TryAcquireError::Paused => TryAcquireError::Paused,
        }
    }
}

impl std::fmt::Display for TryAcquireError<Instant> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TryAcquireError::NotBefore(at) => write!(
                f,
                "no ticket free for another {:?}",
                at.saturating_duration_since(Instant::now())
            ),
            other => other.fmt_rest(f),
        }
    }
}

impl std::fmt::Display for TryAcquireError<Duration> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TryAcquireError::NotBefore(at) => {
                write!(f, "no ticket free before {at:?} on the engine's clock")
            }
            other => other.fmt_rest(f),
        }
    }
}

impl<At> TryAcquireError<At> {
    /// The text of a refusal that names no time.
    fn fmt_rest(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TryAcquireError::NotBefore(_) => "no ticket free now",
            TryAcquireError::Queued => "calls are queued ahead for a ticket",
            TryAcquireError::Paused => "the limiter is paused after a rate limit",
        })
    }
}

impl<At: std::fmt::Debug> std::error::Error for TryAcquireError<At> where Self: std::fmt::Display {}
