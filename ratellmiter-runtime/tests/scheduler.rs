//! The scheduler where production reaches first: a waiter nobody polls, a probe that
//! never answers, a probe cancelled by a time-out, a 429 that arrives after the resume,
//! a header answer that lifts a hold, a service probe that panics. Virtual time, except
//! the blocking driver, which parks real threads.

use std::future::{IntoFuture, pending};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ratellmiter_runtime::headers::Budget;
use ratellmiter_runtime::{
    BoxFuture, BucketRateLimiter, IsRateLimit, RateLimit, RateLimitedService,
};
use tokio::time::{Instant, sleep, timeout};

#[derive(Debug)]
struct Refused;

impl IsRateLimit for Refused {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(None))
    }
}

fn limiter(rpm: u32) -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(rpm)
        .adaptive(false)
        .build()
        .unwrap()
}

/// A caller polls `acquire()` once, so it is the head of the line, then awaits
/// something else for 30 s. Its ticket is held for it at its slot, and the 50 callers
/// behind it are served on schedule: at 600 rpm from idle the slow start (2.2/s,
/// doubling each second) issues the 51 tickets after the first in 6.241 s (the engine's
/// figure, exact in virtual time; before the driver task none of them came).
#[tokio::test(start_paused = true)]
async fn an_unpolled_head_holds_up_only_itself() {
    let l = limiter(600);
    let start = Instant::now();
    let first = l.acquire().await.unwrap(); // the fast path: the line is empty
    let mut head = Box::pin(l.acquire().into_future());
    assert!(
        futures_poll_once(head.as_mut()).await.is_none(),
        "head waits"
    );
    let mut behind = Vec::new();
    for _ in 0..50 {
        let l = l.clone();
        behind.push(tokio::spawn(async move {
            let t = l.acquire().await.unwrap();
            let at = Instant::now();
            t.finish();
            at
        }));
    }
    let mut last = start;
    for h in behind {
        last = last.max(timeout(Duration::from_secs(20), h).await.unwrap().unwrap());
    }
    assert_eq!(
        (last - start).as_millis(),
        6_241,
        "51 tickets after the first, on the ramp from idle"
    );
    sleep(Duration::from_secs(30).saturating_sub(start.elapsed())).await;
    // Its ticket came at its slot (the second of the run, 1/2.2 s in, to the timer's
    // millisecond) and waited for it.
    let t = futures_poll_once(head.as_mut())
        .await
        .expect("held for it")
        .unwrap();
    assert_eq!(t.waited(), Duration::from_millis(455));
    drop((first, t));
    assert_eq!(l.stats().in_flight, 0);
}

/// Polls `fut` once, as a `select!` loop that then turns to other work would.
async fn futures_poll_once<F: std::future::Future + Unpin>(fut: F) -> Option<F::Output> {
    let mut fut = fut;
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// After a refusal the probe call never returns (a provider holding connections open).
/// After `probe_timeout` (60 s) it counts as refused: the next probe goes out on the
/// probe schedule (×1.5: 15 s later, at 85 s), succeeds, and every other call completes.
#[tokio::test(start_paused = true)]
async fn a_probe_that_never_answers_times_out() {
    let l = limiter(600);
    let calls = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (l, calls) = (l.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            l.run(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 => Err(Refused),
                        // The probe: the re-run of the refused call.
                        n if n == first_probe() => pending().await,
                        _ => Ok(Instant::now()),
                    }
                }
            })
            .await
            .unwrap()
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        if let Ok(Ok(at)) = timeout(Duration::from_secs(900), t).await {
            done.push(at - start);
        }
    }
    assert_eq!(done.len(), 99, "every call but the hung probe completes");
    let resumed = done.iter().min().unwrap();
    assert_eq!(
        *resumed,
        Duration::from_secs(85),
        "10 s pause, 60 s time-out, 15 s"
    );
    assert!(!l.stats().paused);
}

/// Call 0 is refused; its re-run is the first probe (call 1: nothing else is issued
/// during the pause, and the first ticket of the burst went out alone).
fn first_probe() -> u32 {
    1
}

/// A manual acquire + call under `tokio::time::timeout`: the probe's ticket is dropped
/// with the cancelled future. That says nothing about the server: the limiter stays
/// paused and the next call probes.
#[tokio::test(start_paused = true)]
async fn a_probe_dropped_by_a_timeout_does_not_resume() {
    let l = limiter(600);
    l.acquire().await.unwrap().rate_limited(None);
    assert!(l.stats().paused);
    let cancelled = timeout(Duration::from_secs(30), async {
        let t = l.acquire().await.unwrap();
        assert!(t.is_probe(), "the first call after the pause probes");
        pending::<()>().await;
        drop(t);
    })
    .await;
    assert!(cancelled.is_err());
    assert!(
        l.stats().paused,
        "a dropped probe must not resume the limiter"
    );
    let next = l.acquire().await.unwrap();
    assert!(next.is_probe(), "the next call probes at once");
    next.finish();
    assert!(!l.stats().paused);
}

/// A 429 from a ticket issued before the latest resume: the server refused a call sent
/// before it accepted the probe. Its call re-queues (the driver's job) but the limiter
/// neither pauses again nor lowers its learned ceiling.
#[tokio::test(start_paused = true)]
async fn a_stale_rate_limit_after_the_resume_changes_nothing() {
    let l = BucketRateLimiter::builder().rpm(600).build().unwrap(); // adaptive on
    let a = l.acquire().await.unwrap();
    let b = l.acquire().await.unwrap();
    let full = l.stats().limit_rate;
    a.rate_limited(None);
    let probe = l.acquire().await.unwrap();
    assert!(probe.is_probe());
    probe.finish();
    assert!(!l.stats().paused);
    b.rate_limited(None); // issued before the pause, answered after the resume
    let s = l.stats();
    assert!(!s.paused, "a stale 429 does not pause");
    assert_eq!(s.learned_rate, full, "nor teaches the ceiling");
    assert_eq!(s.rate_limited, 2, "but it is counted");
    // A fresh ticket's 429 still pauses.
    l.acquire().await.unwrap().rate_limited(None);
    assert!(l.stats().paused);
}

/// Headers said no request remains for 30 s; a later response says 50 remain. The
/// newest answer wins: the waiting call goes at its slot, not after 30 s.
#[tokio::test(start_paused = true)]
async fn a_later_answer_lifts_a_hold() {
    let l = limiter(600);
    let start = Instant::now();
    let t = l.acquire().await.unwrap();
    t.observe_budget(
        Some(Budget {
            remaining: 0,
            reset: Duration::from_secs(30),
        }),
        None,
    );
    let waiter = tokio::spawn({
        let l = l.clone();
        async move {
            let t = l.acquire().await.unwrap();
            t.finish();
            Instant::now()
        }
    });
    sleep(Duration::from_secs(2)).await;
    assert!(!waiter.is_finished(), "held");
    t.observe_budget(
        Some(Budget {
            remaining: 50,
            reset: Duration::from_secs(30),
        }),
        None,
    );
    t.finish();
    let at = waiter.await.unwrap();
    assert_eq!(
        at - start,
        Duration::from_secs(2),
        "goes as soon as the hold lifts"
    );
}

/// Blocked once (panicking), then open.
struct Flaky {
    limiter: BucketRateLimiter,
    asked: AtomicU32,
}

impl RateLimitedService for Flaky {
    fn service_name(&self) -> &str {
        "flaky"
    }
    fn is_blocked(&self) -> BoxFuture<'_, bool> {
        let n = self.asked.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            assert!(n > 0, "the first probe panics");
            false
        })
    }
    fn limiter(&self, _model: Option<&str>) -> BucketRateLimiter {
        self.limiter.clone()
    }
}

fn flaky(probe_interval: Duration) -> Arc<Flaky> {
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .probe_interval(probe_interval)
        .build()
        .unwrap();
    let service = Arc::new(Flaky {
        limiter: limiter.clone(),
        asked: AtomicU32::new(0),
    });
    let weak: std::sync::Weak<dyn RateLimitedService> = Arc::downgrade(&service) as _;
    limiter.set_service(weak);
    service
}

/// An `is_blocked()` that panics counts as a refused probe: the next goes out on the
/// probe schedule (×1.5), answers open, and the waiting call gets its ticket.
#[tokio::test(start_paused = true)]
async fn a_panicking_service_probe_counts_as_refused() {
    let service = flaky(Duration::from_secs(10));
    let l = service.limiter.clone();
    let start = Instant::now();
    l.acquire().await.unwrap().rate_limited(None);
    let t = timeout(Duration::from_secs(60), l.acquire())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(25), "10 s, then 15 s");
    assert_eq!(service.asked.load(Ordering::SeqCst), 2);
    t.finish();
}

/// The same on the blocking driver (real threads, so real time with short intervals;
/// bounded, so a stuck engine fails instead of hanging).
#[test]
fn a_panicking_service_probe_on_the_blocking_driver_counts_as_refused() {
    let service = flaky(Duration::from_millis(40));
    let l = service.limiter.clone();
    l.acquire().blocking().unwrap().rate_limited(None);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let t = l.acquire().blocking().unwrap();
        tx.send(()).unwrap();
        t.finish();
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the blocking acquire got its ticket after the second probe");
    assert_eq!(service.asked.load(Ordering::SeqCst), 2);
}

/// The headers said 50 tokens are left for 30 s: a call that costs 100 waits for the
/// reset. A retry that costs none queues in front of it; the head changed, so the
/// driver looks again and the retry goes at once, not when the call behind it is due.
#[tokio::test(start_paused = true)]
async fn a_new_head_with_a_sooner_slot_goes_at_it() {
    let l = BucketRateLimiter::builder()
        .rpm(600)
        .tpm(1_000_000)
        .adaptive(false)
        .build()
        .unwrap();
    let start = Instant::now();
    let t = l.acquire().tokens(100).await.unwrap();
    t.observe_budget(
        None,
        Some(Budget {
            remaining: 50,
            reset: Duration::from_secs(30),
        }),
    );
    t.finish();
    let behind = tokio::spawn({
        let l = l.clone();
        async move {
            drop(l.acquire().tokens(100).await.unwrap());
            start.elapsed()
        }
    });
    sleep(Duration::from_secs(1)).await;
    assert_eq!(l.stats().waiting, 1);
    drop(l.acquire().retry().await.unwrap());
    assert_eq!(start.elapsed(), Duration::from_secs(1), "at once");
    assert_eq!(behind.await.unwrap(), Duration::from_secs(30));
}
