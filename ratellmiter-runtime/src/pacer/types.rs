//! The engine's value types: what the drivers ask of [`Pacer`], and what
//! it answers.

use std::time::Duration;

use super::Cost;
#[cfg(doc)]
use {super::Pacer, crate::Stats};

/// Identifies one waiting call and, once issued, its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaiterId(pub(crate) u64);

/// Where a new call queues: high-priority calls go ahead of normal ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Priority {
    /// The default: first come, first served.
    #[default]
    Normal,
    /// Ahead of normal calls, behind calls re-queued after a rate limit.
    High,
}

/// A request for a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The call was rate limited before and goes to the front of the line.
    pub retry: bool,
    /// Queue of a new call.
    pub priority: Priority,
    /// Estimated tokens the call uses, by kind (counts only with token budgets).
    pub cost: Cost,
    /// When the call gives up waiting (engine time), if it does: a spent daily quota
    /// fails the call at once unless it returns by then.
    pub deadline: Option<Duration>,
}

impl Request {
    /// A new call of normal priority and no token cost.
    pub const NEW: Request = Request {
        retry: false,
        priority: Priority::Normal,
        cost: Cost::ZERO,
        deadline: None,
    };
    /// A call re-queued after a rate limit.
    pub const RETRY: Request = Request {
        retry: true,
        priority: Priority::Normal,
        cost: Cost::ZERO,
        deadline: None,
    };
}

/// The budgets a provider's `*-limit-*` headers named (see [`Pacer::learn_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Learned {
    /// Requests per minute.
    pub rpm: Option<u64>,
    /// Requests per day.
    pub rpd: Option<u64>,
    /// Tokens per minute.
    pub tpm: Option<u64>,
    /// Input tokens per minute.
    pub input_tpm: Option<u64>,
    /// Output tokens per minute.
    pub output_tpm: Option<u64>,
}

/// What is left of one limit and when it refills, as a provider's rate-limit headers
/// say (see [`headers`](crate::headers)).
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::headers::Budget;
/// let spent = Budget { remaining: 0, reset: Duration::from_secs(5) };
/// assert_eq!(spent.remaining, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Requests or tokens left.
    pub remaining: u64,
    /// Time from the response until the limit refills.
    pub reset: Duration,
}

/// A ticket the engine issued: only the engine makes them, and [`Pacer::finish`] takes
/// back only what it issued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Issued {
    pub(crate) id: WaiterId,
    pub(crate) cost: u64,
    pub(crate) input: u64,
    pub(crate) output: u64,
    pub(crate) probe: bool,
    pub(crate) retry: bool,
    pub(crate) waited: Duration,
    pub(crate) epoch: u64,
    /// When the call gives up waiting (engine time), as its request said.
    pub(crate) deadline: Option<Duration>,
}

impl Issued {
    /// The waiter that holds the ticket now.
    pub fn id(&self) -> WaiterId {
        self.id
    }

    /// Its token estimate (the total-tokens charge).
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// Its input-token charge.
    pub fn input(&self) -> u64 {
        self.input
    }

    /// Its output-token reservation.
    pub fn output(&self) -> u64 {
        self.output
    }

    /// Whether this ticket is the probe that decides if the server accepts calls again.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// Whether it re-issues a rate-limited call.
    pub fn is_retry(&self) -> bool {
        self.retry
    }

    /// How long the call waited in the queue.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The pause epoch it was issued in (each resume starts a new one): a rate limit
    /// from an earlier epoch is stale.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// Identifies one [`Step::ProbeService`] check, for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProbeId(pub(super) u64);

/// What the driver should do next: the answer of [`Pacer::poll`]. Exhaustive on
/// purpose: a driver must act on every step, so a new one is a breaking change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// A ticket went out now.
    Issued(Issued),
    /// Nothing is due before this time.
    WaitUntil(Duration),
    /// The pause is over: ask the service whether it still refuses calls, then report
    /// with [`Pacer::probe_result`]; unanswered after `probe_timeout`, it counts as refused.
    ProbeService(ProbeId),
    /// A daily quota is spent until `resets_at`, after the deadline of call `id` (or it
    /// has none): the call left the queue and fails now.
    QuotaExhausted {
        /// The call that fails.
        id: WaiterId,
        /// When the quota comes back.
        resets_at: Duration,
    },
    /// `max_in_flight` tickets are out: nothing goes out before a call ends
    /// ([`Pacer::finish`]).
    AtCapacity,
    /// Nobody waits (a probe may be out: polling again after its timeout notices it).
    Idle,
}

/// How a ticket's call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The server accepted the call (whatever the call did with the answer).
    Success,
    /// The call failed for a reason other than a rate limit.
    Error,
    /// The server refused the call with a rate limit.
    RateLimited {
        /// How long the server asked to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The call was dropped before it ended (cancelled, panicked): its outcome is unknown.
    Abandoned,
}

/// State changes worth logging, drained with [`Pacer::drain_events`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Issuing stopped after a rate limit, until `until`.
    Pause {
        /// When probing starts.
        until: Duration,
        /// Whether the wait came from the server's `retry_after`.
        retry_after: bool,
    },
    /// A probe went out (a ticket, or the service check).
    Probe,
    /// A probe was refused; the next comes at `until`.
    ProbeFailed {
        /// When the next probe goes out.
        until: Duration,
    },
    /// Issuing resumed, with the ramp from its start.
    Resume,
    /// The learned ceiling dropped to this rate (tickets per second).
    LearnedRate(f64),
    /// The provider said its budget is spent: nothing goes out before `until`.
    Hold {
        /// End of the hold.
        until: Duration,
    },
}

/// Counters since the engine was made, the part of [`Stats`] the engine counts as it
/// goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Ticket requests, re-queued calls included.
    pub requested: u64,
    /// Tickets issued, re-issues included.
    pub issued: u64,
    /// Tickets issued to calls re-queued after a rate limit.
    pub reissued: u64,
    /// Calls that ended, any way but a rate limit.
    pub finished: u64,
    /// Rate-limit errors reported.
    pub rate_limited: u64,
    /// Requests withdrawn before their ticket came, or failed because a daily quota
    /// was spent.
    pub cancelled: u64,
}
