//! The engine's side of a budget shared with other processes (see [`crate::shared`]):
//! the store ramps, pauses and probes for the fleet, and this engine orders the local
//! calls, holds them through the fleet's pauses and learns from them.

use std::time::Duration;

use super::{Event, Pacer};

impl Pacer {
    /// Shares the budget with other processes (or, `false`, paces this process alone
    /// while the store is unreachable, with its own ramp, pause and probe).
    pub(crate) fn set_shared(&mut self, on: bool) {
        self.ramp.set_shared(self.last_now, on);
    }

    /// The store said the fleet's rate in force (tickets per second).
    pub(crate) fn observe_fleet_rate(&mut self, rate: f64) {
        self.ramp.observe_fleet(rate);
    }

    /// The store paused the fleet after a rate limit (any process's): the adaptive
    /// ceiling learns from it, once per pause.
    pub(crate) fn fleet_paused(&mut self, now: Duration) {
        let now = self.advance(now);
        self.pause.fleet_paused(now);
        if let Some(learned) = self.ramp.refused(now, self.schedule.growth(now)) {
            self.events.push((now, Event::LearnedRate(learned)));
        }
    }

    /// The store resumed the fleet after a pause: tickets issued before now are stale.
    pub(crate) fn shared_resumed(&mut self, now: Duration) {
        let now = self.advance(now);
        let paused_at = self.pause.fleet_resumed();
        self.ramp.on_resume(paused_at, now);
        self.events.push((now, Event::Resume));
    }

    /// The current epoch (see the module docs).
    pub(crate) fn epoch(&self) -> u64 {
        self.pause.epoch()
    }
}
