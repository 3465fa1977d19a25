//! [`BucketRateLimiter`]: the async and blocking drivers around the pure [`Pacer`], and
//! the [`Ticket`] that gives its slot back when dropped.

use std::future::poll_fn;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Poll as TaskPoll, Waker};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::{ConfigError, LimiterConfig};
use crate::error::AcquireError;
use crate::flow_log::Recorder;
use crate::pacer::{
    Cost, Issued, Outcome, Pacer, Priority, ProbeId, Request, TryIssueError, Usage, WaiterId,
};
use crate::rate_limit::RateLimitedService;
use crate::shared::SharedBudget;
use crate::telemetry::{self, trace_event};

mod builder;
mod driver;
mod locked;
mod stats;
mod ticket;
mod waiting;

pub use builder::LimiterBuilder;
use driver::DriverState;
use locked::Locked;
pub use stats::Stats;
pub use ticket::Ticket;
use waiting::Waiting;
pub(crate) use waiting::block_on;

/// A rate limiter for one service (usually one model): hands out tickets spread evenly
/// over the minute, ramps up after a jump in demand, and pauses and probes after a rate
/// limit. Cloning it gives another handle on the same budget.
///
/// ```
/// use ratellmiter::BucketRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let limiter = BucketRateLimiter::new(600);
/// let ticket = limiter.acquire().await; // waits for its slot
/// // ... call the API ...
/// drop(ticket); // the call is done
/// assert_eq!(limiter.stats().issued, 1);
/// # }
/// ```
#[derive(Clone)]
pub struct BucketRateLimiter {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    name: OnceLock<Arc<str>>,
    origin: Instant,
    /// The wall-clock time at `origin`: daily quotas reset by it.
    wall_origin: SystemTime,
    pub(crate) state: Mutex<State>,
    prober: RwLock<Option<Weak<dyn RateLimitedService>>>,
}

pub(crate) struct State {
    pub(crate) pacer: Pacer,
    slots: FxHashMap<WaiterId, Slot>,
    pub(crate) recorder: Option<Recorder>,
    /// The budget shared with other processes, if any (see [`crate::shared`]).
    pub(crate) budget: Option<SharedBudget>,
    driver: DriverState,
    metrics: telemetry::Metrics,
}

/// A request either got its ticket at once or waits in the queue.
enum Enqueued {
    Issued(Issued),
    Waiting(WaiterId),
}

#[derive(Default)]
struct Slot {
    waker: Option<Waker>,
    issued: Option<Issued>,
    /// The engine failed the call: a daily quota is spent until then (engine time).
    refused: Option<Duration>,
}

impl std::fmt::Debug for BucketRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketRateLimiter")
            .field("name", &self.name())
            .field("rpm", &self.config().rpm)
            .finish_non_exhaustive()
    }
}

impl BucketRateLimiter {
    /// A limiter at `rpm` requests per minute with rateLLMiter's other defaults.
    ///
    /// # Panics
    /// When `rpm` is 0 or above [`MAX_RPM`](crate::config::MAX_RPM); use
    /// [`try_new`](Self::try_new) to get the error instead.
    pub fn new(rpm: u32) -> Self {
        match Self::try_new(rpm) {
            Ok(l) => l,
            Err(e) => panic!("BucketRateLimiter::new({rpm}): {e}"),
        }
    }

    /// A limiter at `rpm` requests per minute, or the error naming why it cannot be.
    pub fn try_new(rpm: u32) -> Result<Self, ConfigError> {
        Self::builder().rpm(rpm).build()
    }

    /// A builder for every setting.
    pub fn builder() -> LimiterBuilder {
        LimiterBuilder::default()
    }

    fn from_config(
        cfg: LimiterConfig,
        wall_clock: Option<SystemTime>,
    ) -> Result<Self, ConfigError> {
        let mut pacer = Pacer::new(cfg)?;
        let wall_origin = wall_clock.unwrap_or_else(SystemTime::now);
        pacer.set_wall_origin(
            wall_origin
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        Ok(Self {
            shared: Arc::new(Shared {
                name: OnceLock::new(),
                origin: Instant::now(),
                wall_origin,
                state: Mutex::new(State {
                    pacer,
                    slots: FxHashMap::default(),
                    recorder: None,
                    budget: None,
                    driver: DriverState::default(),
                    metrics: telemetry::Metrics::default(),
                }),
                prober: RwLock::new(None),
            }),
        })
    }

    /// The service name (`"unnamed"` until the limiter is named or registered).
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// Names the limiter, unless it has a name already (the first name sticks when
    /// several model names share one limiter).
    pub fn set_name(&self, name: &str) {
        let _ = self.shared.name.set(name.into());
    }

    /// The settings in force.
    pub fn config(&self) -> LimiterConfig {
        self.shared.state.lock().pacer.config().clone()
    }

    /// Whether two handles share one budget.
    pub fn same_limiter(&self, other: &BucketRateLimiter) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Probe through `service` after a rate limit instead of releasing a queued call.
    pub fn set_service(&self, service: Weak<dyn RateLimitedService>) {
        *self.shared.prober.write() = Some(service);
        self.shared.lock().pacer.set_external_probe(true);
    }

    /// Counters and gauges now.
    pub fn stats(&self) -> Stats {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let c = st.pacer.counters();
        let by_kind = st.pacer.tokens_in_window_by_kind(now);
        let daily = st.pacer.daily_remaining(now);
        Stats {
            requested: c.requested,
            issued: c.issued,
            reissued: c.reissued,
            finished: c.finished,
            rate_limited: c.rate_limited,
            cancelled: c.cancelled,
            waiting: st.pacer.waiting(),
            in_flight: st.pacer.in_flight(),
            allowed_rate: st.pacer.allowed_rate(),
            learned_rate: st.pacer.learned_rate(now),
            limit_rate: st.pacer.full_rate(),
            paused: st.pacer.is_paused(),
            tokens_in_window: by_kind[0],
            input_tokens_in_window: by_kind[1],
            output_tokens_in_window: by_kind[2],
            requests_left_today: daily[0],
            tokens_left_today: daily[1],
            max_in_flight: st.pacer.config().max_in_flight,
        }
    }

    /// Waits for a ticket. Dropping the [`Ticket`] tells the limiter the call is done;
    /// dropping this future while it waits leaves the queue as if it never came.
    ///
    /// It cannot fail, so when a daily quota (`rpd`, `tpd`) is spent it waits for the
    /// reset; [`acquire_timeout`](Self::acquire_timeout) fails at once instead.
    pub async fn acquire(&self) -> Ticket {
        match self.acquire_with(Request::PATIENT, None).await {
            Ok(t) => t,
            Err(e) => unreachable!("an acquire without cost or deadline cannot fail: {e}"),
        }
    }

    /// Waits for a ticket ahead of normal calls (behind re-tries after a rate limit).
    pub async fn acquire_priority(&self, priority: Priority) -> Ticket {
        match self
            .acquire_with(
                Request {
                    priority,
                    ..Request::PATIENT
                },
                None,
            )
            .await
        {
            Ok(t) => t,
            Err(e) => unreachable!("an acquire without cost or deadline cannot fail: {e}"),
        }
    }

    /// Waits for a ticket for a call estimated at `tokens` tokens. Fails at once when
    /// the estimate exceeds the whole per-minute token budget.
    pub async fn acquire_weighted(&self, tokens: u64) -> Result<Ticket, AcquireError> {
        self.acquire_with(
            Request {
                cost: Cost::tokens(tokens),
                ..Request::NEW
            },
            None,
        )
        .await
    }

    /// Waits for a ticket until `deadline`; on time-out the call leaves the queue and
    /// the calls behind it move up. Cancel-safe like [`acquire`](Self::acquire).
    pub async fn acquire_until(&self, deadline: Instant) -> Result<Ticket, AcquireError> {
        self.acquire_with(Request::NEW, Some(deadline)).await
    }

    /// Waits for a ticket at most `timeout` (a timeout too long to represent waits as
    /// long as it takes).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Ticket, AcquireError> {
        let deadline = Instant::now().checked_add(timeout);
        self.acquire_with(Request::NEW, deadline).await
    }

    /// A ticket now if one is free and nobody is queued; never waits, never queues.
    pub fn try_acquire(&self) -> Result<Ticket, TryAcquireError> {
        self.try_acquire_weighted(0)
    }

    /// [`try_acquire`](Self::try_acquire) for a call estimated at `tokens` tokens.
    pub fn try_acquire_weighted(&self, tokens: u64) -> Result<Ticket, TryAcquireError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        if st.budget.is_some() {
            // Other processes may be in line, and only a round trip to the store knows.
            return Err(TryAcquireError::Queued);
        }
        match st.pacer.try_issue(
            now,
            Request {
                cost: Cost::tokens(tokens),
                ..Request::NEW
            },
        ) {
            Ok(issued) => {
                if let Some(r) = &mut st.recorder {
                    r.requested(now);
                    r.issued(now, &issued);
                }
                Ok(Ticket::new(self.shared.clone(), issued))
            }
            Err(TryIssueError::NotBefore(at)) => Err(TryAcquireError::NotBefore(
                self.shared
                    .origin
                    .checked_add(at)
                    .unwrap_or_else(far_future),
            )),
            Err(TryIssueError::Queued) => Err(TryAcquireError::Queued),
            Err(TryIssueError::Paused) => Err(TryAcquireError::Paused),
            Err(TryIssueError::AtCapacity) => Err(TryAcquireError::AtCapacity),
        }
    }

    /// The general acquire: queue `req`, wait for its ticket or `deadline`.
    pub(crate) async fn acquire_with(
        &self,
        req: Request,
        deadline: Option<Instant>,
    ) -> Result<Ticket, AcquireError> {
        let id = match self.shared.enqueue(req, deadline)? {
            Enqueued::Issued(t) => return Ok(Ticket::new(self.shared.clone(), t)),
            Enqueued::Waiting(id) => id,
        };
        let mut waiting = Waiting::new(&self.shared, id);
        // Read the clock only on the slow path: the fast one never reports a wait.
        let start = Instant::now();
        let mut deadline_sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
        let issued = poll_fn(|cx| {
            if let TaskPoll::Ready(t) = waiting.poll_issued(cx) {
                return TaskPoll::Ready(Some(t));
            }
            match deadline_sleep.as_mut().map(|s| s.as_mut().poll(cx)) {
                Some(TaskPoll::Ready(())) => TaskPoll::Ready(None),
                _ => TaskPoll::Pending,
            }
        })
        .instrument(tracing::debug_span!(
            "ratellmiter.wait",
            service = self.name()
        ))
        .await;
        match issued {
            Some(Ok(t)) => Ok(Ticket::new(self.shared.clone(), t)),
            Some(Err(resets_at)) => Err(self.shared.quota_exhausted(resets_at)),
            None => {
                drop(waiting); // leaves the queue
                Err(AcquireError::Timeout {
                    waited: start.elapsed(),
                })
            }
        }
    }

    /// Blocks this thread until a ticket is free. For blocking clients only: never call
    /// it on an async runtime's worker thread (use [`acquire`](Self::acquire) there, or
    /// `tokio::task::spawn_blocking`), since it parks the thread that would drive others.
    /// Like [`acquire`](Self::acquire), it waits for the reset of a spent daily quota.
    pub fn acquire_blocking(&self) -> Ticket {
        match self.acquire_blocking_with(Request::PATIENT, None) {
            Ok(t) => t,
            Err(e) => unreachable!("an acquire without cost or deadline cannot fail: {e}"),
        }
    }

    /// [`acquire_blocking`](Self::acquire_blocking) giving up at `deadline`.
    pub fn acquire_blocking_until(&self, deadline: Instant) -> Result<Ticket, AcquireError> {
        self.acquire_blocking_with(Request::NEW, Some(deadline))
    }

    pub(crate) fn acquire_blocking_with(
        &self,
        req: Request,
        deadline: Option<Instant>,
    ) -> Result<Ticket, AcquireError> {
        let id = match self.shared.enqueue(req, deadline)? {
            Enqueued::Issued(t) => return Ok(Ticket::new(self.shared.clone(), t)),
            Enqueued::Waiting(id) => id,
        };
        let mut waiting = Waiting::new(&self.shared, id);
        // Read the clock only on the slow path: the fast one never reports a wait.
        let start = Instant::now();
        match waiting.wait_blocking(deadline) {
            Some(Ok(t)) => Ok(Ticket::new(self.shared.clone(), t)),
            Some(Err(resets_at)) => Err(self.shared.quota_exhausted(resets_at)),
            None => {
                drop(waiting); // leaves the queue
                Err(AcquireError::Timeout {
                    waited: start.elapsed(),
                })
            }
        }
    }

    pub(crate) fn note_retry_exhausted(&self) {
        let now = self.shared.now();
        if let Some(r) = &mut self.shared.lock().recorder {
            r.retry_exhausted(now);
        }
    }

    /// Changes the requests per minute from the next ticket on (a raise goes through
    /// the ramp). Every handle and the monitor see the change.
    pub fn set_rpm(&self, rpm: u32) -> Result<(), ConfigError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        st.pacer.set_rpm(now, rpm)?;
        st.kick();
        Ok(())
    }

    /// Changes (or adds) the tokens-per-minute budget from the next ticket on.
    pub fn set_tpm(&self, tpm: u64) -> Result<(), ConfigError> {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        st.pacer.set_tpm(now, tpm)?;
        st.kick();
        Ok(())
    }

    pub(crate) fn attach_recorder(&self, recorder: Option<Recorder>) {
        self.shared.lock().recorder = recorder;
    }

    pub(crate) fn origin(&self) -> Instant {
        self.shared.origin
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}

/// Why [`BucketRateLimiter::try_acquire`] gave no ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAcquireError {
    /// No ticket is free before this instant (if nobody queues first).
    NotBefore(Instant),
    /// Calls are queued ahead: taking a ticket would jump the line.
    Queued,
    /// The limiter is paused after a rate limit.
    Paused,
    /// `max_in_flight` calls are in flight.
    AtCapacity,
}

impl std::fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TryAcquireError::NotBefore(at) => {
                write!(
                    f,
                    "no ticket free for another {:?}",
                    at.saturating_duration_since(Instant::now())
                )
            }
            TryAcquireError::Queued => f.write_str("calls are queued ahead for a ticket"),
            TryAcquireError::Paused => f.write_str("the limiter is paused after a rate limit"),
            TryAcquireError::AtCapacity => {
                f.write_str("the most calls the limiter allows in flight are in flight")
            }
        }
    }
}

impl std::error::Error for TryAcquireError {}

impl Shared {
    pub(crate) fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// The service name for logs.
    fn name(&self) -> &str {
        self.name.get().map_or("unnamed", |n| n)
    }

    fn lock(&self) -> Locked<'_> {
        Locked::new(self.state.lock())
    }

    /// A spent daily quota's error, its reset (engine time) on the wall clock.
    fn quota_exhausted(&self, resets_at: Duration) -> AcquireError {
        AcquireError::QuotaExhausted {
            resets_at: self.wall_origin + resets_at,
        }
    }

    /// Queues `req`, or issues its ticket at once when it is free and nobody waits:
    /// the uncontended path then touches no queue and no slot.
    fn enqueue(
        &self,
        mut req: Request,
        deadline: Option<Instant>,
    ) -> Result<Enqueued, AcquireError> {
        if let Some(d) = deadline {
            req.deadline = Some(d.saturating_duration_since(self.origin));
        }
        let now = self.now();
        let mut st = self.lock();
        if st.budget.is_none()
            && let Ok(issued) = st.pacer.try_issue(now, req)
        {
            if let Some(r) = &mut st.recorder {
                r.requested(now);
                r.issued(now, &issued);
            }
            return Ok(Enqueued::Issued(issued));
        }
        let id = st
            .pacer
            .enqueue(now, req)
            .map_err(|e| AcquireError::from_request(e, self.wall_origin))?;
        st.slots.insert(id, Slot::default());
        if let Some(r) = &mut st.recorder {
            r.requested(now);
        }
        if st.pacer.head() == Some(id) {
            // The head changed: its slot may come sooner (a retry, a lower cost).
            st.kick();
        }
        Ok(Enqueued::Waiting(id))
    }

    /// Reports how a ticket's call ended and wakes whoever is next.
    pub(crate) fn finish(&self, t: &Issued, outcome: Outcome) {
        let mut st = self.lock();
        // A plain success while running changes nothing that depends on when it came,
        // so the common case reads no clock.
        let timeless = outcome == Outcome::Success
            && !t.probe
            && !st.pacer.is_paused()
            && st.recorder.is_none()
            && st.budget.is_none();
        let now = if timeless {
            st.pacer.last_now()
        } else {
            self.now()
        };
        st.pacer.finish(now, t, outcome);
        if let Some(b) = &st.budget {
            b.report(t, outcome, st.pacer.config());
        }
        if let Some(r) = &mut st.recorder {
            r.finished(now, outcome);
        }
        st.after_change(now, self.name.get());
    }

    fn probe_result(&self, id: ProbeId, blocked: bool) {
        let now = self.now();
        let mut st = self.lock();
        st.pacer.probe_result(now, id, blocked);
        st.after_change(now, self.name.get());
    }

    pub(crate) fn record_usage(&self, t: &Issued, usage: Usage) {
        self.lock().pacer.record_usage(t, usage);
    }

    pub(crate) fn observe_budget(
        &self,
        requests: Option<(u64, Duration)>,
        tokens: Option<(u64, Duration)>,
    ) {
        let now = self.now();
        let mut st = self.lock();
        st.pacer.observe_budget(now, requests, tokens);
        st.after_change(now, self.name.get());
    }

    /// What a response's rate-limit headers said: each family holds the budget of its
    /// kind, and the limits configure the limiter once when it learns them.
    pub(crate) fn observe_headers(&self, headers: &crate::headers::RateLimitHeaders) {
        let [requests, tokens, input, output] = headers.families();
        let now = self.now();
        let mut st = self.lock();
        st.pacer.learn_limits(now, headers.learned());
        st.pacer.observe_budget(now, requests, tokens);
        st.pacer.observe_kinds(now, input, output);
        st.after_change(now, self.name.get());
    }

    fn prober(&self) -> Option<Arc<dyn RateLimitedService>> {
        self.prober.read().as_ref().and_then(Weak::upgrade)
    }
}

impl State {
    /// Wakes the call whose turn it is (without a driver task, it drives the engine).
    fn wake_head_except(&mut self, except: Option<WaiterId>) {
        if let Some(head) = self.pacer.head()
            && Some(head) != except
            && let Some(w) = self.slots.get_mut(&head).and_then(|s| s.waker.take())
        {
            w.wake();
        }
    }

    /// Logs the engine's state changes and tells the driver.
    fn after_change(&mut self, now: Duration, name: Option<&Arc<str>>) {
        self.log_changes(now, name);
        self.kick();
    }

    fn log_changes(&mut self, now: Duration, name: Option<&Arc<str>>) {
        let name = name.map_or("unnamed", |n| n);
        for (at, event) in self.pacer.drain_events() {
            trace_event(name, event);
            if let Some(r) = &mut self.recorder {
                r.event(at, event);
            }
        }
        if let Some(r) = &mut self.recorder {
            r.gauges(now, &self.pacer);
        }
        self.metrics.stage(name, &self.pacer);
    }
}
