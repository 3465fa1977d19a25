//! [`Ticket`]: the right to make one call, given back when dropped.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use crate::pacer::{Budget, Issued, Outcome};

/// The right to make one rate-limited call. Dropping it reports the call as done;
/// [`rate_limited`](Self::rate_limited) and [`failed`](Self::failed) report otherwise.
/// A ticket dropped while its thread panics counts as abandoned (outcome unknown), and
/// so does a [probe](Self::is_probe) dropped without [`finish`](Self::finish): a probe
/// cancelled by a time-out must not tell the limiter that the server accepts calls
/// again, so the next call probes instead.
#[must_use = "dropping a ticket at once gives its slot back before the call is made"]
pub struct Ticket {
    shared: Arc<Shared>,
    issued: Issued,
    done: bool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("id", &self.issued.id.0)
            .field("probe", &self.issued.probe)
            .field("waited", &self.issued.waited)
            .finish()
    }
}

impl Ticket {
    pub(crate) fn new(shared: Arc<Shared>, issued: Issued) -> Self {
        crate::telemetry::waited(shared.name(), issued.waited);
        Self {
            shared,
            issued,
            done: false,
        }
    }

    /// How long the call waited for this ticket.
    pub fn waited(&self) -> Duration {
        self.issued.waited
    }

    /// Whether this call is the probe that decides if the server accepts calls again.
    pub fn is_probe(&self) -> bool {
        self.issued.probe
    }

    /// The server refused the call for its rate limit: pauses the limiter (unless it is
    /// already paused). Re-queue the call at the front with
    /// `limiter.acquire().retry()` (what `#[llmiter]` and [`Call`](crate::Call) do).
    pub fn rate_limited(mut self, retry_after: Option<Duration>) {
        self.end(Outcome::RateLimited { retry_after });
    }

    /// The call failed for another reason.
    pub fn failed(mut self) {
        self.end(Outcome::Error);
    }

    /// The call succeeded (the same as dropping the ticket, except for a probe, which
    /// resumes the limiter only this way).
    pub fn finish(mut self) {
        self.end(Outcome::Success);
    }

    /// The call ended in a way that says nothing about the server (it was cancelled).
    pub(crate) fn abandon(mut self) {
        self.end(Outcome::Abandoned);
    }

    /// Replaces the token estimate by what the call really used (refund or extra charge).
    pub fn record_usage(&self, usage: impl Into<crate::pacer::Usage>) {
        self.shared.record_usage(&self.issued, usage.into());
    }

    /// What a response's rate-limit headers said (each family to its own budget, and
    /// the limits to a limiter that learns them).
    #[cfg(feature = "tower")]
    pub(crate) fn observe_headers(&self, headers: &crate::headers::RateLimitHeaders) {
        self.shared.observe_headers(headers);
    }

    /// What the provider's headers say is left of the requests and the tokens budgets.
    /// The limiter holds issuing when nothing remains, before a 429.
    pub fn observe_budget(&self, requests: Option<Budget>, tokens: Option<Budget>) {
        self.shared.observe_budget(requests, tokens);
    }

    pub(crate) fn handle(&self) -> (Arc<Shared>, Issued) {
        (self.shared.clone(), self.issued)
    }

    /// Lets go of the ticket without settling it: another `Ticket` for the same slot
    /// (a streamed answer's) settles it.
    pub(crate) fn disown(mut self) {
        self.done = true;
    }

    fn end(&mut self, outcome: Outcome) {
        if !self.done {
            self.done = true;
            self.shared.finish(&self.issued, outcome);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() || self.issued.probe {
            Outcome::Abandoned
        } else {
            Outcome::Success
        };
        self.end(outcome);
    }
}
