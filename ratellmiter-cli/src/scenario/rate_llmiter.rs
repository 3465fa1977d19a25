//! rateLLMiter's own algorithm, ported from its Python source (`rate_llmiter.py`:
//! `BucketRateLimiter`, `SecondTicketBucket`, `MinuteTicketBucket` and the monitor's
//! timer), so that the benchmark and the demo compare ratellmiter with what it
//! replaces rather than with itself with options off.
//!
//! What the source does, and so does the port:
//!
//! - **A 1 s tick** (the monitor's `threading.Timer(1)`, re-armed after each run) opens
//!   a bucket of `capacity` tickets for the next second. A request takes a ticket at
//!   once while the current bucket has one left, so each second's tickets go out in a
//!   clump as soon as the tick frees them; otherwise it waits, first come first served,
//!   for a later tick.
//! - **The ramp, per second**: with `r = rpm / 60`, the maximum is `⌊r⌋`, the start
//!   `round(r × 0.25)` and the step `round(r × 0.10)` (Python's `round`, ties to even;
//!   each at least 1; all three 1 below 60 rpm). A tick's capacity is the last second's
//!   issued count plus the step, kept within start..=maximum; a second that used the
//!   maximum keeps it. The first tick of each minute (a new `MinuteTicketBucket`) takes
//!   the last second's issued count without the step.
//! - **A rate limit** empties the current bucket and pauses: every bucket then holds
//!   no ticket. If it was not paused yet, a probe timer starts: after the interval a
//!   probe goes out (the service's `ratellmiter_is_llm_blocked`); blocked, the interval
//!   grows ×1.5 up to 65 s and the timer restarts; free, the pause ends and the next
//!   tick releases tickets. **The interval is never reset** (the source resets a
//!   misspelt field, `service_test_delay`), so each later pause waits at least as long
//!   as the last probe interval.
//! - The refused call waits for a re-issued ticket, released before new requests; the
//!   decorator's loop then asks for a ticket again, as a new request, before it retries
//!   (so each retry costs two tickets). 20 attempts per call.
//! - **`retry-after` is ignored**: the source never reads it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::transport::ApiError;

/// Attempts per call, the source's `RATE_LIMIT_RETRIES`.
pub const RATE_LIMIT_RETRIES: u32 = 20;
/// The first probe interval, `MIN_TEST_IF_SERVICE_RESUMED_INTERVAL`.
pub const FIRST_PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// The longest probe interval, `MAX_TEST_IF_SERVICE_RESUMED_INTERVAL`.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(65);
/// How much a blocked probe grows the interval, `INTERVAL_BACKOFF_RATE`.
pub const PROBE_GROWTH: f64 = 1.5;

/// One rateLLMiter `BucketRateLimiter`; cheap to clone (clones share it).
#[derive(Clone)]
pub struct RateLlmiter {
    state: Arc<Mutex<State>>,
}

struct State {
    /// Most tickets in a second, `max_tickets_per_second`.
    max: u32,
    /// Fewest tickets in a second outside a pause, `start_ramp_ticket_count`.
    start: u32,
    /// Growth of the capacity per second, `ramp_ticket_count_delta`.
    step: u32,
    /// Tickets of the current second.
    capacity: u32,
    /// Tickets issued in the current second.
    issued: u32,
    /// Ticks since the start: every 60th opens a new minute.
    ticks: u64,
    /// Paused by a rate limit until a probe gets through.
    paused: bool,
    /// The wait before the next probe.
    probe_interval: Duration,
    /// Calls refused by the provider, waiting for a re-issued ticket.
    refused: VecDeque<oneshot::Sender<()>>,
    /// New requests waiting for a ticket (`overflow_request_list`).
    overflow: VecDeque<oneshot::Sender<()>>,
}

impl RateLlmiter {
    /// A limiter at `rpm`, its first second holding the ramp's start. Must run inside
    /// the tokio runtime that drives the calls: the tick runs on its clock, and stops
    /// when the last clone is dropped.
    pub fn new(rpm: u32) -> Self {
        let (max, start, step) = if rpm < 60 {
            (1, 1, 1)
        } else {
            let per_second = f64::from(rpm) / 60.0;
            let share = |f: f64| ((per_second * f).round_ties_even() as u32).max(1);
            (rpm / 60, share(0.25), share(0.10))
        };
        let state = Arc::new(Mutex::new(State {
            max,
            start,
            step,
            capacity: start,
            issued: 0,
            ticks: 0,
            paused: false,
            probe_interval: FIRST_PROBE_INTERVAL,
            refused: VecDeque::new(),
            overflow: VecDeque::new(),
        }));
        tokio::spawn(tick_every_second(Arc::downgrade(&state)));
        Self { state }
    }

    /// Runs `op` the way the `@llmiter` decorator does: a ticket before each attempt,
    /// and after a rate limit the wait for a re-issued ticket, [`RATE_LIMIT_RETRIES`]
    /// attempts in all. `probe` is the service's `ratellmiter_is_llm_blocked`: whether
    /// the provider still refuses.
    pub async fn run<T, Op, Fut, Probe, ProbeFut>(
        &self,
        mut op: Op,
        probe: Probe,
    ) -> Result<T, ApiError>
    where
        Op: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
        Probe: Fn() -> ProbeFut + Clone + Send + 'static,
        ProbeFut: Future<Output = bool> + Send + 'static,
    {
        let mut last = None;
        for _ in 0..RATE_LIMIT_RETRIES {
            self.ticket().await;
            match op().await {
                Err(e @ ApiError::RateLimited { .. }) => {
                    last = Some(e);
                    let wait = self.refused(&probe);
                    let _ = wait.await;
                }
                other => return other,
            }
        }
        Err(last.expect("RATE_LIMIT_RETRIES is at least 1"))
    }

    /// `get_ticket`: at once while this second has one left, else at a later tick.
    async fn ticket(&self) {
        let wait = {
            let mut s = self.state.lock();
            if s.issued < s.capacity {
                s.issued += 1;
                return;
            }
            let (tx, rx) = oneshot::channel();
            s.overflow.push_back(tx);
            rx
        };
        // The sender is dropped only with the limiter, which this call holds.
        let _ = wait.await;
    }

    /// `wait_for_ticket_after_rate_limit_exceeded`: empties this second, pauses, starts
    /// the probe timer with `probe` unless paused already, and queues the call at the
    /// front of the line.
    fn refused<Probe, ProbeFut>(&self, probe: &Probe) -> oneshot::Receiver<()>
    where
        Probe: Fn() -> ProbeFut + Clone + Send + 'static,
        ProbeFut: Future<Output = bool> + Send + 'static,
    {
        let mut s = self.state.lock();
        s.capacity = 0;
        let start_timer = !s.paused;
        s.paused = true;
        let (tx, rx) = oneshot::channel();
        s.refused.push_back(tx);
        if start_timer {
            tokio::spawn(probe_until_free(Arc::downgrade(&self.state), probe.clone()));
        }
        rx
    }
}

/// The monitor's timer: a tick one second after the last, until the limiter is gone.
async fn tick_every_second(state: Weak<Mutex<State>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(state) = state.upgrade() else {
            return;
        };
        state.lock().tick();
    }
}

/// `test_if_service_resumed`, re-armed until the probe finds the provider free.
async fn probe_until_free<Probe, ProbeFut>(state: Weak<Mutex<State>>, probe: Probe)
where
    Probe: Fn() -> ProbeFut,
    ProbeFut: Future<Output = bool>,
{
    loop {
        let Some(interval) = state.upgrade().map(|s| s.lock().probe_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let blocked = probe().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let mut s = state.lock();
        if blocked {
            s.probe_interval = interval.mul_f64(PROBE_GROWTH).min(MAX_PROBE_INTERVAL);
        } else {
            // `probe_interval` stays as it is: the source's reset misses it.
            s.paused = false;
            return;
        }
    }
}

impl State {
    /// One second passed: the next bucket's capacity (`set_ticket_count`, or a new
    /// minute's first bucket), then the refused calls and the overflow released into it.
    fn tick(&mut self) {
        self.ticks += 1;
        let last = self.issued;
        self.capacity = if self.paused {
            0
        } else if self.ticks.is_multiple_of(60) {
            last.max(self.start)
        } else if last == self.max {
            self.max
        } else {
            (last + self.step).min(self.max).max(self.start)
        };
        self.issued = 0;
        for queue in [&mut self.refused, &mut self.overflow] {
            while self.issued < self.capacity {
                let Some(waiter) = queue.pop_front() else {
                    break;
                };
                // A waiter that went away takes no ticket.
                if waiter.send(()).is_ok() {
                    self.issued += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;

    /// When each of `n` calls got its first ticket, since the start, in ms.
    async fn first_tickets(limiter: &RateLlmiter, n: usize) -> Vec<u128> {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..n {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                limiter.ticket().await;
                start.elapsed().as_millis()
            });
        }
        let mut at = tasks.join_all().await;
        at.sort_unstable();
        at
    }

    fn per_second(at: &[u128]) -> Vec<usize> {
        let secs = at.last().map_or(0, |&t| t / 1000 + 1);
        (0..secs)
            .map(|s| at.iter().filter(|&&t| t / 1000 == s).count())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_ramps_by_the_step_each_second_in_clumps_at_the_tick() {
        // 600 rpm: start round(2.5) = 2 (ties to even), step 1, maximum 10.
        let limiter = RateLlmiter::new(600);
        let at = first_tickets(&limiter, 60).await;
        assert_eq!(per_second(&at), [2, 3, 4, 5, 6, 7, 8, 9, 10, 6]);
        assert!(
            at.iter().all(|t| t % 1000 == 0),
            "every ticket goes out on a tick: {at:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_minute_keeps_the_last_second_s_count_without_the_step() {
        // 6000 rpm: start 25, step 10, maximum 100. Two ticks before a minute ends:
        // 25, then 35 (+ step), then the minute's first bucket 35 (no step), then 45.
        let limiter = RateLlmiter::new(6000);
        limiter.state.lock().ticks = 58;
        let at = first_tickets(&limiter, 25 + 35 + 45).await;
        assert_eq!(per_second(&at), [25, 35, 35, 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_pauses_until_a_probe_gets_through_and_the_interval_never_resets() {
        let limiter = RateLlmiter::new(600);
        let probes = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        // The provider refuses until 30 s: probes at 10 s and 25 s (10 + 15) are
        // refused, the one at 47.5 s (+ 22.5) gets through.
        let call = |limiter: RateLlmiter, probes: Arc<AtomicU32>| async move {
            limiter
                .run(
                    || async {
                        if start.elapsed() < Duration::from_secs(30) {
                            Err(ApiError::RateLimited {
                                status: 429,
                                retry_after: Some(Duration::from_secs(1)),
                            })
                        } else {
                            Ok(start.elapsed())
                        }
                    },
                    move || {
                        let probes = probes.clone();
                        async move {
                            probes.fetch_add(1, Ordering::SeqCst);
                            start.elapsed() < Duration::from_secs(30)
                        }
                    },
                )
                .await
        };
        let done = call(limiter.clone(), probes.clone()).await.unwrap();
        assert_eq!(probes.load(Ordering::SeqCst), 3);
        // Released on the first tick after 47.5 s (a re-issue), then a new ticket in
        // the same second: retry-after (1 s) played no part.
        assert_eq!(done, Duration::from_secs(48));
        assert_eq!(
            limiter.state.lock().probe_interval,
            Duration::from_millis(22_500),
            "grown ×1.5 twice, and not reset to 10 s by the probe that got through"
        );
    }
}
