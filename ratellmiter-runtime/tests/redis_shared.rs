//! One budget shared through a real Redis by limiters that do not know each other (each
//! with its own backend, as in separate processes): spacing, round trips, the shared
//! pause and probe, and clock skew. Needs `redis-server` (see `support/redis_server.rs`).
#![cfg(feature = "redis")]

#[path = "support/recording.rs"]
mod recording;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::Duration;

use ratellmiter_runtime::shared::{Grant, Report, SharedBackend, SlotRequest};
use ratellmiter_runtime::{BucketRateLimiter, RedisBackend};
use recording::{Recording, max_in_window};
use redis_server::RedisServer;
use tokio::task::JoinSet;
use tokio::time::Instant;

fn limiter(rpm: u32, backend: Recording) -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(rpm)
        .ramp_start(1.0)
        .shared(backend)
        .build()
        .unwrap()
}

fn backend(server: &RedisServer, key: &str) -> Recording {
    Recording::new(RedisBackend::new(&server.url(), key).unwrap())
}

/// Polls `cond` for up to 2 s (the backend's reports are fire-and-forget).
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        assert!(Instant::now() < deadline, "not within 2 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn acquire_all(limiters: &[BucketRateLimiter], each: usize) {
    let mut tasks = JoinSet::new();
    for l in limiters {
        for _ in 0..each {
            let l = l.clone();
            tasks.spawn(async move { drop(l.acquire().await.unwrap()) });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// Two limiters at 1 200 rpm on one key, 30 calls each at once: one schedule of 60
/// slots exactly 50 ms apart on Redis's clock (never 20 in a second), shared between
/// them — not two schedules of 1 200 rpm each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_limiters_on_one_key_share_one_even_spacing() {
    let server = RedisServer::start();
    let (a, b) = (backend(&server, "spacing"), backend(&server, "spacing"));
    let limiters = [limiter(1200, a.clone()), limiter(1200, b.clone())];
    acquire_all(&limiters, 30).await;

    let mut slots = [a.slots(), b.slots()].concat();
    slots.sort_unstable();
    assert_eq!(slots.len(), 60);
    let min_gap = slots.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(min_gap >= 50_000, "two slots {min_gap} µs apart");
    assert!(max_in_window(&slots, 1_000_000) <= 20);
    // Shared, not split: both limiters got slots all along the schedule.
    let early = &slots[..30];
    assert!(a.slots().iter().filter(|s| early.contains(s)).count() >= 10);
    assert!(b.slots().iter().filter(|s| early.contains(s)).count() >= 10);
    // Smooth, on Redis's clock (not the test's wall time, which also counts connecting
    // and loading the script): 59 gaps of at least 50 ms, and no stall of more than
    // 650 ms spread over them.
    let span = slots[59] - slots[0];
    assert!(span >= 59 * 50_000, "{span} µs");
    assert!(span < 59 * 50_000 + 650_000, "{span} µs");
}

/// Each ticket costs exactly one command on Redis (one `EVALSHA`), once the script is
/// loaded; a successful call costs nothing more. Keys live under the chosen prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_ticket() {
    let server = RedisServer::start();
    let backend = RedisBackend::new(&server.url(), "round-trips")
        .unwrap()
        .prefix("app-7:");
    assert_eq!(backend.schedule_key(), "app-7:{round-trips}:slots");
    let l = limiter(6000, Recording::new(backend));
    drop(l.acquire().await.unwrap()); // loads the script
    assert!(server.exists("app-7:{round-trips}:slots"));
    server.reset_stats();
    for _ in 0..20 {
        l.acquire().await.unwrap().finish();
    }
    assert_eq!(server.calls("evalsha"), 20);
    assert_eq!(server.round_trips(), 20);
    assert_eq!(server.calls("time"), 20, "one script run per ticket");
}

/// A rate limit in one process pauses the other for the server's `retry_after` (1 s);
/// the other's next call is then the one probe, and its success ends the shared pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_seen_by_one_pauses_the_other_until_a_probe_succeeds() {
    let server = RedisServer::start();
    let pause_key = "ratellmiter:{pause}:pause";
    let (a, b) = (backend(&server, "pause"), backend(&server, "pause"));
    let (la, lb) = (limiter(600, a.clone()), limiter(600, b.clone()));

    la.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(1)));
    let limited_at = Instant::now();
    eventually("the pause is shared", || server.exists(pause_key)).await;

    let ticket = lb.acquire().await.unwrap();
    // A lower bound on the wall clock (the retry_after is 1 s); the upper one is Redis's
    // answer: it told b to wait what was left of that second, never more.
    let waited = limited_at.elapsed();
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert!(b.paused_for() >= Duration::from_millis(800));
    assert!(
        b.paused_for() <= Duration::from_secs(1),
        "{:?}",
        b.paused_for()
    );
    assert!(
        ticket.is_probe(),
        "the first call after a shared pause probes"
    );
    ticket.finish();
    eventually("the probe's success resumes everyone", || {
        !server.exists(pause_key)
    })
    .await;

    // Resumed: Redis answers both with a slot at once, no pause.
    let pauses = b.grants().len() - b.slots().len();
    drop(la.acquire().await.unwrap());
    drop(lb.acquire().await.unwrap());
    assert!(
        matches!(a.grants().last(), Some(Grant::Slot { probe: false, .. })),
        "{:?}",
        a.grants().last()
    );
    assert_eq!(
        b.grants().len() - b.slots().len(),
        pauses,
        "{:?}",
        b.grants()
    );
}

/// A process takes the probe lock and dies without a word: the lock expires (1 s) and
/// another process's call becomes the probe, no later than one poll (250 ms) after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prober_dying_with_the_lock_is_replaced_when_it_expires() {
    let server = RedisServer::start();
    let dead = RedisBackend::new(&server.url(), "crash")
        .unwrap()
        .probe_lock_ttl(Duration::from_secs(1));
    dead.report(Report::RateLimited {
        retry_after: Some(Duration::ZERO),
        probe_initial: Duration::from_secs(10),
        probe_factor: 1.5,
        probe_max: Duration::from_secs(65),
    });
    eventually("the pause is shared", || {
        server.exists("ratellmiter:{crash}:pause")
    })
    .await;
    let grant = dead
        .reserve(SlotRequest {
            interval: Duration::from_millis(100),
            learned_interval: None,
            cost: 0,
            tpm: None,
        })
        .await
        .unwrap();
    let Grant::Slot {
        at: locked_at,
        probe: true,
        ..
    } = grant
    else {
        panic!("{grant:?}");
    };
    drop(dead); // dies holding the lock, never reports

    let other = backend(&server, "crash");
    let l = limiter(600, other.clone());
    let ticket = l.acquire().await.unwrap();
    assert!(ticket.is_probe());
    // On Redis's clock: the new probe's slot comes once the lock expired (1 s), within
    // one poll (250 ms) and a round trip.
    let waited = Duration::from_micros(other.last_slot().unwrap()) - locked_at;
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert!(waited < Duration::from_millis(1400), "{waited:?}");
    // It waited in short polls, not for a deadline it could not know.
    assert!(other.paused_for() <= Duration::from_millis(250));
    ticket.finish();
    eventually("the new probe ends the pause", || {
        !server.exists("ratellmiter:{crash}:pause")
    })
    .await;
}

/// Redis's clock schedules, never the client's: a client whose tokio clock runs an hour
/// ahead shares one even spacing (1 200 rpm: 50 ms) with a client on the right time,
/// and its slots lie in the present on Redis's clock.
#[test]
fn a_client_clock_an_hour_ahead_still_gets_evenly_spaced_slots() {
    let server = RedisServer::start();
    let (ahead, on_time) = (backend(&server, "skew"), backend(&server, "skew"));
    let t0 = server.time_us();

    let on_time_thread = {
        let l = limiter(1200, on_time.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(acquire_all(&[l], 15));
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let real = std::time::Instant::now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        tokio::time::resume();
        assert!(Instant::now().into_std() > real + Duration::from_secs(3599));
        acquire_all(&[limiter(1200, ahead.clone())], 15).await;
    });
    on_time_thread.join().unwrap();

    let mut slots = [ahead.slots(), on_time.slots()].concat();
    slots.sort_unstable();
    assert_eq!(slots.len(), 30);
    assert!(slots.windows(2).all(|w| w[1] - w[0] >= 50_000));
    assert!(
        slots[0] >= t0 && slots[29] < t0 + 3_000_000,
        "{t0} {slots:?}"
    );
}

/// The script shares what one process learned and the token budget: a learned spacing
/// of 200 ms slows everyone's 100 ms spacing to 200 ms; with 6 000 tokens per minute a
/// call of 100 tokens holds the next call back 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learned_rate_and_the_token_budget_are_shared() {
    let server = RedisServer::start();
    let slot = |g: Grant| match g {
        Grant::Slot { at, .. } => at,
        Grant::Paused { .. } => panic!("not paused"),
    };
    let request = SlotRequest {
        interval: Duration::from_millis(100),
        learned_interval: None,
        cost: 0,
        tpm: None,
    };
    let (learner, other) = (
        RedisBackend::new(&server.url(), "learned").unwrap(),
        RedisBackend::new(&server.url(), "learned").unwrap(),
    );
    let learned = SlotRequest {
        learned_interval: Some(Duration::from_millis(200)),
        ..request
    };
    let a = slot(learner.reserve(learned).await.unwrap());
    let b = slot(other.reserve(request).await.unwrap());
    let c = slot(other.reserve(request).await.unwrap());
    assert_eq!(
        (b - a, c - b),
        (Duration::from_millis(200), Duration::from_millis(200))
    );

    let tokens = RedisBackend::new(&server.url(), "tokens").unwrap();
    let weighted = SlotRequest {
        cost: 100,
        tpm: Some(6000),
        ..request
    };
    let a = slot(tokens.reserve(weighted).await.unwrap());
    let b = slot(tokens.reserve(weighted).await.unwrap());
    assert_eq!(b - a, Duration::from_secs(1));
}

/// Blocking callers share the budget too, from threads with no async runtime at all:
/// two limiters at 1 200 rpm, ten `acquire().blocking()` each, one 50 ms spacing.
#[test]
fn blocking_callers_without_a_runtime_share_the_budget() {
    let server = RedisServer::start();
    let (a, b) = (backend(&server, "blocking"), backend(&server, "blocking"));
    let threads: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|backend| {
            let l = limiter(1200, backend);
            std::thread::spawn(move || {
                for _ in 0..10 {
                    l.acquire().blocking().unwrap().finish();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut slots = [a.slots(), b.slots()].concat();
    slots.sort_unstable();
    assert_eq!(slots.len(), 20);
    assert!(slots.windows(2).all(|w| w[1] - w[0] >= 50_000));
}
