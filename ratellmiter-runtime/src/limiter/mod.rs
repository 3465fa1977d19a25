//! [`BucketRateLimiter`]: the async and blocking drivers around the pure [`Pacer`], and
//! the [`Ticket`] that gives its slot back when dropped.

use std::sync::{Arc, OnceLock, Weak};
use std::task::Waker;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::time::Instant;

use crate::config::{ConfigError, LimiterConfig};
use crate::error::AcquireError;
use crate::flow_log::Recorder;
use crate::flow_log::format::Record;
use crate::pacer::{Budget, Issued, Outcome, Pacer, ProbeId, Request, Usage, WaiterId};
use crate::rate_limit::RateLimitedService;
use crate::shared::{SharedBackend, SharedBudget};
use crate::telemetry::{self, trace_event};

mod acquire;
mod builder;
mod clearing;
mod driver;
mod locked;
mod ticket;
mod waiting;

use crate::stats::Stats;
pub use acquire::{Acquire, AcquireFuture};
pub use builder::LimiterBuilder;
use driver::DriverState;
use locked::Locked;
pub use ticket::Ticket;

/// A rate limiter for one service (usually one model): hands out tickets spread evenly
/// over the minute, ramps up after a jump in demand, and pauses and probes after a rate
/// limit. Cloning it gives another handle on the same budget.
///
/// ```
/// use ratellmiter::BucketRateLimiter;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let limiter = BucketRateLimiter::new(600);
/// let ticket = limiter.acquire().await.unwrap(); // waits for its slot
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
    /// The shared store, if any (see [`crate::shared`]), called only outside `state`'s
    /// lock and, under `store_order`, in the order of this process's events.
    store: OnceLock<Arc<dyn SharedBackend>>,
    store_order: Mutex<()>,
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
                store: OnceLock::new(),
                store_order: Mutex::new(()),
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

    /// The settings as configured. While a shared limiter paces alone at its fallback
    /// rate (its store unreachable), `rpm` still reads the configured rate; the
    /// fallback is [`fallback_rpm`](Self::fallback_rpm).
    pub fn config(&self) -> LimiterConfig {
        let st = self.shared.state.lock();
        let mut cfg = st.pacer.config().clone();
        if let Some((configured, _)) = st.budget.as_ref().and_then(|b| b.fallback(cfg.rpm)) {
            cfg.rpm = configured;
        }
        cfg
    }

    /// The rate this process paces at alone while its shared store is unreachable
    /// (`None` when the limiter is not shared or the store answers).
    pub fn fallback_rpm(&self) -> Option<u32> {
        let st = self.shared.state.lock();
        let rpm = st.pacer.config().rpm;
        st.budget.as_ref()?.fallback(rpm).map(|(_, local)| local)
    }

    /// Shares the budget through `backend` unless it is shared already.
    pub(crate) fn share(&self, backend: Arc<dyn SharedBackend>) {
        let fallback = backend.fallback();
        if self.shared.store.set(backend).is_ok() {
            let mut st = self.shared.lock();
            st.budget = Some(SharedBudget::new(fallback, &mut st.pacer));
        }
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
        self.shared.lock().pacer.stats(now)
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

    /// Moves what the flow-log recorder finished (everything when `all`, at stop) into
    /// `records`, events before seconds.
    pub(crate) fn take_log_records(&self, all: bool, records: &mut Vec<Record>) {
        let now = self.shared.now();
        if let Some(r) = &mut self.shared.state.lock().recorder {
            let (seconds, events) = r.take(now, all);
            records.extend(events.into_iter().map(Record::Event));
            records.extend(seconds.into_iter().map(Record::Second));
        }
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

    /// The wall-clock time at engine time zero, as time since the UNIX epoch.
    pub(crate) fn wall_origin_since_epoch(&self) -> Duration {
        self.wall_origin
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }

    /// Calls the shared store (outside the limiter's lock), after sending the reports
    /// queued before: the store hears this process's events in order. `None` when the
    /// limiter is not shared.
    pub(crate) fn with_backend<T>(&self, call: impl FnOnce(&dyn SharedBackend) -> T) -> Option<T> {
        let store = self.store.get()?;
        let _order = self.store_order.lock();
        let reports = self
            .state
            .lock()
            .budget
            .as_mut()
            .map(SharedBudget::take_outbox)
            .unwrap_or_default();
        for report in reports {
            store.report(report);
        }
        Some(call(&**store))
    }

    /// Sends the reports queued under the lock, when `pending` (`State::has_reports`,
    /// read before the lock was released): a call that has nothing to say costs no
    /// second lock.
    pub(crate) fn flush_reports(&self, pending: bool) {
        if pending {
            self.with_backend(|_| ());
        }
    }

    /// A ticket cleared with the shared store goes to its waiter, or fails the call.
    pub(crate) fn cleared(&self, cleared: clearing::Cleared) {
        let now = self.now();
        match cleared {
            clearing::Cleared::Go(t) => {
                let mut st = self.lock();
                st.hand_over(now, t);
                let pending = st.has_reports();
                drop(st);
                self.flush_reports(pending);
            }
            clearing::Cleared::Refused(t, resets_at) => {
                self.lock().refuse(t.id, resets_at);
                self.finish(&t, Outcome::Abandoned);
            }
        }
    }

    /// A spent daily quota's error, its reset (engine time) on the wall clock.
    pub(crate) fn quota_exhausted(&self, resets_at: Duration) -> AcquireError {
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
        let id = st.pacer.enqueue(now, req)?;
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
        st.finish(now, t, outcome);
        st.after_change(now, self.name.get());
        let pending = st.has_reports();
        drop(st);
        self.flush_reports(pending);
    }

    fn probe_result(&self, id: ProbeId, blocked: bool) {
        let now = self.now();
        let mut st = self.lock();
        st.pacer.probe_result(now, id, blocked);
        st.after_change(now, self.name.get());
    }

    pub(crate) fn record_usage(&self, t: &Issued, usage: Usage) {
        let mut st = self.lock();
        st.pacer.record_usage(t, usage);
        if let Some(b) = &mut st.budget {
            b.record_usage(t, usage);
        }
    }

    pub(crate) fn observe_budget(&self, requests: Option<Budget>, tokens: Option<Budget>) {
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
    /// Ends ticket `t`'s call in the engine, the flow log and the shared store (whose
    /// report waits in the outbox until the lock is released).
    pub(crate) fn finish(&mut self, now: Duration, t: &Issued, outcome: Outcome) {
        self.pacer.finish(now, t, outcome);
        if let Some(b) = &mut self.budget {
            b.finished(t, outcome, self.pacer.config());
        }
        if let Some(r) = &mut self.recorder {
            r.finished(now, outcome);
        }
    }

    /// Whether reports wait to be sent to the shared store.
    fn has_reports(&self) -> bool {
        self.budget.as_ref().is_some_and(SharedBudget::has_reports)
    }

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

#[cfg(test)]
mod tests;
