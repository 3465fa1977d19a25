//! The `metrics` feature: counters and gauges under `ratellmiter_*`, labelled by service.
#![cfg(feature = "metrics")]

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use ratellmiter_runtime::{BucketRateLimiter, Monitor};

#[test]
fn counters_and_gauges_carry_the_service_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let monitor = Monitor::new();
            let l = monitor
                .add_service("gpt-4o", BucketRateLimiter::new(600))
                .unwrap();
            for _ in 0..5 {
                drop(l.acquire().await);
            }
            l.acquire().await.rate_limited(Some(Duration::from_secs(1)));
        })
    });
    let values: Vec<(String, Vec<String>, DebugValue)> = snapshotter
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
        .collect();
    let get = |name: &str| {
        values
            .iter()
            .find(|(n, labels, _)| n == name && labels == &vec!["service=gpt-4o".to_owned()])
            .map(|(_, _, v)| v)
            .unwrap_or_else(|| panic!("{name} missing in {values:?}"))
    };
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
