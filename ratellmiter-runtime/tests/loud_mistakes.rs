//! Mistakes a new user makes are loud by default (issue 18): a typo in a service name
//! is printed on stderr without any `tracing` subscriber, and the registry never grows
//! without bound (issue 17); a second `add_service` for a name is refused; a builder
//! without a request budget says which field is missing.

use std::process::Command;
use std::sync::Arc;

use ratellmiter_runtime::{
    BoxFuture, BucketRateLimiter, DEFAULT_SERVICE, Monitor, MonitorConfig, RateLimitedService,
    RegistryError, UnknownServices,
};

/// Set in the child process that runs a scenario whose stderr the parent reads.
const CHILD: &str = "LOUD_MISTAKES_CHILD";

/// Runs the test `name` of this binary again in a child process, with `CHILD` set, and
/// returns what it printed on stderr. Output capture (libtest's) does not apply to
/// what the library writes to stderr itself, but a child keeps it apart from the other
/// tests running in this process.
fn stderr_of_child(name: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn quiet() -> MonitorConfig {
    MonitorConfig::default().logging(false)
}

/// The typo of the issue, looked up three times: one warning on stderr naming it and
/// the rate it got; the default service and registered names print nothing.
#[test]
fn an_unknown_service_is_printed_on_stderr_once_without_a_subscriber() {
    if std::env::var_os(CHILD).is_some() {
        let m = Monitor::new();
        m.set_config(quiet());
        m.add_service("gpt-4o-mini", BucketRateLimiter::new(500))
            .unwrap();
        for _ in 0..3 {
            m.limiter("gpt-4o-mni");
            m.limiter("gpt-4o-mini");
            m.limiter(DEFAULT_SERVICE);
        }
        return;
    }
    let stderr =
        stderr_of_child("an_unknown_service_is_printed_on_stderr_once_without_a_subscriber");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ratellmiter: warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("unknown service `gpt-4o-mni`") && warnings[0].contains("300 rpm"),
        "{stderr}"
    );
}

/// `UnknownServices::Create` is the switch that turns the warning off.
#[test]
fn the_warning_can_be_turned_off() {
    if std::env::var_os(CHILD).is_some() {
        let m = Monitor::new();
        m.set_config(quiet().unknown_services(UnknownServices::Create));
        assert_eq!(m.limiter("per-request-name").config().rpm, 300);
        return;
    }
    let stderr = stderr_of_child("the_warning_can_be_turned_off");
    assert!(!stderr.contains("ratellmiter: warning"), "{stderr}");
}

/// `UnknownServices::Refuse`: an error naming the service, and `limiter()` (what
/// `#[llmiter(service = …)]` calls) panics with it; nothing is created.
#[test]
fn unknown_names_can_be_refused() {
    let m = Monitor::new();
    m.set_config(quiet().unknown_services(UnknownServices::Refuse));
    assert_eq!(
        m.try_limiter("gpt-4o-mni").unwrap_err(),
        RegistryError::UnknownService {
            service: "gpt-4o-mni".into()
        }
    );
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.limiter("gpt-4o-mni")))
        .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("unknown service `gpt-4o-mni`"),
        "{message}"
    );
    assert!(
        m.try_limiter(DEFAULT_SERVICE).is_ok(),
        "the default is always there"
    );
    assert_eq!(m.service_names(), [DEFAULT_SERVICE]);
}

/// At most `max_unknown_services` limiters for unknown names (the default service not
/// counted): a per-request name cannot grow the registry without bound.
#[test]
fn limiters_for_unknown_names_are_bounded() {
    let m = Monitor::new();
    m.set_config(
        quiet()
            .unknown_services(UnknownServices::Create)
            .max_unknown_services(2),
    );
    m.limiter(DEFAULT_SERVICE);
    m.limiter("a");
    m.limiter("b");
    assert!(
        m.try_limiter("a").is_ok(),
        "a name already made stays usable"
    );
    assert_eq!(
        m.try_limiter("c").unwrap_err(),
        RegistryError::TooManyUnknownServices {
            service: "c".into(),
            max: 2
        }
    );
    assert_eq!(m.service_names(), ["a", "b", DEFAULT_SERVICE]);
}

/// A name in use is never replaced behind the calls using it: registered before, or
/// created at the default rate by a call made before `add_service`.
#[test]
fn a_second_add_service_for_a_name_is_refused() {
    let m = Monitor::new();
    m.set_config(quiet().unknown_services(UnknownServices::Create));
    let first = m
        .add_service("gpt-4o", BucketRateLimiter::new(500))
        .unwrap();
    let taken = RegistryError::AlreadyRegistered {
        service: "gpt-4o".into(),
    };
    assert_eq!(
        m.add_service("gpt-4o", BucketRateLimiter::new(50))
            .unwrap_err(),
        taken
    );
    assert!(m.limiter("gpt-4o").same_limiter(&first));
    assert_eq!(m.limiter("gpt-4o").config().rpm, 500);

    m.limiter("o1"); // used before it was registered: created at 300 rpm
    let late = m.add_service("o1", BucketRateLimiter::new(60)).unwrap_err();
    assert!(late.to_string().contains("before its first call"), "{late}");
    assert_eq!(m.limiter("o1").config().rpm, 300);
}

struct Mistral(BucketRateLimiter);

impl RateLimitedService for Mistral {
    fn service_name(&self) -> &str {
        "mistral"
    }
    fn is_blocked(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
    fn limiter(&self, _model: Option<&str>) -> BucketRateLimiter {
        self.0.clone()
    }
}

/// The same for a service with its own probe: one name taken, nothing registered.
#[test]
fn a_rate_limited_service_with_a_name_in_use_registers_nothing() {
    let m = Monitor::new();
    m.set_config(quiet());
    m.add_service("mistral-large", BucketRateLimiter::new(100))
        .unwrap();
    let service = Arc::new(Mistral(BucketRateLimiter::new(600)));
    let refused = m.add_rate_limited_service(service, &["mistral-small", "mistral-large"]);
    assert_eq!(
        refused.unwrap_err(),
        RegistryError::AlreadyRegistered {
            service: "mistral-large".into()
        }
    );
    assert_eq!(m.service_names(), ["mistral-large"]);
}

/// `tpm` alone is not a request budget: the error names the missing field.
#[test]
fn a_builder_without_rpm_names_it() {
    let err = BucketRateLimiter::builder().tpm(1_000).build().unwrap_err();
    assert_eq!(err.field(), "rpm");
    assert!(err.to_string().contains("not set"), "{err}");
    assert!(
        BucketRateLimiter::builder()
            .rpm(60)
            .tpm(1_000)
            .build()
            .is_ok()
    );
}
