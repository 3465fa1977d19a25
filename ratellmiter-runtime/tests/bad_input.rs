//! Bad input never panics: impossible settings are refused with an error naming the
//! setting; absurd values from a provider (`retry_after`, budget resets, usage) or a
//! caller (timeouts) are survived; service names that are not file names stay in the
//! log directory and intact in the log; an unwritable log directory leaves pacing alone.

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ratellmiter_runtime::flow_log::format::sanitize_service_name;
use ratellmiter_runtime::headers::Budget;
use ratellmiter_runtime::pacer::{Cost, Outcome, Pacer, Request, Step};
use ratellmiter_runtime::{
    AcquireError, BucketRateLimiter, LimiterBuilder, LimiterConfig, Monitor, MonitorConfig,
    TryAcquireError,
};
use tokio::time::Instant;

fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/bad_input.txt"
        )))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- settings

#[test]
fn each_impossible_setting_is_refused_naming_its_field() {
    let b = BucketRateLimiter::builder;
    let hour = Duration::from_secs(3600);
    let cases: Vec<(LimiterBuilder, &str)> = vec![
        (b().rpm(0), "rpm"),
        (b().rpm(u32::MAX), "rpm"),
        (b().rpm(6_000_001), "rpm"),
        (b().tpm(0), "tpm"),
        (b().tpm(u64::MAX), "tpm"),
        (b().ramp_start(1.01), "ramp_start"),
        (b().ramp_start(0.0), "ramp_start"),
        (b().ramp_start(-0.25), "ramp_start"),
        (b().ramp_start(f64::NAN), "ramp_start"),
        (b().ramp_start(f64::INFINITY), "ramp_start"),
        (b().ramp_step(2.0), "ramp_step"),
        (b().ramp_step(f64::NAN), "ramp_step"),
        (b().ramp_step(f64::NEG_INFINITY), "ramp_step"),
        (b().probe_factor(f64::NAN), "probe_factor"),
        (b().probe_factor(f64::INFINITY), "probe_factor"),
        (b().probe_factor(0.5), "probe_factor"),
        (b().probe_factor(11.0), "probe_factor"),
        (b().probe_interval(Duration::ZERO), "probe_interval"),
        (
            b().probe_interval(Duration::from_secs(100)),
            "probe_interval",
        ), // > probe_max 65 s
        (b().probe_max(hour + Duration::from_nanos(1)), "probe_max"),
        (b().probe_max(Duration::MAX), "probe_max"),
    ];
    for (builder, field) in cases {
        let err = builder.build().unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    for rpm in [0, u32::MAX] {
        assert_eq!(BucketRateLimiter::try_new(rpm).unwrap_err().field(), "rpm");
    }
}

#[test]
fn bad_live_changes_are_refused_and_change_nothing() {
    let l = BucketRateLimiter::builder()
        .rpm(600)
        .tpm(1_000)
        .build()
        .unwrap();
    assert_eq!(l.set_rpm(0).unwrap_err().field(), "rpm");
    assert_eq!(l.set_rpm(u32::MAX).unwrap_err().field(), "rpm");
    assert_eq!(l.set_tpm(0).unwrap_err().field(), "tpm");
    assert_eq!(l.set_tpm(u64::MAX).unwrap_err().field(), "tpm");
    assert_eq!((l.config().rpm, l.config().tpm), (600, Some(1_000)));

    let m = Monitor::new();
    let err = m
        .try_set_config(MonitorConfig::default().default_rpm(0).logging(false))
        .unwrap_err();
    assert_eq!(err.field(), "default_rpm");
    assert_eq!(m.config().get_default_rpm(), 300, "the old settings stay");
    m.add_service("svc", BucketRateLimiter::new(60)).unwrap();
    assert_eq!(m.set_rpm("svc", 0).unwrap_err().field(), "rpm");
    assert_eq!(m.limiter("svc").config().rpm, 60);
}

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        0.0f64..=12.0,
    ]
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..=4_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn valid_duration() -> impl Strategy<Value = Duration> {
    (1u64..=3_600_000).prop_map(Duration::from_millis)
}

proptest! {
    #![proptest_config(proptest_config(2_000))]

    /// Whatever the builder is given, `build()` answers without panicking, agrees with
    /// `LimiterConfig::validate`, and what it builds paces without panicking.
    #[test]
    fn arbitrary_builder_inputs_never_panic(
        // Each input is valid four times in five, so about a quarter of the cases build.
        rpm in prop_oneof![1 => any::<u32>(), 1 => 5_999_990u32..=6_000_010, 8 => 1u32..=6_000_000],
        tpm in prop::option::of(prop_oneof![1 => any::<u64>(), 4 => 1u64..=100_000_000_000]),
        ramp_start in prop_oneof![1 => any_f64(), 4 => 1e-6f64..=1.0],
        ramp_step in prop_oneof![1 => any_f64(), 4 => 1e-6f64..=1.0],
        probe_factor in prop_oneof![1 => any_f64(), 4 => 1.0f64..=10.0],
        probe_interval in prop_oneof![1 => any_duration(), 4 => valid_duration()],
        probe_max in prop_oneof![1 => any_duration(), 4 => valid_duration()],
        streak in any::<u32>(),
        adaptive in any::<bool>(),
    ) {
        let mut b = BucketRateLimiter::builder()
            .rpm(rpm)
            .ramp_start(ramp_start)
            .ramp_step(ramp_step)
            .probe_factor(probe_factor)
            .probe_interval(probe_interval)
            .probe_max(probe_max)
            .high_priority_streak(streak)
            .adaptive(adaptive);
        if let Some(tpm) = tpm {
            b = b.tpm(tpm);
        }
        let cfg = LimiterConfig {
            rpm, tpm, ramp_start, ramp_step, probe_factor,
            probe_initial: probe_interval, probe_max,
            high_priority_streak: streak, adaptive,
            ..Default::default()
        };
        match b.build() {
            Err(e) => {
                prop_assert_eq!(cfg.validate(), Err(e.clone()));
                prop_assert!(e.to_string().contains(e.field()));
            }
            Ok(l) => {
                prop_assert!(cfg.validate().is_ok());
                // An idle limiter's first ticket is free.
                prop_assert!(l.acquire().try_now().is_ok());
                // The engine paces a burst, a rate limit and its probe without panicking.
                let mut p = Pacer::new(cfg).unwrap();
                let mut now = Duration::ZERO;
                for _ in 0..3 {
                    p.enqueue(now, Request::NEW).unwrap();
                }
                let mut issued = 0;
                for step in 0..20 {
                    match p.poll(now) {
                        Step::Issued(t) => {
                            issued += 1;
                            let outcome = if step == 0 {
                                Outcome::RateLimited { retry_after: None }
                            } else {
                                Outcome::Success
                            };
                            p.finish(now, &t, outcome);
                            if step == 0 {
                                p.enqueue(now, Request::RETRY).unwrap();
                            }
                        }
                        Step::WaitUntil(at) => now = at,
                        _ => break,
                    }
                }
                prop_assert_eq!(issued, 4, "three calls and one retry");
            }
        }
    }

    /// Any service name becomes one safe file-name component: it cannot climb out of
    /// the log directory, hide, or carry a separator or NUL; changed names carry a hash.
    #[test]
    fn sanitized_names_are_one_safe_path_component(name in any::<String>()) {
        let s = sanitize_service_name(&name);
        let dir = Path::new("logs");
        let path = dir.join(&s);
        prop_assert_eq!(path.parent(), Some(dir));
        prop_assert_eq!(path.components().count(), 2);
        prop_assert!(!s.is_empty() && !s.starts_with('.') && !s.contains(".."));
        prop_assert!(!s.contains(['/', '\\', '\0']));
        prop_assert!(s.len() <= 100 + 9, "{} bytes", s.len());
        if s != name {
            prop_assert_eq!(s.as_bytes()[s.len() - 9], b'-');
        }
    }
}

// ---------------------------------------------------------------- values from outside

/// Regression: a `retry_after` or a budget reset of `Duration::MAX` (a wild header)
/// overflowed `now + wait` in the engine and `origin + until` in the driver; a usage
/// report of `u64::MAX` overflowed the token window. Now a wait is capped at a year.
#[test]
fn huge_waits_and_usage_from_outside_are_survived() {
    let year = Duration::from_secs(365 * 86_400);
    let s = Duration::from_secs;

    let mut p = Pacer::new(LimiterConfig::default()).unwrap();
    p.enqueue(s(0), Request::NEW).unwrap();
    let Step::Issued(t) = p.poll(s(0)) else {
        panic!("first ticket is free")
    };
    p.finish(
        s(1),
        &t,
        Outcome::RateLimited {
            retry_after: Some(Duration::MAX),
        },
    );
    p.enqueue(s(1), Request::RETRY).unwrap();
    assert_eq!(p.poll(s(2)), Step::WaitUntil(s(1) + year));

    let mut p = Pacer::new(LimiterConfig {
        tpm: Some(1_000),
        ..Default::default()
    })
    .unwrap();
    p.enqueue(
        s(0),
        Request {
            cost: Cost::tokens(10),
            ..Request::NEW
        },
    )
    .unwrap();
    p.observe_budget(
        s(1),
        Some(Budget {
            remaining: 0,
            reset: Duration::MAX,
        }),
        Some(Budget {
            remaining: 0,
            reset: Duration::MAX,
        }),
    );
    assert_eq!(p.poll(s(2)), Step::WaitUntil(s(1) + year));

    let mut p = Pacer::new(LimiterConfig {
        tpm: Some(1_000),
        ..Default::default()
    })
    .unwrap();
    let mut now = s(0);
    for _ in 0..3 {
        p.enqueue(
            now,
            Request {
                cost: Cost::tokens(10),
                ..Request::NEW
            },
        )
        .unwrap();
        let t = loop {
            match p.poll(now) {
                Step::Issued(t) => break t,
                Step::WaitUntil(at) => now = at,
                other => panic!("{other:?}"),
            }
        };
        p.record_usage(&t, u64::MAX);
        p.finish(now, &t, Outcome::Success);
    }
    assert_eq!(
        p.tokens_in_window(now),
        100_000_000_000,
        "one report, capped at MAX_TPM"
    );
}

#[tokio::test(start_paused = true)]
async fn huge_timeouts_and_retry_afters_through_the_limiter_are_survived() {
    let l = BucketRateLimiter::new(60);
    drop(l.acquire().timeout(Duration::MAX).await.unwrap());
    let out = l
        .call()
        .timeout(Duration::MAX)
        .run(|| async { Ok::<_, std::io::Error>(7) })
        .await;
    assert_eq!(
        out.unwrap().unwrap(),
        7,
        "a deadline past representable time is none"
    );

    let t = l.acquire().await.unwrap();
    t.observe_budget(
        Some(Budget {
            remaining: 0,
            reset: Duration::MAX,
        }),
        None,
    );
    t.rate_limited(Some(Duration::MAX));
    let waited = l
        .acquire()
        .timeout(Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        waited,
        AcquireError::Timeout {
            waited: Duration::from_secs(5)
        }
    );
    assert_eq!(l.acquire().try_now().unwrap_err(), TryAcquireError::Paused);
    let s = l.stats();
    assert_eq!((s.waiting, s.in_flight), (0, 0));
    assert_eq!(s.issued + s.cancelled, s.requested);
}

#[tokio::test(start_paused = true)]
async fn impossible_token_estimates_fail_at_once() {
    let l = BucketRateLimiter::builder()
        .rpm(300)
        .tpm(1_000)
        .build()
        .unwrap();
    assert_eq!(
        l.acquire().tokens(u64::MAX).await.unwrap_err(),
        AcquireError::CostExceedsBudget {
            cost: u64::MAX,
            tpm: 1_000
        }
    );
    assert!(matches!(
        l.acquire().tokens(1_001).try_now(),
        Err(TryAcquireError::NotBefore(_))
    ));
    let s = l.stats();
    assert_eq!((s.requested, s.waiting), (0, 0), "nothing queued");
}

/// A cost that can never fit is, to `try_now`, a wait that cannot end: `NotBefore` a
/// time thirty years (of 365 days) away, never a time that comes.
#[tokio::test(start_paused = true)]
async fn a_cost_that_never_fits_is_not_before_thirty_years_away() {
    let l = BucketRateLimiter::builder()
        .rpm(300)
        .tpm(1_000)
        .build()
        .unwrap();
    match l.acquire().tokens(1_001).try_now() {
        Err(TryAcquireError::NotBefore(at)) => assert_eq!(
            at.checked_duration_since(Instant::now()),
            Some(Duration::from_secs(30 * 365 * 86_400))
        ),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- logs

const HOSTILE_NAMES: &[&str] = &[
    "openai/gpt-4o",
    "../../escaped",
    "..",
    ".",
    ".hidden",
    "nul\0byte",
    "C:\\Windows\\evil",
    "tab\tand\nnewline",
    "über/模型/🦀",
    "",
];

/// Service names that are no file names leave no file outside the log directory and
/// come back byte for byte from the log.
#[tokio::test(start_paused = true)]
async fn hostile_service_names_stay_in_the_log_dir_and_intact_in_the_log() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("logs");
    let monitor = Monitor::new();
    monitor.set_config(MonitorConfig::default().log_dir(&dir));
    let long = "x/".repeat(5_000);
    let mut names: Vec<&str> = HOSTILE_NAMES.to_vec();
    names.push(&long);
    // Half registered before the log starts (header), half after (service records).
    for n in &names[..5] {
        monitor.add_service(n, BucketRateLimiter::new(600)).unwrap();
    }
    monitor.start();
    for n in &names[5..] {
        monitor.add_service(n, BucketRateLimiter::new(600)).unwrap();
    }
    for n in &names {
        drop(monitor.limiter(n).acquire().await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    monitor.stop();

    let entries: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        entries,
        vec![std::ffi::OsString::from("logs")],
        "nothing escaped"
    );
    let mut text = String::new();
    for f in walk(&dir) {
        let canon = f.canonicalize().unwrap();
        assert!(canon.starts_with(dir.canonicalize().unwrap()), "{canon:?}");
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains(['\0', '\\']) && !name.starts_with('.'),
            "{name:?}"
        );
        text += &std::fs::read_to_string(&f).unwrap();
    }
    let mut logged = std::collections::BTreeSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        for s in v["services"].as_array().into_iter().flatten() {
            logged.insert(s["name"].as_str().unwrap().to_owned());
        }
        for key in ["name", "service"] {
            if let Some(n) = v[key].as_str() {
                logged.insert(n.to_owned());
            }
        }
    }
    for n in &names {
        assert!(logged.contains(*n), "{n:?} missing from the log");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A log directory that cannot exist (below a regular file: even root cannot create
/// it) costs the flow log, not the pacing: a warning, no log, tickets on time.
#[tokio::test(start_paused = true)]
async fn an_unwritable_log_dir_costs_the_log_not_the_pacing() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let warnings = capture_warnings();
    let monitor = Monitor::new();
    monitor.set_config(MonitorConfig::default().log_dir(file.path().join("a/b")));
    monitor.start();
    assert_eq!(monitor.log_path(), None);
    assert_eq!(
        monitor.dropped_records(),
        0,
        "nothing was ever accepted to drop"
    );
    let l = monitor
        .add_service(
            "svc",
            BucketRateLimiter::builder()
                .rpm(600)
                .ramp_start(1.0)
                .build()
                .unwrap(),
        )
        .unwrap();
    let t0 = Instant::now();
    for _ in 0..20 {
        drop(l.acquire().await.unwrap());
    }
    assert_eq!(
        t0.elapsed(),
        Duration::from_millis(1_900),
        "20 tickets 100 ms apart"
    );
    monitor.stop();
    let w = warnings.lock().unwrap().clone();
    let w = String::from_utf8_lossy(&w);
    assert!(w.contains("cannot create the flow log"), "warned: {w}");
    assert!(
        std::fs::metadata(file.path()).unwrap().is_file(),
        "the file is untouched"
    );
}

type Captured = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// Routes this thread's warnings into a buffer.
fn capture_warnings() -> Captured {
    struct Buf(Captured);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Captured::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || Buf(sink.clone()))
        .finish();
    // The guard would end the capture at the end of this function: keep it for the
    // test thread's life instead.
    std::mem::forget(tracing::subscriber::set_default(subscriber));
    buf
}
