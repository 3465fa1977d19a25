//! Why a call could not get a ticket.

use std::time::Duration;

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

impl From<RequestError> for AcquireError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::CostExceedsBudget { cost, tpm } => {
                AcquireError::CostExceedsBudget { cost, tpm }
            }
        }
    }
}
