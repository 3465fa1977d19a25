//! One budget shared by many processes: the backend-neutral [`SharedBackend`] trait,
//! and the driver's side of it — clearing each ticket with the shared store before it
//! goes out, and the local fallback while the store is unreachable.
//!
//! # Design
//! Each process keeps its own queue and [`Pacer`](crate::pacer::Pacer): FIFO order,
//! priorities and re-queued calls first stay local. Everything the provider counts for
//! the organisation is kept by the store, on the store's clock, for the fleet as one
//! client: the schedule and its ramp, the pause and the one probe after it, every
//! budget (requests and tokens per minute, by kind, and per day) and the calls in flight.
//!
//! When the local pacer issues the head's ticket, the driver *clears* it: one round trip
//! reserves the next slot of the fleet's schedule ([`SharedBackend::reserve`]); when the
//! slot comes, a second ([`SharedBackend::claim`]) checks it against the hand-overs of
//! the last second, so the one-second bound holds on actual hand-over times, not only
//! on the schedule (a slot due at once is claimed by the reservation itself). The bound
//! is kept over a second and a margin
//! ([`RedisBackend::hand_over_margin`](crate::RedisBackend::hand_over_margin), 20 ms),
//! so that the jitter of sending a request after its ticket does not put one more in a
//! second at the provider. Nothing
//! else issues locally while a ticket clears, so a process holds at most one
//! reservation and never books slots it may not use.
//!
//! - **Ramp**: the fleet's rate follows the ramp of [`crate::pacer`] ("Ramp") on the
//!   store's clock — a burst from idle across four processes climbs as one process's
//!   would. The local pacer does not ramp.
//! - **Pause and probe**: a rate limit seen by any process pauses the fleet
//!   ([`Grant::Paused`]); when the pause ends the store hands exactly one ticket the
//!   probe ([`SharedTicket::probe`]), and only that ticket's answer decides: its
//!   success resumes the fleet (a new *epoch*), its refusal backs off. A probe nobody
//!   answered within `probe_timeout` (its process died, its report was lost) passes to
//!   the next ticket, so a lost report costs the others at most one probe time-out. A
//!   429 from a ticket of an earlier epoch — sent before the fleet's last resume, by any
//!   process — neither pauses nor teaches: each process's adaptive ceiling learns from
//!   the fleet's pauses, not from its own 429s.
//! - **Budgets**: tokens per minute (total, input, output) are spaced on the fleet's
//!   schedule by each call's charge; a call's [`Report`] settles its charge against the
//!   usage the answer reported (or refunds it when refused). Daily quotas are counted
//!   for the fleet, so the 101st call of a daily budget of 100 fails in every process
//!   ([`Grant::QuotaExhausted`]). `max_in_flight` is kept as leases that expire
//!   (renewed while the call runs), so a crashed process's calls come back.
//!
//! Every call of a backend is made outside the limiter's lock, and reports and
//! reservations reach the backend in the order the events happened in this process.
//!
//! When the store cannot be reached the limiter keeps pacing locally at the fallback rate
//! of [`Fallback`] (with its own ramp, pause and probe), logs one warning, and asks the
//! store again every [`Fallback::retry_every`] until it answers: no call waits on a
//! dead store. Local only: the token budgets' hard 60 s window and holds from the
//! provider's headers.

mod budget;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::time::Duration;

use crate::config::LimiterConfig;
use crate::pacer::{Cost, Outcome};
use crate::rate_limit::BoxFuture;

pub(crate) use budget::{Next, SharedBudget};
#[cfg(feature = "redis")]
pub use redis::RedisBackend;

/// A store holding one budget for every process that uses the same key: it schedules
/// tickets, keeps the shared pause and counts every budget. `RedisBackend` is the
/// implementation shipped (feature `redis`); the trait lets tests and other stores
/// stand in.
///
/// Implementations answer from the store's clock, never the caller's, and return quickly
/// (bounded by a time-out) when the store is unreachable: the limiter then falls back to
/// local pacing. The limiter calls them in the order of its events (a report before a
/// later reservation); an implementation keeps that order when it sends them on, e.g.
/// by queueing the request before `reserve` returns its future.
pub trait SharedBackend: fmt::Debug + Send + Sync + 'static {
    /// Reserves the next slot of the shared schedule for one ticket, in one round trip.
    fn reserve(&self, request: SlotRequest) -> BoxFuture<'static, Result<Grant, SharedError>>;

    /// At a reserved slot: may the ticket go now? [`Claim::Went`] yes (the hand-over is
    /// counted), [`Claim::Wait`] when `ceil(rpm / 60)` tickets already went in the last
    /// second.
    fn claim(&self, rpm: u32) -> BoxFuture<'static, Result<Claim, SharedError>>;

    /// Tells the store how a ticket's call ended, when it needs to know. Fire and
    /// forget: a report lost while the store is down costs the others at most one probe
    /// time-out (an unanswered probe counts as refused) or one lease's expiry.
    fn report(&self, report: Report);

    /// How to pace while the store is unreachable; asked once, when the limiter starts
    /// sharing.
    fn fallback(&self) -> Fallback {
        Fallback::default()
    }
}

/// What one ticket asks of the shared schedule. Nothing of the call itself is sent.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SlotRequest {
    /// The limiter's settings: the budgets, the ramp and the probe schedule.
    pub config: LimiterConfig,
    /// The slower spacing this process learned from rate limits (the adaptive ceiling),
    /// shared with the others; `None` when it learned nothing.
    pub learned_interval: Option<Duration>,
    /// How long the call has waited so far: it came when the store's clock read
    /// `now - waited` (the ramp grows only while calls wait).
    pub waited: Duration,
    /// The call's token charge by kind.
    pub cost: Cost,
}

impl SlotRequest {
    /// A request for a call of no tokens that has not waited, under `config`.
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            learned_interval: None,
            waited: Duration::ZERO,
            cost: Cost::ZERO,
        }
    }
}

/// The store's answer to a [`SlotRequest`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Grant {
    /// A slot is reserved: the ticket goes out after `wait` (then claims it, unless
    /// `wait` is zero: a slot due at once is claimed by the reservation).
    Slot {
        /// Time until the slot.
        wait: Duration,
        /// The slot, as time since the Unix epoch on the store's clock.
        at: Duration,
        /// The ticket as the store knows it; its [`Report`] names it.
        ticket: SharedTicket,
        /// The fleet's rate in force, tickets per second (the ramp and the learned
        /// ceiling applied).
        rate: f64,
    },
    /// The fleet is paused after a rate limit (or another ticket probes): nothing is
    /// reserved; ask again after `wait`.
    Paused {
        /// Time until asking again is worth it.
        wait: Duration,
        /// The fleet's epoch: the pause ends it.
        epoch: u64,
    },
    /// `max_in_flight` calls of the fleet are in flight: ask again after `wait`.
    AtCapacity {
        /// Time until asking again is worth it.
        wait: Duration,
    },
    /// A daily quota of the fleet is spent until `resets_at` (time since the Unix epoch
    /// on the store's clock).
    QuotaExhausted {
        /// When the quota comes back.
        resets_at: Duration,
    },
}

/// The store's answer to a claim ([`SharedBackend::claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The ticket goes: its hand-over counted at `at` (time since the Unix epoch on the
    /// store's clock).
    Went {
        /// When the store counted it.
        at: Duration,
    },
    /// The last second is full: claim again after this.
    Wait(Duration),
}

/// A ticket as the store knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SharedTicket {
    /// Unique per store and key.
    pub id: u64,
    /// The fleet's epoch when the ticket was granted: it grows at each resume.
    pub epoch: u64,
    /// The ticket is the fleet's one probe after a pause.
    pub probe: bool,
    /// The ticket holds one of `max_in_flight` places (a lease) until its report.
    pub lease: bool,
    /// The day its daily quotas were charged to (the store's numbering).
    pub day: i64,
}

/// How a ticket's call ended, for the store: sent for rate limits, probes, leases and
/// usage that differs from the charge (a plain success costs no round trip).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// The ticket, as granted.
    pub ticket: SharedTicket,
    /// How its call ended.
    pub outcome: Outcome,
    /// What its reservation charged, by kind.
    pub charged: Cost,
    /// What the answer reported using (`None`: as charged).
    pub used: Option<Cost>,
    /// The limiter's settings (the probe schedule and the ramp after a resume).
    pub config: LimiterConfig,
}

impl Report {
    /// A report of `ticket`'s `outcome` for a call of no tokens.
    pub fn new(ticket: SharedTicket, outcome: Outcome, config: LimiterConfig) -> Self {
        Self {
            ticket,
            outcome,
            charged: Cost::ZERO,
            used: None,
            config,
        }
    }
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
