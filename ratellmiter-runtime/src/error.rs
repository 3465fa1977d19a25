//! Why a call could not get a ticket: the errors of the engine and of the limiter alike
//! (this module knows no other).

use std::time::{Duration, SystemTime};

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
    /// The call's token estimate exceeds the whole per-day budget.
    CostExceedsDailyBudget {
        /// The estimate.
        cost: u64,
        /// The tokens-per-day budget.
        tpd: u64,
    },
    /// A daily quota (`rpd`, `tpd`) is spent, and it comes back only after the call's
    /// deadline (or the call has none): the call fails at once instead of waiting for
    /// hours. A call whose deadline lets it wait for the reset waits.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use ratellmiter::{AcquireError, BucketRateLimiter};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// // Two requests a day, and the day (UTC) started 22 h ago.
    /// let midnight = SystemTime::UNIX_EPOCH + Duration::from_secs(20_000 * 86_400);
    /// let limiter = BucketRateLimiter::builder()
    ///     .rpm(60)
    ///     .rpd(2)
    ///     .wall_clock(midnight + Duration::from_secs(22 * 3600))
    ///     .build()
    ///     .unwrap();
    /// drop(limiter.acquire().await);
    /// drop(limiter.acquire().await);
    /// let spent = limiter.acquire().timeout(Duration::from_secs(60)).await.unwrap_err();
    /// let tomorrow = midnight + Duration::from_secs(86_400);
    /// assert_eq!(spent, AcquireError::QuotaExhausted { resets_at: tomorrow });
    /// // A deadline past the reset waits for it.
    /// assert!(limiter.acquire().timeout(Duration::from_secs(3 * 3600)).await.is_ok());
    /// # }
    /// ```
    QuotaExhausted {
        /// When the quota comes back, on the wall clock.
        resets_at: SystemTime,
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
            AcquireError::CostExceedsDailyBudget { cost, tpd } => write!(
                f,
                "a call estimated at {cost} tokens can never run under a budget of {tpd} tokens per day"
            ),
            AcquireError::QuotaExhausted { resets_at } => {
                let left = resets_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                write!(
                    f,
                    "the daily quota is spent; it resets in {}s ({} s after the UNIX epoch)",
                    left.as_secs(),
                    resets_at
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs()
                )
            }
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
    /// `max_in_flight` calls are running: a place comes back when one of them ends.
    AtCapacity,
}

impl<At> TryAcquireError<At> {
    /// The same refusal with its time mapped (the engine's time to an instant).
    pub(crate) fn map_at<B>(self, f: impl FnOnce(At) -> B) -> TryAcquireError<B> {
        match self {
            TryAcquireError::NotBefore(at) => TryAcquireError::NotBefore(f(at)),
            TryAcquireError::Queued => TryAcquireError::Queued,
            TryAcquireError::Paused => TryAcquireError::Paused,
            TryAcquireError::AtCapacity => TryAcquireError::AtCapacity,
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
            TryAcquireError::AtCapacity => "the most calls allowed in flight are running",
        })
    }
}

impl<At: std::fmt::Debug> std::error::Error for TryAcquireError<At> where Self: std::fmt::Display {}
