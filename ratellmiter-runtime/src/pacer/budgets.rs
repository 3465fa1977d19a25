//! Every budget of a limiter beside its request pace: tokens per minute (total, input,
//! output), requests and tokens per day, and calls in flight. A ticket goes out only
//! when all of them allow it.
//!
//! The per-minute token budgets are paced like requests (each ticket pushes the next by
//! its charge × 60 / budget, under a hard 60 s window, see `tokens`); the daily ones are
//! quotas (see `daily`); the in-flight cap is a count of tickets out.

use std::time::Duration;

use super::WaiterId;
use super::cost::Cost;
use super::daily::Daily;
use super::tokens::TokenBudget;
use crate::config::{ConfigError, LimiterConfig, validate_tokens};
use crate::error::AcquireError;

/// What a ticket was charged, kept until its call ends (for corrections and refunds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Charged {
    pub(crate) cost: Cost,
    pub(crate) at: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Budgets {
    total: Option<TokenBudget>,
    input: Option<TokenBudget>,
    output: Option<TokenBudget>,
    rpd: Option<Daily>,
    tpd: Option<Daily>,
    max_in_flight: Option<u64>,
}

impl Budgets {
    pub(crate) fn new(cfg: &LimiterConfig, wall_origin: Duration) -> Self {
        Self {
            total: cfg.tpm.map(TokenBudget::new),
            input: cfg.input_tpm.map(TokenBudget::new),
            output: cfg.output_tpm.map(TokenBudget::new),
            rpd: cfg.rpd.map(|n| Daily::new(n, cfg.day_reset, wall_origin)),
            tpd: cfg.tpd.map(|n| Daily::new(n, cfg.day_reset, wall_origin)),
            max_in_flight: cfg.max_in_flight.map(u64::from),
        }
    }

    /// Whether a ticket's charge must be remembered until its call ends.
    pub(crate) fn charges(&self) -> bool {
        self.total.is_some()
            || self.input.is_some()
            || self.output.is_some()
            || self.rpd.is_some()
            || self.tpd.is_some()
    }

    /// A call that can never fit: an estimate above a whole per-minute or daily budget.
    pub(crate) fn check(&self, cost: &Cost) -> Result<(), AcquireError> {
        for (b, charge) in [
            (&self.total, cost.total()),
            (&self.input, cost.input_charge()),
            (&self.output, cost.output_charge()),
        ] {
            if let Some(b) = b
                && charge > b.tpm()
            {
                return Err(AcquireError::CostExceedsBudget {
                    cost: charge,
                    tpm: b.tpm(),
                });
            }
        }
        if let Some(d) = &self.tpd
            && cost.total() > d.limit()
        {
            return Err(AcquireError::CostExceedsDailyBudget {
                cost: cost.total(),
                tpd: d.limit(),
            });
        }
        Ok(())
    }

    /// Earliest time the per-minute token budgets let a ticket of `cost` go out.
    pub(crate) fn minute_ready_at(&mut self, now: Duration, cost: &Cost) -> Duration {
        let mut at = Duration::ZERO;
        for (b, charge) in [
            (&mut self.total, cost.total()),
            (&mut self.input, cost.input_charge()),
            (&mut self.output, cost.output_charge()),
        ] {
            if let Some(b) = b {
                at = at.max(b.ready_at(now, charge));
            }
        }
        at
    }

    /// `Duration::ZERO` when today's quotas have room for `cost`, else when they will.
    pub(crate) fn daily_ready_at(&mut self, now: Duration, cost: &Cost) -> Duration {
        let mut at = Duration::ZERO;
        if let Some(d) = &mut self.rpd {
            at = at.max(d.ready_at(now, 1));
        }
        if let Some(d) = &mut self.tpd {
            at = at.max(d.ready_at(now, cost.total()));
        }
        at
    }

    /// Whether `in_flight` tickets out leave no room for another.
    pub(crate) fn full(&self, in_flight: u64) -> bool {
        self.max_in_flight.is_some_and(|max| in_flight >= max)
    }

    /// Charges every budget for ticket `id` issued at `now` for the slot at `slot`.
    pub(crate) fn charge(
        &mut self,
        now: Duration,
        slot: Duration,
        id: WaiterId,
        cost: &Cost,
        share: f64,
    ) {
        for (b, charge) in [
            (&mut self.total, cost.total()),
            (&mut self.input, cost.input_charge()),
            (&mut self.output, cost.output_charge()),
        ] {
            if let Some(b) = b {
                b.charge(now, slot, id, charge, share);
            }
        }
        if let Some(d) = &mut self.rpd {
            d.charge(now, id, 1);
        }
        if let Some(d) = &mut self.tpd {
            d.charge(now, id, cost.total());
        }
    }

    /// Ticket `id` was charged `old` and really used `new` (kind by kind): each budget
    /// is refunded or charged the difference. Returns whether any budget got tokens back.
    pub(crate) fn correct(
        &mut self,
        now: Duration,
        id: WaiterId,
        old: &Charged,
        new: &Cost,
    ) -> bool {
        let mut refunded = false;
        for (b, was, is) in [
            (&mut self.total, old.cost.total(), new.total()),
            (&mut self.input, old.cost.input_charge(), new.input_charge()),
            (
                &mut self.output,
                old.cost.output_charge(),
                new.output_charge(),
            ),
        ] {
            if let Some(b) = b {
                b.correct(id, was, is);
                refunded |= is < was;
            }
        }
        if let Some(d) = &mut self.tpd {
            d.correct(now, old.at, id, old.cost.total(), new.total());
            refunded |= new.total() < old.cost.total();
        }
        refunded
    }

    /// A refused call used nothing, and its request does not count against the day.
    pub(crate) fn refund(&mut self, now: Duration, id: WaiterId, old: &Charged) {
        self.correct(now, id, old, &Cost::ZERO);
        if let Some(d) = &mut self.rpd {
            d.correct(now, old.at, id, 1, 0);
        }
    }

    pub(crate) fn set_tpm(&mut self, tpm: u64) {
        set_minute(&mut self.total, tpm);
    }

    /// Changes a budget the provider's `*-limit-*` headers named (`field` as in the
    /// builder); a budget that was not configured is added.
    pub(crate) fn set_limit(
        &mut self,
        field: &'static str,
        value: u64,
        cfg: &mut LimiterConfig,
        wall_origin: Duration,
    ) -> Result<(), ConfigError> {
        let (max, unit) = match field {
            "rpd" => (crate::config::MAX_RPD, "requests per day"),
            _ => (crate::config::MAX_TPM, "tokens per minute"),
        };
        validate_tokens(field, value, max, unit)?;
        match field {
            "tpm" => {
                set_minute(&mut self.total, value);
                cfg.tpm = Some(value);
            }
            "input_tpm" => {
                set_minute(&mut self.input, value);
                cfg.input_tpm = Some(value);
            }
            "output_tpm" => {
                set_minute(&mut self.output, value);
                cfg.output_tpm = Some(value);
            }
            "rpd" => {
                match &mut self.rpd {
                    Some(d) => d.set_limit(value),
                    None => self.rpd = Some(Daily::new(value, cfg.day_reset, wall_origin)),
                }
                cfg.rpd = Some(value);
            }
            _ => unreachable!("no budget named {field}"),
        }
        Ok(())
    }

    /// Tokens in the last 60 s of the total, input and output budgets (0 for one not set).
    pub(crate) fn in_window(&mut self, now: Duration) -> [u64; 3] {
        [&mut self.total, &mut self.input, &mut self.output]
            .map(|b| b.as_mut().map_or(0, |t| t.used_in_window(now)))
    }

    /// [`daily_remaining`](Self::daily_remaining) without forgetting what came back.
    pub(crate) fn daily_left(&self, now: Duration) -> [Option<u64>; 2] {
        [&self.rpd, &self.tpd].map(|d| d.as_ref().map(|d| d.left(now)))
    }

    /// What is left of today's requests and tokens (`None` for a quota not set).
    pub(crate) fn daily_remaining(&mut self, now: Duration) -> [Option<u64>; 2] {
        [&mut self.rpd, &mut self.tpd].map(|d| d.as_mut().map(|d| d.remaining(now)))
    }
}

/// Changes a per-minute token budget, or adds it when it was not configured.
fn set_minute(budget: &mut Option<TokenBudget>, tpm: u64) {
    match budget {
        Some(t) => t.set_tpm(tpm),
        None => *budget = Some(TokenBudget::new(tpm)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pacer::{Outcome, Pacer, Priority, Request, Step};

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// With one place in flight, the calls waiting for it still go in the usual order
    /// when it comes back: the re-queued call first, then high priority, then normal.
    #[test]
    fn retries_first_and_priorities_hold_at_capacity() {
        let mut p = Pacer::new(LimiterConfig {
            rpm: 6_000,
            max_in_flight: Some(1),
            ..Default::default()
        })
        .unwrap();
        let first = p.enqueue(s(0), Request::NEW).unwrap();
        let Step::Issued(out) = p.poll(s(0)) else {
            panic!("the first call goes out")
        };
        assert_eq!(out.id, first);
        let normal = p.enqueue(s(1), Request::NEW).unwrap();
        let high = p
            .enqueue(
                s(1),
                Request {
                    priority: Priority::High,
                    ..Request::NEW
                },
            )
            .unwrap();
        let retry = p.enqueue(s(1), Request::RETRY).unwrap();
        assert_eq!(
            p.poll(s(2)),
            Step::AtCapacity,
            "nothing goes out while full"
        );
        let mut order = Vec::new();
        let mut held = out;
        for at in 3..6 {
            p.finish(s(at), &held, Outcome::Success);
            let Step::Issued(t) = p.poll(s(at)) else {
                panic!("a place came back at {at} s")
            };
            let next = if at < 5 { Step::AtCapacity } else { Step::Idle };
            assert_eq!(p.poll(s(at)), next);
            order.push(t.id);
            held = t;
        }
        assert_eq!(order, [retry, high, normal]);
    }

    fn budgets(cfg: LimiterConfig) -> Budgets {
        Budgets::new(&cfg, Duration::ZERO)
    }

    /// Each budget alone keeps a ticket's charge until its call ends: without it a usage
    /// report or a refusal could not correct that budget.
    #[test]
    fn every_budget_alone_keeps_the_charges() {
        let none = LimiterConfig::default();
        assert!(
            !budgets(none.clone()).charges(),
            "no budget, nothing to keep"
        );
        for cfg in [
            LimiterConfig {
                tpm: Some(1_000),
                ..none.clone()
            },
            LimiterConfig {
                input_tpm: Some(1_000),
                ..none.clone()
            },
            LimiterConfig {
                output_tpm: Some(1_000),
                ..none.clone()
            },
            LimiterConfig {
                rpd: Some(1_000),
                ..none.clone()
            },
            LimiterConfig {
                tpd: Some(1_000),
                ..none.clone()
            },
        ] {
            assert!(budgets(cfg.clone()).charges(), "{cfg:?}");
        }
    }

    #[test]
    fn a_call_costing_exactly_the_daily_budget_fits() {
        let b = budgets(LimiterConfig {
            tpd: Some(1_000),
            ..Default::default()
        });
        assert_eq!(b.check(&Cost::tokens(1_000)), Ok(()));
        assert!(b.check(&Cost::tokens(1_001)).is_err());
    }

    /// `correct` says whether any budget got tokens back (the schedule then counts from
    /// now): a report equal to the estimate, or above it, gives nothing back.
    #[test]
    fn a_correction_says_whether_anything_was_refunded() {
        let mut b = budgets(LimiterConfig {
            tpm: Some(100_000),
            input_tpm: Some(100_000),
            ..Default::default()
        });
        let est = Cost {
            tokens: 0,
            input: 500,
            output: 500,
        };
        let mut refunded = |id: u64, new: Cost| {
            let id = WaiterId(id);
            b.charge(s(0), s(0), id, &est, 1.0);
            b.correct(
                s(1),
                id,
                &Charged {
                    cost: est,
                    at: s(0),
                },
                &new,
            )
        };
        assert!(!refunded(1, est), "as estimated");
        assert!(
            !refunded(2, Cost { output: 600, ..est }),
            "more than estimated"
        );
        assert!(
            refunded(3, Cost { input: 400, ..est }),
            "input and total both back"
        );
        assert!(refunded(4, Cost { output: 400, ..est }), "the total back");
        // The daily budget alone, and beside a per-minute one.
        for tpm in [None, Some(100_000)] {
            let mut daily = budgets(LimiterConfig {
                tpm,
                tpd: Some(1_000_000),
                ..Default::default()
            });
            daily.charge(s(0), s(0), WaiterId(1), &est, 1.0);
            let old = Charged {
                cost: est,
                at: s(0),
            };
            assert!(
                !daily.correct(s(1), WaiterId(1), &old, &est),
                "{tpm:?}: as estimated"
            );
            let less = Cost { output: 400, ..est };
            assert!(
                daily.correct(s(1), WaiterId(1), &old, &less),
                "{tpm:?}: less"
            );
        }
    }

    /// A refused call (429) gives its daily request back: the provider did not count it.
    #[test]
    fn a_refused_call_does_not_count_against_the_day() {
        let mut p = Pacer::new(LimiterConfig {
            rpm: 6_000,
            rpd: Some(10),
            adaptive: false,
            ..Default::default()
        })
        .unwrap();
        let Ok(t) = p.try_issue(s(0), Request::NEW) else {
            panic!("free")
        };
        assert_eq!(p.daily_remaining(s(0)), [Some(9), None]);
        p.finish(
            s(1),
            &t,
            Outcome::RateLimited {
                retry_after: Some(Duration::from_millis(10)),
            },
        );
        assert_eq!(p.daily_remaining(s(1)), [Some(10), None]);
    }
}
