//! A shared limiter whose Redis is down — at start, or stopped mid-run and started
//! again: it paces locally at the fallback rate, warns once, rejoins when Redis is back,
//! and no call is lost or hangs. Needs `redis-server` (see `support/redis_server.rs`).
#![cfg(feature = "redis")]

#[path = "support/recording.rs"]
mod recording;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ratellmiter_runtime::{BucketRateLimiter, RedisBackend};
use recording::Recording;
use redis_server::RedisServer;
use tokio::time::{Instant, timeout};

/// Everything logged in this test binary (a global subscriber: the warning may come
/// from any runtime thread).
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .with_writer(move || Sink(sink.clone()))
                .finish(),
        )
        .unwrap();
        log
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines of `service` containing `text`.
fn logged(service: &str, text: &str) -> usize {
    let log = log().lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains(&format!("service=\"{service}\"")) && l.contains(text))
        .count()
}

/// 6 000 rpm shared by an expected 4 processes: 1 500 rpm (40 ms apart) alone.
fn limiter(server: &RedisServer, service: &str) -> (BucketRateLimiter, Recording) {
    log();
    let backend = Recording::new(
        RedisBackend::new(&server.url(), service)
            .unwrap()
            .expected_processes(4)
            .retry_every(Duration::from_millis(200)),
    );
    let limiter = BucketRateLimiter::builder()
        .rpm(6000)
        .ramp_start(1.0)
        .name(service)
        .shared(backend.clone())
        .build()
        .unwrap();
    (limiter, backend)
}

/// `n` calls one after another, none allowed to hang; returns how long they took.
async fn calls(l: &BucketRateLimiter, n: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        timeout(Duration::from_secs(1), l.acquire())
            .await
            .expect("no call hangs on Redis")
            .unwrap()
            .finish();
    }
    start.elapsed()
}

/// Calls until one goes through Redis again (within 3 s of its restart).
async fn until_rejoined(l: &BucketRateLimiter, backend: &Recording) -> usize {
    let before = backend.slots().len();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut n = 0;
    while backend.slots().len() == before {
        assert!(Instant::now() < deadline, "did not rejoin Redis within 3 s");
        calls(l, 1).await;
        n += 1;
    }
    n
}

fn assert_no_call_lost(l: &BucketRateLimiter, calls: u64) {
    let s = l.stats();
    assert_eq!((s.requested, s.issued, s.finished), (calls, calls, calls));
    assert_eq!((s.cancelled, s.waiting, s.in_flight), (0, 0, 0));
}

/// Redis is down when the limiter starts: ten calls go out locally at 1 500 rpm (so
/// they take 9 × 40 ms, where the full 6 000 rpm would take 9 × 10 ms), one warning is
/// logged, and once Redis is up the limiter rejoins and is back at 6 000 rpm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_paces_locally_then_rejoins() {
    let mut server = RedisServer::start();
    server.stop();
    let (l, backend) = limiter(&server, "down-at-start");

    let took = calls(&l, 10).await;
    assert_eq!(l.fallback_rpm(), Some(1500));
    assert_eq!(
        l.config().rpm,
        6000,
        "the configuration stays as configured"
    );
    // A lower bound only on the wall clock: the local fallback's 1 500 rpm (asserted
    // above) is what keeps it from being slower; `calls` fails any call that hangs.
    assert!(took >= Duration::from_millis(355), "{took:?}");
    assert_eq!(l.stats().issued, 10);
    assert!(backend.slots().is_empty());

    server.restart();
    let more = until_rejoined(&l, &backend).await;
    assert_eq!(l.fallback_rpm(), None);
    assert_eq!(l.config().rpm, 6000);
    calls(&l, 5).await;
    assert!(server.exists("ratellmiter:{down-at-start}:state"));
    assert_eq!(logged("down-at-start", "unreachable"), 1);
    assert_eq!(logged("down-at-start", "rejoined"), 1);
    assert_no_call_lost(&l, 15 + more as u64);
}

/// Redis stops after ten shared calls and starts again (empty) after ten more: those
/// go out locally at the fallback rate, none hangs, one warning; then the limiter
/// rejoins and the next calls are scheduled by the new Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_run_loses_no_call_and_rejoins() {
    let mut server = RedisServer::start();
    let (l, backend) = limiter(&server, "mid-run");
    calls(&l, 10).await;
    assert_eq!(backend.slots().len(), 10);

    server.stop();
    // None hangs (`calls` bounds each call); counted, not timed on the wall clock.
    calls(&l, 10).await;
    assert_eq!(l.fallback_rpm(), Some(1500));
    assert_eq!(
        l.config().rpm,
        6000,
        "the configuration stays as configured"
    );
    assert_eq!(l.stats().issued, 20);
    assert_eq!(backend.slots().len(), 10, "the ten went out locally");
    assert_eq!(logged("mid-run", "unreachable"), 1);

    server.restart();
    let more = until_rejoined(&l, &backend).await;
    assert_eq!(l.fallback_rpm(), None);
    assert_eq!(l.config().rpm, 6000);
    ratellmiter_runtime::shared::SharedBackend::claim(&backend, 6000)
        .await
        .unwrap(); // the new server loads the claim script
    server.reset_stats();
    let claims = backend.claims().len();
    calls(&l, 5).await;
    // A reservation each, and a claim for each slot that was not due at once.
    let claims = (backend.claims().len() - claims) as u64;
    assert_eq!(server.calls("evalsha"), 5 + claims);
    assert_eq!(logged("mid-run", "unreachable"), 1);
    assert_no_call_lost(&l, 25 + more as u64);
}
