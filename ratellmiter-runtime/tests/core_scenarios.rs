//! The core behaviour through the async driver, under tokio's virtual clock: each test is
//! a scenario with the numbers rateLLMiter's design promises.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, Monitor, RateLimit};
use ratellmiter_sim::metrics::max_in_window;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    RateLimited(Option<Duration>),
    Other,
}

impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            ApiError::RateLimited(d) => Some(RateLimit::retry(*d)),
            ApiError::Other => None,
        }
    }
}

/// One request as the test server saw it.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    at: Duration,
    call: usize,
    try_no: u32,
    refused: bool,
}

/// A server that refuses a request when `refuse(at, recent)` says so, `recent` being
/// the requests it saw in the last second. Records every request.
struct Server {
    start: Instant,
    log: Mutex<Vec<Attempt>>,
    refuse: Box<dyn Fn(Duration, usize) -> Option<ApiError> + Send + Sync>,
}

impl Server {
    fn new(
        refuse: impl Fn(Duration, usize) -> Option<ApiError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            log: Mutex::new(Vec::new()),
            refuse: Box::new(refuse),
        })
    }

    fn call(&self, call: usize, try_no: u32) -> Result<usize, ApiError> {
        let at = self.start.elapsed();
        let mut log = self.log.lock();
        let recent = log
            .iter()
            .filter(|a| at - a.at < Duration::from_secs(1))
            .count();
        let verdict = (self.refuse)(at, recent);
        log.push(Attempt {
            at,
            call,
            try_no,
            refused: verdict.is_some(),
        });
        verdict.map_or(Ok(call), Err)
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().clone()
    }
}

/// Spawns `calls` calls through `limiter.run`, each numbering its attempts.
async fn run_calls(
    limiter: &BucketRateLimiter,
    server: &Arc<Server>,
    calls: usize,
) -> Vec<Result<usize, ApiError>> {
    let mut handles = Vec::new();
    for call in 0..calls {
        let (limiter, server) = (limiter.clone(), server.clone());
        handles.push(tokio::spawn(async move {
            let mut try_no = 0;
            limiter
                .run(|| {
                    let server = server.clone();
                    try_no += 1;
                    let n = try_no;
                    async move {
                        tokio::time::sleep(Duration::from_millis(200)).await; // latency
                        server.call(call, n)
                    }
                })
                .await
        }));
        tokio::task::yield_now().await; // calls queue in number order
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn ratellmiters_own_scenario_600_rpm_with_rate_limit_seconds_30_and_75() {
    // The server refuses more than 10 calls in any second, and every call during
    // seconds 30 and 75.
    let server = Server::new(|at, recent| {
        let s = at.as_secs();
        (s == 30 || s == 75 || recent >= 10).then_some(ApiError::RateLimited(None))
    });
    let limiter = BucketRateLimiter::new(600);
    // 700 calls rather than rateLLMiter's 600, so that the run still reaches second 75
    // now that short pauses no longer restart the ramp.
    let results = run_calls(&limiter, &server, 700).await;

    assert!(results.iter().all(Result::is_ok), "all 700 calls complete");
    let attempts = server.attempts();
    let times: Vec<Duration> = attempts.iter().map(|a| a.at).collect();
    assert!(
        max_in_window(&times, Duration::from_secs(1)) <= 10,
        "the server's 10/s bound is never broken"
    );
    let refused: Vec<&Attempt> = attempts.iter().filter(|a| a.refused).collect();
    assert!(
        refused
            .iter()
            .all(|a| a.at.as_secs() == 30 || a.at.as_secs() == 75),
        "refused only in the bad seconds"
    );
    assert!(!refused.is_empty());

    // Rate-limited calls are re-issued before any new call after the pause.
    for bad in [30u64, 75] {
        let limited: Vec<usize> = refused
            .iter()
            .filter(|a| a.at.as_secs() == bad)
            .map(|a| a.call)
            .collect();
        let resumed_at = attempts
            .iter()
            .filter(|a| a.at.as_secs() > bad && !a.refused)
            .map(|a| a.at)
            .next()
            .unwrap();
        let first_new = attempts
            .iter()
            .filter(|a| a.at >= resumed_at && a.try_no == 1)
            .map(|a| a.at)
            .next()
            .unwrap_or(Duration::MAX);
        for call in &limited {
            let retry = attempts
                .iter()
                .filter(|a| a.call == *call && a.at >= resumed_at && !a.refused)
                .map(|a| a.at)
                .next()
                .unwrap();
            assert!(
                retry < first_new,
                "call {call} re-issued at {retry:?}, a new call went at {first_new:?}"
            );
        }
    }
    let s = limiter.stats();
    assert_eq!((s.finished, s.in_flight, s.waiting), (700, 0, 0));
    assert_eq!(s.rate_limited as usize, refused.len());
    assert_eq!(s.issued as usize, attempts.len());
}

#[tokio::test(start_paused = true)]
async fn outage_probe_schedule_nothing_lost_order_kept() {
    // Everything refused from 5 s to 35 s, without retry-after.
    let server = Server::new(|at, _| {
        (at >= Duration::from_secs(5) && at < Duration::from_secs(35))
            .then_some(ApiError::RateLimited(None))
    });
    let limiter = BucketRateLimiter::builder()
        .rpm(60)
        .adaptive(false)
        .build()
        .unwrap();
    let results = run_calls(&limiter, &server, 40).await;
    assert!(results.iter().all(Result::is_ok));

    let attempts = server.attempts();
    let refused: Vec<Duration> = attempts
        .iter()
        .filter(|a| a.refused)
        .map(|a| a.at)
        .collect();
    let first_refusal = refused[0];
    // One call refused, then probes after 10 s, 15 s, 22.5 s (probe interval ×1.5).
    let gaps: Vec<Duration> = refused.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        vec![Duration::from_millis(10_200), Duration::from_millis(15_200)],
        "probes 10 s and 15 s after each refusal came back (200 ms latency)"
    );
    let first_success_after = attempts
        .iter()
        .find(|a| a.at > first_refusal && !a.refused)
        .unwrap();
    assert_eq!(
        first_success_after.at - refused[2],
        Duration::from_millis(22_700)
    );
    assert!(
        first_success_after.try_no > 1,
        "the probe is a refused call, not a new one"
    );
    // First attempts went out in call order: FIFO kept through the outage.
    let firsts: Vec<usize> = attempts
        .iter()
        .filter(|a| a.try_no == 1)
        .map(|a| a.call)
        .collect();
    assert_eq!(firsts, (0..40).collect::<Vec<_>>());
    assert_eq!(limiter.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_and_max_retries_returns_the_error() {
    let server = Server::new(|_, _| Some(ApiError::RateLimited(Some(Duration::from_secs(3)))));
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .max_retries(4)
        .adaptive(false)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let results = run_calls(&limiter, &server, 1).await;
    assert_eq!(
        results,
        vec![Err(ApiError::RateLimited(Some(Duration::from_secs(3))))]
    );
    let attempts = server.attempts();
    assert_eq!(attempts.len(), 5, "the first run and 4 retries");
    for w in attempts.windows(2) {
        assert_eq!(
            w[1].at - w[0].at,
            Duration::from_millis(3_200),
            "retry_after 3 s + 200 ms latency"
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(14));
    let s = limiter.stats();
    assert_eq!((s.rate_limited, s.in_flight, s.waiting), (5, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn other_errors_pass_straight_through_and_release_the_ticket() {
    let server = Server::new(|_, _| Some(ApiError::Other));
    let limiter = BucketRateLimiter::new(600);
    let results = run_calls(&limiter, &server, 3).await;
    assert_eq!(results, vec![Err(ApiError::Other); 3]);
    assert_eq!(server.attempts().len(), 3, "no retry");
    let s = limiter.stats();
    assert_eq!(
        (s.finished, s.rate_limited, s.in_flight, s.paused),
        (3, 0, 0, false)
    );
}

#[tokio::test(start_paused = true)]
async fn cancellation_while_waiting_or_running_and_panics_release_tickets() {
    let limiter = BucketRateLimiter::builder()
        .rpm(60)
        .adaptive(false)
        .build()
        .unwrap();
    // Waiting: ten calls queue, five are dropped by a timeout before their turn.
    let mut handles = Vec::new();
    for i in 0..10u64 {
        let l = limiter.clone();
        handles.push(tokio::spawn(async move {
            let budget = if i % 2 == 1 {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(600)
            };
            tokio::time::timeout(budget, l.acquire())
                .await
                .map(|t| t.unwrap().waited())
                .ok()
        }));
    }
    let mut got = 0;
    for h in handles {
        got += h.await.unwrap().is_some() as u32;
    }
    // At 60 rpm from idle only the first call (FIFO: call 0) gets a ticket within the
    // 2 s budget, so the five short waiters all give up and the five long ones all get one.
    assert_eq!(got, 5);
    assert_eq!(limiter.stats().cancelled, 5, "{:?}", limiter.stats());
    // Running: a call dropped mid-flight, and a call that panics.
    let l = limiter.clone();
    let running = tokio::spawn(async move {
        l.run(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<(), ApiError>(())
        })
        .await
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    running.abort();
    let l = limiter.clone();
    let panicked = tokio::spawn(async move {
        l.run(|| async {
            panic!("boom");
            #[allow(unreachable_code)]
            Ok::<(), ApiError>(())
        })
        .await
    });
    assert!(panicked.await.unwrap_err().is_panic());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = limiter.stats();
    assert_eq!((s.in_flight, s.waiting), (0, 0), "{s:?}");
    assert_eq!(s.issued + s.waiting + s.cancelled, s.requested);
    // The queue still works afterwards.
    let t = limiter.acquire().await.unwrap();
    drop(t);
    assert_eq!(limiter.stats().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn several_services_stay_independent() {
    let monitor = Monitor::new();
    let fast = monitor
        .add_service(
            "fast",
            BucketRateLimiter::builder()
                .rpm(600)
                .adaptive(false)
                .build()
                .unwrap(),
        )
        .unwrap();
    let slow = monitor
        .add_service(
            "slow",
            BucketRateLimiter::builder()
                .rpm(60)
                .adaptive(false)
                .build()
                .unwrap(),
        )
        .unwrap();
    // Pause "slow" with a rate limit; "fast" keeps issuing.
    slow.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(30)));
    assert!(slow.stats().paused);
    let t0 = Instant::now();
    let mut times = Vec::new();
    for _ in 0..100 {
        let _t = fast.acquire().await.unwrap();
        times.push(t0.elapsed());
    }
    assert!(!fast.stats().paused);
    assert!(
        times[99] < Duration::from_secs(15),
        "fast ran its ramp and full rate: {:?}",
        times[99]
    );
    assert_eq!(times[99] - times[98], Duration::from_millis(100));
    let waited = slow.acquire().await.unwrap().waited();
    assert!(
        waited >= Duration::from_secs(15),
        "slow stayed paused: {waited:?}"
    );
    assert!(monitor.limiter("fast").same_limiter(&fast));
}

#[tokio::test(start_paused = true)]
async fn exact_wakeups_to_the_millisecond() {
    // 600 rpm: after the ramp each waiter wakes exactly at its slot, 100 ms apart.
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .adaptive(false)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..200 {
        let l = limiter.clone();
        handles.push(tokio::spawn(async move {
            let _t = l.acquire().await.unwrap();
            t0.elapsed()
        }));
    }
    let mut times = Vec::new();
    for h in handles {
        times.push(h.await.unwrap());
    }
    times.sort();
    for w in times[100..].windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_millis(100));
    }
    // First gap: the slow start's 2.2/s, to the millisecond tokio's timer keeps.
    assert_eq!(times[1] - times[0], Duration::from_millis(455));
}

#[tokio::test(start_paused = true)]
async fn ten_minutes_of_pacing_under_the_virtual_clock() {
    let limiter = BucketRateLimiter::builder()
        .rpm(6000)
        .adaptive(false)
        .build()
        .unwrap();
    let t0 = Instant::now();
    for _ in 0..60_000 {
        drop(limiter.acquire().await.unwrap());
    }
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_secs(600) && elapsed < Duration::from_secs(606),
        "{elapsed:?}"
    );
}
