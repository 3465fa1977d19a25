//! [`RedisBackend`]: the shared budget kept in Redis and scheduled by atomic Lua
//! scripts (`reserve.lua`, `claim.lua`, `report.lua`, `refresh.lua` beside this file,
//! each after `common.lua`).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script, ScriptInvocation};
use tokio::sync::{OnceCell, mpsc, oneshot};

use super::{
    Claim, Fallback, Grant, Report, SharedBackend, SharedError, SharedTicket, SlotRequest,
};
use crate::config::{ConfigError, DayReset, RampShape};
use crate::pacer::Outcome;
use crate::rate_limit::BoxFuture;

/// How long a process waiting on another's probe, or for a place in flight, goes before
/// asking again. Polling rather than pub/sub: a pause lasts seconds, so resuming up to
/// this much late costs little, while a subscription needs a second connection per
/// process and care on every reconnect. Waits for a pause's end need no polling: its
/// deadline is known.
const POLL: Duration = Duration::from_millis(250);

/// One budget shared by every process that uses the same Redis and key.
///
/// Each ticket costs one round trip, two when it waits for its slot: atomic Lua
/// scripts read and advance the fleet's state on Redis's own clock (`TIME`), so hosts
/// with skewed clocks still share one even spacing. Redis keeps the schedule and its
/// ramp, the pause and its probe, the epoch, the learned rate, the token schedules,
/// the day's use, the hand-overs of the last second and the leases of calls in flight,
/// under `{prefix}{{key}}:…` (default prefix `ratellmiter:`; the braces keep a key's
/// entries on one Redis Cluster node). Nothing of a prompt or a response goes to Redis.
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
    lease_ttl: Duration,
    hand_over_margin: Duration,
    timeout: Duration,
    fallback: Fallback,
    io: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl fmt::Debug for RedisBackend {
    // Leaves the URL out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("state_key", &self.state_key())
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
        Ok(Self {
            client,
            prefix: "ratellmiter:".into(),
            key: key.into(),
            lease_ttl: Duration::from_secs(10),
            hand_over_margin: Duration::from_millis(20),
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

    /// How long a place in flight (`max_in_flight`) is held for a process that stops
    /// renewing it (default 10 s, at least 100 ms): a live process renews its calls'
    /// leases every third of this, so a call may run for as long as it takes, and the
    /// places of a process killed mid-call come back within this time.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    /// The one-second bound on hand-overs (at most `ceil(rpm / 60)` in any second) is
    /// kept over 1 s and this margin (default 20 ms), so that the jitter of sending a
    /// request after its ticket does not put one more in a second at the provider. It
    /// costs up to `margin / 1 s` of the rate when the bound is what limits (an `rpm` a
    /// multiple of 60, saturated): 2 % at the default.
    #[must_use]
    pub fn hand_over_margin(mut self, margin: Duration) -> Self {
        self.hand_over_margin = margin;
        self
    }

    /// Longest wait for Redis's answer before pacing locally (default 500 ms).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The Redis key of the fleet's state (a hash: the schedule, the ramp, the pause,
    /// the day's use); the other keys share its prefix.
    pub fn state_key(&self) -> String {
        self.redis_key("state")
    }

    fn redis_key(&self, name: &str) -> String {
        format!("{}{{{}}}:{name}", self.prefix, self.key)
    }

    fn io(&self) -> &mpsc::UnboundedSender<Job> {
        self.io.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let script =
                |body: &str| Script::new(&format!("{}\n{body}", include_str!("common.lua")));
            let io = Io {
                client: self.client.clone(),
                connection: OnceCell::new(),
                keys: ["state", "handed", "leases", "day"].map(|k| self.redis_key(k)),
                lease_ttl: self.lease_ttl,
                window: Duration::from_secs(1) + self.hand_over_margin,
                timeout: self.timeout,
                reserve: script(include_str!("reserve.lua")),
                claim: script(include_str!("claim.lua")),
                report: script(include_str!("report.lua")),
                refresh: script(include_str!("refresh.lua")),
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
        let sent = self.io().send(Job::Reserve(Box::new(request), tx));
        answer(sent.is_ok(), rx)
    }

    fn claim(&self, rpm: u32) -> BoxFuture<'static, Result<Claim, SharedError>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.io().send(Job::Claim(rpm, tx));
        answer(sent.is_ok(), rx)
    }

    fn report(&self, report: Report) {
        let _ = self.io().send(Job::Report(Box::new(report)));
    }

    fn fallback(&self) -> Fallback {
        self.fallback
    }
}

/// The I/O thread's answer to a job queued now (the queue keeps this process's order).
fn answer<T: Send + 'static>(
    sent: bool,
    rx: oneshot::Receiver<Result<T, SharedError>>,
) -> BoxFuture<'static, Result<T, SharedError>> {
    Box::pin(async move {
        if !sent {
            return Err(SharedError::new("the Redis I/O thread is not running"));
        }
        rx.await
            .map_err(|_| SharedError::new("the Redis I/O thread stopped"))?
    })
}

enum Job {
    Reserve(
        Box<SlotRequest>,
        oneshot::Sender<Result<Grant, SharedError>>,
    ),
    Claim(u32, oneshot::Sender<Result<Claim, SharedError>>),
    Report(Box<Report>),
}

/// The backend's connection, scripts and keys, on its own thread and runtime: the
/// limiter's runtime (or none, for blocking callers, or a paused test clock) never
/// drives Redis's I/O or time-outs. Jobs run one at a time, in the order they came.
struct Io {
    client: Client,
    connection: OnceCell<ConnectionManager>,
    keys: [String; 4],
    lease_ttl: Duration,
    /// The one-second bound's window, with its margin.
    window: Duration,
    timeout: Duration,
    reserve: Script,
    claim: Script,
    report: Script,
    refresh: Script,
}

impl Io {
    fn run(self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            // This process's calls in flight holding a lease, renewed until reported.
            let mut leases = BTreeSet::new();
            let mut renew = tokio::time::interval(self.lease_ttl / 3);
            renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    job = rx.recv() => match job {
                        Some(job) => self.run_job(job, &mut leases).await,
                        None => return,
                    },
                    _ = renew.tick(), if !leases.is_empty() => {
                        if let Err(e) = self.bounded(self.renew(&leases)).await {
                            tracing::debug!(error = %e, "leases not renewed");
                        }
                    }
                }
            }
        });
    }

    async fn run_job(&self, job: Job, leases: &mut BTreeSet<u64>) {
        match job {
            Job::Reserve(request, reply) => {
                let answer = self.bounded(self.reserve(&request)).await;
                if let Ok(Grant::Slot { ticket, .. }) = &answer
                    && ticket.lease
                {
                    leases.insert(ticket.id);
                }
                let _ = reply.send(answer);
            }
            Job::Claim(rpm, reply) => {
                let _ = reply.send(self.bounded(self.claim(rpm)).await);
            }
            Job::Report(report) => {
                leases.remove(&report.ticket.id);
                if let Err(e) = self.bounded(self.report(&report)).await {
                    tracing::debug!(error = %e, "rate-limit report not shared");
                }
            }
        }
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

    fn invocation<'a>(&'a self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in &self.keys {
            call.key(key);
        }
        call
    }

    async fn reserve(&self, r: &SlotRequest) -> Result<Grant, SharedError> {
        let mut con = self.connection().await?;
        let c = &r.config;
        let mut call = self.invocation(&self.reserve);
        call.arg(c.rpm)
            .arg(r.learned_interval.map_or(0, micros))
            .arg(shape(c.ramp_shape))
            .arg(c.ramp_start)
            .arg(c.ramp_step)
            .arg(micros(r.waited))
            .arg(r.cost.total())
            .arg(r.cost.input_charge())
            .arg(r.cost.output_charge())
            .arg(c.tpm.unwrap_or(0))
            .arg(c.input_tpm.unwrap_or(0))
            .arg(c.output_tpm.unwrap_or(0))
            .arg(c.rpd.unwrap_or(0))
            .arg(c.tpd.unwrap_or(0))
            .arg(day_end(c.day_reset))
            .arg(c.max_in_flight.unwrap_or(0))
            .arg(millis(self.lease_ttl))
            .arg(millis(c.probe_initial))
            .arg(c.probe_factor)
            .arg(millis(c.probe_max))
            .arg(millis(c.probe_timeout))
            .arg(millis(POLL))
            .arg(micros(self.window));
        let v: Vec<i64> = call.invoke_async(&mut con).await.map_err(redis_error)?;
        let [status, wait, at, id, epoch, probe, day, rate] = v[..] else {
            return Err(SharedError::new(format!("reserve.lua answered {v:?}")));
        };
        let wait = Duration::from_micros(wait.max(0) as u64);
        let at = Duration::from_micros(at.max(0) as u64);
        Ok(match status {
            0 => Grant::Slot {
                wait,
                at,
                ticket: SharedTicket {
                    id: id as u64,
                    epoch: epoch as u64,
                    probe: probe == 1,
                    lease: c.max_in_flight.is_some(),
                    day,
                },
                rate: rate as f64 / 1000.0,
            },
            2 => Grant::AtCapacity { wait },
            3 => Grant::QuotaExhausted { resets_at: at },
            _ => Grant::Paused {
                wait,
                epoch: epoch as u64,
            },
        })
    }

    async fn claim(&self, rpm: u32) -> Result<Claim, SharedError> {
        let mut con = self.connection().await?;
        let mut call = self.invocation(&self.claim);
        call.arg(rpm).arg(micros(self.window));
        let (went, us): (i64, i64) = call.invoke_async(&mut con).await.map_err(redis_error)?;
        let us = Duration::from_micros(us.max(0) as u64);
        Ok(match went {
            1 => Claim::Went { at: us },
            _ => Claim::Wait(us),
        })
    }

    async fn report(&self, r: &Report) -> Result<(), SharedError> {
        let mut con = self.connection().await?;
        let c = &r.config;
        let t = &r.ticket;
        let (outcome, retry_after) = match r.outcome {
            Outcome::RateLimited { retry_after } => {
                ("limited", retry_after.map_or(-1, |d| millis(d) as i64))
            }
            Outcome::Abandoned => ("abandoned", -1),
            _ => ("ok", -1),
        };
        let used = |f: fn(&crate::pacer::Cost) -> u64| r.used.as_ref().map_or(-1, |u| f(u) as i64);
        let mut call = self.invocation(&self.report);
        call.arg(t.id)
            .arg(t.epoch)
            .arg(u8::from(t.probe))
            .arg(u8::from(t.lease))
            .arg(t.day)
            .arg(outcome)
            .arg(retry_after)
            .arg(millis(c.probe_initial))
            .arg(c.probe_factor)
            .arg(millis(c.probe_max))
            .arg(shape(c.ramp_shape))
            .arg(c.ramp_start)
            .arg(c.rpm)
            .arg(r.charged.total())
            .arg(r.charged.input_charge())
            .arg(r.charged.output_charge())
            .arg(used(crate::pacer::Cost::total))
            .arg(used(crate::pacer::Cost::input_charge))
            .arg(used(crate::pacer::Cost::output_charge))
            .arg(c.tpm.unwrap_or(0))
            .arg(c.input_tpm.unwrap_or(0))
            .arg(c.output_tpm.unwrap_or(0))
            .arg(u8::from(c.rpd.is_some() || c.tpd.is_some()))
            .arg(day_end(c.day_reset));
        call.invoke_async::<i64>(&mut con)
            .await
            .map(drop)
            .map_err(redis_error)
    }

    async fn renew(&self, leases: &BTreeSet<u64>) -> Result<(), SharedError> {
        let mut con = self.connection().await?;
        let mut call = self.invocation(&self.refresh);
        call.arg(millis(self.lease_ttl));
        for id in leases {
            call.arg(id);
        }
        call.invoke_async::<i64>(&mut con)
            .await
            .map(drop)
            .map_err(redis_error)
    }
}

fn shape(s: RampShape) -> u8 {
    match s {
        RampShape::Linear => 1,
        _ => 0,
    }
}

/// The day's end as `reserve.lua` takes it.
fn day_end(d: DayReset) -> String {
    match d {
        DayReset::Rolling => "rolling".into(),
        DayReset::Midnight { utc_offset_secs } => utc_offset_secs.to_string(),
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

fn redis_error(e: redis::RedisError) -> SharedError {
    SharedError::new(e.to_string())
}
