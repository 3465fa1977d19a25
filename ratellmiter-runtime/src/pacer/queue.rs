//! The waiting calls: three FIFO queues holding each call's data inline, so the head
//! is always at the front of a contiguous buffer whatever the queue length.
//!
//! Ids grow with every request, so each queue is sorted by id: a cancellation finds
//! its entry by binary search and only marks it; marked entries leave when they reach
//! the front.

use std::collections::VecDeque;
use std::time::Duration;

use rustc_hash::FxHashSet;

use super::{Priority, Request, WaiterId};

/// Calls re-queued after a rate limit.
pub(super) const RETRY: usize = 0;
/// New high-priority calls.
pub(super) const HIGH: usize = 1;
/// New normal calls.
pub(super) const NORMAL: usize = 2;

#[derive(Debug, Clone, Copy)]
pub(super) struct Waiter {
    pub(super) id: WaiterId,
    pub(super) cost: super::Cost,
    pub(super) enqueued: Duration,
    /// When the call gives up waiting, if it does (a spent daily quota fails it at once
    /// unless the quota returns before then).
    pub(super) deadline: Option<Duration>,
    pub(super) retry: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Queues {
    queues: [VecDeque<Waiter>; 3],
    cancelled: FxHashSet<WaiterId>,
    waiting: u64,
    /// High-priority tickets issued in a row.
    high_streak: u32,
}

impl Queues {
    pub(super) fn push(&mut self, q: usize, w: Waiter) {
        debug_assert!(
            self.queues[q].back().is_none_or(|b| b.id < w.id),
            "ids grow"
        );
        self.queues[q].push_back(w);
        self.waiting += 1;
    }

    /// Marks `id` withdrawn; false when it is not waiting (issued, cancelled, unknown).
    pub(super) fn cancel(&mut self, id: WaiterId) -> bool {
        let queued = self
            .queues
            .iter()
            .any(|q| q.binary_search_by_key(&id, |w| w.id).is_ok());
        if queued && self.cancelled.insert(id) {
            self.waiting -= 1;
            true
        } else {
            false
        }
    }

    /// The first live call of queue `q`, dropping withdrawn ones from its front.
    pub(super) fn head_of(&mut self, q: usize) -> Option<&Waiter> {
        while let Some(front) = self.queues[q].front() {
            if self.cancelled.is_empty() || !self.cancelled.remove(&front.id) {
                break;
            }
            self.queues[q].pop_front();
        }
        self.queues[q].front()
    }

    /// Takes the head of queue `q` (found live by [`head_of`](Self::head_of) just before).
    pub(super) fn pop(&mut self, q: usize) -> Waiter {
        let w = self.queues[q].pop_front().expect("a head was found");
        self.waiting -= 1;
        w
    }

    /// Calls waiting.
    pub(super) fn waiting(&self) -> u64 {
        self.waiting
    }

    /// The call whose turn it is, and its queue: re-queued calls, then high priority
    /// with at most `max_streak` in a row while normal calls wait, then normal.
    pub(super) fn next_in_line(&mut self, max_streak: u32) -> Option<(usize, Waiter)> {
        if let Some(w) = self.head_of(RETRY) {
            return Some((RETRY, *w));
        }
        let high = self.head_of(HIGH).copied();
        let normal = self.head_of(NORMAL).copied();
        match (high, normal) {
            (Some(_), Some(n)) if self.high_streak >= max_streak => Some((NORMAL, n)),
            (Some(h), _) => Some((HIGH, h)),
            (None, Some(n)) => Some((NORMAL, n)),
            (None, None) => None,
        }
    }

    /// A ticket went out to a call of queue `q` (taken from it, or never queued).
    pub(super) fn issued_from(&mut self, q: usize) {
        self.high_streak = if q == HIGH { self.high_streak + 1 } else { 0 };
    }
}

/// The queue a request joins.
pub(super) fn queue_for(req: Request) -> usize {
    match (req.retry, req.priority) {
        (true, _) => RETRY,
        (false, Priority::High) => HIGH,
        (false, Priority::Normal) => NORMAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: u64) -> Waiter {
        Waiter {
            id: WaiterId(id),
            cost: crate::pacer::Cost::ZERO,
            deadline: None,
            enqueued: Duration::ZERO,
            retry: false,
        }
    }

    #[test]
    fn cancellation_is_found_by_id_and_skipped_at_the_front() {
        let mut q = Queues::default();
        for id in 0..5 {
            q.push(if id == 3 { RETRY } else { NORMAL }, w(id));
        }
        assert!(q.cancel(WaiterId(0)));
        assert!(q.cancel(WaiterId(3)));
        assert!(!q.cancel(WaiterId(3)), "twice");
        assert!(!q.cancel(WaiterId(9)), "unknown");
        assert_eq!(q.waiting(), 3);
        assert!(q.head_of(RETRY).is_none());
        assert_eq!(q.head_of(NORMAL).map(|w| w.id), Some(WaiterId(1)));
        assert_eq!(q.pop(NORMAL).id, WaiterId(1));
        assert!(!q.cancel(WaiterId(1)), "issued calls are not waiting");
        assert_eq!(q.waiting(), 2);
    }
}
