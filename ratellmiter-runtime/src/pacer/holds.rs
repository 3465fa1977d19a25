//! Holds: what the provider's rate-limit headers said is left, and the pause of a shared
//! budget.
//!
//! Each header family (requests, tokens) keeps only its newest answer: a response that
//! shows budget left lifts a hold an older one imposed, just as one that shows nothing
//! left imposes it. Between answers the engine counts down what it issues, so it stops
//! at an exhausted budget before the 429 comes.

use std::time::Duration;

use super::{Budget, Cost, Event, Pacer, later};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Family {
    remaining: u64,
    reset: Duration,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Holds {
    requests: Option<Family>,
    tokens: Option<Family>,
    input: Option<Family>,
    output: Option<Family>,
    /// The shared budget is paused until then (another process saw a rate limit).
    shared_until: Duration,
}

impl Holds {
    /// The newest request-family answer: `remaining` until `reset`.
    pub(super) fn observe_requests(&mut self, remaining: u64, reset: Duration) {
        self.requests = Some(Family { remaining, reset });
    }

    /// The newest token-family answer: `remaining` until `reset`.
    pub(super) fn observe_tokens(&mut self, remaining: u64, reset: Duration) {
        self.tokens = Some(Family { remaining, reset });
    }

    /// The newest input-token and output-token answers (Anthropic's).
    pub(super) fn observe_kinds(
        &mut self,
        input: Option<(u64, Duration)>,
        output: Option<(u64, Duration)>,
    ) {
        if let Some((remaining, reset)) = input {
            self.input = Some(Family { remaining, reset });
        }
        if let Some((remaining, reset)) = output {
            self.output = Some(Family { remaining, reset });
        }
    }

    pub(super) fn hold_shared(&mut self, until: Duration) {
        self.shared_until = self.shared_until.max(until);
    }

    /// Earliest time a ticket of `cost` tokens may go out, as far as holds go. A hold
    /// that ended still says when it ended, until the next ticket: the ticket's slot on
    /// the schedule is then the hold's end, not an earlier one.
    /// Each token family holds the calls by their charge of its kind.
    pub(super) fn ready_at(&self, cost: &Cost) -> Duration {
        let mut at = self.shared_until;
        if let Some(f) = self.requests
            && f.remaining == 0
        {
            at = at.max(f.reset);
        }
        for (f, charge) in [
            (self.tokens, cost.total()),
            (self.input, cost.input_charge()),
            (self.output, cost.output_charge()),
        ] {
            if let Some(f) = f
                && f.remaining < charge.max(1)
            {
                at = at.max(f.reset);
            }
        }
        at
    }

    /// A ticket of `cost` went out at `now`: count it against what is left.
    pub(super) fn on_issue(&mut self, now: Duration, cost: &Cost) {
        for (f, used) in [
            (&mut self.requests, 1),
            (&mut self.tokens, cost.total()),
            (&mut self.input, cost.input_charge()),
            (&mut self.output, cost.output_charge()),
        ] {
            match f {
                Some(fam) if now >= fam.reset => *f = None,
                Some(fam) => fam.remaining = fam.remaining.saturating_sub(used),
                None => {}
            }
        }
    }
}

impl Pacer {
    /// What the provider's rate-limit headers said: `remaining` requests until `reset`
    /// (both relative to `now`), and likewise for tokens. Issuing then stops before the
    /// budget is spent instead of running into a 429, and restarts with the ramp.
    pub fn observe_budget(
        &mut self,
        now: Duration,
        requests: Option<Budget>,
        tokens: Option<Budget>,
    ) {
        let now = self.advance(now);
        self.change_holds(now, |holds| {
            // The newest answer of each family replaces what the older ones said.
            if let Some(b) = requests {
                holds.observe_requests(b.remaining, later(now, b.reset));
            }
            if let Some(b) = tokens {
                holds.observe_tokens(b.remaining, later(now, b.reset));
            }
        });
    }

    /// What Anthropic's input-token and output-token headers said is left, each until
    /// its reset (relative to `now`): each holds the calls by their charge of its kind.
    pub fn observe_kinds(&mut self, now: Duration, input: Option<Budget>, output: Option<Budget>) {
        let now = self.advance(now);
        let at = |b: Budget| (b.remaining, later(now, b.reset));
        self.change_holds(now, |holds| {
            holds.observe_kinds(input.map(at), output.map(at))
        });
    }

    /// The shared budget is paused until `until` (another process saw a rate limit).
    pub fn hold_shared(&mut self, now: Duration, until: Duration) {
        let now = self.advance(now);
        self.change_holds(now, |holds| holds.hold_shared(until));
    }

    /// Applies `change` to the holds at `now`, and notes a hold it began or lifted for
    /// the call next in line.
    fn change_holds(&mut self, now: Duration, change: impl FnOnce(&mut Holds)) {
        let next_cost = self.next_in_line().map_or(Cost::tokens(1), |(_, w)| w.cost);
        let before = self.holds.ready_at(&next_cost);
        change(&mut self.holds);
        let until = self.holds.ready_at(&next_cost);
        if until > before.max(now) {
            // The provider's budget comes back at `until`: go on at the rate in force
            // (restarting the ramp would cost seconds at every reset of a budget paced
            // to its limit), and count no growth of the ramp during the hold.
            self.ramp.hold(until);
            self.events.push((now, Event::Hold { until }));
        } else if until < before {
            // Lifted early: the ramp counts from now, and so does the schedule.
            self.ramp.lift(now);
            self.rebased = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_newest_answer_lifts_a_hold() {
        let mut h = Holds::default();
        h.observe_requests(0, s(30));
        assert_eq!(h.ready_at(&Cost::tokens(0)), s(30));
        h.observe_requests(50, s(40));
        assert_eq!(h.ready_at(&Cost::tokens(0)), Duration::ZERO);
        h.observe_tokens(10, s(20));
        assert_eq!(h.ready_at(&Cost::tokens(11)), s(20));
        assert_eq!(
            h.ready_at(&Cost::tokens(10)),
            Duration::ZERO,
            "exactly what is left"
        );
        h.observe_tokens(1_000, s(20));
        assert_eq!(h.ready_at(&Cost::tokens(11)), Duration::ZERO);
    }

    #[test]
    fn issues_count_down_until_the_reset() {
        let mut h = Holds::default();
        h.observe_requests(1, s(30));
        h.on_issue(s(1), &Cost::tokens(0));
        assert_eq!(h.ready_at(&Cost::tokens(0)), s(30), "the one left is spent");
        assert_eq!(
            h.ready_at(&Cost::tokens(0)),
            s(30),
            "an ended hold still says when it ended"
        );
        h.on_issue(s(30), &Cost::tokens(0));
        assert_eq!(
            h.ready_at(&Cost::tokens(0)),
            Duration::ZERO,
            "gone with the next ticket"
        );
    }

    /// Each token family holds calls by their charge of its own kind: Anthropic's
    /// input headers hold a call of many input tokens, not one that reserves output
    /// only, and its output headers the other way round.
    #[test]
    fn each_family_holds_its_own_kind() {
        let mut h = Holds::default();
        h.observe_kinds(Some((1_000, s(30))), Some((500, s(20))));
        let prompt = Cost {
            tokens: 0,
            input: 2_000,
            output: 100,
        };
        let answer = Cost {
            tokens: 0,
            input: 100,
            output: 1_024,
        };
        let small = Cost {
            tokens: 0,
            input: 100,
            output: 100,
        };
        assert_eq!(h.ready_at(&prompt), s(30));
        assert_eq!(h.ready_at(&answer), s(20));
        assert_eq!(h.ready_at(&small), Duration::ZERO);
        h.on_issue(s(1), &small);
        h.on_issue(s(1), &small);
        assert_eq!(
            h.ready_at(&Cost {
                output: 301,
                ..small
            }),
            s(20),
            "counted down"
        );
    }
}
