//! The [`Monitor`]: the registry of named limiters that `#[llmiter]` finds by service
//! name, and the switch for flow logs. [`monitor()`] is the global one; a
//! [`Monitor::new`] stands alone, so tests need no global state.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};

use crate::config::{ConfigError, LimiterConfig, MonitorConfig};
use crate::flow_log::format::{Record, ServiceSettings};
use crate::flow_log::{LogSink, Recorder, Writer, flush_limiters};
use crate::limiter::BucketRateLimiter;
use crate::rate_limit::RateLimitedService;

/// The name of the service `#[llmiter]` uses when none is given.
pub const DEFAULT_SERVICE: &str = "default";

type Registry = Arc<RwLock<BTreeMap<String, Arc<BucketRateLimiter>>>>;

/// Registry of named limiters and owner of the flow-log writer.
///
/// ```
/// use ratellmiter::{BucketRateLimiter, Monitor, MonitorConfig};
///
/// let monitor = Monitor::new();
/// monitor.config(MonitorConfig::default().default_rpm(300).logging(false));
/// monitor.start(); // idempotent
/// let gpt = monitor.add_service("gpt-4o", BucketRateLimiter::new(500));
/// assert!(monitor.limiter("gpt-4o").same_limiter(&gpt));
/// assert_eq!(monitor.limiter("unknown-model").config().rpm, 300); // created at default_rpm
/// monitor.stop(); // idempotent; start() again works
/// ```
pub struct Monitor {
    config: RwLock<MonitorConfig>,
    services: Registry,
    warned: Mutex<HashSet<String>>,
    run: Mutex<Option<Running>>,
}

struct Running {
    sink: Option<Arc<Mutex<LogSink>>>,
    writer: Option<Writer>,
    /// The log's start, for limiters that join while running.
    start: tokio::time::Instant,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("services", &self.service_names())
            .field("running", &self.is_running())
            .finish()
    }
}

static GLOBAL: LazyLock<Monitor> = LazyLock::new(Monitor::new);

/// The global monitor: `monitor().start()`, `monitor().stop()`, and the limiters
/// `#[llmiter]` uses. Calls made before `start()` are paced all the same; `start()`
/// only adds the flow log.
pub fn monitor() -> &'static Monitor {
    &GLOBAL
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    /// A monitor of its own, apart from the global one.
    pub fn new() -> Self {
        Self {
            config: RwLock::new(MonitorConfig::default()),
            services: Arc::default(),
            warned: Mutex::default(),
            run: Mutex::new(None),
        }
    }

    /// Applies `config`. An invalid one is refused with an error event and the previous
    /// settings stay; [`try_config`](Self::try_config) returns the error instead.
    pub fn config(&self, config: MonitorConfig) -> &Self {
        if let Err(e) = self.try_config(config) {
            tracing::error!(error = %e, "monitor configuration refused");
        }
        self
    }

    /// Applies `config`, or says which setting is wrong.
    pub fn try_config(&self, config: MonitorConfig) -> Result<&Self, ConfigError> {
        config.validate()?;
        *self.config.write() = config;
        Ok(self)
    }

    /// The settings in force.
    pub fn current_config(&self) -> MonitorConfig {
        self.config.read().clone()
    }

    /// Starts the flow log (when logging is on). Idempotent.
    pub fn start(&self) -> &Self {
        let mut run = self.run.lock();
        if run.is_some() {
            return self;
        }
        let config = self.config.read().clone();
        let start = tokio::time::Instant::now();
        let sink = if config.logging {
            self.open_log(&config.resolved_log_dir())
        } else {
            None
        };
        let writer = sink.as_ref().and_then(|sink| {
            let sink = sink.clone();
            let services = self.services.clone();
            let spawned = Writer::spawn(move |all| {
                let limiters: Vec<_> = services.read().values().cloned().collect();
                flush_limiters(&sink, unique(&limiters), all);
                if all {
                    sink.lock().finish();
                }
            });
            spawned
                .map_err(|e| tracing::warn!(error = %e, "no flow-log thread: logging off"))
                .ok()
        });
        if writer.is_some() {
            for l in unique(&self.services.read().values().cloned().collect::<Vec<_>>()) {
                attach(l, start);
            }
        }
        *run = Some(Running {
            sink: sink.filter(|_| writer.is_some()),
            writer,
            start,
        });
        self
    }

    fn open_log(&self, dir: &std::path::Path) -> Option<Arc<Mutex<LogSink>>> {
        let services = unique(&self.services.read().values().cloned().collect::<Vec<_>>())
            .map(settings)
            .collect();
        match LogSink::create(dir, SystemTime::now(), services) {
            Ok(sink) => Some(Arc::new(Mutex::new(sink))),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot create the flow log: logging off, pacing goes on");
                None
            }
        }
    }

    /// Stops the flow log, writing everything recorded. Idempotent.
    pub fn stop(&self) -> &Self {
        let Some(running) = self.run.lock().take() else {
            return self;
        };
        if let Some(writer) = running.writer {
            writer.stop();
        }
        for l in self.services.read().values() {
            l.attach_recorder(None);
        }
        self
    }

    /// Whether `start()` was called and `stop()` not since.
    pub fn is_running(&self) -> bool {
        self.run.lock().is_some()
    }

    /// The file the running flow log writes to.
    pub fn log_path(&self) -> Option<PathBuf> {
        let run = self.run.lock();
        run.as_ref()?
            .sink
            .as_ref()
            .map(|s| s.lock().path().to_path_buf())
    }

    /// Records the running log could not write (full or unwritable disk).
    pub fn dropped_records(&self) -> u64 {
        let run = self.run.lock();
        run.as_ref()
            .and_then(|r| r.sink.as_ref())
            .map_or(0, |s| s.lock().dropped())
    }

    /// Registers `limiter` under `name` (replacing any limiter of that name) and
    /// returns the shared handle.
    pub fn add_service(&self, name: &str, limiter: BucketRateLimiter) -> Arc<BucketRateLimiter> {
        limiter.set_name(name);
        let limiter = Arc::new(limiter);
        self.register(name, limiter.clone());
        limiter
    }

    fn register(&self, name: &str, limiter: Arc<BucketRateLimiter>) {
        self.services
            .write()
            .insert(name.to_owned(), limiter.clone());
        let run = self.run.lock();
        if let Some(running) = run.as_ref()
            && let Some(sink) = &running.sink
        {
            attach(&limiter, running.start);
            let mut s = settings(&limiter);
            s.name = name.to_owned();
            sink.lock().write(&Record::Service(s));
        }
    }

    /// Registers a service with its own probe: each of `models` gets the limiter
    /// [`RateLimitedService::limiter`] gives for it, probing through the service;
    /// the service's own name gets its default limiter.
    pub fn add_rate_limited_service(&self, service: Arc<dyn RateLimitedService>, models: &[&str]) {
        let weak = Arc::downgrade(&service);
        let default = service.limiter(None);
        default.set_name(service.service_name());
        default.set_service(weak.clone());
        self.register(service.service_name(), default);
        for model in models {
            let l = service.limiter(Some(model));
            l.set_name(model);
            l.set_service(weak.clone());
            self.register(model, l);
        }
    }

    /// The limiter of `name`. An unknown name gets a limiter at `default_rpm`, with one
    /// warning per name (a typo in a service name should not go unnoticed).
    pub fn limiter(&self, name: &str) -> Arc<BucketRateLimiter> {
        if let Some(l) = self.services.read().get(name) {
            return l.clone();
        }
        if name != DEFAULT_SERVICE && self.warned.lock().insert(name.to_owned()) {
            tracing::warn!(
                service = name,
                rpm = self.config.read().default_rpm,
                "unknown service: created at the default rate"
            );
        }
        let l = self.get_or_create(name);
        if name != DEFAULT_SERVICE {
            let now = l.shared.now();
            if let Some(r) = &mut l.shared.state.lock().recorder {
                r.unknown_service(now);
            }
        }
        l
    }

    /// The limiter `#[llmiter]` without a service uses (created at `default_rpm`).
    pub fn default_limiter(&self) -> Arc<BucketRateLimiter> {
        self.limiter(DEFAULT_SERVICE)
    }

    fn get_or_create(&self, name: &str) -> Arc<BucketRateLimiter> {
        let rpm = self.config.read().default_rpm;
        let mut services = self.services.write();
        if let Some(l) = services.get(name) {
            return l.clone();
        }
        let limiter = Arc::new(
            BucketRateLimiter::builder()
                .config(LimiterConfig {
                    rpm,
                    ..Default::default()
                })
                .name(name)
                .build()
                .expect("default_rpm is validated by try_config"),
        );
        services.insert(name.to_owned(), limiter.clone());
        drop(services);
        let run = self.run.lock();
        if let Some(running) = run.as_ref()
            && let Some(sink) = &running.sink
        {
            attach(&limiter, running.start);
            sink.lock().write(&Record::Service(settings(&limiter)));
        }
        limiter
    }

    /// Changes the requests per minute of a registered service.
    pub fn set_rpm(&self, name: &str, rpm: u32) -> Result<(), ConfigError> {
        self.limiter(name).set_rpm(rpm)
    }

    /// The registered service names, sorted.
    pub fn service_names(&self) -> Vec<String> {
        self.services.read().keys().cloned().collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Each limiter once, though several names may share it.
fn unique(limiters: &[Arc<BucketRateLimiter>]) -> impl Iterator<Item = &BucketRateLimiter> {
    let mut seen = HashSet::new();
    limiters
        .iter()
        .filter(move |l| seen.insert(Arc::as_ptr(&l.shared)))
        .map(|l| &**l)
}

fn attach(limiter: &BucketRateLimiter, start: tokio::time::Instant) {
    let base = start.saturating_duration_since(limiter.origin());
    let mut st = limiter.shared.state.lock();
    if st.recorder.is_none() {
        let recorder = Recorder::new(limiter.name(), base, &st.pacer);
        st.recorder = Some(recorder);
    }
}

fn settings(limiter: &BucketRateLimiter) -> ServiceSettings {
    let c = limiter.config();
    ServiceSettings {
        name: limiter.name().to_owned(),
        rpm: c.rpm,
        tpm: c.tpm,
        ramp_start: c.ramp_start,
        ramp_step: c.ramp_step,
        probe_initial_ms: c.probe_initial.as_millis() as u64,
        probe_factor: c.probe_factor,
        probe_max_ms: c.probe_max.as_millis() as u64,
        max_retries: c.max_retries,
        adaptive: c.adaptive,
    }
}
