//! The ramp: the rate tickets go out at, from its start up to the ceiling (the
//! configured rate, or below it the adaptive limit's learned one). The rules are the
//! module docs' "Ramp"; the ramp is a function of the schedule's recent history, which
//! the engine passes in.

use std::time::Duration;

use super::adaptive::Adaptive;
use crate::config::{LimiterConfig, RampShape};

/// Share of the full rate per second the slow start climbs by once a refusal ended its
/// doubling (rateLLMiter's step).
pub(crate) const AVOIDANCE_STEP: f64 = 0.10;

/// A refusal after the last second's tickets came to this many times the average second
/// of the two before teaches the adaptive limit nothing: acceleration limits refuse
/// jumps, not rates.
const JUMP: f64 = 2.0;

#[derive(Debug, Clone)]
pub(super) struct Ramp {
    shape: RampShape,
    /// Where the ramp starts, as a share of the full rate.
    start: f64,
    /// How fast it grows (see [`RampShape`]).
    step: f64,
    /// The configured rate, tickets per second.
    full_rate: f64,
    /// The rate in force, tickets per second.
    rate: f64,
    /// No growth counts before this (a resume, a hold).
    from: Duration,
    /// The slow start doubles (no refusal since demand last jumped).
    doubling: bool,
    /// The learned ceiling, with `adaptive` on.
    adaptive: Option<Adaptive>,
    /// The budget is shared: the store ramps for the fleet (see [`crate::shared`]) and
    /// this ramp stays at the ceiling.
    shared: bool,
    /// The fleet's rate in force, as the store last said.
    fleet_rate: Option<f64>,
}

impl Ramp {
    pub(super) fn new(cfg: &LimiterConfig) -> Self {
        let full_rate = cfg.rpm as f64 / 60.0;
        Self {
            shape: cfg.ramp_shape,
            start: cfg.ramp_start,
            step: cfg.ramp_step,
            full_rate,
            rate: cfg.ramp_start * full_rate,
            from: Duration::ZERO,
            doubling: true,
            adaptive: cfg.adaptive.then(|| Adaptive::new(full_rate)),
            shared: false,
            fleet_rate: None,
        }
    }

    /// Whether the store ramps instead (a shared budget).
    pub(super) fn is_shared(&self) -> bool {
        self.shared
    }

    /// Leaves the ramp to a shared store (`on`), or takes it back (the store is
    /// unreachable): from the ceiling either way.
    pub(super) fn set_shared(&mut self, now: Duration, on: bool) {
        self.shared = on;
        self.rate = self.ceiling(now);
    }

    /// The store said the fleet's rate in force.
    pub(super) fn observe_fleet(&mut self, rate: f64) {
        self.fleet_rate = Some(rate);
    }

    /// The rate tickets are allowed at now: this ramp's, or the fleet's when shared.
    pub(super) fn allowed(&self) -> f64 {
        match self.fleet_rate {
            Some(r) if self.shared => r,
            _ => self.rate,
        }
    }

    /// The adaptive limit hears of a resume at `now` after a pause from `paused_at`.
    pub(super) fn on_resume(&mut self, paused_at: Duration, now: Duration) {
        if let Some(a) = &mut self.adaptive {
            a.on_resume(paused_at, now);
        }
    }

    /// The configured rate, tickets per second.
    pub(super) fn full_rate(&self) -> f64 {
        self.full_rate
    }

    /// The rate in force as a share of the full rate: the token budgets' pace follows it.
    pub(super) fn share(&self) -> f64 {
        self.rate / self.full_rate
    }

    /// The highest rate allowed at `now`.
    pub(super) fn ceiling(&self, now: Duration) -> f64 {
        match &self.adaptive {
            Some(a) => a.ceiling(now).min(self.full_rate),
            None => self.full_rate,
        }
    }

    /// Grows while calls wait for their slot, falls back to the observed rate plus a
    /// step when they do not, never below the start. A ticket goes out at `slot` for a
    /// call that arrived at `enqueued`; the ticket before had its slot at `last_slot`,
    /// and the schedule had this one due at `due`.
    pub(super) fn update(
        &mut self,
        slot: Duration,
        enqueued: Duration,
        last_slot: Option<Duration>,
        due: Duration,
    ) {
        if self.shared {
            self.rate = self.ceiling(slot);
            return;
        }
        let start = self.start * self.full_rate;
        let step = self.step;
        let since = last_slot.map(|l| l.max(self.from));
        self.rate = match since {
            Some(since) if enqueued <= due.max(since) => {
                let dt = slot.saturating_sub(since).as_secs_f64();
                match self.shape {
                    RampShape::SlowStart if self.doubling => self.rate * (1.0 + step).powf(dt),
                    RampShape::SlowStart => self.rate + AVOIDANCE_STEP * self.full_rate * dt,
                    RampShape::Linear => self.rate + step * self.full_rate * dt,
                }
            }
            Some(since) => {
                // Demand fell below the rate: the next jump starts a slow start again.
                self.doubling = true;
                // A gap of zero sees an infinite rate, and the rate in force stays.
                let seen = 1.0 / slot.saturating_sub(since).as_secs_f64();
                self.rate.min(match self.shape {
                    RampShape::SlowStart => seen * (1.0 + step),
                    RampShape::Linear => seen + step * self.full_rate,
                })
            }
            None => start,
        };
        let cap = self.ceiling(slot);
        self.rate = self.rate.max(start.min(cap)).min(cap);
    }

    /// Spacing after a ticket at the current rate; never shorter than `full` (`60 / rpm`),
    /// so the window bounds hold whatever the float arithmetic does.
    pub(super) fn interval(&self, full: Duration) -> Duration {
        if self.rate >= self.full_rate {
            full
        } else {
            let nanos = (1e9 / self.rate).ceil();
            Duration::from_nanos(nanos.min(u64::MAX as f64) as u64).max(full)
        }
    }

    /// A rate limit paused issuing at `now`, after the traffic grew by `growth` (see
    /// `Schedule::growth`): the slow start stops doubling. Returns the ceiling the
    /// adaptive limit learned, if the refusal lowered it.
    pub(super) fn refused(&mut self, now: Duration, growth: f64) -> Option<f64> {
        self.doubling = false;
        let rate = self.allowed();
        // After a sharp jump the refusal may be an acceleration limit's: it says nothing
        // about the rate the server accepts.
        let jumped = growth >= JUMP;
        let a = self.adaptive.as_mut().filter(|_| !jumped)?;
        a.on_throttle(now, rate).then(|| a.ceiling(now))
    }

    /// Issuing resumes at `now` after a pause that began at `paused_at`. After a
    /// momentary excess (`short`: the first probe succeeded) the slow start goes on at
    /// the rate in force, within the ceiling: the server was accepting it. Otherwise an
    /// outage: the ramp starts again.
    pub(super) fn resume(&mut self, paused_at: Duration, now: Duration, short: bool) {
        self.on_resume(paused_at, now);
        if short && self.shape == RampShape::SlowStart {
            self.rate = self.rate.min(self.ceiling(now));
        } else {
            self.doubling = true;
            let start = self.start * self.full_rate;
            self.rate = start.min(self.ceiling(now));
        }
        self.from = now;
    }

    /// A hold lasts until `until`: the rate in force goes on after it, and no growth
    /// counts during it.
    pub(super) fn hold(&mut self, until: Duration) {
        self.from = self.from.max(until);
    }

    /// A hold was lifted at `now`, early: growth counts from then.
    pub(super) fn lift(&mut self, now: Duration) {
        self.from = self.from.min(now);
    }

    /// A new configured rate from `now` on: a higher one is reached through the ramp, a
    /// lower one takes effect at once.
    pub(super) fn set_full_rate(&mut self, now: Duration, full_rate: f64) {
        self.full_rate = full_rate;
        if let Some(a) = &mut self.adaptive {
            a.rescale(full_rate);
        }
        self.rate = self.rate.min(self.ceiling(now));
    }
}

#[cfg(test)]
mod tests {
    use super::super::adaptive::BETA;
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// 600 rpm (10 a second) at the full rate, its ramp starting at 2.2 or 2.5 a second.
    fn at_full(cfg: LimiterConfig) -> Ramp {
        let mut r = Ramp::new(&LimiterConfig { rpm: 600, ..cfg });
        r.rate = r.full_rate;
        r
    }

    #[test]
    fn a_fall_in_demand_brings_the_rate_down_to_what_was_seen_plus_a_step() {
        // A call arriving 250 ms after the last slot, 150 ms after its own was due:
        // 4 a second was seen.
        let seen = |cfg| {
            let mut r = at_full(cfg);
            r.doubling = false;
            r.update(ms(10_250), ms(10_250), Some(ms(10_000)), ms(10_100));
            assert!(r.doubling, "the next jump starts a slow start again");
            r.rate
        };
        assert_eq!(
            seen(LimiterConfig::default()),
            8.0,
            "slow start: 4 × (1 + 1.0)"
        );
        assert_eq!(
            seen(LimiterConfig::ratellmiter()),
            5.0,
            "linear: 4 + 0.10 × 10"
        );
    }

    #[test]
    fn the_share_is_the_rate_in_force_over_the_full_rate() {
        let r = Ramp::new(&LimiterConfig {
            rpm: 600,
            ..LimiterConfig::default()
        });
        assert!((r.share() - 0.22).abs() < 1e-12, "{}", r.share());
    }

    #[test]
    fn growth_counts_from_an_early_lift_not_from_the_end_of_the_hold() {
        let mut r = at_full(LimiterConfig::default());
        r.rate = 2.5;
        r.hold(ms(20_000));
        r.lift(ms(12_000));
        // Waiting calls: a second of growth since the lift doubles the rate.
        r.update(ms(13_000), ms(5_000), Some(ms(10_000)), ms(13_000));
        assert_eq!(r.rate, 5.0);
    }

    #[test]
    fn a_pause_restarts_the_learned_curve_at_the_resume() {
        let mut r = at_full(LimiterConfig::default());
        let s = Duration::from_secs;
        assert_eq!(r.refused(s(0), 1.0), None, "a first refusal is a suspect");
        let learned = r.refused(s(1), 1.0).expect("confirmed at the same rate");
        assert!((learned - BETA * 10.0).abs() < 1e-9);
        r.resume(s(1), s(31), false);
        assert!(
            (r.ceiling(s(31)) - BETA * 10.0).abs() < 1e-9,
            "30 s of pause are not 30 s of calm: {}",
            r.ceiling(s(31))
        );
    }
}
