//! [`current()`]: the ticket of the rate-limited call running on this task, so code deep
//! inside the call can report what the provider said.

use std::sync::Arc;
use std::time::Duration;

use crate::headers::{Budget, RateLimitHeaders};
use crate::limiter::Shared;
use crate::pacer::Issued;

tokio::task_local! {
    static CURRENT: TicketRef;
}

#[derive(Clone)]
pub(crate) struct TicketRef {
    pub(crate) shared: Arc<Shared>,
    pub(crate) issued: Issued,
    pub(crate) request_id: Option<Arc<str>>,
}

/// A handle to the ticket of the rate-limited call running on this task (or thread, for
/// a blocking call). Outside such a call every method does nothing, so library code can
/// report usage without knowing whether it runs under a limiter.
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

    /// Replaces the call's token estimate by what it really used.
    pub fn record_usage(&self, tokens: u64) {
        if let Some(t) = &self.0 {
            t.shared.record_usage(&t.issued, tokens);
        }
    }

    /// What the provider says is left, `(remaining, reset in)` for requests and tokens:
    /// the limiter holds issuing when nothing remains, before a 429.
    pub fn observe_budget(
        &self,
        requests: Option<(u64, Duration)>,
        tokens: Option<(u64, Duration)>,
    ) {
        if let Some(t) = &self.0 {
            t.shared.observe_budget(requests, tokens);
        }
    }

    /// What the provider's rate-limit headers said (see [`crate::headers`]): the
    /// requests budget and the tightest token budget go to
    /// [`observe_budget`](Self::observe_budget).
    pub fn observe_rate_limits(&self, headers: &RateLimitHeaders) {
        let budget = |b: Option<Budget>| b.map(|b| (b.remaining, b.reset));
        self.observe_budget(budget(headers.requests), budget(headers.token_budget()));
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
    pub(crate) async fn scope<F: std::future::Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    pub(crate) fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }
}
