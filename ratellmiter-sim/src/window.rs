//! A weighted history of accepted traffic, queried over sliding windows `(t − w, t]`.

use std::collections::VecDeque;
use std::time::Duration;

/// Accepted events (a request weighs 1, a token stream weighs its tokens) in time order,
/// each stored with the running total of weights up to and including it, so the weight
/// in any window is one subtraction after a binary search.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlidingWindow {
    events: VecDeque<(Duration, u128)>,
    /// Running total after the last event dropped by [`prune`](Self::prune).
    pruned_total: u128,
}

impl SlidingWindow {
    /// Records `weight` at `t`, which must not precede the last event.
    pub(crate) fn push(&mut self, t: Duration, weight: u64) {
        let total = self.total() + u128::from(weight);
        self.events.push_back((t, total));
    }

    /// Forgets events that no window of length up to `keep` ending at `now` or later can see.
    pub(crate) fn prune(&mut self, now: Duration, keep: Duration) {
        while let Some(&(t, total)) = self.events.front() {
            if t + keep > now {
                break;
            }
            self.pruned_total = total;
            self.events.pop_front();
        }
    }

    /// Weight of the events in `(t − w, t]`, for any `t` not before the last event.
    pub(crate) fn sum(&self, t: Duration, w: Duration) -> u128 {
        self.total() - self.total_before(self.first_in(t, w))
    }

    /// Weight of the events in `(t − 2w, t − w]`: the window before `(t − w, t]`.
    pub(crate) fn sum_previous(&self, t: Duration, w: Duration) -> u128 {
        self.total_before(self.first_in(t, w)) - self.total_before(self.first_in(t, 2 * w))
    }

    /// The earliest time (assuming no new events) at which `extra` more weight fits under
    /// `limit` in the window of length `w`; `None` if `extra` alone exceeds `limit`.
    /// A time at or before the last event means "now".
    pub(crate) fn ready_at(
        &self,
        t: Duration,
        w: Duration,
        limit: u64,
        extra: u64,
    ) -> Option<Duration> {
        let (limit, extra) = (u128::from(limit), u128::from(extra));
        if extra > limit {
            return None;
        }
        if self.sum(t, w) + extra <= limit {
            return Some(t);
        }
        // The window must lose every event up to the first whose running total reaches
        // `total + extra − limit`; it leaves the window `w` after it happened.
        let must_leave = self.total() + extra - limit;
        let k = self
            .events
            .partition_point(|&(_, total)| total < must_leave);
        Some(self.events[k].0 + w)
    }

    /// When the oldest event of the window `(t − w, t]` leaves it, if there is one.
    pub(crate) fn next_expiry(&self, t: Duration, w: Duration) -> Option<Duration> {
        self.events.get(self.first_in(t, w)).map(|&(at, _)| at + w)
    }

    /// Times of the events in `(t − w, t]`, oldest first.
    pub(crate) fn times_in(&self, t: Duration, w: Duration) -> impl Iterator<Item = Duration> + '_ {
        self.events.range(self.first_in(t, w)..).map(|&(at, _)| at)
    }

    fn first_in(&self, t: Duration, w: Duration) -> usize {
        self.events.partition_point(|&(at, _)| at + w <= t)
    }

    fn total(&self) -> u128 {
        self.events
            .back()
            .map_or(self.pruned_total, |&(_, total)| total)
    }

    fn total_before(&self, i: usize) -> u128 {
        match i {
            0 => self.pruned_total,
            i => self.events[i - 1].1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn windows_are_half_open_at_their_start() {
        let mut w = SlidingWindow::default();
        for t in [0, 500, 1000] {
            w.push(ms(t), 1);
        }
        // (0, 1000] excludes the event at 0; (−1000, 999] includes it.
        assert_eq!(w.sum(ms(1000), ms(1000)), 2);
        assert_eq!(w.sum(ms(1000), ms(1001)), 3);
        assert_eq!(w.sum_previous(ms(1000), ms(500)), 1);
        assert_eq!(w.next_expiry(ms(1000), ms(1000)), Some(ms(1500)));
    }

    #[test]
    fn ready_at_waits_for_enough_weight_to_leave() {
        let mut w = SlidingWindow::default();
        for (t, tokens) in [(0, 40), (100, 30), (200, 30)] {
            w.push(ms(t), tokens);
        }
        // 100 in the window; 50 more under a limit of 100 needs 50 gone: events at 0 and 100.
        assert_eq!(w.ready_at(ms(200), ms(1000), 100, 50), Some(ms(1100)));
        assert_eq!(w.ready_at(ms(200), ms(1000), 100, 40), Some(ms(1000)));
        assert_eq!(w.ready_at(ms(200), ms(1000), 200, 40), Some(ms(200)));
        assert_eq!(w.ready_at(ms(200), ms(1000), 100, 101), None);
    }

    #[test]
    fn pruning_keeps_sums_of_what_remains() {
        let mut w = SlidingWindow::default();
        for t in 0..10 {
            w.push(ms(t * 100), 2);
        }
        w.prune(ms(900), ms(500));
        assert_eq!(w.sum(ms(900), ms(500)), 10);
        assert_eq!(w.ready_at(ms(900), ms(500), 10, 2), Some(ms(1000)));
    }
}
