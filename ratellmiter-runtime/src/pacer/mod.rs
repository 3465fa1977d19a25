//! The pacing engine: a pure state machine over `now`.
//!
//! [`Pacer`] holds the queue of waiting calls, the ramp, the pause/probe cycle, the
//! budgets (tokens by kind, daily quotas, calls in flight) and the learned ceiling. It reads no clock, does no I/O and never sleeps:
//! every method takes `now`, the time since an origin the driver chose, and answers what
//! to do. The async and blocking drivers, the monitor and the shared Redis limiter are
//! thin layers around it.
//!
//! # Pacing
//! Every issued ticket pushes the next *slot* back by `1 / rate`, and `rate` never
//! exceeds the configured `rpm / 60`: so under saturation tickets go out at exact, even
//! intervals of `60 / rpm` seconds (never in per-second clumps). Slots follow from the
//! previous slot, not from when the driver issued it, so a driver that wakes late does
//! not push the schedule back; the window bounds — at most `rpm` in any 60 s window and
//! at most `ceil(rpm / 60)` in any 1 s window — hold on the actual issue times, so a
//! late driver catching up never bunches (see `schedule`). Several slots due at one
//! poll all go out in that poll.
//!
//! # Ramp
//! Providers refuse sharp jumps in traffic (Anthropic's, Together's and Fireworks'
//! "ramped up too fast"; the mock's acceleration limit lets the rate double each
//! second from a floor), but not a rate they were accepting a moment ago. So the ramp
//! is paid only after a jump in demand, and as briefly as such a limit allows — TCP's
//! slow start rather than a linear climb ([`RampShape::SlowStart`], the default):
//!
//! - while calls wait for their slot the rate grows by `ramp_step` of itself per second
//!   (1.0: it doubles each second), from `ramp_start × rpm/60` (22 %): a burst from
//!   idle reaches the full rate in 2.2 s, costing about 1.1 s of quota once;
//! - after a refusal during that climb (an acceleration limit, or a limit lower than
//!   configured) it climbs on by 10 % of the full rate per second, as TCP
//!   leaves slow start for congestion avoidance at a loss, until demand next falls
//!   below the rate;
//! - when calls arrive after their slot was free, the rate falls to what the provider
//!   just saw, grown by one step (twice the observed rate), so the next jump starts
//!   from there; it never goes below the start;
//! - after a pause whose first probe succeeded (a momentary excess: a `retry-after` of
//!   a fraction of a second, or a lone refusal) it resumes at the rate in force before
//!   the pause, within the learned ceiling: the server was accepting that rate;
//! - after an outage (a probe refused or timed out) it starts again at `ramp_start` and
//!   doubles back to the rate accepted before within two seconds;
//! - a hold the provider's headers imposed (nothing remains until a reset) keeps the
//!   rate in force. Steady demand at the full rate keeps the full rate.
//!
//! rateLLMiter's shape is [`RampShape::Linear`] (`LimiterConfig::ratellmiter()`): each
//! second the tickets of the second before plus a step of `ramp_step × rpm/60` (10 %),
//! in the continuous form (grow by the step per second while calls wait, fall to the
//! observed rate plus a step when they do not), restarted at `ramp_start` after every
//! pause. The rule is a pure function of the schedule's recent history (the rate in
//! force, the time since the last slot, whether calls waited), so a shared limiter can
//! apply it on the store's clock.
//!
//! # Pause and probe
//! The first rate-limit error while running pauses issuing for its `retry_after`, or
//! for the probe interval (10 s, ×1.5 after each failed probe, at most 65 s). Errors
//! from calls issued before the pause do not restart it. When the pause ends the engine
//! probes: by handing the driver a [`Step::ProbeService`] when the limiter has a
//! service probe, otherwise by issuing exactly one queued call — a rate-limited one if
//! there is one — as the probe. Its success resumes issuing with the ramp from its
//! start; another rate limit backs off and probes again.
//!
//! A probe unanswered after `probe_timeout` counts as refused: the next probe goes out
//! on the probe schedule, and whichever probe of the episode answers first decides (a
//! late success of the timed-out one still resumes). A probe that ends without an
//! answer ([`Outcome::Abandoned`], [`Pacer::probe_abandoned`]) never resumes: the next
//! call probes at once.
//!
//! Every ticket carries the *epoch* it was issued in; each resume starts a new one. A
//! rate limit from a ticket of an earlier epoch is stale — the server refused a call
//! sent before it accepted the probe — so it neither pauses nor teaches the adaptive
//! ceiling (the driver still re-queues that call at the front).
//!
//! # Budgets
//! Beside the request pace a limiter holds any set of budgets (`budgets`), and a ticket
//! goes out only when every one allows it:
//!
//! - tokens per minute, total (`tpm`), input (`input_tpm`) and output (`output_tpm`):
//!   each paced like requests — a ticket pushes the next by its charge × 60 / budget,
//!   slowed by the ramp's share — under a hard 60 s window. A call's [`Cost`] says what
//!   each is charged: its `tokens` total (or input plus output) to `tpm`, its input
//!   estimate (or, with no split, its total) to `input_tpm`, its output reservation
//!   (`max_tokens`) to `output_tpm`. [`Pacer::record_usage`] replaces the charges by the
//!   [`Usage`] the answer reported, kind by kind, so a reservation is held only until the
//!   answer says what was used; a refused call is refunded in every budget;
//! - requests and tokens per day (`rpd`, `tpd`, see `daily`): quotas, not paces. The
//!   calls that fit go out at the per-minute pace; once a quota is spent a call fails at
//!   once ([`AcquireError::QuotaExhausted`] at [`Pacer::enqueue`],
//!   [`Step::QuotaExhausted`] for one that reaches the head of the line), unless its
//!   deadline ([`Request::deadline`]) lets it wait for the reset. The day ends at
//!   midnight of a UTC offset or 24 h after each use ([`DayReset`](crate::DayReset));
//!   the engine reads no clock, so the driver says once where engine time zero falls on
//!   the wall clock ([`Pacer::set_wall_origin`]);
//! - calls in flight (`max_in_flight`): while that many tickets are out the engine
//!   answers [`Step::AtCapacity`]; a call that ends, any way ([`Pacer::finish`]), gives
//!   its place back, and the queue order (re-tries first, priorities) holds as ever.
//!
//! The provider's headers hold each budget of their kind (`holds`), and can configure
//! the budgets once ([`Pacer::learn_limits`]).
//!
//! # Queue
//! Three FIFO queues: calls re-queued after a rate limit first, then high-priority
//! calls, then normal ones. At most `high_priority_streak` high-priority tickets go out
//! in a row while normal calls wait, so normal calls keep a bounded share (one in
//! `streak + 1`) and never starve.
//!
//! # Adaptive limit
//! With `adaptive` on, a rate-limit episode that confirms an earlier one (refused again
//! at about the same rate, within a minute) or that comes at the learned ceiling lowers
//! the ceiling to 0.9 × the rate in force; it then climbs back in the shape of CUBIC,
//! flat near the rate that was refused, then faster, up to the configured rate. A lone
//! refusal (an outage, an acceleration limit tripped during a ramp) teaches nothing.
//! "About the same rate" is at most 25 % higher; an episode at 80 % of the learned
//! ceiling or above lowers it at once; the ceiling never drops below 1 % of the
//! configured rate. These tuning constants are the engine's own, not settings.

mod adaptive;
mod budgets;
mod cost;
mod daily;
mod fleet;
mod gauges;
mod holds;
mod limits;
mod pause;
mod queue;
mod ramp;
mod schedule;
mod tokens;
mod types;

use std::time::Duration;

pub use cost::{Cost, Usage};
pub use types::{
    Budget, Event, Issued, Learned, Outcome, Priority, ProbeId, Request, Step, WaiterId,
};

#[cfg(doc)]
use crate::config::RampShape;
use crate::config::{ConfigError, LimiterConfig};
use crate::error::{AcquireError, TryAcquireError};
use budgets::{Budgets, Charged};
use holds::Holds;
use pause::{Gate, Pause, ProbeKind};
use queue::{Queues, Waiter, queue_for};
use ramp::Ramp;
use rustc_hash::FxHashMap;
use schedule::Schedule;
use types::Counters;

/// The pure pacing engine of one limiter. See the [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::pacer::{Pacer, Request, Step};
/// use ratellmiter::LimiterConfig;
///
/// let mut p = Pacer::new(LimiterConfig { rpm: 600, ..Default::default() }).unwrap();
/// let a = p.enqueue(Duration::ZERO, Request::NEW).unwrap();
/// let b = p.enqueue(Duration::ZERO, Request::NEW).unwrap();
/// assert!(matches!(p.poll(Duration::ZERO), Step::Issued(t) if t.id() == a));
/// // After idleness the ramp starts at 22 % of 10/s: the next slot is 1/2.2 s later.
/// let next = Duration::from_nanos(454_545_455);
/// assert_eq!(p.poll(Duration::ZERO), Step::WaitUntil(next));
/// assert!(matches!(p.poll(next), Step::Issued(t) if t.id() == b));
/// ```
#[derive(Debug, Clone)]
pub struct Pacer {
    cfg: LimiterConfig,
    ramp: Ramp,
    /// The slot of the last ticket (its theoretical issue time).
    last_issue: Option<Duration>,
    schedule: Schedule,
    holds: Holds,
    queues: Queues,
    pause: Pause,
    budgets: Budgets,
    /// The limits were learned from the provider's headers (see [`Pacer::learn_limits`]).
    learned: bool,
    /// Where engine time zero falls on the wall clock (since the UNIX epoch): day
    /// boundaries follow from it.
    wall_origin: Duration,
    issued_costs: FxHashMap<WaiterId, Charged>,
    next_id: u64,
    in_flight: u64,
    counters: Counters,
    events: Vec<(Duration, Event)>,
    last_now: Duration,
    /// No slot is earlier than this: the last change that could make the head due
    /// sooner than it was (a cancellation, a new head, a refund, a lifted hold, a new
    /// rate). Lateness is absorbed only from when the engine last knew the head's slot.
    rebased: Duration,
    /// The last time [`Step::WaitUntil`] named since the last ticket: a ticket is free
    /// no earlier than the engine said (a constraint that has expired by the time the
    /// driver comes no longer says when it expired).
    promised: Duration,
}

impl Pacer {
    /// An engine for a validated configuration.
    pub fn new(cfg: LimiterConfig) -> Result<Self, ConfigError> {
        cfg.validate()?;
        Ok(Self {
            schedule: Schedule::new(cfg.rpm),
            ramp: Ramp::new(&cfg),
            last_issue: None,
            holds: Holds::default(),
            queues: Queues::default(),
            pause: Pause::new(&cfg),
            budgets: Budgets::new(&cfg, Duration::ZERO),
            learned: false,
            wall_origin: Duration::ZERO,
            issued_costs: FxHashMap::default(),
            next_id: 0,
            in_flight: 0,
            counters: Counters::default(),
            events: Vec::new(),
            last_now: Duration::ZERO,
            rebased: Duration::ZERO,
            promised: Duration::ZERO,
            cfg,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &LimiterConfig {
        &self.cfg
    }

    /// Where engine time zero falls on the wall clock, as time since the UNIX epoch
    /// (default zero: engine time zero is a UTC midnight). The daily budgets' day
    /// boundaries follow from it; the engine reads no clock, so the driver tells it once,
    /// before the first ticket.
    pub fn set_wall_origin(&mut self, since_epoch: Duration) {
        self.wall_origin = since_epoch;
        self.budgets = Budgets::new(&self.cfg, since_epoch);
    }

    /// Engine time `at` on the wall clock (see [`set_wall_origin`](Self::set_wall_origin)).
    fn wall_time(&self, at: Duration) -> std::time::SystemTime {
        std::time::SystemTime::UNIX_EPOCH + self.wall_origin + at
    }

    /// The latest `now` the engine was given.
    pub(crate) fn last_now(&self) -> Duration {
        self.last_now
    }

    /// Time never runs backwards for the engine, whatever the drivers' clocks say.
    fn advance(&mut self, now: Duration) -> Duration {
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// Queues a call for a ticket.
    pub fn enqueue(&mut self, now: Duration, req: Request) -> Result<WaiterId, AcquireError> {
        let now = self.advance(now);
        self.check_cost(&req.cost)?;
        if let Some(resets_at) = self.quota_refuses(now, &req.cost, req.deadline) {
            return Err(AcquireError::QuotaExhausted {
                resets_at: self.wall_time(resets_at),
            });
        }
        let w = self.waiter(now, req);
        self.queues.push(queue_for(req), w);
        if self.head() == Some(w.id) {
            self.rebased = now;
        }
        Ok(w.id)
    }

    /// A new call for `req`, arrived at `now`, under the next id.
    fn waiter(&mut self, now: Duration, req: Request) -> Waiter {
        let id = WaiterId(self.next_id);
        self.next_id += 1;
        self.counters.requested += 1;
        Waiter {
            id,
            cost: req.cost,
            enqueued: now,
            retry: req.retry,
            deadline: req.deadline,
        }
    }

    fn check_cost(&self, cost: &Cost) -> Result<(), AcquireError> {
        self.budgets.check(cost)
    }

    /// When a daily quota has no room for `cost` now and comes back only after
    /// `deadline` (or the call has none), the reset: the call fails at once rather than
    /// queueing for hours.
    fn quota_refuses(
        &mut self,
        now: Duration,
        cost: &Cost,
        deadline: Option<Duration>,
    ) -> Option<Duration> {
        let back = self.budgets.daily_ready_at(now, cost);
        (back > now && deadline.is_none_or(|d| d < back)).then_some(back)
    }

    /// Withdraws a waiting call. Returns false when it was not waiting (already issued
    /// or unknown). O(log n); the entry leaves its queue when it reaches the front.
    pub fn cancel(&mut self, now: Duration, id: WaiterId) -> bool {
        self.advance(now);
        let cancelled = self.queues.cancel(id);
        self.counters.cancelled += u64::from(cancelled);
        self.rebased = self.last_now;
        cancelled
    }

    /// The call whose turn it is, and its queue.
    fn next_in_line(&mut self) -> Option<(usize, Waiter)> {
        self.queues.next_in_line(self.cfg.high_priority_streak)
    }

    /// The id of the call that gets the next ticket, if any waits.
    pub fn head(&mut self) -> Option<WaiterId> {
        self.next_in_line().map(|(_, w)| w.id)
    }

    /// Issues the next ticket if one is due at `now`, else says when to look again.
    pub fn poll(&mut self, now: Duration) -> Step {
        let now = self.advance(now);
        self.time_out_probe(now);
        match self.pause.gate(now) {
            Gate::Closed(until) => {
                return if self.waiting() == 0 {
                    Step::Idle
                } else {
                    Step::WaitUntil(until)
                };
            }
            Gate::Resume(at) => self.resume(at),
            Gate::Open => {}
        }
        let Some((q, head)) = self.next_in_line() else {
            return Step::Idle;
        };
        if let Some(resets_at) = self.quota_refuses(now, &head.cost, head.deadline) {
            let popped = self.queues.pop(q);
            debug_assert_eq!(popped.id, head.id);
            self.counters.cancelled += 1;
            self.rebased = now;
            return Step::QuotaExhausted {
                id: head.id,
                resets_at,
            };
        }
        if self.budgets.full(self.in_flight) {
            return Step::AtCapacity;
        }
        if self.pause.probes_service() {
            let id = ProbeId(self.next_id);
            self.next_id += 1;
            self.send_probe(now, ProbeKind::Service(id));
            return Step::ProbeService(id);
        }
        let at = self.ready_at(now, &head.cost);
        if now < at {
            self.promised = at;
            return Step::WaitUntil(at);
        }
        let popped = self.queues.pop(q);
        debug_assert_eq!(popped.id, head.id);
        Step::Issued(self.issue(now, at, q, head))
    }

    /// Earliest time a ticket of `cost` may go out, as far as spacing, holds, tokens
    /// and daily quotas (for a call whose deadline lets it wait for them) go.
    fn ready_at(&mut self, now: Duration, cost: &Cost) -> Duration {
        self.schedule
            .ready_at()
            .max(self.holds.ready_at(cost))
            .max(self.budgets.minute_ready_at(now, cost))
            .max(self.budgets.daily_ready_at(now, cost))
    }

    /// Hands the ticket to `w`, which left queue `q` (or never queued, from `try_issue`).
    /// `due` is when the ticket became free (never after `now`): its slot on the
    /// theoretical schedule is `due`, or the call's arrival if it came later.
    fn issue(&mut self, now: Duration, due: Duration, q: usize, w: Waiter) -> Issued {
        let id = w.id;
        self.queues.issued_from(q);
        let probe = self.pause.is_probing();
        // A probe goes out when the pause ends, whatever the schedule said before it.
        let slot = if probe {
            now
        } else {
            due.max(w.enqueued)
                .max(self.rebased)
                .max(self.promised)
                .min(now)
        };
        self.promised = Duration::ZERO;

        if probe {
            self.send_probe(now, ProbeKind::Ticket(id));
        } else {
            self.ramp
                .update(slot, w.enqueued, self.last_issue, self.schedule.ready_at());
        }
        self.last_issue = Some(slot);
        self.schedule.record(slot, now, self.interval());
        self.holds.on_issue(now, &w.cost);
        let share = self.ramp.share();
        if self.budgets.charges() {
            self.budgets.charge(now, slot, id, &w.cost, share);
            self.issued_costs.insert(
                id,
                Charged {
                    cost: w.cost,
                    at: now,
                },
            );
        }
        self.in_flight += 1;
        self.counters.issued += 1;
        if w.retry {
            self.counters.reissued += 1;
        }
        Issued {
            id,
            cost: w.cost.total(),
            input: w.cost.input_charge(),
            output: w.cost.output_charge(),
            probe,
            retry: w.retry,
            waited: now - w.enqueued,
            epoch: self.pause.epoch(),
            deadline: w.deadline,
        }
    }

    /// Spacing after a ticket at the current rate.
    fn interval(&self) -> Duration {
        self.ramp.interval(self.schedule.full_interval())
    }

    /// Issues a ticket at `now` only if it is free and nobody is queued; never queues.
    pub fn try_issue(
        &mut self,
        now: Duration,
        req: Request,
    ) -> Result<Issued, TryAcquireError<Duration>> {
        let now = self.advance(now);
        if !self.pause.is_running() {
            return Err(TryAcquireError::Paused);
        }
        if self.waiting() > 0 {
            return Err(TryAcquireError::Queued);
        }
        if self.budgets.full(self.in_flight) {
            return Err(TryAcquireError::AtCapacity);
        }
        if self.check_cost(&req.cost).is_err() {
            // Never free: say so as a wait that cannot end rather than a false promise.
            return Err(TryAcquireError::NotBefore(Duration::MAX));
        }
        let at = self.ready_at(now, &req.cost);
        if now < at {
            return Err(TryAcquireError::NotBefore(at));
        }
        let w = self.waiter(now, req);
        Ok(self.issue(now, at, queue_for(req), w))
    }

    /// Reports how the call holding ticket `t` ended.
    pub fn finish(&mut self, now: Duration, t: &Issued, outcome: Outcome) {
        let now = self.advance(now);
        if self.budgets.full(self.in_flight) {
            // A place came free: the head's slot is no earlier than now.
            self.rebased = now;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        let charged = self.issued_costs.remove(&t.id);
        if let (Outcome::RateLimited { .. }, Some(charged)) = (outcome, charged) {
            // A refused call used nothing: its re-run is charged anew.
            self.budgets.refund(now, t.id, &charged);
        }
        match outcome {
            Outcome::RateLimited { .. } => self.counters.rate_limited += 1,
            Outcome::Success | Outcome::Error | Outcome::Abandoned => self.counters.finished += 1,
        }
        self.on_outcome(now, t, outcome);
    }

    /// Replaces ticket `t`'s token estimate by the tokens the call really used, kind by
    /// kind: each budget is refunded or charged the difference.
    pub fn record_usage(&mut self, t: &Issued, actual: impl Into<Usage>) {
        // No call uses more than the largest budget a limiter accepts; the clamp keeps
        // the window's sum and the token spacing from overflowing on a wild report.
        let actual = actual.into().as_cost().clamp(crate::config::MAX_TPM);
        let now = self.last_now;
        if let Some(charged) = self.issued_costs.get_mut(&t.id) {
            if self.budgets.correct(now, t.id, charged, &actual) {
                self.rebased = now;
            }
            charged.cost = actual;
        }
    }
}

/// The longest wait the engine takes from outside (a `retry_after`, a budget reset).
/// Longer is as good as forever; the cap keeps `now + wait`, and the instant a driver
/// makes of it, representable instead of overflowing.
const MAX_WAIT: Duration = Duration::from_secs(365 * 86_400);

fn later(now: Duration, wait: Duration) -> Duration {
    now.saturating_add(wait.min(MAX_WAIT))
}

#[cfg(test)]
mod tests;
