//! rateLLMiter's `RateLimitedService`: a service that answers "am I still blocked?"
//! itself, so after a rate limit the limiter probes through it instead of risking a
//! real call; several model names may share one limiter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use ratellmiter_runtime::{
    BoxFuture, BucketRateLimiter, IsRateLimit, Monitor, RateLimit, RateLimitedService,
};
use tokio::time::Instant;

/// Mistral-like: one limiter for every model; blocked until `unblock_after` probes.
struct Mistral {
    shared: BucketRateLimiter,
    probes: Mutex<Vec<Duration>>,
    unblock_after: usize,
    start: Instant,
}

impl RateLimitedService for Mistral {
    fn service_name(&self) -> &str {
        "mistral"
    }
    fn is_blocked(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut probes = self.probes.lock();
            probes.push(self.start.elapsed());
            probes.len() < self.unblock_after
        })
    }
    fn limiter(&self, _model: Option<&str>) -> BucketRateLimiter {
        self.shared.clone()
    }
}

#[derive(Debug)]
struct Refused;

impl IsRateLimit for Refused {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(None))
    }
}

#[tokio::test(start_paused = true)]
async fn probes_go_through_the_service_and_models_share_its_limiter() {
    let monitor = Monitor::new();
    let service = Arc::new(Mistral {
        shared: BucketRateLimiter::builder()
            .rpm(600)
            .adaptive(false)
            .build()
            .unwrap(),
        probes: Mutex::new(Vec::new()),
        unblock_after: 3,
        start: Instant::now(),
    });
    monitor
        .add_rate_limited_service(service.clone(), &["mistral-small", "mistral-large"])
        .unwrap();
    let small = monitor.limiter("mistral-small");
    assert!(
        small.same_limiter(&monitor.limiter("mistral-large")),
        "one budget for both models"
    );
    assert!(small.same_limiter(&monitor.limiter("mistral")));

    // The first call is refused once; every real call is counted.
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let t0 = Instant::now();
    // Bounded (in virtual time), so an engine deaf to the probes fails instead of hanging.
    let out: Result<u32, Refused> = tokio::time::timeout(
        Duration::from_secs(120),
        small.run(|| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { if n == 0 { Err(Refused) } else { Ok(n) } }
        }),
    )
    .await
    .expect("resumed after the free probe");
    assert_eq!(out.unwrap(), 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no real call was spent on probing"
    );
    // Probes after 10 s, then 15 s and 22.5 s more: blocked, blocked, free.
    let probes = service.probes.lock().clone();
    assert_eq!(
        probes,
        vec![
            Duration::from_secs(10),
            Duration::from_secs(25),
            Duration::from_millis(47_500)
        ]
    );
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(47_500),
        "re-run at once after the free probe"
    );
    let s = small.stats();
    assert_eq!(
        (s.rate_limited, s.in_flight, s.waiting, s.paused),
        (1, 0, 0, false)
    );
}
