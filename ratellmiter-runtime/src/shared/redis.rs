//! [`RedisBackend`]: the shared budget kept in Redis and scheduled by two atomic Lua
//! scripts (`reserve.lua`, `report.lua` beside this file).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::sync::{OnceCell, mpsc, oneshot};

use super::{Fallback, Grant, Report, SharedBackend, SharedError, SlotRequest};
use crate::config::ConfigError;
use crate::rate_limit::BoxFuture;

/// How long a process waiting on another's probe goes before asking again. Polling
/// rather than pub/sub: a pause lasts seconds, so resuming up to this much late costs
/// little, while a subscription needs a second connection per process and care on
/// every reconnect. Waits for a pause's end need no polling: its deadline is known.
const PROBE_POLL: Duration = Duration::from_millis(250);

/// One budget shared by every process that uses the same Redis and key.
///
/// Each ticket costs one round trip: an atomic Lua script reads and advances the key's
/// schedule on Redis's own clock (`TIME`), so hosts with skewed clocks still share one
/// even spacing. Redis keeps the schedule, the shared pause, the probe lock, the
/// learned rate and the token schedule, under `{prefix}{{key}}:…` (default prefix
/// `ratellmiter:`; the braces keep a key's entries on one Redis Cluster node). Nothing
/// of a prompt or a response goes to Redis.
///
/// The connection is opened on first use, on a thread of its own, so the backend works
/// from any async runtime and from blocking code alike. `rediss://` URLs use TLS
/// (rustls, the system's root certificates); a password goes in the URL as usual.
///
/// ```no_run
/// use ratellmiter::{BucketRateLimiter, RedisBackend};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limiter = BucketRateLimiter::builder()
///     .rpm(600)
///     .shared(RedisBackend::new("redis://127.0.0.1:6379/", "org-42:gpt-4o")?.expected_processes(4))
///     .build()?;
/// # Ok(()) }
/// ```
pub struct RedisBackend {
    client: Client,
    prefix: String,
    key: String,
    owner: String,
    probe_lock_ttl: Duration,
    timeout: Duration,
    fallback: Fallback,
    io: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl fmt::Debug for RedisBackend {
    // Leaves the URL out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("schedule_key", &self.schedule_key())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A budget under `key` (e.g. the organisation and model) in the Redis at `url`
    /// (`redis://[:password@]host:port/db` or `rediss://…` for TLS). Connects lazily:
    /// a Redis that is down now is not an error, the limiter falls back until it is up.
    ///
    /// ```
    /// use ratellmiter::RedisBackend;
    /// assert!(RedisBackend::new("redis://:secret@127.0.0.1:6379/0", "org-42:gpt-4o").is_ok());
    /// assert!(RedisBackend::new("rediss://:secret@redis.example.com:6380/", "org-42").is_ok());
    /// assert_eq!(RedisBackend::new("http://x", "k").unwrap_err().field(), "redis_url");
    /// assert_eq!(RedisBackend::new("redis://127.0.0.1/", "").unwrap_err().field(), "key");
    /// ```
    pub fn new(url: &str, key: &str) -> Result<Self, ConfigError> {
        let client = Client::open(url).map_err(|e| {
            ConfigError::new(
                "redis_url",
                format!("expected redis://[:password@]host[:port][/db] or rediss://…: {e}"),
            )
        })?;
        if key.is_empty() || key.contains(['{', '}']) {
            return Err(ConfigError::new(
                "key",
                format!("{key:?} must be non-empty and without braces, e.g. \"org-42:gpt-4o\""),
            ));
        }
        if url.starts_with("rediss") {
            // rustls needs a crypto provider; keep the application's if it chose one.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Self {
            client,
            prefix: "ratellmiter:".into(),
            key: key.into(),
            owner: format!("{}-{}", std::process::id(), since_epoch.as_nanos()),
            probe_lock_ttl: Duration::from_secs(30),
            timeout: Duration::from_millis(500),
            fallback: Fallback::default(),
            io: OnceLock::new(),
        })
    }

    /// Prefix of every Redis key (default `ratellmiter:`).
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How many processes usually share the budget: while Redis is down each paces
    /// itself at the full rate divided by this.
    #[must_use]
    pub fn expected_processes(mut self, n: u32) -> Self {
        self.fallback.expected_processes = Some(n.max(1));
        self
    }

    /// Requests per minute of this process while Redis is down (instead of the full rate
    /// divided by [`expected_processes`](Self::expected_processes)).
    #[must_use]
    pub fn fallback_rpm(mut self, rpm: u32) -> Self {
        self.fallback.rpm = Some(rpm);
        self
    }

    /// How often to try Redis again while it is down (default 1 s).
    #[must_use]
    pub fn retry_every(mut self, every: Duration) -> Self {
        self.fallback.retry_every = every;
        self
    }

    /// How long the probe lock lasts if its process dies mid-probe (default 30 s, at
    /// least 1 ms): then another process probes. A probe call running longer than this
    /// may be joined by a second probe.
    #[must_use]
    pub fn probe_lock_ttl(mut self, ttl: Duration) -> Self {
        self.probe_lock_ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// Longest wait for Redis's answer before pacing locally (default 500 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The Redis key of the schedule (the other keys share its prefix).
    pub fn schedule_key(&self) -> String {
        self.redis_key("slots")
    }

    fn redis_key(&self, name: &str) -> String {
        format!("{}{{{}}}:{name}", self.prefix, self.key)
    }

    fn io(&self) -> &mpsc::UnboundedSender<Job> {
        self.io.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let io = Io {
                client: self.client.clone(),
                connection: OnceCell::new(),
                keys: ["slots", "pause", "probe", "learned", "tokens"].map(|k| self.redis_key(k)),
                owner: self.owner.clone(),
                probe_lock_ms: self.probe_lock_ttl.as_millis() as u64,
                timeout: self.timeout,
                reserve: Script::new(include_str!("reserve.lua")),
                report: Script::new(include_str!("report.lua")),
            };
            // Should the thread not start, the receiver is dropped and every request
            // fails at once: the limiter paces locally and says so.
            let _ = std::thread::Builder::new()
                .name("ratellmiter-redis".into())
                .spawn(move || io.run(rx));
            tx
        })
    }
}

impl SharedBackend for RedisBackend {
    fn reserve(&self, request: SlotRequest) -> BoxFuture<'static, Result<Grant, SharedError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.io().send(Job::Reserve(request, tx));
        Box::pin(async move {
            sent.map_err(|_| SharedError::new("the Redis I/O thread is not running"))?;
            rx.await
                .map_err(|_| SharedError::new("the Redis I/O thread stopped"))?
        })
    }

    fn report(&self, report: Report) {
        let _ = self.io().send(Job::Report(report));
    }

    fn fallback(&self) -> Fallback {
        self.fallback
    }
}

enum Job {
    Reserve(SlotRequest, oneshot::Sender<Result<Grant, SharedError>>),
    Report(Report),
}

/// The backend's connection, scripts and keys, on its own thread and runtime: the
/// limiter's runtime (or none, for blocking callers, or a paused test clock) never
/// drives Redis's I/O or time-outs.
struct Io {
    client: Client,
    connection: OnceCell<ConnectionManager>,
    keys: [String; 5],
    owner: String,
    probe_lock_ms: u64,
    timeout: Duration,
    reserve: Script,
    report: Script,
}

impl Io {
    fn run(self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let io = Arc::new(self);
        rt.block_on(async move {
            while let Some(job) = rx.recv().await {
                let io = io.clone();
                tokio::spawn(async move {
                    match job {
                        Job::Reserve(request, reply) => {
                            let _ = reply.send(io.bounded(io.reserve(request)).await);
                        }
                        Job::Report(report) => {
                            if let Err(e) = io.bounded(io.report(report)).await {
                                tracing::debug!(error = %e, "rate-limit report not shared");
                            }
                        }
                    }
                });
            }
        });
    }

    async fn bounded<T>(
        &self,
        fut: impl Future<Output = Result<T, SharedError>>,
    ) -> Result<T, SharedError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| SharedError::new(format!("no answer within {:?}", self.timeout)))?
    }

    /// The connection, opened on first use and again after a failed open; once open it
    /// reconnects by itself.
    async fn connection(&self) -> Result<ConnectionManager, SharedError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        self.connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
            .map_err(redis_error)
    }

    async fn reserve(&self, r: SlotRequest) -> Result<Grant, SharedError> {
        let mut con = self.connection().await?;
        let mut call = self.reserve.prepare_invoke();
        for key in &self.keys {
            call.key(key);
        }
        call.arg(micros(r.interval))
            .arg(&self.owner)
            .arg(self.probe_lock_ms)
            .arg(r.learned_interval.map_or(0, micros))
            .arg(r.cost)
            .arg(r.tpm.unwrap_or(0))
            .arg(PROBE_POLL.as_millis() as u64);
        let (status, wait, slot): (i64, i64, i64) =
            call.invoke_async(&mut con).await.map_err(redis_error)?;
        let wait = Duration::from_micros(wait.max(0) as u64);
        Ok(match status {
            0 | 3 => Grant::Slot {
                wait,
                at: Duration::from_micros(slot.max(0) as u64),
                probe: status == 3,
            },
            _ => Grant::Paused { wait },
        })
    }

    async fn report(&self, report: Report) -> Result<(), SharedError> {
        let mut con = self.connection().await?;
        let mut call = self.report.key(&self.keys[1]);
        call.key(&self.keys[2]);
        match report {
            Report::RateLimited {
                retry_after,
                probe_initial,
                probe_factor,
                probe_max,
            } => call
                .arg("limited")
                .arg(&self.owner)
                .arg(retry_after.map_or(-1, |d| d.as_millis() as i64))
                .arg(probe_initial.as_millis() as u64)
                .arg(probe_factor)
                .arg(probe_max.as_millis() as u64),
            Report::ProbeSucceeded => call.arg("probe_ok").arg(&self.owner),
            Report::ProbeAbandoned => call.arg("probe_abandoned").arg(&self.owner),
        };
        call.invoke_async::<i64>(&mut con)
            .await
            .map(drop)
            .map_err(redis_error)
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn redis_error(e: redis::RedisError) -> SharedError {
    SharedError::new(e.to_string())
}
