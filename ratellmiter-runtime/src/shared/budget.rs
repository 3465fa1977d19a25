//! The driver's side of a shared budget: [`Clearing`] a ticket with the store before it
//! goes out, and the local fallback while the store is unreachable.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::{Grant, Report, SharedBackend, SharedError, SlotRequest};
use crate::config::{LimiterConfig, MAX_RPM};
use crate::limiter::{BucketRateLimiter, Shared, block_on};
use crate::pacer::{Issued, Outcome, Pacer};
use crate::rate_limit::BoxFuture;

/// A limiter's link to its shared store, kept in the limiter's state.
pub(crate) struct SharedBudget {
    backend: Arc<dyn SharedBackend>,
    /// A ticket is clearing: the local pacer issues nothing else meanwhile, so the
    /// process never holds more than one reservation.
    clearing: bool,
    /// The store is unreachable: pacing is local, at the fallback rate.
    outage: Option<Outage>,
}

struct Outage {
    /// The shared rate, restored on rejoining.
    rpm: u32,
    /// The fallback rate put in force (left alone on rejoining if the user changed it).
    local_rpm: u32,
    /// When to ask the store again.
    retry_at: Duration,
}

impl SharedBudget {
    pub(crate) fn new(backend: Arc<dyn SharedBackend>) -> Self {
        Self {
            backend,
            clearing: false,
            outage: None,
        }
    }

    /// Whether a ticket is clearing now (the local pacer must not issue).
    pub(crate) fn is_clearing(&self) -> bool {
        self.clearing
    }

    /// The local pacer just issued a ticket, which clears before anything else issues.
    pub(crate) fn start_clearing(&mut self) {
        self.clearing = true;
    }

    /// The clearing ticket was handed over or given back: the next may issue.
    pub(crate) fn end_clearing(&mut self) {
        self.clearing = false;
    }

    /// Tells the other processes how a ticket's call ended, when they need to know:
    /// rate limits and the ends of probes (a successful normal call costs no round trip).
    pub(crate) fn report(&self, t: &Issued, outcome: Outcome, cfg: &LimiterConfig) {
        let report = match outcome {
            Outcome::RateLimited { retry_after } => Report::RateLimited {
                retry_after,
                probe_initial: cfg.probe_initial,
                probe_factor: cfg.probe_factor,
                probe_max: cfg.probe_max,
            },
            Outcome::Success | Outcome::Error if t.probe => Report::ProbeSucceeded,
            Outcome::Abandoned if t.probe => Report::ProbeAbandoned,
            Outcome::Success | Outcome::Error | Outcome::Abandoned => return,
        };
        self.backend.report(report);
    }

    /// The request for the next slot, or `None` while the store is down and not due
    /// to be asked again (the ticket then goes out at once, paced locally).
    fn request(&mut self, pacer: &Pacer, now: Duration, cost: u64) -> Option<SlotRequest> {
        if let Some(o) = &mut self.outage {
            if now < o.retry_at {
                return None;
            }
            o.retry_at = now + self.backend.fallback().retry_every;
        }
        let cfg = pacer.config();
        let rpm = self.outage.as_ref().map_or(cfg.rpm, |o| o.rpm);
        let full_rate = f64::from(rpm) / 60.0;
        let learned = pacer.learned_rate(now);
        // During an outage the local ceiling is the fallback, not something learned.
        let learned_interval = (self.outage.is_none() && learned < full_rate * 0.999)
            .then(|| Duration::from_secs_f64(1.0 / learned));
        Some(SlotRequest {
            interval: Duration::from_nanos(60_000_000_000u64.div_ceil(u64::from(rpm))),
            learned_interval,
            cost,
            tpm: cfg.tpm,
        })
    }

    /// The store answered: leave the fallback if it was in force.
    fn rejoin(&mut self, pacer: &mut Pacer, now: Duration, service: &str) {
        if let Some(o) = self.outage.take() {
            if pacer.config().rpm == o.local_rpm {
                // Cannot fail: `o.rpm` was the limiter's valid rate before the outage.
                let _ = pacer.set_rpm(now, o.rpm);
            }
            tracing::info!(
                service,
                rpm = o.rpm,
                "shared rate-limit store reachable again: rejoined the shared budget"
            );
        }
    }

    /// The store did not answer: pace locally at the fallback rate, warning once per outage.
    fn fall_back(&mut self, pacer: &mut Pacer, now: Duration, service: &str, e: &SharedError) {
        let fallback = self.backend.fallback();
        if self.outage.is_none() {
            let rpm = pacer.config().rpm;
            let local_rpm = fallback.local_rpm(rpm).clamp(1, MAX_RPM);
            if local_rpm != rpm {
                // Cannot fail: clamped into the accepted range above.
                let _ = pacer.set_rpm(now, local_rpm);
            }
            tracing::warn!(
                service,
                error = %e,
                local_rpm,
                "shared rate-limit store unreachable: pacing this process alone until it answers"
            );
            self.outage = Some(Outage {
                rpm,
                local_rpm,
                retry_at: Duration::ZERO,
            });
        }
        if let Some(o) = &mut self.outage {
            o.retry_at = now + fallback.retry_every;
        }
    }
}

/// A ticket the local pacer issued, on its way through the shared store: it asks for
/// a slot, waits for it (or through a shared pause, asking again), then is handed over.
/// Dropping it before then gives the ticket back unused.
pub(crate) struct Clearing {
    shared: Arc<Shared>,
    ticket: Option<Issued>,
    started: Instant,
    asking: Option<BoxFuture<'static, Result<Grant, SharedError>>>,
    /// After an answer: when to go (`true`) or to ask again (`false`).
    then: Option<(Instant, bool)>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Clearing {
    pub(crate) fn new(shared: Arc<Shared>, ticket: Issued) -> Self {
        Self {
            shared,
            ticket: Some(ticket),
            started: Instant::now(),
            asking: None,
            then: None,
            sleep: None,
        }
    }

    /// Drives the clearing on an async runtime; ready with the ticket to hand over.
    pub(crate) fn poll_clear(&mut self, cx: &mut Context<'_>) -> Poll<Issued> {
        loop {
            if let Some(asking) = &mut self.asking {
                let Poll::Ready(answer) = asking.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                self.asking = None;
                let (wait, go) = self.answer(answer);
                self.then = Some((Instant::now() + wait, go));
            }
            let Some((at, go)) = self.then else {
                match self.ask() {
                    Some(asking) => self.asking = Some(asking),
                    None => return Poll::Ready(self.hand_over()),
                }
                continue;
            };
            // A slot that is due now goes at once: a timer would round up to its next
            // millisecond tick, a delay on every ticket of a saturated schedule.
            if Instant::now() < at {
                let sleep = match &mut self.sleep {
                    Some(s) => {
                        if s.deadline() != at {
                            s.as_mut().reset(at);
                        }
                        s
                    }
                    None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            self.then = None;
            if go {
                return Poll::Ready(self.hand_over());
            }
        }
    }

    /// Drives the clearing on a blocking thread (the store's I/O runs on its own thread).
    pub(crate) fn clear_blocking(mut self) -> Issued {
        loop {
            let Some(asking) = self.ask() else {
                return self.hand_over();
            };
            let (wait, go) = self.answer(block_on(asking));
            std::thread::sleep(wait);
            if go {
                return self.hand_over();
            }
        }
    }

    fn ask(&mut self) -> Option<BoxFuture<'static, Result<Grant, SharedError>>> {
        let now = self.shared.now();
        let cost = self.ticket.map_or(0, |t| t.cost);
        let mut st = self.shared.state.lock();
        let st = &mut *st;
        let budget = st.budget.as_mut()?;
        let request = budget.request(&st.pacer, now, cost)?;
        Some(budget.backend.reserve(request))
    }

    /// Applies the store's answer; says how long to wait and whether to go afterwards.
    fn answer(&mut self, answer: Result<Grant, SharedError>) -> (Duration, bool) {
        let now = self.shared.now();
        let handle = BucketRateLimiter {
            shared: self.shared.clone(),
        };
        let service = handle.name();
        let mut st = self.shared.state.lock();
        let st = &mut *st;
        let Some(budget) = st.budget.as_mut() else {
            return (Duration::ZERO, true);
        };
        match answer {
            Ok(Grant::Slot { wait, probe, .. }) => {
                budget.rejoin(&mut st.pacer, now, service);
                if let Some(t) = &mut self.ticket {
                    t.probe |= probe;
                }
                (wait, true)
            }
            Ok(Grant::Paused { wait }) => {
                budget.rejoin(&mut st.pacer, now, service);
                // Hold the local pacer through the shared pause, so that it restarts
                // its ramp when the pause ends, as after any hold.
                st.pacer.hold_shared(now, now + wait);
                (wait, false)
            }
            Err(e) => {
                budget.fall_back(&mut st.pacer, now, service, &e);
                (Duration::ZERO, true)
            }
        }
    }

    fn hand_over(&mut self) -> Issued {
        let mut t = self
            .ticket
            .take()
            .expect("a clearing ticket is handed over once");
        t.waited += self.started.elapsed();
        self.end_clearing();
        t
    }

    fn end_clearing(&self) {
        let mut st = self.shared.state.lock();
        if let Some(b) = &mut st.budget {
            b.end_clearing();
        }
        st.kick();
    }
}

impl Drop for Clearing {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.end_clearing();
            self.shared.finish(&t, Outcome::Abandoned);
        }
    }
}
