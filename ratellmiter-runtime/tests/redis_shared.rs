//! One budget shared through a real Redis by limiters that do not know each other (each
//! with its own backend, as in separate processes): spacing, round trips, the fleet's
//! ramp, pause and probe, the budgets, the order of what a process sends, and clock
//! skew. Needs `redis-server` (see `support/redis_server.rs`). Times are read on
//! Redis's clock (the slots it granted), not on the test's.
#![cfg(feature = "redis")]

#[path = "support/recording.rs"]
mod recording;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ratellmiter_runtime::pacer::{Cost, Outcome, Pacer, Request, Step};
use ratellmiter_runtime::shared::{
    Claim, Grant, Report, SharedBackend, SharedError, SharedTicket, SlotRequest,
};
use ratellmiter_runtime::{
    AcquireError, BoxFuture, BucketRateLimiter, DayReset, LimiterConfig, Monitor, MonitorConfig,
    RedisBackend, UnknownServices, Usage,
};
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

/// A field of the fleet's state under `key`, as a number.
fn state(server: &RedisServer, key: &str, field: &str) -> Option<i64> {
    server
        .hget(&format!("ratellmiter:{{{key}}}:state"), field)
        .map(|v| v.parse().unwrap())
}

fn config(rpm: u32) -> LimiterConfig {
    LimiterConfig {
        rpm,
        ramp_start: 1.0,
        ..LimiterConfig::default()
    }
}

/// The slot of a grant, µs on Redis's clock.
fn slot(g: Grant) -> Duration {
    match g {
        Grant::Slot { at, .. } => at,
        other => panic!("not a slot: {other:?}"),
    }
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

    // A process holds one reservation at a time, so its k-th hand-over is its k-th
    // slot's: none goes before its slot, on Redis's clock.
    for backend in [&a, &b] {
        for (slot, handed) in backend.slots().iter().zip(backend.handed()) {
            assert!(
                handed >= *slot,
                "handed over at {handed} µs, its slot {slot} µs"
            );
        }
    }
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

/// A ticket costs one command on Redis (one `EVALSHA`) when its slot is due at once,
/// and one more — the claim — when it waits for its slot; a successful call costs
/// nothing more. Keys live under the chosen prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_two_round_trips_per_ticket() {
    let server = RedisServer::start();
    let backend = RedisBackend::new(&server.url(), "round-trips")
        .unwrap()
        .prefix("app-7:");
    assert_eq!(backend.state_key(), "app-7:{round-trips}:state");
    let backend = Recording::new(backend);
    let l = limiter(6000, backend.clone());
    // Loads the scripts.
    drop(l.acquire().await.unwrap());
    backend.claim(6000).await.unwrap();
    assert!(server.exists("app-7:{round-trips}:state"));
    server.reset_stats();
    let claims_before = backend.claims().len();
    for _ in 0..20 {
        l.acquire().await.unwrap().finish();
    }
    let claims = backend.claims().len() - claims_before;
    // Back to back at 6 000 rpm: each next slot is 10 ms after the last, so most wait.
    assert!(claims >= 10, "{claims} claims");
    assert_eq!(server.calls("evalsha"), 20 + claims as u64);
    assert_eq!(server.round_trips(), 20 + claims as u64);
    assert_eq!(backend.reports().len(), 0, "a success reports nothing");
}

fn probing_limiter(backend: &Recording, probe_initial: Duration) -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .config(LimiterConfig {
            probe_initial,
            ..config(600)
        })
        .shared(backend.clone())
        .build()
        .unwrap()
}

/// A rate limit in one process pauses the other for the probe interval (1 s); the
/// other's next call is then the one probe, and its success ends the shared pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_seen_by_one_pauses_the_other_until_a_probe_succeeds() {
    let server = RedisServer::start();
    let (a, b) = (backend(&server, "pause"), backend(&server, "pause"));
    let second = Duration::from_secs(1);
    let (la, lb) = (probing_limiter(&a, second), probing_limiter(&b, second));

    la.acquire().await.unwrap().rate_limited(None);
    let limited_at = Instant::now();
    eventually("the pause is shared", || {
        state(&server, "pause", "p_until").is_some()
    })
    .await;

    let ticket = lb.acquire().await.unwrap();
    // A lower bound on the wall clock (the interval is 1 s); the upper one is Redis's
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
    // It waited the pause out, asking again once at most, not polling Redis meanwhile.
    let pauses = b.grants().len() - b.slots().len();
    assert!(pauses <= 2, "{pauses} pause answers in one pause");
    ticket.finish();
    eventually("the probe's success resumes everyone", || {
        state(&server, "pause", "epoch") == Some(1)
    })
    .await;
    assert_eq!(state(&server, "pause", "p_until"), None);

    // Resumed: Redis answers both with a slot at once, no pause.
    let pauses = b.grants().len() - b.slots().len();
    drop(la.acquire().await.unwrap());
    drop(lb.acquire().await.unwrap());
    assert!(
        matches!(a.grants().last(), Some(Grant::Slot { ticket, .. }) if !ticket.probe && ticket.epoch == 1),
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

/// A pause the server timed (`retry-after: 1`) ends at that time for the fleet without a
/// probe, as for one process with the slow start: the other's next call after it is a
/// plain ticket of the next epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_the_server_timed_ends_on_time_without_a_probe() {
    let server = RedisServer::start();
    let (a, b) = (backend(&server, "timed"), backend(&server, "timed"));
    let (la, lb) = (limiter(600, a.clone()), limiter(600, b.clone()));
    la.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(1)));
    eventually("the pause is shared", || {
        state(&server, "timed", "p_until").is_some()
    })
    .await;
    let ticket = lb.acquire().await.unwrap();
    assert!(!ticket.is_probe());
    assert!(b.paused_for() >= Duration::from_millis(800));
    assert!(b.paused_for() <= Duration::from_secs(1));
    assert!(
        matches!(b.grants().last(), Some(Grant::Slot { ticket, .. }) if ticket.epoch == 1),
        "{:?}",
        b.grants()
    );
    ticket.finish();
}

/// A process is handed the probe and dies without a word (its report lost): the probe
/// passes to another process's call once the probe time-out (1 s) is over, no later
/// than one poll (250 ms) after — a lost report costs the others one probe time-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_probe_report_costs_the_others_one_probe_timeout() {
    let server = RedisServer::start();
    let cfg = LimiterConfig {
        probe_timeout: Duration::from_secs(1),
        probe_initial: Duration::from_millis(100),
        ..config(600)
    };
    let dead = RedisBackend::new(&server.url(), "crash").unwrap();
    let limited = Outcome::RateLimited { retry_after: None };
    dead.report(Report::new(SharedTicket::default(), limited, cfg.clone()));
    eventually("the pause is shared", || {
        state(&server, "crash", "p_until").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await; // the 100 ms pause ends
    let grant = dead.reserve(SlotRequest::new(cfg.clone())).await.unwrap();
    let Grant::Slot {
        at: probed_at,
        ticket,
        ..
    } = grant
    else {
        panic!("{grant:?}");
    };
    assert!(ticket.probe, "{grant:?}");
    drop(dead); // dies holding the probe, never reports

    let other = backend(&server, "crash");
    let l = BucketRateLimiter::builder()
        .config(cfg)
        .shared(other.clone())
        .build()
        .unwrap();
    let ticket = l.acquire().await.unwrap();
    assert!(ticket.is_probe());
    let waited = Duration::from_micros(other.last_slot().unwrap()) - probed_at;
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    assert!(waited < Duration::from_millis(1300), "{waited:?}");
    // It waited in short polls, not for a deadline it could not know.
    assert!(other.paused_for() <= Duration::from_millis(250));
    ticket.finish();
    eventually("the new probe ends the pause", || {
        state(&server, "crash", "epoch") == Some(1)
    })
    .await;
}

/// Process A's call is refused and pauses the fleet; after the pause A's next call is
/// the probe. While it is out, A's older calls are refused too: they neither end the
/// probe nor restart or lengthen the pause. The probe's success resumes everyone once
/// (one new epoch); then a late 429 from a call sent before the resume — A's or B's —
/// changes nothing, and B's next call goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_owned_by_one_ticket_decides_while_older_calls_are_refused() {
    let server = RedisServer::start();
    let (a, b) = (backend(&server, "owned"), backend(&server, "owned"));
    let cfg = LimiterConfig {
        probe_initial: Duration::from_millis(300),
        ..config(6000)
    };
    let build = |backend: &Recording| {
        BucketRateLimiter::builder()
            .config(cfg.clone())
            .shared(backend.clone())
            .build()
            .unwrap()
    };
    let (la, lb) = (build(&a), build(&b));
    let mut older = Vec::new();
    for _ in 0..3 {
        older.push(la.acquire().await.unwrap());
    }
    let b_older = lb.acquire().await.unwrap();
    let mut older = older.into_iter();

    older.next().unwrap().rate_limited(None);
    eventually("the pause is shared", || {
        state(&server, "owned", "p_until").is_some()
    })
    .await;
    let paused_until = state(&server, "owned", "p_until");

    let probe = la.acquire().await.unwrap();
    assert!(probe.is_probe());
    older.next().unwrap().rate_limited(None);
    // Answered after that report (one process's commands reach Redis in order): the
    // probe is still out, the pause as it was.
    let grant = a.reserve(SlotRequest::new(cfg.clone())).await.unwrap();
    assert!(matches!(grant, Grant::Paused { .. }), "{grant:?}");
    assert_eq!(
        state(&server, "owned", "p_int"),
        Some(300),
        "the pause grew"
    );
    assert_eq!(state(&server, "owned", "p_until"), paused_until);

    probe.finish();
    eventually("the probe resumes the fleet", || {
        state(&server, "owned", "epoch") == Some(1)
    })
    .await;
    older.next().unwrap().rate_limited(None);
    b_older.rate_limited(None);
    let (ga, gb) = (
        a.reserve(SlotRequest::new(cfg.clone())).await.unwrap(),
        b.reserve(SlotRequest::new(cfg.clone())).await.unwrap(),
    );
    for g in [ga, gb] {
        assert!(
            matches!(g, Grant::Slot { ticket, .. } if ticket.epoch == 1 && !ticket.probe),
            "{g:?}"
        );
    }
    assert_eq!(state(&server, "owned", "epoch"), Some(1), "resumed once");
    assert_eq!(state(&server, "owned", "p_until"), None, "paused again");
    let ticket = lb.acquire().await.unwrap();
    assert!(
        matches!(b.grants().last(), Some(Grant::Slot { ticket, wait, .. })
            if ticket.epoch == 1 && !ticket.probe && *wait < Duration::from_millis(40)),
        "{:?}",
        b.grants().last()
    );
    assert!(!lb.stats().paused);
    ticket.finish();
}

/// Four processes (limiters with their own backends) at 600 rpm, 25 calls each at once
/// from idle: the fleet's tickets climb second by second as one process's 100 tickets
/// would (the engine's slow start from 22 %, doubling each second), on Redis's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_burst_from_idle_follows_the_ramp_of_one_process() {
    let server = RedisServer::start();
    // The engine keeps the one-second bound exactly: so does the fleet here (no margin
    // for the send's jitter, which would space a saturated second 20 ms wider).
    let backends: Vec<Recording> = (0..4)
        .map(|_| {
            Recording::new(
                RedisBackend::new(&server.url(), "ramp")
                    .unwrap()
                    .hand_over_margin(Duration::ZERO),
            )
        })
        .collect();
    let limiters: Vec<BucketRateLimiter> = backends
        .iter()
        .map(|b| {
            BucketRateLimiter::builder()
                .rpm(600)
                .shared(b.clone())
                .build()
                .unwrap()
        })
        .collect();
    acquire_all(&limiters, 25).await;
    let mut slots: Vec<u64> = backends.iter().flat_map(Recording::slots).collect();
    slots.sort_unstable();
    let fleet = per_second(&slots);

    // One process: the engine itself, 100 calls queued at once.
    let mut p = Pacer::new(LimiterConfig {
        rpm: 600,
        ..LimiterConfig::default()
    })
    .unwrap();
    for _ in 0..100 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let (mut now, mut issued) = (Duration::ZERO, Vec::new());
    while issued.len() < 100 {
        match p.poll(now) {
            Step::Issued(_) => issued.push(now.as_micros() as u64),
            Step::WaitUntil(at) => now = at,
            other => panic!("{other:?}"),
        }
    }
    let one = per_second(&issued);
    assert_eq!(&one[..4], &[3, 6, 10, 10], "the engine's ramp");
    assert_eq!(
        fleet.len(),
        one.len(),
        "fleet {fleet:?}, one process {one:?}"
    );
    for (second, (f, o)) in fleet.iter().zip(&one).enumerate() {
        assert!(
            f.abs_diff(*o) <= 1,
            "second {second}: fleet {fleet:?}, one {one:?}"
        );
    }
}

/// Tickets per second from the first, for sorted µs times.
fn per_second(sorted: &[u64]) -> Vec<usize> {
    let mut counts = Vec::new();
    for t in sorted {
        let s = ((t - sorted[0]) / 1_000_000) as usize;
        counts.resize(counts.len().max(s + 1), 0);
        counts[s] += 1;
    }
    counts
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

/// The script shares what one process learned and the token budgets: a learned
/// spacing of 200 ms slows everyone's 100 ms spacing to 200 ms; with 6 000 tokens per
/// minute a call of 100 tokens holds the next call back 1 s; and a call's reported
/// usage settles its charge for every process (3 000 reserved, 600 used: the next call
/// waits 6 s, not 30 s), by kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_learned_rate_and_the_token_budgets_are_shared_and_settled() {
    let server = RedisServer::start();
    let (learner, other) = (
        RedisBackend::new(&server.url(), "learned").unwrap(),
        RedisBackend::new(&server.url(), "learned").unwrap(),
    );
    let mut learned = SlotRequest::new(config(600));
    learned.learned_interval = Some(Duration::from_millis(200));
    let a = slot(learner.reserve(learned).await.unwrap());
    let b = slot(other.reserve(SlotRequest::new(config(600))).await.unwrap());
    let c = slot(other.reserve(SlotRequest::new(config(600))).await.unwrap());
    assert_eq!(
        (b - a, c - b),
        (Duration::from_millis(200), Duration::from_millis(200))
    );

    let weighted = |cfg: &LimiterConfig, cost: Cost| {
        let mut r = SlotRequest::new(cfg.clone());
        r.cost = cost;
        r
    };
    let tpm = LimiterConfig {
        tpm: Some(6000),
        ..config(600)
    };
    let tokens = RedisBackend::new(&server.url(), "tokens").unwrap();
    let a = slot(
        tokens
            .reserve(weighted(&tpm, Cost::tokens(100)))
            .await
            .unwrap(),
    );
    let b = slot(
        tokens
            .reserve(weighted(&tpm, Cost::tokens(100)))
            .await
            .unwrap(),
    );
    assert_eq!(b - a, Duration::from_secs(1));

    // Settled across processes: one reserves 3 000 and reports 600 used; another's
    // next call waits for the 600 only.
    for (key, cfg, cost, used) in [
        (
            "settle-total",
            tpm.clone(),
            Cost::tokens(3000),
            Cost::tokens(600),
        ),
        (
            "settle-output",
            LimiterConfig {
                output_tpm: Some(6000),
                ..config(600)
            },
            Cost {
                tokens: 0,
                input: 10,
                output: 3000,
            },
            Cost {
                tokens: 610,
                input: 10,
                output: 600,
            },
        ),
    ] {
        let (one, two) = (
            RedisBackend::new(&server.url(), key).unwrap(),
            RedisBackend::new(&server.url(), key).unwrap(),
        );
        let grant = one.reserve(weighted(&cfg, cost)).await.unwrap();
        let Grant::Slot { at, ticket, .. } = grant else {
            panic!("{grant:?}")
        };
        let mut report = Report::new(ticket, Outcome::Success, cfg.clone());
        report.charged = cost;
        report.used = Some(used);
        one.report(report);
        // Ordered after the report on `one`'s connection; `two` then sees the result.
        let _ = one.claim(600).await.unwrap();
        let next = slot(two.reserve(weighted(&cfg, Cost::tokens(1))).await.unwrap());
        assert_eq!(next - at, Duration::from_secs(6), "{key}");
    }
}

/// The same settlement through limiters: a call reserving 3 000 of 60 000 tokens per
/// minute that reports 600 used holds the next process's call back 0.6 s, not 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_usage_settles_the_charge_for_every_process() {
    let server = RedisServer::start();
    let (a, b) = (backend(&server, "usage"), backend(&server, "usage"));
    let build = |backend: &Recording| {
        BucketRateLimiter::builder()
            .config(LimiterConfig {
                tpm: Some(60_000),
                ..config(600)
            })
            .shared(backend.clone())
            .build()
            .unwrap()
    };
    let (la, lb) = (build(&a), build(&b));
    let ticket = la.acquire().tokens(3000).await.unwrap();
    ticket.record_usage(Usage::from(600));
    ticket.finish();
    eventually("the usage is reported", || a.reports().len() == 1).await;
    // Ordered after the report: `a`'s next reservation.
    let _ = a.reserve(SlotRequest::new(config(600))).await.unwrap();
    drop(lb.acquire().tokens(1).await.unwrap());
    let (first, next) = (a.slots()[0], b.slots()[0]);
    assert_eq!(next - first, 600_000, "µs between the two calls");
}

/// A backend that blocks the thread calling `reserve` until the test opens it, as a
/// user's backend doing I/O in place might: the limiter must not hold its lock meanwhile.
#[derive(Debug, Clone, Default)]
struct Gate {
    state: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl Gate {
    fn wait_entered(&self) {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        while !s.0 {
            s = cv.wait(s).unwrap();
        }
    }
    fn open(&self) {
        let (lock, cv) = &*self.state;
        lock.lock().unwrap().1 = true;
        cv.notify_all();
    }
}

impl SharedBackend for Gate {
    fn reserve(&self, _: SlotRequest) -> BoxFuture<'static, Result<Grant, SharedError>> {
        let (lock, cv) = &*self.state;
        let mut s = lock.lock().unwrap();
        s.0 = true;
        cv.notify_all();
        while !s.1 {
            s = cv.wait(s).unwrap();
        }
        Box::pin(async { Err(SharedError::new("a test backend")) })
    }
    fn claim(&self, _: u32) -> BoxFuture<'static, Result<Claim, SharedError>> {
        Box::pin(async { Err(SharedError::new("a test backend")) })
    }
    fn report(&self, _: Report) {}
}

/// While a backend call blocks, the limiter stays usable from other threads: no
/// backend call runs under the limiter's lock.
#[test]
fn no_backend_call_runs_under_the_limiters_lock() {
    let gate = Gate::default();
    let l = BucketRateLimiter::builder()
        .rpm(600)
        .shared(gate.clone())
        .build()
        .unwrap();
    let caller = {
        let l = l.clone();
        std::thread::spawn(move || l.acquire().blocking().map(drop))
    };
    gate.wait_entered();
    let (tx, rx) = std::sync::mpsc::channel();
    let other = l.clone();
    std::thread::spawn(move || {
        let _ = tx.send((other.stats().issued, other.config().rpm));
    });
    let answered = rx.recv_timeout(Duration::from_secs(5));
    gate.open();
    assert_eq!(
        answered,
        Ok((1, 600)),
        "the limiter was locked during the call"
    );
    caller.join().unwrap().unwrap();
}

/// A rate limit's report and the next reservation of the same process reach Redis in
/// that order, every time: the next call is answered with the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_reaches_redis_before_the_next_reservation() {
    let server = RedisServer::start();
    for round in 0..20 {
        let key = format!("order-{round}");
        let b = backend(&server, &key);
        // A rate at which the next ticket is due at once locally: only the order of
        // what the process sends keeps the next reservation from being granted.
        let l = limiter(600_000, b.clone());
        l.acquire().await.unwrap().rate_limited(None);
        let next = l.acquire().timeout(Duration::from_millis(50)).await;
        assert!(next.is_err(), "round {round}: {next:?}");
        let grants = b.grants();
        assert!(
            matches!(grants[1], Grant::Paused { .. }),
            "round {round}: {grants:?}"
        );
    }
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

/// A monitor configured with a Redis URL shares every service it holds: one process
/// makes `gpt-4o` at the default rate on first use, another registers its own limiter
/// for it, and both take their tickets from one schedule under the chosen prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_with_a_redis_url_shares_every_service() {
    let server = RedisServer::start();
    let config = MonitorConfig::default()
        .logging(false)
        .unknown_services(UnknownServices::Create)
        .redis(&server.url(), "org-7:");
    let (one, two) = (Monitor::new(), Monitor::new());
    one.set_config(config.clone());
    two.set_config(config);
    let made = one.limiter("gpt-4o");
    let registered = two
        .add_service("gpt-4o", BucketRateLimiter::new(600))
        .unwrap();
    acquire_all(&[made, registered], 5).await;
    assert_eq!(
        server.hget("org-7:{gpt-4o}:state", "seq").as_deref(),
        Some("10"),
        "every ticket of both processes came from the shared schedule"
    );
    let refused = one
        .try_set_config(MonitorConfig::default().redis("http://x", ""))
        .map(drop);
    assert_eq!(refused.unwrap_err().field(), "redis_url");
}

/// Tokens per day and a rolling day are counted for the fleet too: two processes share
/// `tpd(1 000)` with calls of 300 tokens — the fourth call fails wherever it is made,
/// until one call's reported usage (100 of its 300) gives back room for one more; and
/// with `rpd(3)` over a rolling day the fourth call fails with the quota back 24 h after
/// the first use, on Redis's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_day_and_a_rolling_day_are_counted_for_the_fleet() {
    let server = RedisServer::start();
    let build = |key: &str, cfg: LimiterConfig| {
        let backend = backend(&server, key);
        let l = BucketRateLimiter::builder()
            .config(cfg)
            .shared(backend.clone())
            .build()
            .unwrap();
        (l, backend)
    };
    let tpd = LimiterConfig {
        tpd: Some(1000),
        ..config(6000)
    };
    let ((a, _), (b, _)) = (build("tpd", tpd.clone()), build("tpd", tpd));
    let first = a.acquire().tokens(300).await.unwrap();
    b.acquire().tokens(300).await.unwrap().finish();
    a.acquire().tokens(300).await.unwrap().finish();
    for l in [&a, &b] {
        let refused = l.acquire().tokens(300).await.map(drop);
        assert!(
            matches!(refused, Err(AcquireError::QuotaExhausted { .. })),
            "{refused:?}"
        );
    }
    first.record_usage(Usage::from(100));
    first.finish();
    eventually("the usage is settled", || {
        state(&server, "tpd", "d_tok") == Some(700)
    })
    .await;
    b.acquire().tokens(300).await.unwrap().finish();

    let rolling = LimiterConfig {
        rpd: Some(3),
        day_reset: DayReset::Rolling,
        ..config(6000)
    };
    let ((a, backend_a), (b, _)) = (build("rolling", rolling.clone()), build("rolling", rolling));
    for l in [&a, &b, &a] {
        l.acquire().await.unwrap().finish();
    }
    let first_use = backend_a.slots()[0];
    let refused = b.acquire().await.map(drop);
    let Err(AcquireError::QuotaExhausted { resets_at }) = refused else {
        panic!("{refused:?}")
    };
    let resets_at = resets_at
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let day = 86_400_000_000;
    // Engine time and the wall clock agree to within the test's own scheduling.
    assert!(
        resets_at.abs_diff(first_use + day) < 50_000,
        "back {} µs after a day from the first use",
        resets_at as i64 - (first_use + day) as i64
    );
}
