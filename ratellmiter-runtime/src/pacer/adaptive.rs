//! The learned ceiling on the rate: CUBIC, as in the AWS SDKs' adaptive retry mode.
//!
//! A rate-limit episode at rate `w` drops the ceiling to `BETA × w`; from then on the
//! ceiling follows `C·(t − K)³ + w`, which climbs fast at first, flattens out around `w`
//! (where the server last refused us) and then probes beyond it, back up to the
//! configured rate. `K = ∛(w·(1 − BETA)/C)` is the time the curve takes to get back to `w`.

use std::time::Duration;

/// Share of the rate kept after an episode (0.9: a limiter configured 10 % too high
/// learns a rate just under the server's, instead of 15 % under it).
pub(crate) const BETA: f64 = 0.9;
/// Growth constant, as a share of the configured rate per second³: back at `w` after
/// about 20 s when `w` is half the configured rate.
pub(crate) const CUBIC_C: f64 = 1e-5;
/// The ceiling never drops below this share of the configured rate.
pub(crate) const FLOOR: f64 = 0.01;
/// An episode confirms an earlier one at a rate at most this much higher.
pub(crate) const REPEAT_SHARE: f64 = 1.25;
/// An episode confirms an earlier one this long after it at most.
pub(crate) const REPEAT_WINDOW: Duration = Duration::from_secs(60);
/// An episode at this share of the learned ceiling or above lowers it at once.
pub(crate) const AT_CEILING: f64 = 0.8;

#[derive(Debug, Clone)]
pub(crate) struct Adaptive {
    full: f64,
    w_max: f64,
    k: f64,
    last_throttle: Option<Duration>,
    /// The last episode that did not lower the ceiling: (when, at what rate).
    suspect: Option<(Duration, f64)>,
}

impl Adaptive {
    pub(crate) fn new(full: f64) -> Self {
        Self {
            full,
            w_max: full,
            k: 0.0,
            last_throttle: None,
            suspect: None,
        }
    }

    /// The highest rate (tickets per second) the learned limit allows at `now`.
    pub(crate) fn ceiling(&self, now: Duration) -> f64 {
        let Some(t0) = self.last_throttle else {
            return self.full;
        };
        let dt = now.saturating_sub(t0).as_secs_f64() - self.k;
        let c = CUBIC_C * self.full;
        (c * dt * dt * dt + self.w_max).clamp(FLOOR * self.full, self.full)
    }

    /// A rate-limit episode while issuing at `rate`; true when it lowered the ceiling.
    pub(crate) fn on_throttle(&mut self, now: Duration, rate: f64) -> bool {
        let confirms = self.suspect.is_some_and(|(at, r)| {
            now.saturating_sub(at) <= REPEAT_WINDOW && rate <= r * REPEAT_SHARE
        });
        let at_ceiling = self.last_throttle.is_some() && rate >= AT_CEILING * self.ceiling(now);
        if !(confirms || at_ceiling) {
            self.suspect = Some((now, rate));
            return false;
        }
        self.suspect = None;
        self.w_max = rate.clamp(FLOOR * self.full, self.full);
        self.k = (self.w_max * (1.0 - BETA) / (CUBIC_C * self.full)).cbrt();
        self.last_throttle = Some(now);
        true
    }

    /// Issuing resumed after a pause: a pause teaches nothing about the server's rate,
    /// so the curve's clock restarts here, at the ceiling it had when the pause began.
    pub(crate) fn on_resume(&mut self, paused_at: Duration, now: Duration) {
        if let Some(t0) = self.last_throttle
            && t0 >= paused_at
        {
            self.last_throttle = Some(now);
        }
    }

    /// The configured rate changed: keep the learned shape, scaled to the new rate.
    /// `K` stays: it depends on `w / full` only, which scaling both leaves as it was.
    pub(crate) fn rescale(&mut self, full: f64) {
        self.w_max *= full / self.full;
        self.full = full;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_or_unrelated_episodes_teach_nothing() {
        let mut a = Adaptive::new(10.0);
        assert!(
            !a.on_throttle(S(0), 3.0),
            "a ramp tripping an acceleration limit"
        );
        assert!(
            !a.on_throttle(S(10), 9.0),
            "a different rate is no confirmation"
        );
        assert!(!a.on_throttle(S(200), 9.0), "too long after to confirm");
        assert_eq!(a.ceiling(S(200)), 10.0);
    }

    #[test]
    fn once_learned_an_episode_at_the_ceiling_lowers_it_at_once() {
        let mut a = Adaptive::new(10.0);
        a.on_throttle(S(0), 6.0);
        a.on_throttle(S(5), 6.0);
        let top = a.ceiling(S(60));
        assert!(top > 6.0);
        assert!(a.on_throttle(S(60), top));
        assert!((a.ceiling(S(60)) - BETA * top).abs() < 1e-9);
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn untouched_ceiling_is_the_configured_rate() {
        assert_eq!(Adaptive::new(10.0).ceiling(S(1000)), 10.0);
    }

    #[test]
    fn an_episode_keeps_beta_and_the_curve_returns_to_w_after_k() {
        let mut a = Adaptive::new(10.0);
        assert!(
            !a.on_throttle(S(95), 5.1),
            "a first episode is only a suspect"
        );
        assert_eq!(a.ceiling(S(95)), 10.0);
        assert!(
            a.on_throttle(S(100), 5.0),
            "refused again at about the same rate"
        );
        let low = BETA * 5.0;
        assert!((a.ceiling(S(100)) - low).abs() < 1e-9);
        let k = (5.0 * (1.0 - BETA) / (CUBIC_C * 10.0)).cbrt();
        assert!((17.0..18.0).contains(&k), "K = {k}");
        let at_k = a.ceiling(S(100) + Duration::from_secs_f64(k));
        assert!((at_k - 5.0).abs() < 1e-9);
        // Concave below w: more than half-way back after a third of K.
        assert!(a.ceiling(S(100) + Duration::from_secs_f64(k / 3.0)) > low + (5.0 - low) / 2.0);
        // Convex beyond: back at the configured rate a little after 2K.
        assert_eq!(a.ceiling(S(100 + 60)), 10.0);
    }

    #[test]
    fn a_pause_does_not_count_as_calm() {
        let mut a = Adaptive::new(10.0);
        a.on_throttle(S(0), 10.0);
        a.on_throttle(S(1), 10.0); // learned at BETA × 10, then a 30 s pause
        a.on_resume(S(1), S(31));
        assert!(
            (a.ceiling(S(31)) - BETA * 10.0).abs() < 1e-9,
            "the curve starts at the resume"
        );
        a.on_resume(S(80), S(90)); // a later pause without an episode moves nothing
        assert!(a.ceiling(S(90)) > BETA * 10.0);
    }

    #[test]
    fn a_new_configured_rate_scales_the_learned_curve() {
        let mut a = Adaptive::new(10.0);
        a.on_throttle(S(0), 5.0);
        a.on_throttle(S(1), 5.0);
        let k = (5.0 * (1.0 - BETA) / (CUBIC_C * 10.0)).cbrt();
        a.rescale(20.0);
        assert!(
            (a.ceiling(S(1)) - BETA * 10.0).abs() < 1e-9,
            "BETA × the doubled w"
        );
        let at_k = a.ceiling(S(1) + Duration::from_secs_f64(k));
        assert!(
            (at_k - 10.0).abs() < 1e-9,
            "back at w after the same K: {at_k}"
        );
        assert_eq!(a.ceiling(S(1 + 60)), 20.0, "then up to the new rate");
        let mut fresh = Adaptive::new(10.0);
        fresh.rescale(20.0);
        assert_eq!(fresh.ceiling(S(0)), 20.0, "nothing learned: the new rate");
    }

    /// The bounds of a confirmation: a rate at most REPEAT_SHARE × the suspect's, and,
    /// once a ceiling is learned, an episode at AT_CEILING × it or above.
    #[test]
    fn confirmation_bounds_are_the_documented_shares() {
        let within = |rate| {
            let mut a = Adaptive::new(10.0);
            a.on_throttle(S(0), 4.0);
            a.on_throttle(S(30), rate)
        };
        assert!(within(4.9), "4.9 ≤ 1.25 × 4");
        assert!(!within(5.1), "5.1 > 1.25 × 4");
        let near_ceiling = |share: f64| {
            let mut a = Adaptive::new(10.0);
            a.on_throttle(S(0), 6.0);
            a.on_throttle(S(1), 6.0);
            let top = a.ceiling(S(300));
            a.on_throttle(S(300), share * top)
        };
        assert!(near_ceiling(0.81), "at 81 % of the ceiling");
        assert!(!near_ceiling(0.79), "below 80 %: only a suspect");
    }

    #[test]
    fn the_floor_holds() {
        let mut a = Adaptive::new(10.0);
        a.on_throttle(S(0), 0.0);
        a.on_throttle(S(1), 0.0);
        assert!((a.ceiling(S(1)) - 0.1).abs() < 1e-9);
    }
}
