//! The [`Monitor`]: the registry of named limiters that `#[llmiter]` finds by service
//! name, and the switch for flow logs. [`monitor()`] is the global one; a
//! [`Monitor::new`] stands alone, so tests need no global state.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};

use crate::config::{ConfigError, LimiterConfig, MonitorConfig, UnknownServices};
use crate::flow_log::format::{Record, ServiceSettings};
use crate::flow_log::{LogSink, Recorder, Writer, write_records};
use crate::limiter::BucketRateLimiter;
use crate::rate_limit::RateLimitedService;

/// The name of the service `#[llmiter]` uses when none is given.
pub const DEFAULT_SERVICE: &str = "default";

type Registry = Arc<RwLock<BTreeMap<String, BucketRateLimiter>>>;

/// A mistake in the use of the registry, naming the service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// [`Monitor::add_service`] for a name already in use: registered before, or
    /// created at the default rate by a call made before it was registered.
    AlreadyRegistered {
        /// The name.
        service: String,
    },
    /// A name nobody registered, refused under [`UnknownServices::Refuse`].
    UnknownService {
        /// The name.
        service: String,
    },
    /// A name nobody registered, after [`MonitorConfig::max_unknown_services`]
    /// limiters were already created for unknown names.
    TooManyUnknownServices {
        /// The name.
        service: String,
        /// The bound.
        max: usize,
    },
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::AlreadyRegistered { service } => write!(
                f,
                "service `{service}` is already registered (by an earlier add_service, or at the default rate by a call made before this one): register each service once, before its first call"
            ),
            RegistryError::UnknownService { service } => write!(
                f,
                "unknown service `{service}`: register it with add_service first (unknown names are refused by MonitorConfig::unknown_services)"
            ),
            RegistryError::TooManyUnknownServices { service, max } => write!(
                f,
                "unknown service `{service}` refused: {max} limiters were already created for unknown names (MonitorConfig::max_unknown_services); register the services with add_service"
            ),
        }
    }
}

impl std::error::Error for RegistryError {}

/// Registry of named limiters and owner of the flow-log writer.
///
/// ```
/// use ratellmiter::{BucketRateLimiter, Monitor, MonitorConfig, RegistryError, UnknownServices};
///
/// let monitor = Monitor::new();
/// monitor.set_config(MonitorConfig::default().default_rpm(300).logging(false));
/// monitor.start(); // idempotent
/// let gpt = monitor.add_service("gpt-4o", BucketRateLimiter::new(500)).unwrap();
/// assert!(monitor.limiter("gpt-4o").same_limiter(&gpt));
/// // A name in use is refused, not replaced:
/// let again = monitor.add_service("gpt-4o", BucketRateLimiter::new(50));
/// assert!(matches!(again, Err(RegistryError::AlreadyRegistered { .. })));
/// // An unknown name gets a limiter at default_rpm, and a warning on stderr...
/// assert_eq!(monitor.limiter("unknown-model").config().rpm, 300);
/// // ...or, when asked, an error.
/// monitor.set_config(MonitorConfig::default().unknown_services(UnknownServices::Refuse).logging(false));
/// assert!(monitor.try_limiter("gpt-4o-mni").is_err());
/// monitor.stop(); // idempotent; start() again works
/// ```
pub struct Monitor {
    config: RwLock<MonitorConfig>,
    services: Registry,
    /// The unknown names limiters were created for (the default service aside): the
    /// warning is printed once per name, and their number is bounded.
    unknown: Mutex<HashSet<String>>,
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
            unknown: Mutex::default(),
            run: Mutex::new(None),
        }
    }

    /// Applies `config`. An invalid one is refused with an error event and the previous
    /// settings stay; [`try_set_config`](Self::try_set_config) returns the error instead.
    pub fn set_config(&self, config: MonitorConfig) -> &Self {
        if let Err(e) = self.try_set_config(config) {
            tracing::error!(error = %e, "monitor configuration refused");
        }
        self
    }

    /// Applies `config`, or says which setting is wrong.
    pub fn try_set_config(&self, config: MonitorConfig) -> Result<&Self, ConfigError> {
        config.validate()?;
        *self.config.write() = config;
        Ok(self)
    }

    /// The settings in force.
    ///
    /// ```
    /// use ratellmiter::{Monitor, MonitorConfig};
    /// let monitor = Monitor::new();
    /// monitor.set_config(MonitorConfig::default().default_rpm(120).logging(false));
    /// assert_eq!(monitor.config().get_default_rpm(), 120);
    /// ```
    pub fn config(&self) -> MonitorConfig {
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
                let mut records = Vec::new();
                for l in unique(&limiters) {
                    l.take_log_records(all, &mut records);
                }
                write_records(&sink, &records);
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

    /// Registers `limiter` under `name` and returns the shared handle. A name already
    /// in use is refused ([`RegistryError::AlreadyRegistered`]), whether an earlier
    /// `add_service` took it or a call made before this one created it at the default
    /// rate: the limiter in use is never replaced behind the calls using it.
    pub fn add_service(
        &self,
        name: &str,
        limiter: BucketRateLimiter,
    ) -> Result<BucketRateLimiter, RegistryError> {
        self.refuse_taken(&[name])?;
        limiter.set_name(name);
        self.register(name, limiter.clone());
        Ok(limiter)
    }

    fn refuse_taken(&self, names: &[&str]) -> Result<(), RegistryError> {
        let services = self.services.read();
        match names.iter().find(|n| services.contains_key(**n)) {
            Some(name) => Err(RegistryError::AlreadyRegistered {
                service: (*name).to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Shares `limiter` through Redis when the configuration names one.
    fn share(&self, name: &str, limiter: &BucketRateLimiter) {
        #[cfg(feature = "redis")]
        match self.config.read().backend_for(name) {
            Some(Ok(backend)) => {
                limiter.share(Arc::new(backend));
            }
            Some(Err(e)) => tracing::error!(
                service = name,
                error = %e,
                "service not shared through Redis: its name cannot be a key"
            ),
            None => {}
        }
        #[cfg(not(feature = "redis"))]
        let _ = (name, limiter);
    }

    fn register(&self, name: &str, limiter: BucketRateLimiter) {
        self.share(name, &limiter);
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
    /// the service's own name gets its default limiter. When any of these names is in
    /// use, nothing is registered ([`RegistryError::AlreadyRegistered`]).
    pub fn add_rate_limited_service(
        &self,
        service: Arc<dyn RateLimitedService>,
        models: &[&str],
    ) -> Result<(), RegistryError> {
        let mut names = vec![service.service_name()];
        names.extend_from_slice(models);
        self.refuse_taken(&names)?;
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
        Ok(())
    }

    /// The limiter of `name`. An unknown name is handled as
    /// [`MonitorConfig::unknown_services`] says: by default it gets a limiter at
    /// `default_rpm` and a warning on stderr, once per name (a typo in a service name
    /// should not go unnoticed).
    ///
    /// # Panics
    /// When [`try_limiter`](Self::try_limiter) refuses the name: under
    /// [`UnknownServices::Refuse`], or past
    /// [`max_unknown_services`](MonitorConfig::max_unknown_services). The message names
    /// the service.
    pub fn limiter(&self, name: &str) -> BucketRateLimiter {
        self.try_limiter(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The limiter of `name`, or why an unknown name is refused.
    pub fn try_limiter(&self, name: &str) -> Result<BucketRateLimiter, RegistryError> {
        if let Some(l) = self.services.read().get(name) {
            return Ok(l.clone());
        }
        if name == DEFAULT_SERVICE {
            return Ok(self.get_or_create(name));
        }
        let (policy, max, rpm) = {
            let c = self.config.read();
            (c.unknown_services, c.max_unknown_services, c.default_rpm)
        };
        let service = name.to_owned();
        {
            let mut unknown = self.unknown.lock();
            if !unknown.contains(name) {
                if policy == UnknownServices::Refuse {
                    return Err(RegistryError::UnknownService { service });
                }
                if unknown.len() >= max {
                    return Err(RegistryError::TooManyUnknownServices { service, max });
                }
                unknown.insert(service);
                tracing::warn!(
                    service = name,
                    rpm,
                    "unknown service: created at the default rate"
                );
                if policy == UnknownServices::Warn {
                    warn_on_stderr(name, rpm);
                }
            }
        }
        let l = self.get_or_create(name);
        let now = l.shared.now();
        if let Some(r) = &mut l.shared.state.lock().recorder {
            r.unknown_service(now);
        }
        Ok(l)
    }

    /// The limiter `#[llmiter]` without a service uses (created at `default_rpm`).
    pub fn default_limiter(&self) -> BucketRateLimiter {
        self.limiter(DEFAULT_SERVICE)
    }

    fn get_or_create(&self, name: &str) -> BucketRateLimiter {
        let rpm = self.config.read().default_rpm;
        let mut services = self.services.write();
        if let Some(l) = services.get(name) {
            return l.clone();
        }
        let limiter = BucketRateLimiter::builder()
            .config(LimiterConfig {
                rpm,
                ..Default::default()
            })
            .name(name)
            .build()
            .expect("default_rpm is validated by try_set_config");
        self.share(name, &limiter);
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

/// The default warning for an unknown service name, printed whether or not a `tracing`
/// subscriber is installed: a typo must be seen by whoever runs the program.
fn warn_on_stderr(name: &str, rpm: u32) {
    use std::io::Write;
    // A closed stderr leaves nobody to tell.
    let _ = writeln!(
        std::io::stderr(),
        "ratellmiter: warning: unknown service `{name}`: created a limiter at the default {rpm} rpm; register it with add_service, or set MonitorConfig::unknown_services to silence this"
    );
}

/// Each limiter once, though several names may share it.
fn unique(limiters: &[BucketRateLimiter]) -> impl Iterator<Item = &BucketRateLimiter> {
    let mut seen = HashSet::new();
    limiters
        .iter()
        .filter(move |l| seen.insert(Arc::as_ptr(&l.shared)))
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
        input_tpm: c.input_tpm,
        output_tpm: c.output_tpm,
        rpd: c.rpd,
        tpd: c.tpd,
        max_in_flight: c.max_in_flight,
    }
}
