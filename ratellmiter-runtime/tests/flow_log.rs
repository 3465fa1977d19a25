//! Flow-log round trip: a virtual-time scenario writes a log through the monitor; the
//! file holds exactly the per-second counts the scenario produced.

use std::collections::BTreeMap;
use std::time::Duration;

use ratellmiter_runtime::flow_log::format::{EventKind, Record, SecondRecord};
use ratellmiter_runtime::{BucketRateLimiter, LimiterConfig, Monitor, MonitorConfig};
use tokio::time::Instant;

#[derive(Debug)]
struct RateLimited;

impl ratellmiter_runtime::IsRateLimit for RateLimited {
    fn rate_limit(&self) -> Option<ratellmiter_runtime::RateLimit> {
        Some(ratellmiter_runtime::RateLimit::retry(Some(
            Duration::from_secs(2),
        )))
    }
}

fn read_records(path: &std::path::Path) -> Vec<Record> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_scenario_round_trips_through_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::new();
    monitor.set_config(MonitorConfig::default().log_dir(dir.path()));
    let gpt = monitor
        .add_service(
            "gpt-4o",
            // rateLLMiter's pacing: a probe after the retry-after pause, logged too.
            BucketRateLimiter::builder()
                .config(LimiterConfig {
                    rpm: 600,
                    ..LimiterConfig::ratellmiter()
                })
                .build()
                .unwrap(),
        )
        .unwrap();
    monitor.start();
    let t0 = Instant::now();

    // 40 calls at once; the 10th comes back rate limited once, with retry-after 2 s.
    let mut issued_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut handles = Vec::new();
    for i in 0..40 {
        let gpt = gpt.clone();
        handles.push(tokio::spawn(async move {
            if i == 9 {
                let mut attempts = Vec::new();
                let _: Result<(), RateLimited> = gpt
                    .run(|| {
                        attempts.push(t0.elapsed());
                        let first = attempts.len() == 1;
                        async move {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            if first { Err(RateLimited) } else { Ok(()) }
                        }
                    })
                    .await;
                attempts
            } else {
                let _ticket = gpt.acquire().await.unwrap();
                let at = t0.elapsed();
                tokio::time::sleep(Duration::from_millis(300)).await;
                vec![at]
            }
        }));
    }
    for h in handles {
        for at in h.await.unwrap() {
            *issued_at.entry(at.as_secs()).or_default() += 1;
        }
    }
    let path = monitor.log_path().expect("logging on");
    monitor.stop();

    let records = read_records(&path);
    let Record::Header(header) = &records[0] else {
        panic!("first line is the header: {:?}", records[0])
    };
    assert_eq!(header.version, 1);
    assert_eq!(header.services.len(), 1);
    assert_eq!(header.services[0].name, "gpt-4o");
    assert_eq!(header.services[0].rpm, 600);
    assert!(matches!(records.last(), Some(Record::Footer(f)) if f.dropped_records == 0));

    let seconds: Vec<&SecondRecord> = records
        .iter()
        .filter_map(|r| {
            if let Record::Second(s) = r {
                Some(s)
            } else {
                None
            }
        })
        .collect();
    let logged: BTreeMap<u64, u64> = seconds
        .iter()
        .filter(|s| s.issued > 0)
        .map(|s| (s.t, s.issued))
        .collect();
    assert_eq!(logged, issued_at, "exact per-second issued counts");
    assert_eq!(seconds.iter().map(|s| s.requested).sum::<u64>(), 41);
    assert_eq!(seconds.iter().map(|s| s.reissued).sum::<u64>(), 1);
    assert_eq!(seconds.iter().map(|s| s.finished).sum::<u64>(), 40);
    assert_eq!(seconds.iter().map(|s| s.rate_limited).sum::<u64>(), 1);
    assert_eq!(
        seconds.iter().map(|s| s.waits_ms.len() as u64).sum::<u64>(),
        41
    );
    assert!(seconds.iter().any(|s| s.paused), "the pause shows");
    assert!(seconds.iter().all(|s| (s.limit_rate - 10.0).abs() < 1e-9));
    assert_eq!(seconds[0].requested, 40);
    assert_eq!(seconds.last().unwrap().waiting, 0);
    let kinds: Vec<EventKind> = records
        .iter()
        .filter_map(|r| {
            if let Record::Event(e) = r {
                Some(e.kind)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        kinds,
        vec![EventKind::Pause, EventKind::Probe, EventKind::Resume]
    );
    // Seconds are in order per service, each once.
    assert!(seconds.windows(2).all(|w| w[0].t < w[1].t));
}

#[tokio::test(start_paused = true)]
async fn a_long_pause_shows_in_every_second_though_nothing_happens() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::new();
    monitor.set_config(MonitorConfig::default().log_dir(dir.path()));
    let l = monitor
        .add_service(
            "slow",
            BucketRateLimiter::builder()
                .rpm(60)
                .adaptive(false)
                .build()
                .unwrap(),
        )
        .unwrap();
    monitor.start();
    l.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(20)));
    drop(l.acquire().await.unwrap()); // waits 20 s, then probes
    let path = monitor.log_path().unwrap();
    monitor.stop();
    let paused: Vec<u64> = read_records(&path)
        .iter()
        .filter_map(|r| {
            if let Record::Second(s) = r {
                Some(s)
            } else {
                None
            }
        })
        .filter(|s| s.paused)
        .map(|s| s.t)
        .collect();
    assert_eq!(
        paused,
        (0..=20).collect::<Vec<_>>(),
        "every second of the pause is logged as paused"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unwritable_log_dir_leaves_pacing_alone() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let monitor = Monitor::new();
    // A directory below a regular file cannot be created, even by root.
    monitor.set_config(MonitorConfig::default().log_dir(file.path().join("logs")));
    monitor.start();
    assert_eq!(monitor.log_path(), None);
    let l = monitor
        .add_service("x", BucketRateLimiter::new(600))
        .unwrap();
    let t0 = Instant::now();
    for _ in 0..3 {
        drop(l.acquire().await.unwrap());
    }
    // The slow start from 2.2/s: 455 ms, then 1/(2.2 × 2^0.455) s.
    assert_eq!(t0.elapsed(), Duration::from_millis(787), "paced as usual");
    monitor.stop();
}

/// Each budget's use reaches the log: the budgets in the service's settings, the input
/// and output tokens charged each second, and what the daily quota has left.
#[tokio::test(start_paused = true)]
async fn each_budgets_use_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::new();
    monitor.set_config(MonitorConfig::default().log_dir(dir.path()));
    let claude = monitor
        .add_service(
            "claude",
            BucketRateLimiter::builder()
                .rpm(600)
                .input_tpm(1_000_000)
                .output_tpm(100_000)
                .rpd(1_000)
                .max_in_flight(4)
                .build()
                .unwrap(),
        )
        .unwrap();
    monitor.start();
    for _ in 0..3 {
        let out: Result<(), std::io::Error> = claude
            .call()
            .input_tokens(2_000)
            .output_tokens(1_024)
            .run(|| async { Ok(()) })
            .await
            .unwrap();
        out.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let path = monitor.log_path().expect("logging on");
    monitor.stop();
    let records = read_records(&path);
    let Some(Record::Header(h)) = records.first() else {
        panic!("a header first")
    };
    let s = &h.services[0];
    assert_eq!(
        (s.input_tpm, s.output_tpm, s.rpd, s.max_in_flight),
        (Some(1_000_000), Some(100_000), Some(1_000), Some(4))
    );
    let seconds: Vec<&SecondRecord> = records
        .iter()
        .filter_map(|r| match r {
            Record::Second(s) => Some(s),
            _ => None,
        })
        .collect();
    let input: u64 = seconds.iter().map(|s| s.input_tokens).sum();
    let output: u64 = seconds.iter().map(|s| s.output_tokens).sum();
    assert_eq!((input, output), (6_000, 3_072));
    let left = seconds.iter().filter_map(|s| s.requests_left_today).min();
    assert_eq!(left, Some(997));
}

/// A call refused more often than its `max_retries` gives up, and the log says so: the
/// pause its refusal caused, then the give-up, both at the call's time.
#[tokio::test(start_paused = true)]
async fn retries_exhausted_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::new();
    monitor.set_config(MonitorConfig::default().log_dir(dir.path()));
    let l = monitor
        .add_service("gives-up", BucketRateLimiter::new(600))
        .unwrap();
    monitor.start();
    let out: Result<(), RateLimited> = l
        .call()
        .max_retries(0)
        .run(|| async { Err(RateLimited) })
        .await
        .unwrap();
    assert!(out.is_err());
    let path = monitor.log_path().unwrap();
    monitor.stop();
    let events: Vec<(u64, EventKind)> = read_records(&path)
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some((e.t_ms, e.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(
        events,
        vec![(0, EventKind::Pause), (0, EventKind::RetryExhausted)]
    );
}

/// A monitor stopped and started again writes a second log of its own: what the
/// limiter did while logging was off is in neither log, and the second log's times
/// count from its own start.
#[tokio::test(start_paused = true)]
async fn a_restarted_monitor_logs_from_its_new_start_only() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let monitor = Monitor::new();
    monitor.set_config(MonitorConfig::default().log_dir(first.path()));
    let l = monitor
        .add_service(
            "restarted",
            BucketRateLimiter::builder()
                .rpm(600)
                .adaptive(false)
                .build()
                .unwrap(),
        )
        .unwrap();
    monitor.start();
    drop(l.acquire().await.unwrap());
    monitor.stop();
    tokio::time::sleep(Duration::from_secs(10)).await;
    drop(l.acquire().await.unwrap()); // logging off
    monitor.set_config(MonitorConfig::default().log_dir(second.path()));
    monitor.start();
    // Its slot: 455 ms after the call before, the slow start's 2.2/s.
    l.acquire().await.unwrap().rate_limited(None);
    let path = monitor.log_path().unwrap();
    monitor.stop();
    assert!(path.starts_with(second.path()), "{path:?}");
    let records = read_records(&path);
    let events: Vec<(u64, EventKind)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Event(e) => Some((e.t_ms, e.kind)),
            _ => None,
        })
        .collect();
    assert_eq!(events, vec![(455, EventKind::Pause)]);
    let seconds: Vec<(u64, u64, u64)> = records
        .iter()
        .filter_map(|r| match r {
            Record::Second(s) => Some((s.t, s.requested, s.issued)),
            _ => None,
        })
        .collect();
    assert_eq!(seconds, vec![(0, 1, 1)], "only the call after the restart");
}
