//! The drivers' own tests: run first, so a hang elsewhere cannot hide what they catch.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::pacer::{Pacer, Request, Step};
use crate::shared::{Claim, Grant, Report, SharedBackend, SharedError, SharedTicket, SlotRequest};
use crate::{BoxFuture, BucketRateLimiter, LimiterConfig, TryAcquireError};

/// How long a driver test may take in real time; they take milliseconds.
const BOUND: Duration = Duration::from_secs(10);

/// Runs `f` on a thread of its own, failing after [`BOUND`] of real time: a blocking
/// waiter nobody wakes parks for ever, and so would the test.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let run = std::thread::spawn(move || {
        let _ = done.send(f());
    });
    match finished.recv_timeout(BOUND) {
        Ok(v) => v,
        Err(RecvTimeoutError::Disconnected) => std::panic::resume_unwind(run.join().unwrap_err()),
        Err(RecvTimeoutError::Timeout) => {
            panic!("still running after {BOUND:?} of real time: hung")
        }
    }
}

/// Runs `test` on a paused clock, within [`BOUND`] of real time. A driver that spins
/// (an engine asking it to wait for a time that has come) keeps virtual time from
/// moving, so no tokio timeout fires; the real-time bound turns that hang into a failure.
fn paused(test: impl Future<Output = ()> + Send + 'static) {
    bounded(|| paused_runtime().block_on(test));
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

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
#[test]
fn time_passing_frees_the_next_slot() {
    paused(async {
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
    });
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
#[test]
fn a_freed_place_wakes_the_driver() {
    paused(async {
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
    });
}

/// `max_retries` re-runs after a rate limit, then the error is the answer: three
/// attempts for two retries, though the fourth would have succeeded. Here, because
/// a retry loop that never counts its attempts hangs the tests that refuse for good.
#[test]
fn max_retries_counts_the_re_runs() {
    paused(async {
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
    });
}

/// Calls queued while the daily quota had room, refused when it ran out before
/// their turn, fail with the reset at once: the driver puts the refusal in their
/// slot and wakes them. Here, because a refusal nobody hears hangs them.
#[test]
fn a_queued_call_refused_by_the_quota_hears_it_at_once() {
    paused(async {
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
    });
}

/// Without a runtime the blocking waiters drive the engine; the head parks while the
/// limiter is at capacity, and the call that frees a place must wake it.
#[test]
fn a_freed_place_wakes_a_blocking_head() {
    let l = BucketRateLimiter::builder()
        .rpm(6_000)
        .max_in_flight(1)
        .build()
        .unwrap();
    bounded(move || {
        let first = l.acquire().blocking().unwrap();
        let behind = std::thread::spawn({
            let l = l.clone();
            move || l.acquire().blocking().map(drop)
        });
        // Its waker in its slot means the call behind has driven the engine (at
        // capacity, under the same lock) and parks: only a wake-up gets it further.
        while !l.shared.lock().slots.values().any(|s| s.waker.is_some()) {
            std::thread::yield_now();
        }
        drop(first);
        behind.join().unwrap()
    })
    .expect("the head was woken and got its ticket");
}

/// A driver task dropped with its runtime (shut down while a call waited) leaves the
/// limiter driverless: the next call, on another runtime, starts a new one.
#[test]
fn a_driver_dropped_with_its_runtime_is_replaced() {
    let l = BucketRateLimiter::new(60);
    drop(l.acquire().try_now().expect("free at start"));
    outlive_a_waiting_call(&l, "waits for the next slot");
    the_next_call_goes(l, "a new driver issued the slot");
}

/// A call of `l` waits (`why`) on a runtime that shuts down a second later, dropping
/// the driver task with it.
fn outlive_a_waiting_call(l: &BucketRateLimiter, why: &'static str) {
    let waiter = l.clone();
    bounded(move || {
        paused_runtime().block_on(async move {
            let waiting = tokio::spawn(async move { drop(waiter.acquire().await) });
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(!waiting.is_finished(), "{why}");
        });
    });
}

/// On another runtime, the next call of `l` gets its ticket within a minute (`why`).
fn the_next_call_goes(l: BucketRateLimiter, why: &'static str) {
    paused(async move {
        tokio::time::timeout(Duration::from_secs(60), l.acquire())
            .await
            .expect(why)
            .unwrap()
            .finish();
    });
}

/// A probe that fails for another reason than the rate limit still shows the server
/// answering: the limiter resumes, and the next call is no probe.
#[test]
fn a_probe_failing_otherwise_resumes_the_limiter() {
    paused(async {
        let l = BucketRateLimiter::new(600);
        l.acquire().await.unwrap().rate_limited(None);
        let probe = l.acquire().await.unwrap();
        assert!(probe.is_probe());
        probe.failed();
        let next = l.acquire().await.unwrap();
        assert!(!next.is_probe(), "resumed");
        let shown = format!("{next:?}");
        assert!(
            shown.starts_with("Ticket { id: ") && shown.contains("probe: false, waited: "),
            "{shown}"
        );
    });
}

/// A call given up (its future dropped) leaves the line at once, counted as cancelled.
#[test]
fn a_dropped_call_leaves_the_line_at_once() {
    paused(async {
        let l = BucketRateLimiter::new(60);
        drop(l.acquire().try_now().expect("free at start"));
        let gave_up = tokio::time::timeout(Duration::from_secs(1), l.acquire()).await;
        assert!(gave_up.is_err(), "its slot was seconds away");
        let s = l.stats();
        assert_eq!((s.waiting, s.cancelled), (0, 1));
    });
}

/// The blocking head sleeps until its slot: its thread spends no CPU waiting.
#[cfg(unix)]
#[test]
fn a_blocking_head_sleeps_until_its_slot() {
    /// This thread's time on a CPU.
    fn cpu() -> Duration {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `t` is a valid timespec for the call to fill in.
        assert_eq!(
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) },
            0
        );
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }
    let l = BucketRateLimiter::builder()
        .rpm(120)
        .ramp_start(1.0)
        .build()
        .unwrap();
    let (spent, waited) = bounded(move || {
        l.acquire().blocking().unwrap().finish();
        let before = cpu();
        let t = l.acquire().blocking().unwrap();
        (cpu() - before, t.waited())
    });
    assert!(waited >= Duration::from_millis(400), "waited {waited:?}");
    assert!(
        spent < waited / 10,
        "{spent:?} on a CPU while waiting {waited:?}"
    );
}

/// A service probe on a blocking thread: the service's future, woken by reference
/// (`wake_by_ref`), is polled again at once, and its answer resumes the limiter
/// instead of the probe timing out.
#[test]
fn a_blocking_service_probe_is_heard() {
    struct Yields(BucketRateLimiter);
    impl crate::RateLimitedService for Yields {
        fn service_name(&self) -> &str {
            "yields"
        }
        fn is_blocked(&self) -> crate::BoxFuture<'_, bool> {
            let mut yielded = false;
            Box::pin(std::future::poll_fn(move |cx| {
                if yielded {
                    return std::task::Poll::Ready(false);
                }
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }))
        }
        fn limiter(&self, _model: Option<&str>) -> BucketRateLimiter {
            self.0.clone()
        }
    }
    let l = BucketRateLimiter::builder()
        .rpm(6_000)
        .probe_interval(Duration::from_millis(20))
        .probe_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // The monitor holds the service weakly: it lives as long as this test's handle.
    let service = std::sync::Arc::new(Yields(l.clone()));
    let monitor = crate::Monitor::new();
    monitor
        .add_rate_limited_service(service.clone(), &[])
        .unwrap();
    let waited = bounded(move || {
        l.acquire().blocking().unwrap().rate_limited(None);
        let t = l.acquire().blocking().unwrap();
        assert!(!t.is_probe(), "the service was the probe");
        t.waited()
    });
    assert!(
        waited < Duration::from_secs(5),
        "heard after {waited:?}, not at the time-out"
    );
}

/// A shared store that first says the fleet is paused for 1 s, then grants a slot 2 s
/// away, and lets every claim go; it notes when (virtual time) it was asked.
#[derive(Debug, Default)]
struct Scripted {
    asked: parking_lot::Mutex<Vec<(&'static str, Duration)>>,
    start: std::sync::OnceLock<tokio::time::Instant>,
}

impl Scripted {
    fn note(&self, what: &'static str) {
        let start = *self.start.get_or_init(tokio::time::Instant::now);
        self.asked.lock().push((what, start.elapsed()));
    }
}

/// The scripted stores' clock: a fixed time since the Unix epoch.
const STORE_NOW: Duration = Duration::from_secs(2_000_000_000);

/// A slot of the scripted stores, `wait` away.
fn slot(wait: Duration) -> Grant {
    Grant::Slot {
        wait,
        at: STORE_NOW,
        ticket: SharedTicket::default(),
        rate: 10.0,
    }
}

impl SharedBackend for std::sync::Arc<Scripted> {
    fn reserve(&self, _: SlotRequest) -> BoxFuture<'static, Result<Grant, SharedError>> {
        self.note("reserve");
        let first = self.asked.lock().len() == 1;
        Box::pin(async move {
            Ok(if first {
                Grant::Paused {
                    wait: Duration::from_secs(1),
                    epoch: 0,
                }
            } else {
                slot(Duration::from_secs(2))
            })
        })
    }

    fn claim(&self, _: u32) -> BoxFuture<'static, Result<Claim, SharedError>> {
        self.note("claim");
        Box::pin(async { Ok(Claim::Went { at: STORE_NOW }) })
    }

    fn report(&self, _: Report) {}
}

/// A clearing that sleeps twice with different deadlines (through a pause, then to a
/// slot): the second sleep keeps its own deadline, so the claim comes at the slot.
#[test]
fn a_clearing_sleeps_to_each_of_its_deadlines() {
    paused(async {
        let store = std::sync::Arc::new(Scripted::default());
        let l = BucketRateLimiter::builder()
            .rpm(600)
            .shared(store.clone())
            .build()
            .unwrap();
        let t = l.acquire().await.unwrap();
        let s = Duration::from_secs;
        assert_eq!(
            *store.asked.lock(),
            [("reserve", s(0)), ("reserve", s(1)), ("claim", s(3))]
        );
        assert_eq!(t.waited(), s(3));
    });
}

/// A shared store whose first reservation never answers; later ones grant a slot due
/// at once.
#[derive(Debug, Default)]
struct Stalls(std::sync::atomic::AtomicBool);

impl SharedBackend for std::sync::Arc<Stalls> {
    fn reserve(&self, _: SlotRequest) -> BoxFuture<'static, Result<Grant, SharedError>> {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        Box::pin(async { Ok(slot(Duration::ZERO)) })
    }

    fn claim(&self, _: u32) -> BoxFuture<'static, Result<Claim, SharedError>> {
        unreachable!("a slot due at once is claimed by its reservation")
    }

    fn report(&self, _: Report) {}
}

/// A clearing dropped halfway (its runtime shut down while the store was asked) gives
/// its ticket back and ends the clearing: the next call clears and goes.
#[test]
fn a_clearing_dropped_halfway_gives_its_ticket_back() {
    let l = BucketRateLimiter::builder()
        .rpm(600)
        .shared(std::sync::Arc::new(Stalls::default()))
        .build()
        .unwrap();
    outlive_a_waiting_call(&l, "the store never answered");
    assert_eq!(l.stats().in_flight, 0, "the ticket came back");
    the_next_call_goes(l, "the clearing ended with its runtime");
}
