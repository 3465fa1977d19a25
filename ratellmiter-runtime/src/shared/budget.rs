//! A limiter's link to a shared budget: the requests it sends the store, what it
//! reports, and the local fallback while the store is unreachable. The limiter's driver
//! clears each ticket through it (`limiter/clearing.rs`); this module knows nothing of
//! the limiter.

use std::sync::Arc;
use std::time::Duration;

use super::{Report, SharedBackend, SharedError, SlotRequest};
use crate::config::{LimiterConfig, MAX_RPM};
use crate::pacer::{Issued, Outcome, Pacer};

/// A limiter's link to its shared store, kept in the limiter's state.
pub(crate) struct SharedBudget {
    pub(crate) backend: Arc<dyn SharedBackend>,
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

    /// `(configured, fallback)` rpm while the fallback is in force: the store is
    /// unreachable and the pacer still runs at the fallback rate (`pacer_rpm`), not at
    /// one the user set meanwhile.
    pub(crate) fn fallback(&self, pacer_rpm: u32) -> Option<(u32, u32)> {
        self.outage
            .as_ref()
            .filter(|o| o.local_rpm == pacer_rpm)
            .map(|o| (o.rpm, o.local_rpm))
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
    pub(crate) fn request(
        &mut self,
        pacer: &Pacer,
        now: Duration,
        cost: u64,
    ) -> Option<SlotRequest> {
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
    pub(crate) fn rejoin(&mut self, pacer: &mut Pacer, now: Duration, service: &str) {
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
    pub(crate) fn fall_back(
        &mut self,
        pacer: &mut Pacer,
        now: Duration,
        service: &str,
        e: &SharedError,
    ) {
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
