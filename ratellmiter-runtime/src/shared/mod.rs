//! One budget shared by many processes: the backend-neutral [`SharedBackend`] trait,
//! and the driver's side of it — clearing each ticket with the shared store before it
//! goes out, the shared pause, and the local fallback while the store is unreachable.
//!
//! # Design
//! Each process keeps its own queue and [`Pacer`](crate::pacer::Pacer): FIFO order,
//! priorities and re-queued calls first stay local, and only the budget is shared.
//! When the local pacer issues the head's ticket, the driver *clears* it: one round trip
//! reserves the next slot of the shared schedule ([`SharedBackend::reserve`]), and the
//! ticket is handed over when that slot comes. Nothing else issues locally while a
//! ticket clears, so a process holds at most one reservation and never books slots it
//! may not use; the shared schedule alone decides the spacing across processes. (Slots
//! booked ahead and used late would bunch with another process's slot used on time
//! and break the one-second bound; booked when due, each goes out at its slot.)
//!
//! The store keeps the schedule in its own clock, so hosts whose clocks disagree still
//! share one even spacing. A rate limit seen by any process pauses them all
//! ([`Grant::Paused`]); when the pause ends exactly one process probes and its success
//! resumes everyone, each restarting its ramp (the local pacer is held through the
//! shared pause, so it restarts the ramp as after any hold).
//!
//! When the store cannot be reached the limiter keeps pacing locally at the fallback rate
//! of [`Fallback`], logs one warning, and asks the store again every
//! [`Fallback::retry_every`] until it answers: no call waits on a dead store.
//!
//! Shared besides the rate: the slower rate a process learned from rate limits (the
//! adaptive ceiling, while it recovers) and the token budget's spacing — each call
//! pushes the next by its estimate's share of a minute. Local only: the token budget's
//! hard 60 s window, corrections by `record_usage`, and holds from `observe_budget`.

mod budget;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::time::Duration;

use crate::rate_limit::BoxFuture;

pub(crate) use budget::SharedBudget;
#[cfg(feature = "redis")]
pub use redis::RedisBackend;

/// A store holding one budget for every process that uses the same key: it schedules
/// tickets and keeps the shared pause. `RedisBackend` is the implementation shipped
/// (feature `redis`); the trait lets tests and other stores stand in.
///
/// Implementations answer from the store's clock, never the caller's, and return quickly
/// (bounded by a time-out) when the store is unreachable: the limiter then falls back to
/// local pacing.
pub trait SharedBackend: fmt::Debug + Send + Sync + 'static {
    /// Reserves the next slot of the shared schedule for one ticket, in one round trip.
    fn reserve(&self, request: SlotRequest) -> BoxFuture<'static, Result<Grant, SharedError>>;

    /// Tells the other processes about a rate limit or a probe's end. Fire and forget:
    /// a report lost while the store is down only costs the others one rate limit.
    fn report(&self, report: Report);

    /// How to pace while the store is unreachable.
    fn fallback(&self) -> Fallback {
        Fallback::default()
    }
}

/// What one ticket asks of the shared schedule. Nothing of the call itself is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlotRequest {
    /// Spacing after the previous ticket of any process: `60 / rpm`.
    pub interval: Duration,
    /// The slower spacing this process learned from rate limits (the adaptive ceiling),
    /// shared with the others; `None` when it learned nothing.
    pub learned_interval: Option<Duration>,
    /// The call's token estimate (counts only with `tpm`).
    pub cost: u64,
    /// The shared tokens-per-minute budget, if any.
    pub tpm: Option<u64>,
}

/// The store's answer to a [`SlotRequest`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grant {
    /// A slot is reserved: the ticket goes out after `wait`.
    Slot {
        /// Time until the slot.
        wait: Duration,
        /// The slot, as time since the Unix epoch on the store's clock.
        at: Duration,
        /// This ticket is the one probe after a shared pause.
        probe: bool,
    },
    /// The shared budget is paused after a rate limit (or another process's probe is
    /// out): nothing is reserved; ask again after `wait`.
    Paused {
        /// Time until asking again is worth it.
        wait: Duration,
    },
}

/// News for the other processes sharing the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Report {
    /// A call was refused for the rate limit: pause everyone (unless a pause is on
    /// already), or back off when the refused call was this process's shared probe.
    RateLimited {
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
        /// The pause when the server gave no `retry_after` (the limiter's probe interval).
        probe_initial: Duration,
        /// Growth of the pause after each refused probe.
        probe_factor: f64,
        /// Longest pause.
        probe_max: Duration,
    },
    /// A probe succeeded: if it was the shared probe, everyone resumes.
    ProbeSucceeded,
    /// A probe ended without an answer (cancelled): let the next process probe.
    ProbeAbandoned,
}

/// How a limiter paces while its shared store is unreachable.
///
/// The default rate is the full rate divided by `expected_processes` when that is set,
/// else the full rate: each process alone cannot know how many others are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    /// Requests per minute while the store is down (overrides `expected_processes`).
    pub rpm: Option<u32>,
    /// How many processes usually share the budget.
    pub expected_processes: Option<u32>,
    /// How often to ask the store again while it is down.
    pub retry_every: Duration,
}

impl Default for Fallback {
    fn default() -> Self {
        Self {
            rpm: None,
            expected_processes: None,
            retry_every: Duration::from_secs(1),
        }
    }
}

impl Fallback {
    /// The local rate while the store is down, for a shared budget of `rpm`.
    ///
    /// ```
    /// use ratellmiter::shared::Fallback;
    /// let f = Fallback { expected_processes: Some(4), ..Fallback::default() };
    /// assert_eq!(f.local_rpm(600), 150);
    /// assert_eq!(Fallback::default().local_rpm(600), 600);
    /// assert_eq!(Fallback { rpm: Some(100), ..f }.local_rpm(600), 100);
    /// ```
    pub fn local_rpm(&self, rpm: u32) -> u32 {
        match (self.rpm, self.expected_processes) {
            (Some(r), _) => r,
            (None, Some(n)) => rpm.div_ceil(n.max(1)),
            (None, None) => rpm,
        }
    }
}

/// The shared store could not answer (unreachable, timed out, or refused the command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedError {
    message: String,
}

impl SharedError {
    /// An error with this description.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shared rate-limit store: {}", self.message)
    }
}

impl std::error::Error for SharedError {}
