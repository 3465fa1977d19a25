//! Micro-benchmarks of the ticket path, reported in BENCHMARKS.md:
//!
//! - `uncontended`: `acquire()` + release of a ticket that is free, side by side in the
//!   same run with governor's `check()` and `until_ready()` (target: ≤ 3× `check()`);
//! - `issue_with_queue`: the pure [`Pacer`] issuing and finishing one ticket with 1 000
//!   and with 100 000 calls queued behind it (target: 100 000 ≤ 1.5× 1 000).
//!
//! Run with `cargo bench -p ratellmiter-runtime --bench acquire`.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use ratellmiter_runtime::pacer::{Outcome, Pacer, Request, Step};
use ratellmiter_runtime::{BucketRateLimiter, LimiterConfig, config::MAX_RPM};

/// Limiters per timed round. A limiter hands out its next ticket only after its
/// interval, so each round takes one free ticket from each of `ROUND` limiters and
/// then moves tokio's paused clock on (untimed); the same shape is used for governor
/// so both sides pay the same loop and cache costs.
const ROUND: usize = 64;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

/// Times `op` over `iters` calls spread across rounds of [`ROUND`], advancing the
/// paused clock by 1 ms between rounds so every call finds its ticket free.
async fn timed_rounds<F, Fut>(iters: u64, mut op: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let n = left.min(ROUND);
        tokio::time::advance(Duration::from_millis(1)).await;
        let start = std::time::Instant::now();
        for i in 0..n {
            op(i).await;
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

fn uncontended(c: &mut Criterion) {
    let rt = paused_runtime();
    let ours: Vec<BucketRateLimiter> = rt.block_on(async {
        (0..ROUND)
            .map(|_| BucketRateLimiter::new(MAX_RPM))
            .collect()
    });
    let quota = Quota::per_second(NonZeroU32::MAX);
    let theirs: Vec<_> = (0..ROUND).map(|_| RateLimiter::direct(quota)).collect();

    let mut g = c.benchmark_group("uncontended");
    g.bench_function("ratellmiter_acquire_release", |b| {
        b.iter_custom(|iters| {
            rt.block_on(timed_rounds(iters, |i| {
                let l = &ours[i];
                async move { drop(black_box(l.acquire().await.unwrap())) }
            }))
        })
    });
    // The parts of our path, benchmarked apart so the driver's own cost can be read off:
    // the pure engine's enqueue + issue + finish, and the paused clock the driver reads.
    let mut pacers: Vec<Pacer> = (0..ROUND)
        .map(|_| {
            Pacer::new(LimiterConfig {
                rpm: MAX_RPM,
                ..Default::default()
            })
            .expect("a valid configuration")
        })
        .collect();
    let mut now = Duration::ZERO;
    g.bench_function("pacer_enqueue_issue_finish", |b| {
        b.iter_custom(|iters| {
            rt.block_on(timed_rounds(iters, |i| {
                if i == 0 {
                    now += Duration::from_millis(1);
                }
                let p = &mut pacers[i];
                p.enqueue(now, Request::NEW).expect("no token budget");
                match p.poll(now) {
                    Step::Issued(t) => p.finish(now, &t, Outcome::Success),
                    other => panic!("an idle engine issues at once, got {other:?}"),
                }
                async {}
            }))
        })
    });
    g.bench_function("tokio_instant_now_paused", |b| {
        b.iter_custom(|iters| {
            rt.block_on(timed_rounds(iters, |_| {
                black_box(tokio::time::Instant::now());
                async {}
            }))
        })
    });
    g.bench_function("governor_check", |b| {
        b.iter_custom(|iters| {
            rt.block_on(timed_rounds(iters, |i| {
                let r = black_box(theirs[i].check());
                async move {
                    black_box(r).expect("an unlimited quota always has a cell");
                }
            }))
        })
    });
    g.bench_function("governor_until_ready", |b| {
        b.iter_custom(|iters| {
            rt.block_on(timed_rounds(iters, |i| {
                let l = &theirs[i];
                async move { l.until_ready().await }
            }))
        })
    });
    g.finish();
}

/// Issuing one ticket and finishing its call with `waiting` calls queued behind it.
/// Between timed chunks the queue is topped up again (untimed), so it stays between
/// `waiting - CHUNK` and `waiting` long.
fn issue_with_queue(c: &mut Criterion) {
    const CHUNK: usize = 100;
    let mut g = c.benchmark_group("issue_with_queue");
    for waiting in [1_000usize, 100_000] {
        g.bench_with_input(BenchmarkId::from_parameter(waiting), &waiting, |b, &n| {
            let mut pacer = Pacer::new(LimiterConfig {
                rpm: MAX_RPM,
                ..Default::default()
            })
            .expect("a valid configuration");
            let mut now = Duration::ZERO;
            for _ in 0..n {
                pacer.enqueue(now, Request::NEW).expect("no token budget");
            }
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let k = left.min(CHUNK);
                    let start = std::time::Instant::now();
                    for _ in 0..k {
                        // Past any ramp interval, so the head's slot is always due.
                        now += Duration::from_millis(1);
                        match pacer.poll(now) {
                            Step::Issued(t) => pacer.finish(now, &t, Outcome::Success),
                            other => panic!("the head should be due, got {other:?}"),
                        }
                    }
                    total += start.elapsed();
                    for _ in 0..k {
                        pacer.enqueue(now, Request::NEW).expect("no token budget");
                    }
                    left -= k;
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, uncontended, issue_with_queue);
criterion_main!(benches);
