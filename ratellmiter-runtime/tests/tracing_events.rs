//! The limiter reports through `tracing`, not prints: pause, probe, resume, re-issue,
//! retries exhausted and unknown services each leave an event.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, LimiterConfig, Monitor, RateLimit};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct Refused;

impl IsRateLimit for Refused {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(Some(Duration::from_secs(1))))
    }
}

#[test]
fn each_state_change_is_a_tracing_event() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let monitor = Monitor::new();
            let l = monitor
                .add_service(
                    "traced",
                    // rateLLMiter's pacing: a probe after each pause, so every event shows.
                    BucketRateLimiter::builder()
                        .config(LimiterConfig {
                            rpm: 600,
                            max_retries: 2,
                            ..LimiterConfig::ratellmiter()
                        })
                        .build()
                        .unwrap(),
                )
                .unwrap();
            let out: Result<(), Refused> = l.run(|| async { Err(Refused) }).await;
            assert!(out.is_err());
            let _ = monitor.limiter("typo-model");
        })
    });
    let text = String::from_utf8(captured.0.lock().clone()).unwrap();
    for expected in [
        "rate limited: pausing",
        "probing the server",
        "probe refused: backing off",
        "re-issuing a rate-limited call",
        "retries exhausted",
        "unknown service",
        "ratellmiter.wait",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    assert_eq!(
        text.matches("rate limited: pausing").count(),
        1,
        "one pause, then probes"
    );
    assert_eq!(text.matches("probe refused").count(), 2);
    assert!(
        text.contains("service=\"traced\"") || text.contains("service=traced"),
        "{text}"
    );
}
