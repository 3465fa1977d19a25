//! A daily quota (requests or tokens per day): a count, not a pace, that starts again at
//! the provider's day boundary or 24 h after each use.
//!
//! The engine reads no clock, so it is told once where engine time zero falls on the
//! wall clock ([`Daily::new`]'s `wall_origin`, seconds since the UNIX epoch): a midnight
//! in a zone `utc_offset_secs` east of UTC is then a fixed engine time. A daily quota
//! spent at 10:00 is not spread over the hours left: the calls that fit go out at the
//! per-minute pace, and the next fails at once (the engine says when the quota returns).

use std::collections::VecDeque;
use std::time::Duration;

use super::WaiterId;
use crate::config::DayReset;

const DAY: Duration = Duration::from_secs(86_400);
const DAY_NANOS: i128 = 86_400_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct Daily {
    limit: u64,
    used: u64,
    window: Window,
}

#[derive(Debug, Clone)]
enum Window {
    /// Everything comes back at `next_reset`; `phase` is the engine time of a midnight,
    /// modulo a day (signed nanoseconds).
    Fixed { phase: i128, next_reset: Duration },
    /// Each use comes back a day after it was made.
    Rolling { log: VecDeque<Use> },
}

#[derive(Debug, Clone, Copy)]
struct Use {
    at: Duration,
    id: WaiterId,
    amount: u64,
}

impl Daily {
    /// A quota of `limit` a day; engine time zero is `wall_origin` after the UNIX epoch.
    pub(crate) fn new(limit: u64, reset: DayReset, wall_origin: Duration) -> Self {
        let window = match reset {
            DayReset::Rolling => Window::Rolling {
                log: VecDeque::new(),
            },
            DayReset::Midnight { utc_offset_secs } => {
                // Local time at engine time t is wall_origin + offset + t; midnights fall
                // where that is a whole number of days.
                let local0 =
                    wall_origin.as_nanos() as i128 + utc_offset_secs as i128 * 1_000_000_000;
                let phase = (-local0).rem_euclid(DAY_NANOS);
                Window::Fixed {
                    phase,
                    next_reset: from_nanos(phase),
                }
            }
        };
        Self {
            limit,
            used: 0,
            window,
        }
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    pub(crate) fn set_limit(&mut self, limit: u64) {
        self.limit = limit;
    }

    /// Forgets what came back by `now`.
    fn roll(&mut self, now: Duration) {
        match &mut self.window {
            Window::Fixed { phase, next_reset } => {
                if now >= *next_reset {
                    self.used = 0;
                    let days = (now.as_nanos() as i128 - *phase).div_euclid(DAY_NANOS) + 1;
                    *next_reset = from_nanos(*phase + days * DAY_NANOS);
                }
            }
            Window::Rolling { log } => {
                while let Some(u) = log.front() {
                    if u.at + DAY > now {
                        break;
                    }
                    self.used -= u.amount;
                    log.pop_front();
                }
            }
        }
    }

    /// `Duration::ZERO` when `amount` fits today, else when enough of the quota is back.
    pub(crate) fn ready_at(&mut self, now: Duration, amount: u64) -> Duration {
        self.roll(now);
        let mut excess = (self.used + amount).saturating_sub(self.limit);
        if excess == 0 {
            return Duration::ZERO;
        }
        match &self.window {
            Window::Fixed { next_reset, .. } => *next_reset,
            Window::Rolling { log } => {
                let mut at = now;
                for u in log {
                    if excess == 0 {
                        break;
                    }
                    excess = excess.saturating_sub(u.amount);
                    at = u.at + DAY;
                }
                at
            }
        }
    }

    /// Counts `amount` used at `now` by ticket `id`.
    pub(crate) fn charge(&mut self, now: Duration, id: WaiterId, amount: u64) {
        self.roll(now);
        self.used += amount;
        if let Window::Rolling { log } = &mut self.window {
            log.push_back(Use {
                at: now,
                id,
                amount,
            });
        }
    }

    /// Ticket `id`, charged `old` at `at`, really used `new`. A use of a day that has
    /// already started again is not counted twice.
    pub(crate) fn correct(
        &mut self,
        now: Duration,
        at: Duration,
        id: WaiterId,
        old: u64,
        new: u64,
    ) {
        self.roll(now);
        match &mut self.window {
            Window::Fixed { next_reset, .. } => {
                if at >= next_reset.saturating_sub(DAY) {
                    self.used = (self.used + new).saturating_sub(old);
                }
            }
            Window::Rolling { log } => {
                if let Some(u) = log.iter_mut().rev().find(|u| u.id == id) {
                    self.used = self.used - u.amount + new;
                    u.amount = new;
                }
            }
        }
    }

    /// What is left of the quota at `now`, read without changing anything.
    pub(crate) fn left(&self, now: Duration) -> u64 {
        let used = match &self.window {
            Window::Fixed { next_reset, .. } if now >= *next_reset => 0,
            Window::Fixed { .. } => self.used,
            Window::Rolling { log } => log
                .iter()
                .filter(|u| u.at + DAY > now)
                .map(|u| u.amount)
                .sum(),
        };
        self.limit.saturating_sub(used)
    }

    /// What is left of today's quota.
    pub(crate) fn remaining(&mut self, now: Duration) -> u64 {
        self.roll(now);
        self.limit.saturating_sub(self.used)
    }
}

fn from_nanos(n: i128) -> Duration {
    let n = n.clamp(0, u64::MAX as i128) as u64;
    Duration::from_nanos(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u64) -> Duration {
        Duration::from_secs(n * 3600)
    }

    #[test]
    fn a_fixed_day_resets_at_the_zones_midnight() {
        // Engine time zero is 10:00 UTC; the zone is UTC-8, so it is 02:00 there and
        // its midnight comes 22 h later.
        let mut d = Daily::new(2, DayReset::midnight(-8 * 3600), h(10));
        d.charge(h(1), WaiterId(1), 1);
        d.charge(h(1), WaiterId(2), 1);
        assert_eq!(d.ready_at(h(1), 1), h(22));
        assert_eq!(d.remaining(h(21)), 0);
        assert_eq!(d.ready_at(h(22), 1), Duration::ZERO);
        assert_eq!(d.remaining(h(22)), 2);
        d.charge(h(23), WaiterId(3), 2);
        assert_eq!(d.ready_at(h(23), 1), h(46), "the next midnight, a day on");
    }

    #[test]
    fn a_rolling_day_returns_each_use_a_day_later() {
        let mut d = Daily::new(2, DayReset::Rolling, Duration::ZERO);
        d.charge(h(1), WaiterId(1), 1);
        d.charge(h(5), WaiterId(2), 1);
        assert_eq!(d.ready_at(h(6), 1), h(25));
        assert_eq!(d.ready_at(h(6), 2), h(29));
        assert_eq!(d.remaining(h(25)), 1);
    }

    #[test]
    fn corrections_count_only_in_their_day() {
        let mut d = Daily::new(1_000, DayReset::default(), Duration::ZERO);
        d.charge(h(23), WaiterId(1), 500);
        d.correct(h(23), h(23), WaiterId(1), 500, 100);
        assert_eq!(d.remaining(h(23)), 900);
        d.charge(h(23), WaiterId(2), 500);
        // Answered after midnight: yesterday's use does not touch today's count.
        d.correct(h(25), h(23), WaiterId(2), 500, 900);
        assert_eq!(d.remaining(h(25)), 1_000);
    }

    #[test]
    fn a_rolling_correction_replaces_that_use_and_returns_with_it() {
        let mut d = Daily::new(1_000, DayReset::Rolling, Duration::ZERO);
        d.charge(h(1), WaiterId(1), 500);
        d.charge(h(2), WaiterId(2), 200);
        d.correct(h(3), h(1), WaiterId(1), 500, 100);
        assert_eq!(d.remaining(h(3)), 700, "1 000 − 100 − 200");
        d.correct(h(3), h(1), WaiterId(1), 100, 300);
        assert_eq!(d.remaining(h(3)), 500, "corrected again, up");
        assert_eq!(
            d.remaining(h(25)),
            800,
            "the corrected use came back at 25 h"
        );
    }

    /// `left` reads what `remaining` would say, without forgetting anything.
    #[test]
    fn left_is_what_remains_without_rolling() {
        let mut fixed = Daily::new(10, DayReset::default(), Duration::ZERO);
        fixed.charge(h(1), WaiterId(1), 4);
        assert_eq!(fixed.left(h(1)), 6);
        assert_eq!(fixed.left(h(24)), 10, "the day started again");
        let mut rolling = Daily::new(10, DayReset::Rolling, Duration::ZERO);
        rolling.charge(h(1), WaiterId(1), 4);
        rolling.charge(h(2), WaiterId(2), 3);
        assert_eq!(rolling.left(h(3)), 3);
        assert_eq!(
            rolling.left(h(25)),
            7,
            "the first use is back at exactly 25 h"
        );
        assert_eq!(rolling.left(h(26)), 10);
        assert_eq!(rolling.remaining(h(3)), 3, "nothing was forgotten");
    }
}
