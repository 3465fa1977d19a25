//! [`Acquire`]: the one way to ask for a ticket, with its options, awaited, blocking or
//! tried at once.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::waiting::Waiting;
use super::{BucketRateLimiter, Enqueued, Ticket, far_future};
use crate::error::{AcquireError, TryAcquireError};
use crate::pacer::{Priority, Request};

/// A request for a ticket: set its options, then `.await` it, call
/// [`blocking`](Self::blocking) on a plain thread, or [`try_now`](Self::try_now) to
/// never wait. Made by [`BucketRateLimiter::acquire`].
///
/// Awaiting it waits in line for a ticket. Dropping the future before it yields its
/// ticket leaves the queue as if the call never came (a ticket issued to it meanwhile
/// goes back unused), so it is safe in `select!` and under `tokio::time::timeout`.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::{AcquireError, BucketRateLimiter, Priority};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> Result<(), AcquireError> {
/// let limiter = BucketRateLimiter::builder().rpm(600).tpm(100_000).build().unwrap();
///
/// // Every option combines with every other, and with each way to wait.
/// let ticket = limiter
///     .acquire()
///     .tokens(1_200) // charged to the token budget
///     .priority(Priority::High) // ahead of normal calls
///     .timeout(Duration::from_secs(30)) // or .deadline(instant)
///     .await?;
///
/// // Refused by the server: report it, then queue again at the front of the line.
/// ticket.rate_limited(None);
/// let again = limiter.acquire().tokens(1_200).retry().await?;
/// drop(again); // the call is done
///
/// // A call that can never fit the token budget fails at once.
/// assert!(matches!(
///     limiter.acquire().tokens(1_000_000).await,
///     Err(AcquireError::CostExceedsBudget { .. })
/// ));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a ticket request does nothing until it is awaited, `.blocking()` or `.try_now()`"]
pub struct Acquire<'a> {
    limiter: &'a BucketRateLimiter,
    request: Request,
    deadline: Option<Instant>,
}

impl BucketRateLimiter {
    /// Asks for a ticket. Await the [`Acquire`] (after any of its options) to wait in
    /// line for it; dropping the [`Ticket`] tells the limiter the call is done.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use ratellmiter::BucketRateLimiter;
    /// let limiter = BucketRateLimiter::new(600);
    /// let ticket = limiter.acquire().await.expect("no deadline, no token cost");
    /// // ... call the API ...
    /// drop(ticket);
    /// # }
    /// ```
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire::new(self, Request::NEW, None)
    }
}

impl<'a> Acquire<'a> {
    pub(crate) fn new(
        limiter: &'a BucketRateLimiter,
        request: Request,
        deadline: Option<Instant>,
    ) -> Self {
        Self {
            limiter,
            request,
            deadline,
        }
    }

    /// The call's estimated tokens, charged to the token budget (ignored without one).
    /// A call that can never fit the budget fails with
    /// [`AcquireError::CostExceedsBudget`] instead of waiting.
    pub fn tokens(mut self, tokens: u64) -> Self {
        self.request.cost.tokens = tokens;
        self
    }

    /// The call's estimated input tokens, charged to `input_tpm` (and, without a
    /// [`tokens`](Self::tokens) total, with the output reservation to `tpm`).
    pub fn input_tokens(mut self, tokens: u64) -> Self {
        self.request.cost.input = tokens;
        self
    }

    /// The output tokens the call reserves (its `max_tokens`), charged to `output_tpm`
    /// until the ticket's [`record_usage`](crate::Ticket::record_usage) says what it used.
    pub fn output_tokens(mut self, tokens: u64) -> Self {
        self.request.cost.output = tokens;
        self
    }

    /// Where a new call queues: [`Priority::High`] goes ahead of normal calls (behind
    /// calls re-queued after a rate limit).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.request.priority = priority;
        self
    }

    /// This call was refused with a rate limit and runs again: it queues at the front
    /// of the line, ahead of every new call, as `#[llmiter]` and [`Call`](crate::Call)
    /// re-queue their retries. Use it after [`Ticket::rate_limited`].
    pub fn retry(mut self) -> Self {
        self.request.retry = true;
        self
    }

    /// Gives up waiting after `timeout`, counted from now: the call leaves the queue and
    /// the calls behind it move up. A timeout too long to represent means no deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Instant::now().checked_add(timeout);
        self
    }

    /// Gives up waiting at `deadline` (see [`timeout`](Self::timeout)).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Blocks this thread until the ticket comes (or the deadline passes). For blocking
    /// clients only: never call it on an async runtime's worker thread (await the
    /// request there, or use `tokio::task::spawn_blocking`), since it parks the thread
    /// that would drive others.
    ///
    /// ```
    /// use ratellmiter::BucketRateLimiter;
    /// let limiter = BucketRateLimiter::new(600);
    /// let ticket = limiter.acquire().tokens(0).blocking().expect("no deadline, no cost");
    /// ticket.finish();
    /// ```
    pub fn blocking(self) -> Result<Ticket, AcquireError> {
        let shared = &self.limiter.shared;
        let id = match shared.enqueue(self.request, self.deadline)? {
            Enqueued::Issued(t) => return Ok(Ticket::new(shared.clone(), t)),
            Enqueued::Waiting(id) => id,
        };
        let mut waiting = Waiting::new(shared, id);
        // Read the clock only on the slow path: the fast one never reports a wait.
        let start = Instant::now();
        match waiting.wait_blocking(self.deadline) {
            Some(Ok(t)) => Ok(Ticket::new(shared.clone(), t)),
            Some(Err(resets_at)) => Err(shared.quota_exhausted(resets_at)),
            None => {
                drop(waiting); // leaves the queue
                Err(AcquireError::Timeout {
                    waited: start.elapsed(),
                })
            }
        }
    }

    /// A ticket now if one is free and nobody is queued; never waits, never queues (so
    /// a deadline does not apply, and neither do priority and retry, which only order
    /// the queue).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use ratellmiter::{BucketRateLimiter, TryAcquireError};
    /// let limiter = BucketRateLimiter::new(60); // one ticket a second
    /// let first = limiter.acquire().try_now().expect("free at start");
    /// assert!(matches!(limiter.acquire().try_now(), Err(TryAcquireError::NotBefore(_))));
    /// # drop(first);
    /// # }
    /// ```
    pub fn try_now(self) -> Result<Ticket, TryAcquireError> {
        let shared = &self.limiter.shared;
        let now = shared.now();
        let mut st = shared.lock();
        if st.budget.is_some() {
            // Other processes may be in line, and only a round trip to the store knows.
            return Err(TryAcquireError::Queued);
        }
        match st.pacer.try_issue(now, self.request) {
            Ok(issued) => {
                if let Some(r) = &mut st.recorder {
                    r.requested(now);
                    r.issued(now, &issued);
                }
                Ok(Ticket::new(shared.clone(), issued))
            }
            Err(e) => Err(e.map_at(|at| shared.origin.checked_add(at).unwrap_or_else(far_future))),
        }
    }
}

impl<'a> IntoFuture for Acquire<'a> {
    type Output = Result<Ticket, AcquireError>;
    type IntoFuture = AcquireFuture<'a>;

    fn into_future(self) -> Self::IntoFuture {
        AcquireFuture {
            state: State::Start(self),
        }
    }
}

/// The future of an awaited [`Acquire`]: ready with the ticket, or the reason there is
/// none. Dropping it before then gives its place in line back.
#[must_use = "futures do nothing unless awaited"]
pub struct AcquireFuture<'a> {
    state: State<'a>,
}

enum State<'a> {
    /// Not polled yet: nothing is queued.
    Start(Acquire<'a>),
    /// In line; dropping `waiting` leaves it.
    Waiting {
        limiter: &'a BucketRateLimiter,
        waiting: Waiting<'a>,
        deadline: Option<Pin<Box<Sleep>>>,
        start: Instant,
        span: tracing::Span,
    },
    /// The output was taken.
    Done,
}

impl std::fmt::Debug for AcquireFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Start(_) => "start",
            State::Waiting { .. } => "waiting",
            State::Done => "done",
        };
        f.debug_struct("AcquireFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl Future for AcquireFuture<'_> {
    type Output = Result<Ticket, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Start(a) = &this.state {
            let (limiter, deadline) = (a.limiter, a.deadline);
            let shared = &limiter.shared;
            let id = match shared.enqueue(a.request, deadline) {
                Ok(Enqueued::Issued(t)) => {
                    this.state = State::Done;
                    return Poll::Ready(Ok(Ticket::new(shared.clone(), t)));
                }
                Ok(Enqueued::Waiting(id)) => id,
                Err(e) => {
                    this.state = State::Done;
                    return Poll::Ready(Err(e));
                }
            };
            this.state = State::Waiting {
                limiter,
                waiting: Waiting::new(shared, id),
                deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
                // Read the clock only on the slow path: the fast one never reports a wait.
                start: Instant::now(),
                span: tracing::debug_span!("ratellmiter.wait", service = limiter.name()),
            };
        }
        let State::Waiting {
            limiter,
            waiting,
            deadline,
            start,
            span,
        } = &mut this.state
        else {
            panic!("`AcquireFuture` polled after completion");
        };
        let limiter = *limiter;
        let ready = {
            let _entered = span.enter();
            if let Poll::Ready(t) = waiting.poll_issued(cx) {
                Some(match t {
                    Ok(t) => Ok(Ticket::new(limiter.shared.clone(), t)),
                    Err(resets_at) => Err(limiter.shared.quota_exhausted(resets_at)),
                })
            } else if let Some(Poll::Ready(())) = deadline.as_mut().map(|s| s.as_mut().poll(cx)) {
                Some(Err(AcquireError::Timeout {
                    waited: start.elapsed(),
                }))
            } else {
                None
            }
        };
        match ready {
            Some(out) => {
                // Dropping the waiting call (timed out) leaves the queue.
                this.state = State::Done;
                Poll::Ready(out)
            }
            None => Poll::Pending,
        }
    }
}
