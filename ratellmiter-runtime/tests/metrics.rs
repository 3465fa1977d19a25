//! The `metrics` feature: counters, gauges and a histogram under `ratellmiter_*`,
//! labelled by service.
#![cfg(feature = "metrics")]

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use ratellmiter_runtime::{BucketRateLimiter, Monitor};

/// Every metric recorded: its name, its labels (`key=value`) and its value.
type Values = Vec<(String, Vec<String>, DebugValue)>;

/// Runs `body` on a paused current-thread runtime with a debugging recorder installed;
/// `body` reads the recorder through the snapshotter it is given.
fn record<F: std::future::Future<Output = Values>>(body: impl FnOnce(Snapshotter) -> F) -> Values {
    let recorder = DebuggingRecorder::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let body = body(recorder.snapshotter());
    metrics::with_local_recorder(&recorder, || rt.block_on(body))
}

fn values(snapshotter: &Snapshotter) -> Values {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let k = key.key();
            (
                k.name().to_owned(),
                k.labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect(),
                value,
            )
        })
        .collect()
}

/// The value of `name` labelled `service=<service>`.
fn get<'a>(values: &'a Values, name: &str, service: &str) -> &'a DebugValue {
    let label = vec![format!("service={service}")];
    values
        .iter()
        .find(|(n, labels, _)| n == name && labels == &label)
        .map(|(_, _, v)| v)
        .unwrap_or_else(|| panic!("{name}{{{service}}} missing in {values:?}"))
}

#[test]
fn counters_and_gauges_carry_the_service_label() {
    let values = record(|snapshotter| async move {
        let monitor = Monitor::new();
        let l = monitor
            .add_service("gpt-4o", BucketRateLimiter::new(600))
            .unwrap();
        for _ in 0..5 {
            drop(l.acquire().await.unwrap());
        }
        l.acquire()
            .await
            .unwrap()
            .rate_limited(Some(Duration::from_secs(1)));
        values(&snapshotter)
    });
    let get = |name| get(&values, name, "gpt-4o");
    assert_eq!(get("ratellmiter_issued_total"), &DebugValue::Counter(6));
    assert_eq!(
        get("ratellmiter_rate_limited_total"),
        &DebugValue::Counter(1)
    );
    assert_eq!(get("ratellmiter_in_flight"), &DebugValue::Gauge(0.0.into()));
    assert_eq!(get("ratellmiter_waiting"), &DebugValue::Gauge(0.0.into()));
    assert_eq!(get("ratellmiter_paused"), &DebugValue::Gauge(1.0.into()));
    assert!(
        matches!(get("ratellmiter_allowed_rate"), DebugValue::Gauge(r) if r.into_inner() > 0.0)
    );
}

/// Two limiters without a name share the label `service=unnamed`: their counters are
/// recorded as increments, so they add up (3 + 4 tickets, one rate limit each) instead
/// of the later one overwriting the earlier's total; their gauges are summed the same
/// way (both paused: 2).
#[test]
fn unnamed_limiters_add_up() {
    let values = record(|snapshotter| async move {
        let (a, b) = (BucketRateLimiter::new(6_000), BucketRateLimiter::new(6_000));
        for _ in 0..2 {
            drop(a.acquire().await.unwrap());
        }
        for _ in 0..3 {
            drop(b.acquire().await.unwrap());
        }
        a.acquire().await.unwrap().rate_limited(None);
        b.acquire().await.unwrap().rate_limited(None);
        values(&snapshotter)
    });
    let get = |name| get(&values, name, "unnamed");
    assert_eq!(get("ratellmiter_issued_total"), &DebugValue::Counter(7));
    assert_eq!(
        get("ratellmiter_rate_limited_total"),
        &DebugValue::Counter(2)
    );
    assert_eq!(get("ratellmiter_paused"), &DebugValue::Gauge(2.0.into()));
}

/// `ratellmiter_wait_seconds` gets one sample per ticket: a burst of 5 calls at 60 rpm
/// (one ticket a second) waits 0 s for the first ticket and seconds for the last.
#[test]
fn the_histogram_receives_every_wait() {
    let values = record(|snapshotter| async move {
        let l = BucketRateLimiter::new(60);
        let calls = (0..5).map(|_| async { drop(l.acquire().await.unwrap()) });
        futures_util::future::join_all(calls).await;
        values(&snapshotter)
    });
    let DebugValue::Histogram(waits) = get(&values, "ratellmiter_wait_seconds", "unnamed") else {
        panic!("not a histogram: {values:?}");
    };
    assert_eq!(waits.len(), 5, "one sample per ticket: {waits:?}");
    let longest = waits.iter().map(|w| w.into_inner()).fold(0.0, f64::max);
    assert!(longest >= 1.0, "the last call waited seconds: {waits:?}");
}

/// A recorder whose counters read the limiter they count: had the limiter published
/// while holding its lock, the read would wait for that lock forever.
struct ReadsTheLimiter(BucketRateLimiter);

impl metrics::CounterFn for ReadsTheLimiter {
    fn increment(&self, _: u64) {
        let _ = self.0.stats();
    }
    fn absolute(&self, _: u64) {
        let _ = self.0.stats();
    }
}

struct Reentrant(std::sync::Arc<ReadsTheLimiter>);

impl metrics::Recorder for Reentrant {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.0.clone())
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Metrics are emitted after the limiter's lock is released: a recorder may call back
/// into the limiter (or just be slow) without holding up — here, deadlocking — it.
#[test]
fn metrics_are_emitted_outside_the_limiters_lock() {
    let l = BucketRateLimiter::new(600);
    let recorder = Reentrant(std::sync::Arc::new(ReadsTheLimiter(l.clone())));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            rt.block_on(async {
                drop(l.acquire().await.unwrap());
                l.acquire().await.unwrap().rate_limited(None);
            })
        });
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the limiter emitted metrics under its own lock: deadlock");
}
