//! Cancellation storms and bodies that misbehave: whatever way a call is dropped —
//! a timeout, the losing branch of a `select!`, an aborted task, a panic, a body that
//! never returns — its ticket comes back, nothing leaks and nobody behind it stalls.
//!
//! The engine's lock is a `parking_lot::Mutex` around plain data and the drivers hold
//! no atomics of their own, so these tests, not a model checker, are what prove the
//! drivers' bookkeeping (see RELIABILITY.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, RateLimit, Stats};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

#[derive(Debug)]
struct RateLimited {
    retry_after: Option<Duration>,
}

impl IsRateLimit for RateLimited {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(self.retry_after))
    }
}

/// A provider that refuses every `every`-th attempt, alternately with and without
/// `retry_after`.
struct Server {
    every: u64,
    attempts: AtomicU64,
}

impl Server {
    fn call(&self) -> Result<(), RateLimited> {
        let n = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(self.every) {
            let retry_after = (n / self.every)
                .is_multiple_of(2)
                .then(|| Duration::from_millis(300));
            Err(RateLimited { retry_after })
        } else {
            Ok(())
        }
    }
}

/// xorshift64*: reproducible "random" moments without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Every ticket issued came back one way or another; nothing waits or is out.
fn assert_nothing_leaked(s: &Stats) {
    assert_eq!(s.waiting, 0, "{s:?}");
    assert_eq!(s.in_flight, 0, "{s:?}");
    assert_eq!(s.issued + s.waiting + s.cancelled, s.requested, "{s:?}");
    assert_eq!(
        s.finished + s.rate_limited,
        s.issued,
        "every ticket ended: {s:?}"
    );
}

const CALLS: u64 = 10_000;
const RATE: f64 = 500.0; // tickets per second: 30 000 rpm, 2 ms apart
const LATENCY_MS: u64 = 40;
/// Probe interval and its cap: no pause lasts longer (`retry_after` is 300 ms).
const PROBE: Duration = Duration::from_secs(1);

/// 10 000 calls queue at once; every other one is dropped at a random moment in the
/// first 15 s — by a timeout, a `select!` against a sleep, or an abort of its task —
/// while the provider refuses one attempt in 997. The 5 000 kept calls all succeed,
/// nothing leaks, and the last ends within the time the tickets issued and the pauses
/// taken account for: a dropped waiter costs its followers nothing.
#[tokio::test(start_paused = true)]
async fn half_of_ten_thousand_waiting_calls_dropped_while_rate_limits_arrive() {
    let limiter = BucketRateLimiter::builder()
        .rpm((RATE * 60.0) as u32)
        .ramp_start(1.0) // no ramp: the time bound below is then exact up to pauses
        .probe_interval(PROBE)
        .probe_max(PROBE)
        .adaptive(false)
        .build()
        .unwrap();
    let server = Arc::new(Server {
        every: 997,
        attempts: AtomicU64::new(0),
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t0 = Instant::now();

    let call = |limiter: BucketRateLimiter, server: Arc<Server>, latency: Duration| async move {
        limiter
            .run(|| {
                let server = server.clone();
                async move {
                    sleep(latency).await;
                    server.call()
                }
            })
            .await
    };

    let mut kept: Vec<JoinHandle<Duration>> = Vec::new();
    let mut dropped: Vec<JoinHandle<bool>> = Vec::new();
    for i in 0..CALLS {
        let (l, s) = (limiter.clone(), server.clone());
        let latency = Duration::from_millis(rng.below(LATENCY_MS));
        let body = call(l, s, latency);
        if i % 2 == 0 {
            kept.push(tokio::spawn(async move {
                body.await.expect("max_retries is never reached");
                t0.elapsed()
            }));
            continue;
        }
        let moment = Duration::from_millis(rng.below(15_000));
        dropped.push(match i / 2 % 3 {
            0 => tokio::spawn(async move { tokio::time::timeout(moment, body).await.is_err() }),
            1 => tokio::spawn(async move {
                tokio::select! {
                    _ = body => false,
                    _ = sleep(moment) => true,
                }
            }),
            _ => {
                let task = tokio::spawn(async move { body.await.is_ok() });
                let abort = task.abort_handle();
                tokio::spawn(async move {
                    sleep(moment).await;
                    abort.abort();
                });
                tokio::spawn(async move { task.await.is_err() })
            }
        });
    }

    let mut last = Duration::ZERO;
    for k in kept {
        last = last.max(k.await.unwrap());
    }
    let mut cut_short = 0;
    for d in dropped {
        cut_short += d.await.unwrap() as u64;
    }
    // Let the abort tasks of calls that ended early run out too.
    sleep(Duration::from_secs(20)).await;

    let s = limiter.stats();
    assert_nothing_leaked(&s);
    assert!(
        cut_short > CALLS / 4,
        "most dropped calls were cut short: {cut_short}"
    );
    assert!(
        s.cancelled > CALLS / 8,
        "many were dropped while waiting: {s:?}"
    );
    assert!(
        s.rate_limited >= 5,
        "rate limits arrived during the storm: {s:?}"
    );

    // Each ticket takes its 2 ms slot; each rate limit may pause issuing for a probe
    // interval plus the probe's own call and slot; the last call then runs. Had the
    // dropped waiters kept their slots, the 10 000 slots alone would take 20 s.
    let slots = Duration::from_secs_f64(s.issued as f64 / RATE);
    let pauses = (PROBE + Duration::from_millis(LATENCY_MS + 2)) * s.rate_limited as u32;
    let bound = slots + pauses + Duration::from_millis(LATENCY_MS);
    eprintln!(
        "storm: {} tickets, {} cancelled while waiting, {} cut short, {} rate limits; \
         last kept call ended at {last:?} (bound {bound:?})",
        s.issued, s.cancelled, cut_short, s.rate_limited
    );
    assert!(
        last <= bound,
        "the kept calls stalled: {last:?} > {bound:?}"
    );
    // Without the cancelled ones the kept calls alone need at least their slots.
    assert!(last >= Duration::from_secs_f64(CALLS as f64 / 2.0 / RATE));
}

/// A panicking body, seen as a `JoinError`, gives its ticket back as abandoned; the
/// calls queued behind go on at their slots.
#[tokio::test(start_paused = true)]
async fn panicking_bodies_give_their_tickets_back() {
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .ramp_start(1.0)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let l = limiter.clone();
            tokio::spawn(async move {
                l.run(|| async move {
                    sleep(Duration::from_millis(250)).await;
                    if i % 3 == 0 {
                        panic!("body {i} panics");
                    }
                    Ok::<_, std::io::Error>(t0.elapsed())
                })
                .await
            })
        })
        .collect();
    let mut panics = 0;
    let mut last = Duration::ZERO;
    for t in tasks {
        match t.await {
            Ok(done) => last = last.max(done.unwrap()),
            Err(e) => {
                assert!(e.is_panic());
                panics += 1;
            }
        }
    }
    assert_eq!(panics, 34);
    let s = limiter.stats();
    assert_nothing_leaked(&s);
    assert_eq!(s.finished, 100);
    // Tickets 100 ms apart; the last call that does not panic (number 98) ends 250 ms
    // after its ticket: the panics before it delayed nobody.
    assert_eq!(last, Duration::from_millis(98 * 100 + 250));
}

/// A body that never returns holds its ticket only until it is cancelled: then the
/// ticket comes back and the limiter is as if the call had ended.
#[tokio::test(start_paused = true)]
async fn a_body_that_never_returns_gives_its_ticket_back_when_cancelled() {
    let limiter = BucketRateLimiter::builder()
        .rpm(60)
        .ramp_start(1.0)
        .build()
        .unwrap();
    let l = limiter.clone();
    let stuck = tokio::spawn(async move {
        l.run(std::future::pending::<Result<(), std::io::Error>>)
            .await
    });
    let l = limiter.clone();
    let timed_out = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_secs(30),
            l.run(std::future::pending::<Result<(), std::io::Error>>),
        )
        .await
    });
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        limiter.stats().in_flight,
        2,
        "both bodies hold their tickets"
    );

    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());
    assert_eq!(limiter.stats().in_flight, 1);
    assert!(
        timed_out.await.unwrap().is_err(),
        "the timeout fired at 30 s"
    );
    let s = limiter.stats();
    assert_nothing_leaked(&s);
    assert_eq!(s.finished, 2);

    // The next call gets the next slot: nothing was lost to the stuck ones.
    let t = Instant::now();
    drop(limiter.acquire().await.unwrap());
    assert_eq!(t.elapsed(), Duration::ZERO, "a slot was free long ago");
}

/// Blocking callers on OS threads that give up at their deadlines, or whose body
/// panics, leave nothing behind for the threads that keep going.
#[test]
fn blocking_callers_that_time_out_or_panic_leave_nothing_behind() {
    let limiter = BucketRateLimiter::builder()
        .rpm(6_000) // 100 per second
        .ramp_start(1.0)
        .build()
        .unwrap();
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let l = limiter.clone();
            std::thread::spawn(move || match i % 4 {
                // Gives up long before its turn (40 callers at 10 ms = 400 ms).
                0 => l
                    .acquire()
                    .deadline(Instant::now() + Duration::from_millis(1))
                    .blocking()
                    .map(drop)
                    .is_err(),
                1 => {
                    let _ = l.run_blocking(|| -> Result<(), std::io::Error> {
                        panic!("blocking body {i} panics")
                    });
                    false
                }
                _ => {
                    drop(l.acquire().blocking().unwrap());
                    false
                }
            })
        })
        .collect();
    // Joined on a thread of their own, so that callers stuck for good fail the test
    // (bounded, in real time) instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut gave_up, mut panicked) = (0, 0);
        for t in threads {
            match t.join() {
                Ok(g) => gave_up += g as u32,
                Err(_) => panicked += 1,
            }
        }
        tx.send((gave_up, panicked)).unwrap();
    });
    let (gave_up, panicked) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("every blocking caller got its ticket, gave up or panicked");
    assert_eq!(panicked, 10);
    assert!(gave_up >= 1, "some deadline passed while waiting");
    let s = limiter.stats();
    assert_nothing_leaked(&s);
    assert_eq!(s.requested, 40);
    assert_eq!(s.issued + s.cancelled, 40);
}
