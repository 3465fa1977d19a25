//! The limits a provider enforces beside requests and tokens per minute: input and
//! output tokens per minute (Anthropic's ITPM and OTPM, the output charged from the
//! request's `max_tokens` and corrected once the answer says what it used), requests
//! and tokens per day with a day boundary (Gemini's and Groq's RPD, TPD), and a cap on
//! requests in flight (Mistral, OpenRouter, self-hosted servers).

use std::collections::VecDeque;
use std::time::Duration;

use crate::config::MINUTE;

const DAY: Duration = Duration::from_secs(86_400);

/// What one request asks for, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ask {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output tokens reserved (the request's `max_tokens`).
    pub output: u64,
}

/// Uses over a sliding minute that can be corrected after the fact (an output
/// reservation replaced by the output used).
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    uses: VecDeque<(Duration, u64, u64)>,
}

impl Ledger {
    fn prune(&mut self, now: Duration) {
        while self.uses.front().is_some_and(|u| u.0 + MINUTE <= now) {
            self.uses.pop_front();
        }
    }

    /// Tokens in `(now − 60 s, now]`.
    pub(crate) fn sum(&mut self, now: Duration) -> u64 {
        self.prune(now);
        self.uses.iter().map(|u| u.2).sum()
    }

    /// When `extra` more would fit under `limit` (now, if it does).
    pub(crate) fn ready_at(&mut self, now: Duration, limit: u64, extra: u64) -> Duration {
        let mut excess = (self.sum(now) + extra).saturating_sub(limit);
        let mut at = now;
        for u in &self.uses {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(u.2);
            at = u.0 + MINUTE;
        }
        at
    }

    pub(crate) fn push(&mut self, now: Duration, id: u64, amount: u64) {
        self.uses.push_back((now, id, amount));
    }

    /// Request `id` really used `amount`.
    pub(crate) fn correct(&mut self, id: u64, amount: u64) {
        if let Some(u) = self.uses.iter_mut().find(|u| u.1 == id) {
            u.2 = amount;
        }
    }
}

/// Uses counted per day; days start at `first_day_end` after the scenario start and
/// every 24 h after it.
#[derive(Debug, Clone, Default)]
pub(crate) struct DayCount {
    day: u64,
    used: u64,
}

impl DayCount {
    /// The day `now` falls in, and when it ends.
    pub(crate) fn day_of(now: Duration, first_day_end: Duration) -> (u64, Duration) {
        if now < first_day_end {
            return (0, first_day_end);
        }
        let n = ((now - first_day_end).as_secs() / DAY.as_secs()) + 1;
        (n, first_day_end + DAY * n as u32)
    }

    /// What `now`'s day has used so far.
    pub(crate) fn used(&mut self, now: Duration, first_day_end: Duration) -> u64 {
        let (day, _) = Self::day_of(now, first_day_end);
        if day != self.day {
            self.day = day;
            self.used = 0;
        }
        self.used
    }

    pub(crate) fn add(&mut self, now: Duration, first_day_end: Duration, amount: u64) {
        self.used(now, first_day_end);
        self.used += amount;
    }
}
