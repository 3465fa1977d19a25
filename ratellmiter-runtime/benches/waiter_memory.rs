//! Memory per waiting call, measured with a counting global allocator.
//!
//! Queues 100 000 `acquire()` futures (each boxed, as a spawned task would hold it) on
//! one limiter and reports the live heap they add, divided by their number; then the
//! same for the pure `Pacer` alone. Run with
//! `cargo bench -p ratellmiter-runtime --bench waiter_memory`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use ratellmiter_runtime::pacer::{Pacer, Request};
use ratellmiter_runtime::{AcquireError, BucketRateLimiter, LimiterConfig, Ticket};

#[path = "../tests/support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::live;

const WAITERS: usize = 100_000;

type Acquire<'a> = Pin<Box<dyn Future<Output = Result<Ticket, AcquireError>> + 'a>>;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let _in_runtime = rt.enter();
    let limiter = BucketRateLimiter::new(1);
    let mut cx = Context::from_waker(Waker::noop());
    // The first ticket goes out at once; everyone after it waits a minute or more.
    let mut first: Acquire = Box::pin(limiter.acquire().into_future());
    let held = match first.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(t) => t,
        std::task::Poll::Pending => panic!("the first ticket of an idle limiter is free"),
    };

    let before = live();
    let mut waiting: Vec<Acquire> = Vec::with_capacity(WAITERS);
    let vec_bytes = live() - before;
    for _ in 0..WAITERS {
        let mut f: Acquire = Box::pin(limiter.acquire().into_future());
        assert!(f.as_mut().poll(&mut cx).is_pending(), "the call must queue");
        waiting.push(f);
    }
    let per_call = (live() - before - vec_bytes) as f64 / WAITERS as f64;
    assert_eq!(limiter.stats().waiting, WAITERS as u64);
    println!(
        "async acquire: {per_call:.0} bytes per waiting call ({WAITERS} queued; \
         the boxed future itself is {} bytes)",
        std::mem::size_of_val(&*waiting[1])
    );
    drop(waiting);
    drop(held);
    assert_eq!(
        limiter.stats().waiting,
        0,
        "dropped futures leave the queue"
    );

    let mut pacer = Pacer::new(LimiterConfig {
        rpm: 1,
        ..Default::default()
    })
    .expect("a valid configuration");
    let before = live();
    for _ in 0..WAITERS {
        pacer
            .enqueue(Duration::ZERO, Request::NEW)
            .expect("no token budget");
    }
    let per_call = (live() - before) as f64 / WAITERS as f64;
    println!("pure Pacer: {per_call:.0} bytes per queued call ({WAITERS} queued)");
}
