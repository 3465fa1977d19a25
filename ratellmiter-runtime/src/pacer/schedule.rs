//! The request schedule: slots on a theoretical timeline, and the window bounds on
//! actual issue times.
//!
//! Each slot follows from the previous *slot*, not from when the driver got round to
//! issuing it, so a timer that fires late costs that one ticket its lateness and the
//! schedule keeps its rate: lateness is absorbed, never accumulated. Catching up must not
//! bunch, so the bounds the engine promises are kept on the actual issue times: never
//! more than `rpm` tickets in any 60 s window `[t, t + 60 s)`, never more than
//! `ceil(rpm / 60)` in any 1 s window. The log of actual times holds at most the tickets
//! of the last minute (and at most `rpm` of them).

use std::collections::VecDeque;
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const SECOND: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(super) struct Schedule {
    rpm: u32,
    /// `60 / rpm`, rounded up to the nanosecond, so even spacing never breaks a window.
    full_interval: Duration,
    /// The theoretical time of the next slot.
    next_slot: Duration,
    /// Actual issue times of the last minute, oldest first.
    issued: VecDeque<Duration>,
}

impl Schedule {
    pub(super) fn new(rpm: u32) -> Self {
        Self {
            rpm,
            full_interval: full_interval(rpm),
            next_slot: Duration::ZERO,
            issued: VecDeque::new(),
        }
    }

    pub(super) fn full_interval(&self) -> Duration {
        self.full_interval
    }

    /// A new limit counts its windows from the last ticket before the change on (the
    /// tickets of the old limit are not held against the new one).
    pub(super) fn set_rpm(&mut self, rpm: u32) {
        self.rpm = rpm;
        self.full_interval = full_interval(rpm);
        let keep = self.issued.len().min(1);
        self.issued.drain(..self.issued.len() - keep);
    }

    /// Earliest time the next ticket may go out: its slot, and no window overfull.
    pub(super) fn ready_at(&self) -> Duration {
        let mut at = self.next_slot;
        let n = self.issued.len();
        let per_minute = self.rpm as usize;
        let per_second = self.rpm.div_ceil(60) as usize;
        if n >= per_minute {
            at = at.max(self.issued[n - per_minute] + MINUTE);
        }
        if n >= per_second {
            at = at.max(self.issued[n - per_second] + SECOND);
        }
        at
    }

    /// A ticket went out at `actual` for the slot at `slot` (never later than `actual`);
    /// the next slot is `interval` after the slot.
    pub(super) fn record(&mut self, slot: Duration, actual: Duration, interval: Duration) {
        self.next_slot = slot + interval;
        while self
            .issued
            .front()
            .is_some_and(|&t| t + MINUTE <= actual || self.issued.len() >= self.rpm as usize)
        {
            self.issued.pop_front();
        }
        self.issued.push_back(actual);
    }

    /// Tickets issued in the second before `now` over the average second of the two
    /// before that (at least one ticket): how sharply the traffic the provider saw just
    /// grew. Two seconds, so that the count of a steady rate jittering by one ticket does
    /// not read as growth.
    pub(super) fn growth(&self, now: Duration) -> f64 {
        let since = |t: Duration| self.issued.len() - self.issued.partition_point(|&i| i <= t);
        let last = since(now.saturating_sub(SECOND));
        let before = since(now.saturating_sub(3 * SECOND)) - last;
        last as f64 / (before.max(1) as f64 / 2.0).max(1.0)
    }

    /// The next slot comes no earlier than `at` (after a resume).
    pub(super) fn not_before(&mut self, at: Duration) {
        self.next_slot = self.next_slot.max(at);
    }

    /// Re-spaces the next slot after the slot at `last` (the rate changed).
    pub(super) fn respace(&mut self, last: Duration, interval: Duration) {
        self.next_slot = last + interval;
    }
}

fn full_interval(rpm: u32) -> Duration {
    Duration::from_nanos(60_000_000_000u64.div_ceil(rpm as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_late_ticket_does_not_push_the_schedule_back() {
        let mut s = Schedule::new(600);
        s.record(ms(0), ms(0), ms(100));
        // Issued 7 ms late: the next slot still comes at 200 ms.
        s.record(ms(100), ms(107), ms(100));
        assert_eq!(s.ready_at(), ms(200));
    }

    #[test]
    fn catching_up_never_overfills_a_second() {
        // 120 rpm: at most 2 tickets in any second.
        let mut s = Schedule::new(120);
        s.record(ms(0), ms(0), ms(500));
        // The second ticket was 450 ms late: its successor's slot (1000 ms) would put
        // three tickets in [0, 1000 ms + ε); the bound holds it to 1000 ms exactly, the
        // start of the next window.
        s.record(ms(500), ms(950), ms(500));
        assert_eq!(s.ready_at(), ms(1000));
        s.record(ms(1000), ms(1000), ms(500));
        assert_eq!(s.ready_at(), ms(1950), "two in [950, 1950)");
    }

    #[test]
    fn growth_compares_the_last_second_with_the_one_before() {
        let mut s = Schedule::new(6_000);
        for t in [100, 600, 1_100, 1_200, 1_300, 1_400, 1_500] {
            s.record(ms(t), ms(t), ms(10));
        }
        // (0.6 s, 1.6 s]: 5; (−1.4 s, 0.6 s]: 2, one a second.
        assert_eq!(s.growth(ms(1_600)), 5.0);
        assert_eq!(s.growth(ms(2_600)), 0.0);
        let mut first = Schedule::new(6_000);
        first.record(ms(100), ms(100), ms(10));
        assert_eq!(
            first.growth(ms(100)),
            1.0,
            "nothing before counts as one a second"
        );
    }

    /// The module's memory claim: the last minute's tickets, and at most `rpm` of them.
    #[test]
    fn the_log_holds_the_last_minute_only() {
        let mut s = Schedule::new(600);
        for t in [0, 100, 200] {
            s.record(ms(t), ms(t), ms(100));
        }
        s.record(ms(70_000), ms(70_000), ms(100));
        assert_eq!(
            s.issued,
            [ms(70_000)],
            "a minute later, the old three are gone"
        );
        let mut few = Schedule::new(2);
        for t in [0, 1, 2, 3] {
            few.record(ms(t), ms(t), ms(1));
        }
        assert_eq!(few.issued, [ms(2), ms(3)], "at most rpm");
    }

    #[test]
    fn the_minute_bound_counts_actual_times() {
        // 2 rpm: slots every 30 s; the first went out 10 s late.
        let mut s = Schedule::new(2);
        s.record(ms(0), ms(10_000), ms(30_000));
        s.record(ms(30_000), ms(30_000), ms(30_000));
        assert_eq!(s.ready_at(), ms(70_000), "not two in [10 s, 70 s)");
    }
}
