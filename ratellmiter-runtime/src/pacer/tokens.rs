//! The tokens-per-minute budget: smooth spacing of tokens plus a hard 60 s window.
//!
//! Spacing alone (each ticket pushes the next by `cost × 60/TPM`) keeps the flow even but
//! can overshoot a 60 s window by one ticket's cost, so a log of the last minute's charges
//! is the hard bound; its length is bounded by the tickets issued in a minute.

use std::collections::VecDeque;
use std::time::Duration;

use super::WaiterId;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub(crate) struct TokenBudget {
    tpm: u64,
    /// Earliest time the next ticket may go out as far as token spacing goes.
    tat: Duration,
    window: VecDeque<Charge>,
    in_window: u64,
}

#[derive(Debug, Clone, Copy)]
struct Charge {
    at: Duration,
    id: WaiterId,
    tokens: u64,
}

impl TokenBudget {
    pub(crate) fn new(tpm: u64) -> Self {
        Self {
            tpm,
            tat: Duration::ZERO,
            window: VecDeque::new(),
            in_window: 0,
        }
    }

    pub(crate) fn tpm(&self) -> u64 {
        self.tpm
    }

    pub(crate) fn set_tpm(&mut self, tpm: u64) {
        self.tpm = tpm;
    }

    fn expire(&mut self, now: Duration) {
        while let Some(c) = self.window.front() {
            if c.at + WINDOW > now {
                break;
            }
            self.in_window -= c.tokens;
            self.window.pop_front();
        }
    }

    /// Earliest time a ticket of `cost` tokens may go out.
    pub(crate) fn ready_at(&mut self, now: Duration, cost: u64) -> Duration {
        self.expire(now);
        let mut at = self.tat;
        // Usage reported above its estimate may have overfilled the window: then even a
        // call of no estimate waits until the window is back within the budget.
        let mut excess = (self.in_window + cost).saturating_sub(self.tpm);
        for c in &self.window {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(c.tokens);
            at = at.max(c.at + WINDOW);
        }
        at
    }

    /// Charges `cost` tokens issued at `now` for the slot at `slot` (spacing follows the
    /// slot, the hard window the actual time); `share` is the ramp's share of the full
    /// rate, which slows token spacing during a ramp just as it slows request spacing.
    pub(crate) fn charge(
        &mut self,
        now: Duration,
        slot: Duration,
        id: WaiterId,
        cost: u64,
        share: f64,
    ) {
        self.expire(now);
        self.window.push_back(Charge {
            at: now,
            id,
            tokens: cost,
        });
        self.in_window += cost;
        self.tat = self.tat.max(slot) + self.spacing(cost, share);
    }

    fn spacing(&self, tokens: u64, share: f64) -> Duration {
        Duration::from_secs_f64(tokens as f64 * 60.0 / (self.tpm as f64 * share.max(1e-3)))
    }

    /// Replaces the estimate charged for ticket `id` by the tokens it really used: the
    /// difference is refunded or charged extra, in the window and in the spacing.
    pub(crate) fn correct(&mut self, id: WaiterId, estimate: u64, actual: u64) {
        if let Some(c) = self.window.iter_mut().rev().find(|c| c.id == id) {
            self.in_window = self.in_window - c.tokens + actual;
            c.tokens = actual;
        }
        if actual > estimate {
            self.tat += self.spacing(actual - estimate, 1.0);
        } else {
            self.tat = self
                .tat
                .saturating_sub(self.spacing(estimate - actual, 1.0));
        }
    }

    /// Tokens charged in the 60 s before `now`.
    pub(crate) fn used_in_window(&mut self, now: Duration) -> u64 {
        self.expire(now);
        self.in_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn spacing_follows_cost() {
        let mut b = TokenBudget::new(6_000); // 100 tokens/s
        assert_eq!(b.ready_at(ms(0), 50), ms(0));
        b.charge(ms(0), ms(0), WaiterId(1), 50, 1.0);
        assert_eq!(b.ready_at(ms(0), 50), ms(500));
        b.charge(ms(500), ms(500), WaiterId(2), 200, 1.0);
        assert_eq!(b.ready_at(ms(500), 10), ms(2500));
    }

    #[test]
    fn the_window_is_a_hard_bound() {
        let mut b = TokenBudget::new(1_000);
        b.charge(ms(0), ms(0), WaiterId(1), 900, 1.0);
        b.tat = ms(0); // ignore spacing: check the window alone
        assert_eq!(b.ready_at(ms(10), 100), ms(0));
        assert_eq!(b.ready_at(ms(10), 101), ms(60_000));
        assert_eq!(b.used_in_window(ms(59_999)), 900);
        assert_eq!(b.used_in_window(ms(60_000)), 0);
    }

    #[test]
    fn corrections_refund_and_charge() {
        let mut b = TokenBudget::new(6_000);
        b.charge(ms(0), ms(0), WaiterId(1), 100, 1.0);
        b.correct(WaiterId(1), 100, 40);
        assert_eq!(b.used_in_window(ms(1)), 40);
        assert_eq!(b.ready_at(ms(0), 1), ms(400));
        b.correct(WaiterId(1), 40, 140);
        assert_eq!(b.used_in_window(ms(1)), 140);
        assert_eq!(b.ready_at(ms(0), 1), ms(1400));
    }
}
