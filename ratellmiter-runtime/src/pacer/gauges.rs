//! What the engine reports: counters, gauges and the events to log.

use std::time::Duration;

use super::{Counters, Event, Pacer};
use crate::stats::Stats;

impl Pacer {
    /// Calls waiting for a ticket.
    pub fn waiting(&self) -> u64 {
        self.queues.waiting()
    }

    /// Tickets out whose calls have not ended.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// The counters since the engine was made.
    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    /// Counters and gauges at `now`.
    pub fn stats(&mut self, now: Duration) -> Stats {
        let c = self.counters();
        let by_kind = self.tokens_in_window_by_kind(now);
        let daily = self.daily_remaining(now);
        Stats {
            requested: c.requested,
            issued: c.issued,
            reissued: c.reissued,
            finished: c.finished,
            rate_limited: c.rate_limited,
            cancelled: c.cancelled,
            waiting: self.waiting(),
            in_flight: self.in_flight(),
            allowed_rate: self.allowed_rate(),
            learned_rate: self.learned_rate(now),
            limit_rate: self.full_rate(),
            paused: self.is_paused(),
            tokens_in_window: by_kind[0],
            input_tokens_in_window: by_kind[1],
            output_tokens_in_window: by_kind[2],
            requests_left_today: daily[0],
            tokens_left_today: daily[1],
            max_in_flight: self.cfg.max_in_flight,
        }
    }

    /// Tickets per second allowed now (ramp and learned ceiling applied); for a shared
    /// budget, the fleet's rate as the store last said.
    pub fn allowed_rate(&self) -> f64 {
        self.ramp.allowed()
    }

    /// The learned ceiling at `now`, tickets per second (the configured rate when
    /// adaptation is off or nothing was learned).
    pub fn learned_rate(&self, now: Duration) -> f64 {
        self.ramp.ceiling(now.max(self.last_now))
    }

    /// The configured rate, tickets per second.
    pub fn full_rate(&self) -> f64 {
        self.ramp.full_rate()
    }

    /// Whether issuing is stopped after a rate limit (waiting to probe, or probing).
    pub fn is_paused(&self) -> bool {
        !self.pause.is_running()
    }

    /// Tokens charged in the last 60 s (0 without a token budget).
    pub fn tokens_in_window(&mut self, now: Duration) -> u64 {
        let now = self.advance(now);
        self.budgets.in_window(now)[0]
    }

    /// Tokens charged in the last 60 s to the total, input and output budgets (0 for a
    /// budget not set).
    pub fn tokens_in_window_by_kind(&mut self, now: Duration) -> [u64; 3] {
        let now = self.advance(now);
        self.budgets.in_window(now)
    }

    /// What is left today of the requests-per-day and tokens-per-day quotas, without
    /// moving the engine's time (for the flow log's gauges).
    pub(crate) fn daily_left(&self, now: Duration) -> [Option<u64>; 2] {
        self.budgets.daily_left(now.max(self.last_now))
    }

    /// What is left today of the requests-per-day and tokens-per-day quotas.
    pub fn daily_remaining(&mut self, now: Duration) -> [Option<u64>; 2] {
        let now = self.advance(now);
        self.budgets.daily_remaining(now)
    }

    /// Takes the state changes since the last call.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, (Duration, Event)> {
        self.events.drain(..)
    }
}
