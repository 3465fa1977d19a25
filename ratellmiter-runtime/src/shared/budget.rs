//! A limiter's link to a shared budget: the requests it sends the store, the tickets the
//! store granted and what it reports of them, and the local fallback while the store is
//! unreachable. The limiter's driver clears each ticket through it
//! (`limiter/clearing.rs`); this module knows nothing of the limiter. It runs under the
//! limiter's lock and calls no backend: what it sends waits in `outbox` until the lock
//! is released.

use std::time::Duration;

use rustc_hash::FxHashMap;

use super::{Claim, Fallback, Grant, Report, SharedError, SharedTicket, SlotRequest};
use crate::config::{LimiterConfig, MAX_RPM, MAX_TPM};
use crate::pacer::{Cost, Issued, Outcome, Pacer, Usage, WaiterId};

/// A limiter's link to its shared store, kept in the limiter's state.
pub(crate) struct SharedBudget {
    /// The backend's fallback, asked once when sharing began (a backend is never
    /// called under the limiter's lock).
    fallback: Fallback,
    /// A ticket is clearing: the local pacer issues nothing else meanwhile, so the
    /// process never holds more than one reservation.
    clearing: bool,
    /// The store is unreachable: pacing is local, at the fallback rate.
    outage: Option<Outage>,
    /// The fleet's epoch as the store last said.
    epoch: Option<u64>,
    /// The epoch whose pause this process saw last (and learned from).
    paused_epoch: Option<u64>,
    /// Tickets the store granted whose calls have not ended.
    granted: FxHashMap<WaiterId, Granted>,
    /// Reports to send, in order, once the limiter's lock is released.
    outbox: Vec<Report>,
}

struct Granted {
    ticket: SharedTicket,
    used: Option<Cost>,
}

struct Outage {
    /// The shared rate, restored on rejoining.
    rpm: u32,
    /// The fallback rate put in force (left alone on rejoining if the user changed it).
    local_rpm: u32,
    /// When to ask the store again.
    retry_at: Duration,
}

/// What the clearing ticket does after the store's answer.
pub(crate) enum Next {
    /// Wait, then claim the slot.
    Claim(Duration),
    /// Wait, then ask for a slot again.
    Ask(Duration),
    /// Go now.
    Go,
    /// A daily quota of the fleet is spent until then (engine time): the call fails.
    Refuse(Duration),
}

impl SharedBudget {
    pub(crate) fn new(fallback: Fallback, pacer: &mut Pacer) -> Self {
        pacer.set_shared(true);
        Self {
            fallback,
            clearing: false,
            outage: None,
            epoch: None,
            paused_epoch: None,
            granted: FxHashMap::default(),
            outbox: Vec::new(),
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

    /// Whether reports wait to be sent.
    pub(crate) fn has_reports(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// The reports waiting to be sent, oldest first.
    pub(crate) fn take_outbox(&mut self) -> Vec<Report> {
        std::mem::take(&mut self.outbox)
    }

    /// The tokens ticket `t`'s call really used, settled with the store when it ends.
    pub(crate) fn record_usage(&mut self, t: &Issued, usage: Usage) {
        if let Some(g) = self.granted.get_mut(&t.id) {
            g.used = Some(usage.as_cost().clamp(MAX_TPM));
        }
    }

    /// Queues the report of how a ticket's call ended, when the store needs to know:
    /// rate limits, probes, leases and usage that differs from the charge (a plain
    /// success costs no round trip).
    pub(crate) fn finished(&mut self, t: &Issued, outcome: Outcome, cfg: &LimiterConfig) {
        let Some(g) = self.granted.remove(&t.id) else {
            return; // paced locally during an outage
        };
        let charged = charged(t);
        let tokens_counted = cfg.tpm.is_some()
            || cfg.input_tpm.is_some()
            || cfg.output_tpm.is_some()
            || cfg.tpd.is_some();
        let settles = g.used.is_some_and(|u| u != charged) && tokens_counted;
        let needed = matches!(outcome, Outcome::RateLimited { .. })
            || g.ticket.probe
            || g.ticket.lease
            || settles;
        if needed {
            self.outbox.push(Report {
                ticket: g.ticket,
                outcome,
                charged,
                used: g.used,
                config: cfg.clone(),
            });
        }
    }

    /// The request for the next slot, or `None` while the store is down and not due
    /// to be asked again (the ticket then goes out at once, paced locally).
    pub(crate) fn request(
        &mut self,
        pacer: &Pacer,
        now: Duration,
        t: &Issued,
        waited: Duration,
    ) -> Option<SlotRequest> {
        if let Some(o) = &mut self.outage {
            if now < o.retry_at {
                return None;
            }
            o.retry_at = now + self.fallback.retry_every;
        }
        let mut config = pacer.config().clone();
        if let Some(o) = &self.outage {
            config.rpm = o.rpm;
        }
        let full_rate = f64::from(config.rpm) / 60.0;
        let learned = pacer.learned_rate(now);
        // During an outage the local ceiling is the fallback, not something learned.
        let learned_interval = (self.outage.is_none() && learned < full_rate * 0.999)
            .then(|| Duration::from_secs_f64(1.0 / learned));
        Some(SlotRequest {
            config,
            learned_interval,
            waited,
            cost: charged(t),
        })
    }

    /// Applies the store's answer for ticket `t`: what to do next.
    pub(crate) fn answer(
        &mut self,
        pacer: &mut Pacer,
        now: Duration,
        service: &str,
        t: &mut Issued,
        answer: Result<Grant, SharedError>,
        wall_origin: Duration,
    ) -> Next {
        let grant = match answer {
            Ok(grant) => {
                self.rejoin(pacer, now, service);
                grant
            }
            Err(e) => {
                self.fall_back(pacer, now, service, &e);
                return Next::Go;
            }
        };
        match grant {
            Grant::Slot {
                wait, ticket, rate, ..
            } => {
                if self.epoch.is_some_and(|e| ticket.epoch > e) {
                    // The fleet resumed: tickets this process sent before are stale.
                    pacer.shared_resumed(now);
                }
                self.epoch = Some(self.epoch.unwrap_or(0).max(ticket.epoch));
                pacer.observe_fleet_rate(rate);
                t.probe |= ticket.probe;
                // The ticket belongs to the epoch the store granted it in.
                t.epoch = pacer.epoch();
                self.granted.insert(t.id, Granted { ticket, used: None });
                if wait.is_zero() {
                    Next::Go
                } else {
                    Next::Claim(wait)
                }
            }
            Grant::Paused { wait, epoch } => {
                if self.paused_epoch != Some(epoch) {
                    // A pause of the fleet teaches each process once.
                    self.paused_epoch = Some(epoch);
                    pacer.fleet_paused(now);
                }
                // Hold the local calls through the fleet's pause.
                pacer.hold_shared(now, now + wait);
                Next::Ask(wait)
            }
            Grant::AtCapacity { wait } => Next::Ask(wait),
            Grant::QuotaExhausted { resets_at } => {
                let resets_at = resets_at.saturating_sub(wall_origin);
                if t.deadline.is_some_and(|d| d >= resets_at) {
                    Next::Ask(resets_at.saturating_sub(now))
                } else {
                    Next::Refuse(resets_at)
                }
            }
        }
    }

    /// The claim was answered: go, or wait and claim again. A store that stopped
    /// answering lets the ticket go (its slot was reserved).
    pub(crate) fn claimed(
        &mut self,
        pacer: &mut Pacer,
        now: Duration,
        service: &str,
        answer: Result<Claim, SharedError>,
    ) -> Next {
        match answer {
            Ok(Claim::Wait(wait)) => Next::Claim(wait),
            Ok(Claim::Went { .. }) => Next::Go,
            Err(e) => {
                self.fall_back(pacer, now, service, &e);
                Next::Go
            }
        }
    }

    /// The store answered: leave the fallback if it was in force.
    fn rejoin(&mut self, pacer: &mut Pacer, now: Duration, service: &str) {
        if let Some(o) = self.outage.take() {
            if pacer.config().rpm == o.local_rpm {
                // Cannot fail: `o.rpm` was the limiter's valid rate before the outage.
                let _ = pacer.set_rpm(now, o.rpm);
            }
            pacer.set_shared(true);
            tracing::info!(
                service,
                rpm = o.rpm,
                "shared rate-limit store reachable again: rejoined the shared budget"
            );
        }
    }

    /// The store did not answer: pace locally at the fallback rate (with the local
    /// ramp, pause and probe), warning once per outage.
    fn fall_back(&mut self, pacer: &mut Pacer, now: Duration, service: &str, e: &SharedError) {
        let fallback = self.fallback;
        if self.outage.is_none() {
            let rpm = pacer.config().rpm;
            let local_rpm = fallback.local_rpm(rpm).clamp(1, MAX_RPM);
            if local_rpm != rpm {
                // Cannot fail: clamped into the accepted range above.
                let _ = pacer.set_rpm(now, local_rpm);
            }
            pacer.set_shared(false);
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

/// What ticket `t` was charged, as a [`Cost`] with the same charges by kind.
fn charged(t: &Issued) -> Cost {
    Cost {
        tokens: t.cost,
        input: t.input,
        output: t.output,
    }
}
