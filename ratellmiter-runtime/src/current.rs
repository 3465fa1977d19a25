//! [`current()`]: the ticket of the rate-limited call running on this task, so code deep
//! inside the call can report what the provider said.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::headers::RateLimitHeaders;
use crate::limiter::Shared;
#[cfg(feature = "stream")]
use crate::limiter::Ticket;
use crate::pacer::{Budget, Issued, Usage};

tokio::task_local! {
    static CURRENT: TicketRef;
}

pub(crate) struct TicketRef {
    pub(crate) shared: Arc<Shared>,
    pub(crate) issued: Issued,
    pub(crate) request_id: Option<Arc<str>>,
    /// Set when a streamed answer took the ticket over (`Metered::from_current`): the
    /// retry loop then leaves the ticket to the stream. Only the call's own task-local
    /// copy can hand over; clones start as handed, so a ticket is never settled twice.
    pub(crate) handed: AtomicBool,
}

impl Clone for TicketRef {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            issued: self.issued,
            request_id: self.request_id.clone(),
            handed: AtomicBool::new(true),
        }
    }
}

/// A handle to the ticket of the rate-limited call running on this task (or thread, for
/// a blocking call). Outside such a call every method does nothing, so library code can
/// report usage without knowing whether it runs under a limiter.
///
/// `current()` reads a task-local, so a task the call spawns does not see it: take the
/// handle with [`current()`] inside the call and move it into the task (it is `Send`,
/// `Sync` and `Clone`), or run the task inside [`scope`](Self::scope) so code there
/// finds it through `current()` as well:
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use ratellmiter_runtime::{current, BucketRateLimiter};
///
/// let limiter = BucketRateLimiter::builder().rpm(600).tpm(100_000).build().unwrap();
/// let out: Result<(), std::io::Error> = limiter
///     .call()
///     .tokens(1_000)
///     .run(|| async {
///         let call = current().handle();
///         tokio::spawn(call.scope(async {
///             assert!(current().is_active(), "seen in the spawned task");
///             current().record_usage(300);
///         }))
///         .await
///         .unwrap();
///         Ok(())
///     })
///     .await
///     .unwrap();
/// out.unwrap();
/// assert_eq!(limiter.stats().tokens_in_window, 300);
/// # }
/// ```
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use ratellmiter::{current, BucketRateLimiter};
///
/// let limiter = BucketRateLimiter::builder().rpm(600).tpm(100_000).build().unwrap();
/// let answer: Result<&str, std::io::Error> = limiter
///     .call()
///     .tokens(1_000) // estimate
///     .run(|| async {
///         // ... the provider answered; its `usage` says 420 tokens:
///         current().record_usage(420);
///         Ok("Paris")
///     })
///     .await
///     .unwrap();
/// assert_eq!(answer.unwrap(), "Paris");
/// assert_eq!(limiter.stats().tokens_in_window, 420);
/// assert!(!current().is_active(), "outside a call");
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Current(Option<TicketRef>);

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current")
            .field("active", &self.is_active())
            .field("request_id", &self.request_id())
            .finish()
    }
}

/// The ticket of the rate-limited call running here, if any.
pub fn current() -> Current {
    Current(CURRENT.try_with(Clone::clone).ok())
}

impl Current {
    /// This handle, to move into a task the call spawns (where `current()` alone finds
    /// nothing): call its methods there, or run the task in [`scope`](Self::scope).
    /// Reports made after the call has ended are ignored.
    pub fn handle(&self) -> Current {
        self.clone()
    }

    /// Runs `fut` with this call as its [`current()`], e.g. a task the call spawns:
    /// `tokio::spawn(current().handle().scope(async { … }))`. Outside a call it runs
    /// `fut` unchanged.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        match self.0 {
            Some(t) => CURRENT.scope(t, fut).await,
            None => fut.await,
        }
    }

    /// Whether a rate-limited call is running here.
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// The `request_id` the call was given (`#[llmiter(request_id = …)]`).
    pub fn request_id(&self) -> Option<&str> {
        self.0.as_ref().and_then(|t| t.request_id.as_deref())
    }

    /// Whether this call is the probe after a rate limit.
    pub fn is_probe(&self) -> bool {
        self.0.as_ref().is_some_and(|t| t.issued.probe)
    }

    /// Replaces the call's token estimate by what it really used, kind by kind: a
    /// plain `u64` is a total, [`Usage::new(input, output)`](crate::Usage::new) the
    /// split (with [`cached_input`](crate::Usage::cached_input)). Each budget is
    /// refunded or charged the difference from the estimate.
    pub fn record_usage(&self, usage: impl Into<Usage>) {
        if let Some(t) = &self.0 {
            t.shared.record_usage(&t.issued, usage.into());
        }
    }

    /// What the provider says is left of the requests and the tokens budgets: the
    /// limiter holds issuing when nothing remains, before a 429.
    pub fn observe_budget(&self, requests: Option<Budget>, tokens: Option<Budget>) {
        if let Some(t) = &self.0 {
            t.shared.observe_budget(requests, tokens);
        }
    }

    /// What the provider's rate-limit headers said (see [`crate::headers`]): each
    /// family holds the budget of its kind (requests, tokens, input tokens, output
    /// tokens), and a limiter that [learns its limits](crate::LimiterBuilder::learn_limits)
    /// takes them from the first answer that names them.
    pub fn observe_rate_limits(&self, headers: &RateLimitHeaders) {
        if let Some(t) = &self.0 {
            t.shared.observe_headers(headers);
        }
    }

    /// Reads the rate-limit headers of a response (feature `http`) and reports them
    /// with [`observe_rate_limits`](Self::observe_rate_limits).
    #[cfg(feature = "http")]
    pub fn observe_headers(&self, headers: &http::HeaderMap) {
        if self.is_active() {
            self.observe_rate_limits(&RateLimitHeaders::from_header_map(headers));
        }
    }
}

impl TicketRef {
    /// A call's own reference to its ticket, the one that may hand the ticket over.
    pub(crate) fn new(shared: Arc<Shared>, issued: Issued, request_id: Option<Arc<str>>) -> Self {
        Self {
            shared,
            issued,
            request_id,
            handed: AtomicBool::new(false),
        }
    }

    /// Runs `fut` as the current call; also says whether a stream took the ticket over.
    pub(crate) async fn scope<F: Future>(self, fut: F) -> (F::Output, bool) {
        CURRENT
            .scope(self, async {
                let out = fut.await;
                (out, CURRENT.with(|t| t.handed.load(Ordering::Relaxed)))
            })
            .await
    }

    /// [`scope`](Self::scope) for a blocking call.
    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> (R, bool) {
        CURRENT.sync_scope(self, || {
            let out = f();
            (out, CURRENT.with(|t| t.handed.load(Ordering::Relaxed)))
        })
    }
}

/// Tickets a stream took over while their call still ran, by limiter and ticket id,
/// until the call's guard lets go of its own handle: a guard dropped before the call
/// returned (cancelled, panicked) learns here that the stream settles the ticket. Only
/// that rare path and hand-overs touch it.
static TAKEN: std::sync::Mutex<Vec<(usize, u64)>> = std::sync::Mutex::new(Vec::new());

fn taken_key(shared: &Arc<Shared>, issued: &Issued) -> (usize, u64) {
    (Arc::as_ptr(shared) as usize, issued.id.0)
}

/// Whether a stream took over this ticket (forgetting the record: asked once).
pub(crate) fn was_taken(shared: &Arc<Shared>, issued: &Issued) -> bool {
    let key = taken_key(shared, issued);
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match taken.iter().position(|k| *k == key) {
        Some(i) => {
            taken.swap_remove(i);
            true
        }
        None => false,
    }
}

/// The running call's ticket, for a streamed answer that outlives the call; `None`
/// outside a call, on another task, or once taken.
#[cfg(feature = "stream")]
pub(crate) fn take_over() -> Option<Ticket> {
    CURRENT
        .try_with(|t| {
            (!t.handed.swap(true, Ordering::Relaxed)).then(|| {
                TAKEN
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(taken_key(&t.shared, &t.issued));
                Ticket::new(t.shared.clone(), t.issued)
            })
        })
        .ok()
        .flatten()
}
