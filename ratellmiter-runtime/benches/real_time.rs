//! The scheduler in real time, where timers fire late: `cargo bench -p ratellmiter-runtime
//! --bench real_time`.
//!
//! 1. Gaps: 300 calls queued at once on a 600 rpm limiter (no ramp), each ticket taken
//!    by its own task: the median gap between issues against 60/R = 100 ms, and the
//!    completion against the ideal 29.9 s. Slots follow the theoretical schedule, so a
//!    timer that fires late does not push the rest back.
//! 2. Throughput: 200 000 tasks waiting on one limiter at 6 000 000 rpm (100 000/s, the
//!    most a limiter accepts): tickets per second, and the window bounds (at most
//!    ceil(R/60) in any 1 s) checked on the actual issue times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ratellmiter_runtime::BucketRateLimiter;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs nothing long.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(gaps(600, 300));
    rt.block_on(throughput(6_000_000, 200_000));
}

fn limiter(rpm: u32) -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(rpm)
        .ramp_start(1.0)
        .adaptive(false)
        .build()
        .unwrap()
}

/// Every task takes one ticket; returns the sorted times the engine issued them (the
/// call's arrival plus its wait) and the sorted times their tasks ran with them.
async fn issue_times(l: &BucketRateLimiter, n: usize) -> (Vec<Instant>, Vec<Instant>) {
    let times = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (l, times) = (l.clone(), times.clone());
        tasks.push(tokio::spawn(async move {
            let asked = Instant::now();
            let t = l.acquire().await.unwrap();
            times.lock().push((asked + t.waited(), Instant::now()));
            t.finish();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let times = std::mem::take(&mut *times.lock());
    let (mut issued, mut ran): (Vec<_>, Vec<_>) = times.into_iter().unzip();
    issued.sort();
    ran.sort();
    (issued, ran)
}

/// The most of the sorted `times` in any window `[t, t + 1 s)`.
fn most_in_a_second(times: &[Instant]) -> usize {
    let mut most = 0;
    let mut from = 0;
    for (i, t) in times.iter().enumerate() {
        while *t - times[from] >= Duration::from_secs(1) {
            from += 1;
        }
        most = most.max(i + 1 - from);
    }
    most
}

async fn gaps(rpm: u32, n: usize) {
    let l = limiter(rpm);
    let start = Instant::now();
    let (times, _) = issue_times(&l, n).await;
    let mut gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let ideal_gap = Duration::from_secs(60) / rpm;
    let median = gaps[gaps.len() / 2];
    let done = *times.last().unwrap() - start;
    let ideal = ideal_gap * (n as u32 - 1);
    println!(
        "gaps: {n} tickets at {rpm} rpm: median gap {:.3} ms ({:+.2} % of 60/R), \
         last ticket at {:.3} s ({:.4} × ideal {:.3} s)",
        median.as_secs_f64() * 1e3,
        (median.as_secs_f64() / ideal_gap.as_secs_f64() - 1.0) * 100.0,
        done.as_secs_f64(),
        done.as_secs_f64() / ideal.as_secs_f64(),
        ideal.as_secs_f64(),
    );
}

async fn throughput(rpm: u32, n: usize) {
    let l = limiter(rpm);
    let start = Instant::now();
    let (times, ran) = issue_times(&l, n).await;
    let span = *times.last().unwrap() - times[0];
    let per_second = rpm.div_ceil(60) as usize;
    let most = most_in_a_second(&times);
    println!(
        "throughput: {n} waiting tasks at {rpm} rpm: {:.0} tickets/s ({:.3} s from first \
         to last, {:.3} s in all); most issued in any 1 s: {most} (bound {per_second}); \
         most whose tasks ran in any 1 s: {}",
        (n - 1) as f64 / span.as_secs_f64(),
        span.as_secs_f64(),
        start.elapsed().as_secs_f64(),
        most_in_a_second(&ran),
    );
    assert!(most <= per_second, "the 1 s bound on actual issue times");
}
