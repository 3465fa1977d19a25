//! [`Stats`]: a limiter's counters and gauges, as its engine counts them.

/// Counters and gauges of one limiter ([`BucketRateLimiter::stats`](crate::BucketRateLimiter::stats),
/// [`Pacer::stats`](crate::pacer::Pacer::stats)). `issued + waiting + cancelled ==
/// requested` holds at every moment.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let limiter = ratellmiter::BucketRateLimiter::new(600);
/// drop(limiter.acquire().await.unwrap());
/// let s = limiter.stats();
/// assert_eq!((s.requested, s.issued, s.finished, s.in_flight), (1, 1, 1, 0));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Ticket requests, re-queued calls included.
    pub requested: u64,
    /// Tickets issued, re-issues included.
    pub issued: u64,
    /// Tickets issued to calls re-queued after a rate limit.
    pub reissued: u64,
    /// Calls that ended any way but a rate limit.
    pub finished: u64,
    /// Rate-limit errors reported.
    pub rate_limited: u64,
    /// Requests withdrawn before their ticket came (cancelled, timed out).
    pub cancelled: u64,
    /// Calls waiting for a ticket now.
    pub waiting: u64,
    /// Tickets out now.
    pub in_flight: u64,
    /// Tickets per second allowed now (ramp and learned ceiling applied).
    pub allowed_rate: f64,
    /// The learned ceiling, tickets per second (the configured rate when nothing was learned).
    pub learned_rate: f64,
    /// The configured rate, tickets per second.
    pub limit_rate: f64,
    /// Whether issuing is stopped after a rate limit.
    pub paused: bool,
    /// Tokens charged in the last 60 s to the `tpm` budget (0 without one).
    pub tokens_in_window: u64,
    /// Input tokens charged in the last 60 s to the `input_tpm` budget (0 without one).
    pub input_tokens_in_window: u64,
    /// Output tokens charged in the last 60 s to the `output_tpm` budget (0 without one).
    pub output_tokens_in_window: u64,
    /// Requests left today under the `rpd` quota (`None` without one).
    pub requests_left_today: Option<u64>,
    /// Tokens left today under the `tpd` quota (`None` without one).
    pub tokens_left_today: Option<u64>,
    /// The most tickets allowed out at once (`None`: no cap).
    pub max_in_flight: Option<u32>,
}
