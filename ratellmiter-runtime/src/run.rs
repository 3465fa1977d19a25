//! The one retry loop: acquire, run the call, and after a rate limit re-queue it at the
//! front of the line. `#[llmiter]` expands to a call into this module, and
//! [`BucketRateLimiter::run`] is the same loop for code that cannot take an attribute.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::current::{TicketRef, was_taken};
use crate::error::AcquireError;
use crate::limiter::{Acquire, BucketRateLimiter, Ticket};
use crate::pacer::{Cost, Priority, Request};
use crate::rate_limit::{CallOutcome, RateLimitKind};

/// Options of one rate-limited call: what `#[llmiter(…)]` arguments set.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// use std::time::Duration;
/// use ratellmiter::{BucketRateLimiter, IsRateLimit, Priority};
///
/// #[derive(Debug, IsRateLimit)]
/// #[rate_limit]
/// struct Refused;
///
/// let limiter = BucketRateLimiter::new(600);
/// let mut attempts = 0;
/// let out: Result<(), Refused> = limiter
///     .call()
///     .max_retries(2)
///     .priority(Priority::High)
///     .timeout(Duration::from_secs(600))
///     .request_id("req-7")
///     .run(|| { attempts += 1; async { Err(Refused) } })
///     .await
///     .unwrap();
/// assert!(out.is_err());
/// assert_eq!(attempts, 3, "the first run and two retries");
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a call does nothing until `.run(…)` is awaited"]
pub struct Call<'a> {
    limiter: &'a BucketRateLimiter,
    max_retries: Option<u32>,
    priority: Priority,
    cost: Cost,
    deadline: Option<Instant>,
    /// Waits for a spent daily quota instead of failing (the forms that cannot fail).
    patient: bool,
    request_id: Option<Arc<str>>,
}

/// What to do after an attempt.
enum Next {
    Return,
    Retry,
}

impl BucketRateLimiter {
    /// Options for one call; finish with [`Call::run`].
    pub fn call(&self) -> Call<'_> {
        Call {
            limiter: self,
            max_retries: None,
            priority: Priority::Normal,
            cost: Cost::ZERO,
            deadline: None,
            patient: false,
            request_id: None,
        }
    }

    /// Runs `f` under this limiter: waits for a ticket, runs it, and after a rate-limit
    /// error re-runs it from the front of the line (up to `max_retries` times) — the
    /// closure form of `#[llmiter]`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use ratellmiter::BucketRateLimiter;
    /// let limiter = BucketRateLimiter::new(600);
    /// let answer: Result<u32, std::io::Error> = limiter.run(|| async { Ok(42) }).await;
    /// assert_eq!(answer.unwrap(), 42);
    /// # }
    /// ```
    pub async fn run<F, Fut, R>(&self, f: F) -> R
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = R>,
        R: CallOutcome,
    {
        match self.call().wait_for_quota().run(f).await {
            Ok(r) => r,
            Err(e) => unreachable!("a call without cost or deadline always gets a ticket: {e}"),
        }
    }

    /// Blocking form of [`run`](Self::run), for plain `fn`s of blocking clients. Blocks
    /// the thread while waiting: never on an async worker thread.
    pub fn run_blocking<F, R>(&self, f: F) -> R
    where
        F: FnMut() -> R,
        R: CallOutcome,
    {
        match self.call().wait_for_quota().run_blocking(f) {
            Ok(r) => r,
            Err(e) => unreachable!("a call without cost or deadline always gets a ticket: {e}"),
        }
    }
}

impl Call<'_> {
    /// Re-runs after a rate limit before the error is returned (default: the limiter's).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Queue ahead of normal calls.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// The call's estimated tokens in all, charged to the token budget (`tpm`, `tpd`;
    /// without [`input_tokens`](Self::input_tokens) also to `input_tpm`).
    pub fn tokens(mut self, tokens: u64) -> Self {
        self.cost.tokens = tokens;
        self
    }

    /// The call's estimated input (prompt) tokens, charged to `input_tpm` (and, without
    /// a [`tokens`](Self::tokens) total, with the output reservation to `tpm`).
    pub fn input_tokens(mut self, tokens: u64) -> Self {
        self.cost.input = tokens;
        self
    }

    /// The output tokens the call reserves (its `max_tokens`), charged to `output_tpm`
    /// until [`record_usage`](crate::Current::record_usage) says what it used.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use ratellmiter::{BucketRateLimiter, Usage, current};
    ///
    /// let limiter = BucketRateLimiter::builder()
    ///     .rpm(50)
    ///     .input_tpm(30_000)
    ///     .output_tpm(8_000)
    ///     .build()
    ///     .unwrap();
    /// let out: Result<(), std::io::Error> = limiter
    ///     .call()
    ///     .input_tokens(2_000)
    ///     .output_tokens(1_024) // max_tokens
    ///     .run(|| async {
    ///         current().record_usage(Usage::new(2_000, 300)); // what the answer said
    ///         Ok(())
    ///     })
    ///     .await
    ///     .unwrap();
    /// out.unwrap();
    /// assert_eq!(limiter.stats().input_tokens_in_window, 2_000);
    /// assert_eq!(limiter.stats().output_tokens_in_window, 300, "724 refunded");
    /// # }
    /// ```
    pub fn output_tokens(mut self, tokens: u64) -> Self {
        self.cost.output = tokens;
        self
    }

    /// Give up waiting for a ticket after `timeout` (counted from now, across re-tries;
    /// a timeout too long to represent means no deadline).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Instant::now().checked_add(timeout);
        self
    }

    /// Waits for a spent daily quota to come back instead of failing at once: what
    /// the forms that cannot return an [`AcquireError`] do ([`BucketRateLimiter::run`],
    /// `#[llmiter]` without `timeout` or token estimates).
    #[doc(hidden)]
    pub fn wait_for_quota(mut self) -> Self {
        self.patient = true;
        self
    }

    /// Give up waiting for a ticket at `deadline`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// An id carried into traces and [`current()`](crate::current()) (rateLLMiter's `user_request_id`).
    pub fn request_id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    fn request(&self, retry: bool) -> Request {
        Request {
            retry,
            priority: self.priority,
            cost: self.cost,
            // A patient call's deadline is set by `deadline`, if it has one, in the driver.
            deadline: self.patient.then_some(Duration::MAX),
        }
    }

    /// Runs `f` under the limiter; `Err` only when no ticket could be had (deadline,
    /// token budget), otherwise the call's own result.
    pub async fn run<F, Fut, R>(self, mut f: F) -> Result<R, AcquireError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = R>,
        R: CallOutcome,
    {
        self.run_with((), |()| {
            let attempt = f();
            async move { ((), attempt.await) }
        })
        .await
    }

    /// [`run`](Self::run) for attempts that need `&mut` access: `state` goes into each
    /// attempt by value and comes back with its result, so an attempt may hold a `&mut`
    /// borrow without a closure lending it out (`#[llmiter]` on `&mut self` methods).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use ratellmiter::BucketRateLimiter;
    /// let limiter = BucketRateLimiter::new(600);
    /// let mut log = Vec::new();
    /// let out: Result<usize, std::io::Error> = limiter
    ///     .call()
    ///     .run_with(&mut log, |log| async move {
    ///         log.push("attempt");
    ///         let n = log.len();
    ///         (log, Ok(n))
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(out.unwrap(), 1);
    /// # }
    /// ```
    pub async fn run_with<S, F, Fut, R>(self, mut state: S, mut f: F) -> Result<R, AcquireError>
    where
        F: FnMut(S) -> Fut,
        Fut: Future<Output = (S, R)>,
        R: CallOutcome,
    {
        let mut attempt = 0;
        loop {
            let span = tracing::debug_span!(
                "ratellmiter.attempt",
                service = self.limiter.name(),
                request_id = self.request_id.as_deref(),
                attempt
            );
            let (guard, (back, out)) = async {
                let ticket =
                    Acquire::new(self.limiter, self.request(attempt > 0), self.deadline).await?;
                let guard = InFlight(Some(ticket));
                let (out, handed) = self.ticket_ref(&guard).scope(f(state)).await;
                Ok::<_, AcquireError>((guard.handed_over(handed), out))
            }
            .instrument(span)
            .await?;
            state = back;
            match self.settle(guard, &out, &mut attempt) {
                Next::Return => return Ok(out),
                Next::Retry => {}
            }
        }
    }

    /// Blocking form of [`run`](Self::run): parks the thread while it waits, so never
    /// call it on an async worker thread.
    ///
    /// # Panics
    /// On a thread that drives an async runtime (inside `block_on` or a task), where
    /// parking would stall the tasks that free tickets; call it from
    /// `tokio::task::spawn_blocking` or a plain thread.
    pub fn run_blocking<F, R>(self, mut f: F) -> Result<R, AcquireError>
    where
        F: FnMut() -> R,
        R: CallOutcome,
    {
        refuse_async_thread();
        let mut attempt = 0;
        loop {
            let ticket =
                Acquire::new(self.limiter, self.request(attempt > 0), self.deadline).blocking()?;
            let guard = InFlight(Some(ticket));
            let (out, handed) = self.ticket_ref(&guard).sync_scope(&mut f);
            let guard = guard.handed_over(handed);
            match self.settle(guard, &out, &mut attempt) {
                Next::Return => return Ok(out),
                Next::Retry => {}
            }
        }
    }

    fn ticket_ref(&self, guard: &InFlight) -> TicketRef {
        let (shared, issued) = guard.0.as_ref().expect("ticket held").handle();
        TicketRef::new(shared, issued, self.request_id.clone())
    }

    /// Reports the attempt's outcome on its ticket and decides whether to re-run.
    fn settle<R: CallOutcome>(&self, mut guard: InFlight, out: &R, attempt: &mut u32) -> Next {
        let Some(ticket) = guard.0.take() else {
            // A streamed answer holds the ticket and settles it when it ends.
            return Next::Return;
        };
        let Some(limit) = out.rate_limit() else {
            ticket.finish();
            return Next::Return;
        };
        match limit.kind() {
            RateLimitKind::Final => {
                tracing::info!(
                    service = self.limiter.name(),
                    "final rate-limit error: not retried"
                );
                ticket.failed();
                Next::Return
            }
            RateLimitKind::Retry => {
                ticket.rate_limited(limit.retry_after());
                let max = self
                    .max_retries
                    .unwrap_or_else(|| self.limiter.config().max_retries);
                if *attempt >= max {
                    tracing::warn!(
                        service = self.limiter.name(),
                        request_id = self.request_id.as_deref(),
                        retries = max,
                        "retries exhausted: returning the rate-limit error"
                    );
                    self.limiter.note_retry_exhausted();
                    Next::Return
                } else {
                    *attempt += 1;
                    Next::Retry
                }
            }
        }
    }
}

/// Panics, naming the fix, when this thread drives an async runtime: a blocking wait
/// there would stall the tasks that free tickets (a deadlock on a `current_thread`
/// runtime). tokio has no query for this, so ask `Handle::block_on`, which refuses on
/// exactly those threads and runs a ready future anywhere else (`spawn_blocking`).
fn refuse_async_thread() {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle.block_on(std::future::ready(()))
    }));
    if probe.is_err() {
        panic!(
            "a blocking rate-limited call (`run_blocking`, or `#[llmiter]` on a plain `fn`) \
             ran on an async runtime's thread, where waiting for a ticket would stall the \
             runtime: call it through `tokio::task::spawn_blocking`, or make the function \
             `async`"
        );
    }
}

/// A ticket whose call is running: if the call is dropped (cancelled) or panics before
/// it settles, the ticket goes back with an unknown outcome.
pub(crate) struct InFlight(pub(crate) Option<Ticket>);

impl InFlight {
    /// After a stream took the ticket over, this guard lets go of its own handle on it.
    fn handed_over(mut self, handed: bool) -> Self {
        if handed && let Some(t) = self.0.take() {
            let (shared, issued) = t.handle();
            was_taken(&shared, &issued);
            t.disown();
        }
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let (shared, issued) = t.handle();
            if was_taken(&shared, &issued) {
                t.disown(); // a stream took it over and settles it
            } else {
                t.abandon();
            }
        }
    }
}
