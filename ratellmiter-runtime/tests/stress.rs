//! Load: many callers on one limiter, many limiters at once, async tasks on a
//! multi-thread runtime and blocking OS threads — every call completes, the counters
//! balance, nothing deadlocks — and the memory a waiting call costs.
//!
//! The default sizes suit CI; the full sizes run with
//! `cargo test -p ratellmiter-runtime --release --test stress -- --ignored --nocapture`
//! and print the figures RELIABILITY.md reports. Tests here run one at a time (they
//! share a lock) so that timings and the allocation count are not mixed up.

use std::sync::mpsc;
use std::time::Duration;

use parking_lot::Mutex;
use ratellmiter_runtime::{BucketRateLimiter, Stats};

/// Counts live heap bytes, to measure what a waiting call costs.
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live;

/// One test at a time: the allocation count and the timings are per test.
static SERIAL: Mutex<()> = Mutex::new(());

/// 100 000 tickets per second, the most a limiter accepts: the tests measure the
/// limiter's own overhead, not the pacing.
const MAX_RPM: u32 = ratellmiter_runtime::config::MAX_RPM;

/// No test may take longer than this: a deadlock fails instead of hanging CI.
const WATCHDOG: Duration = Duration::from_secs(600);

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a multi-thread runtime")
}

/// Every call requested was issued and ended; none is left waiting or in flight.
fn assert_balanced(s: &Stats, calls: u64) {
    assert_eq!(s.requested, calls, "{s:?}");
    assert_eq!(s.issued, calls, "{s:?}");
    assert_eq!(s.finished, calls, "{s:?}");
    assert_eq!(s.cancelled, 0, "{s:?}");
    assert_eq!(s.waiting, 0, "{s:?}");
    assert_eq!(s.in_flight, 0, "{s:?}");
}

fn callers_on_one_limiter(callers: usize) {
    let _serial = SERIAL.lock();
    let limiter = BucketRateLimiter::new(MAX_RPM);
    let started = std::time::Instant::now();
    multi_thread().block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move {
                    let ticket = l.acquire().await.unwrap();
                    tokio::task::yield_now().await; // the "call": the ticket is held across a yield
                    drop(ticket);
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await.expect("no caller panics");
            }
        };
        tokio::time::timeout(WATCHDOG, all)
            .await
            .expect("no deadlock");
    });
    let took = started.elapsed();
    assert_balanced(&limiter.stats(), callers as u64);
    eprintln!(
        "{callers} concurrent callers on one limiter (multi-thread runtime, 2 workers): {took:.2?}, {:.0} tickets/s",
        callers as f64 / took.as_secs_f64()
    );
}

/// Spawned together, the callers all queue on one limiter; each gets its ticket.
#[test]
fn ten_thousand_callers_on_one_limiter() {
    callers_on_one_limiter(10_000);
}

#[test]
#[ignore = "full size: run with --release -- --ignored"]
fn hundred_thousand_callers_on_one_limiter() {
    callers_on_one_limiter(100_000);
}

fn services_at_once(services: usize, callers_each: usize) {
    let _serial = SERIAL.lock();
    let limiters: Vec<BucketRateLimiter> = (0..services)
        .map(|i| {
            BucketRateLimiter::builder()
                .rpm(MAX_RPM)
                .name(format!("service-{i}"))
                .build()
                .expect("valid settings")
        })
        .collect();
    let started = std::time::Instant::now();
    multi_thread().block_on(async {
        let mut tasks = Vec::with_capacity(services * callers_each);
        // Interleaved, so every limiter is contended from the start.
        for _ in 0..callers_each {
            for l in &limiters {
                let l = l.clone();
                tasks.push(tokio::spawn(
                    async move { drop(l.acquire().await.unwrap()) },
                ));
            }
        }
        let all = async {
            for t in tasks {
                t.await.expect("no caller panics");
            }
        };
        tokio::time::timeout(WATCHDOG, all)
            .await
            .expect("no deadlock");
    });
    let took = started.elapsed();
    for l in &limiters {
        assert_balanced(&l.stats(), callers_each as u64);
    }
    eprintln!(
        "{services} services x {callers_each} callers at once (multi-thread runtime): {took:.2?}, {:.0} tickets/s",
        (services * callers_each) as f64 / took.as_secs_f64()
    );
}

#[test]
fn hundred_services_at_once() {
    services_at_once(100, 100);
}

#[test]
#[ignore = "full size: run with --release -- --ignored"]
fn thousand_services_at_once() {
    services_at_once(1_000, 100);
}

fn blocking_threads(threads: usize, calls_each: usize) {
    let _serial = SERIAL.lock();
    let limiter = BucketRateLimiter::new(MAX_RPM);
    let started = std::time::Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let l = limiter.clone();
            let done = done_tx.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    for _ in 0..calls_each {
                        drop(l.acquire().blocking().unwrap());
                    }
                    done.send(()).expect("the test waits");
                })
                .expect("a thread")
        })
        .collect();
    for _ in 0..threads {
        done_rx
            .recv_timeout(WATCHDOG)
            .expect("every thread finishes: no deadlock");
    }
    for h in handles {
        h.join().expect("no thread panics");
    }
    let took = started.elapsed();
    let calls = (threads * calls_each) as u64;
    assert_balanced(&limiter.stats(), calls);
    eprintln!(
        "{threads} OS threads x {calls_each} blocking acquires: {took:.2?}, {:.0} tickets/s",
        calls as f64 / took.as_secs_f64()
    );
}

/// Blocking clients on real threads share one budget through `acquire().blocking()`.
#[test]
fn blocking_callers_on_real_threads() {
    blocking_threads(100, 50);
}

#[test]
#[ignore = "full size: run with --release -- --ignored"]
fn thousand_blocking_threads() {
    blocking_threads(1_000, 100);
}

/// Queues `waiters` spawned callers behind a held ticket and returns the live heap
/// they add, per caller; then cancels them all.
async fn bytes_per_waiting_task(limiter: &BucketRateLimiter, waiters: usize) -> f64 {
    let before = live();
    let mut tasks = Vec::with_capacity(waiters);
    let vec_bytes = live() - before;
    for _ in 0..waiters {
        let l = limiter.clone();
        tasks.push(tokio::spawn(
            async move { drop(l.acquire().await.unwrap()) },
        ));
    }
    // Each task runs until it waits in the queue.
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        limiter.stats().waiting,
        waiters as u64,
        "every caller waits"
    );
    let per_call = (live() - before - vec_bytes) as f64 / waiters as f64;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        assert!(t.await.unwrap_err().is_cancelled());
    }
    assert_eq!(limiter.stats().waiting, 0);
    per_call
}

fn memory_per_waiting_call(waiters: usize) {
    let _serial = SERIAL.lock();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        // One ticket a minute: after the first, everyone waits.
        let limiter = BucketRateLimiter::new(1);
        let held = limiter.acquire().await.unwrap();
        let first = bytes_per_waiting_task(&limiter, waiters).await;
        let settled = live();
        // A second round reuses what the first left (queue capacity): nothing leaks.
        let second = bytes_per_waiting_task(&limiter, waiters).await;
        let leaked = live() - settled;
        eprintln!(
            "memory per waiting call ({waiters} spawned tasks, each waiting in acquire()): \
             {first:.0} bytes (first round), {second:.0} bytes (second round); \
             after cancelling all: {leaked} bytes more than after the first round"
        );
        assert!(first < 2_048.0, "{first} bytes per waiting call");
        assert!(
            leaked.abs() < 64 * 1024,
            "{leaked} bytes left after the second round"
        );
        drop(held);
        let s = limiter.stats();
        assert_eq!(s.cancelled, 2 * waiters as u64);
        assert_eq!(s.issued + s.waiting + s.cancelled, s.requested);
        assert_eq!(s.in_flight, 0);
    });
}

/// What a caller waiting in `acquire()` on a spawned task costs, all told (the task,
/// its future, the limiter's queue entry and slot).
#[test]
fn memory_per_waiting_call_is_bounded_and_returned() {
    memory_per_waiting_call(10_000);
}

#[test]
#[ignore = "full size: run with --release -- --ignored"]
fn memory_per_hundred_thousand_waiting_calls() {
    memory_per_waiting_call(100_000);
}

/// The same load under tokio's virtual clock: 100 000 tickets per second asked, and
/// every caller's ticket comes within the time its place in line allows.
fn callers_in_virtual_time(callers: usize) {
    let _serial = SERIAL.lock();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        // 60 000 rpm: one ticket a millisecond, the timer's own resolution.
        let limiter = BucketRateLimiter::builder()
            .rpm(60_000)
            .ramp_start(1.0)
            .build()
            .expect("valid settings");
        let t0 = tokio::time::Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move { drop(l.acquire().await.unwrap()) })
            })
            .collect();
        for t in tasks {
            t.await.expect("no caller panics");
        }
        let took = t0.elapsed();
        assert_balanced(&limiter.stats(), callers as u64);
        let ideal = Duration::from_millis(callers as u64 - 1);
        eprintln!("{callers} callers at 60 000 rpm in virtual time: last ticket after {took:?} (ideal {ideal:?})");
        assert!(took >= ideal, "faster than the limit: {took:?}");
        assert!(took <= ideal + ideal / 100 + Duration::from_millis(5), "{took:?}");
    });
}

#[test]
fn ten_thousand_callers_in_virtual_time() {
    callers_in_virtual_time(10_000);
}

#[test]
#[ignore = "full size: run with --release -- --ignored"]
fn hundred_thousand_callers_in_virtual_time() {
    callers_in_virtual_time(100_000);
}
