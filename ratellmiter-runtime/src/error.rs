//! Why a call could not get a ticket.

use std::time::{Duration, SystemTime};

use crate::pacer::RequestError;

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
    /// let spent = limiter.acquire_timeout(Duration::from_secs(60)).await.unwrap_err();
    /// let tomorrow = midnight + Duration::from_secs(86_400);
    /// assert_eq!(spent, AcquireError::QuotaExhausted { resets_at: tomorrow });
    /// // A deadline past the reset waits for it.
    /// assert!(limiter.acquire_timeout(Duration::from_secs(3 * 3600)).await.is_ok());
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

impl AcquireError {
    /// The engine's refusal, with its engine times put on the wall clock
    /// (`wall_origin` is the wall-clock time of engine time zero).
    pub(crate) fn from_request(e: RequestError, wall_origin: SystemTime) -> Self {
        match e {
            RequestError::CostExceedsBudget { cost, tpm } => {
                AcquireError::CostExceedsBudget { cost, tpm }
            }
            RequestError::CostExceedsDailyBudget { cost, tpd } => {
                AcquireError::CostExceedsDailyBudget { cost, tpd }
            }
            RequestError::QuotaExhausted { resets_at } => AcquireError::QuotaExhausted {
                resets_at: wall_origin + resets_at,
            },
        }
    }
}
