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
use crate::shared::SharedBudget;
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
mod tests {
    use std::time::Duration;

    use crate::pacer::{Pacer, Request, Step};
    use crate::{BucketRateLimiter, LimiterConfig, TryAcquireError};

    /// Fails at once when the limiters' clock stands still, before a test awaits a slot:
    /// a driver whose slots never come spins, virtual time stops with it, and the test
    /// would hang instead of failing (and with it the lib's tests).
    async fn assert_the_clock_moves() {
        let l = BucketRateLimiter::new(60);
        drop(l.acquire().try_now().expect("free at start"));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(l.acquire().try_now().is_ok(), "the limiter's clock moves");
    }

    /// The limiter reads the runtime's clock: time passing frees the next slot, to the
    /// nanosecond. Here in the lib's tests, which run first, and without awaiting a
    /// ticket, so that a limiter whose clock stands still fails here instead of hanging
    /// every test that waits for a slot (mutation testing counts a hang apart).
    #[tokio::test(start_paused = true)]
    async fn time_passing_frees_the_next_slot() {
        let l = BucketRateLimiter::new(60);
        drop(l.acquire().try_now().expect("free at start"));
        // The slow start's 22 % of 1/s after idleness: 1/0.22 s.
        tokio::time::advance(Duration::from_nanos(4_545_454_545)).await;
        assert!(matches!(
            l.acquire().try_now(),
            Err(TryAcquireError::NotBefore(_))
        ));
        tokio::time::advance(Duration::from_nanos(1)).await;
        assert!(l.acquire().try_now().is_ok(), "free at its slot");
    }

    /// The engine names the head of its line, which the drivers wake (a blocking head
    /// sleeps until its slot; the others park): re-queued calls first, then the oldest.
    /// Here, because a wrong head hangs the blocking callers instead of failing a test.
    #[test]
    fn the_engine_names_the_head_of_its_line() {
        let mut p = Pacer::new(LimiterConfig {
            rpm: 60,
            ..Default::default()
        })
        .unwrap();
        let zero = Duration::ZERO;
        assert_eq!(p.head(), None);
        let first = p.enqueue(zero, Request::NEW).unwrap();
        let _second = p.enqueue(zero, Request::NEW).unwrap();
        assert_eq!(p.head(), Some(first));
        let retry = Request {
            retry: true,
            ..Request::NEW
        };
        let again = p.enqueue(zero, retry).unwrap();
        assert_eq!(p.head(), Some(again));
    }

    /// A call queued while the daily quota still had room, and refused when the quota
    /// ran out before its turn, counts as cancelled (it never got a ticket). Here,
    /// because a driver whose count underflows panics, and its callers then hang.
    #[test]
    fn a_queued_call_refused_by_the_spent_quota_counts_as_cancelled() {
        let minute = Duration::from_secs(60);
        let mut p = Pacer::new(LimiterConfig {
            rpm: 60,
            rpd: Some(1),
            ..Default::default()
        })
        .unwrap();
        // 23:59:00 UTC: the quota comes back in 60 s.
        p.set_wall_origin(Duration::from_secs(20_000 * 86_400) - minute);
        let zero = Duration::ZERO;
        let first = p.enqueue(zero, Request::NEW).unwrap();
        let second = p.enqueue(zero, Request::NEW).unwrap();
        assert!(matches!(p.poll(zero), Step::Issued(t) if t.id() == first));
        assert_eq!(
            p.poll(zero),
            Step::QuotaExhausted {
                id: second,
                resets_at: minute
            }
        );
        let s = p.stats(zero);
        assert_eq!(
            (s.requested, s.issued, s.cancelled, s.waiting),
            (2, 1, 1, 0)
        );
    }

    /// A call ending frees a place under `max_in_flight`, and the driver, which waits
    /// for a change when at capacity (no timer), is told: the call behind gets its
    /// ticket at once. Here, because a driver nobody tells hangs most tests.
    #[tokio::test(start_paused = true)]
    async fn a_freed_place_wakes_the_driver() {
        assert_the_clock_moves().await;
        let l = BucketRateLimiter::builder()
            .rpm(600)
            .max_in_flight(1)
            .build()
            .unwrap();
        let first = l.acquire().await.unwrap();
        let start = tokio::time::Instant::now();
        let behind = tokio::spawn({
            let l = l.clone();
            async move { drop(l.acquire().await.unwrap()) }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!behind.is_finished(), "at capacity");
        drop(first);
        tokio::time::timeout(Duration::from_secs(60), behind)
            .await
            .expect("the driver was told")
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    /// `max_retries` re-runs after a rate limit, then the error is the answer: three
    /// attempts for two retries, though the fourth would have succeeded. Here, because
    /// a retry loop that never counts its attempts hangs the tests that refuse for good.
    #[tokio::test(start_paused = true)]
    async fn max_retries_counts_the_re_runs() {
        assert_the_clock_moves().await;
        #[derive(Debug)]
        struct Refused;
        impl crate::IsRateLimit for Refused {
            fn rate_limit(&self) -> Option<crate::RateLimit> {
                Some(crate::RateLimit::retry(Some(Duration::from_millis(1))))
            }
        }
        let l = BucketRateLimiter::new(600);
        let mut attempts = 0;
        // Bounded, so that a retry whose ticket never comes fails instead of hanging.
        let run = l.call().max_retries(2).run(|| {
            attempts += 1;
            let refused = attempts <= 3;
            async move { if refused { Err(Refused) } else { Ok(()) } }
        });
        let out: Result<(), Refused> = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("every attempt got its ticket")
            .unwrap();
        assert!(out.is_err());
        assert_eq!(attempts, 3);
    }

    /// Calls queued while the daily quota had room, refused when it ran out before
    /// their turn, fail with the reset at once: the driver puts the refusal in their
    /// slot and wakes them. Here, because a refusal nobody hears hangs them.
    #[tokio::test(start_paused = true)]
    async fn a_queued_call_refused_by_the_quota_hears_it_at_once() {
        assert_the_clock_moves().await;
        let minute = Duration::from_secs(60);
        let midnight = std::time::SystemTime::UNIX_EPOCH + 20_000 * 24 * minute * 60;
        let l = BucketRateLimiter::builder()
            .rpm(60)
            .rpd(2)
            .wall_clock(midnight - minute)
            .build()
            .unwrap();
        let start = tokio::time::Instant::now();
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let l = l.clone();
                tokio::spawn(async move {
                    let out = l.acquire().await.map(drop);
                    (start.elapsed(), out)
                })
            })
            .collect();
        let mut outs = Vec::new();
        for c in calls {
            let out = tokio::time::timeout(minute / 2, c).await;
            outs.push(out.expect("every call heard by 30 s").unwrap());
        }
        let spent = crate::AcquireError::QuotaExhausted {
            resets_at: midnight,
        };
        // The second slot, 1/0.22 s, as the driver's timer sees it (to the millisecond).
        let slot = Duration::from_millis(4_546);
        assert_eq!(
            outs,
            [(Duration::ZERO, Ok(())), (slot, Ok(())), (slot, Err(spent))]
        );
    }
}
