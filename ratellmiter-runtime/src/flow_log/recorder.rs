//! The hot-path side of the flow log: per-second counters a limiter bumps under its
//! own lock, taken away by the writer. No I/O, no allocation but a new second's bucket.

use std::collections::VecDeque;
use std::time::Duration;

use super::format::{EventKind, EventRecord, SecondRecord};
use crate::pacer::{Event, Issued, Outcome, Pacer};

/// Counters of one limiter for the flow log.
#[derive(Debug)]
pub(crate) struct Recorder {
    service: String,
    /// The log's start, in the limiter's time base.
    base: Duration,
    seconds: VecDeque<SecondRecord>,
    /// The newest second recorded, taken or not.
    last_t: Option<u64>,
    events: Vec<EventRecord>,
    /// Gauges as last seen, carried into seconds with no event of their own.
    last: Gauges,
}

#[derive(Debug, Clone, Copy, Default)]
struct Gauges {
    waiting: u64,
    in_flight: u64,
    allowed_rate: f64,
    limit_rate: f64,
    paused: bool,
    daily_left: [Option<u64>; 2],
}

impl Gauges {
    fn active(&self) -> bool {
        self.waiting > 0 || self.in_flight > 0 || self.paused
    }
}

impl Recorder {
    pub(crate) fn new(service: &str, base: Duration, pacer: &Pacer) -> Self {
        let mut r = Self {
            service: service.to_owned(),
            base,
            seconds: VecDeque::new(),
            last_t: None,
            events: Vec::new(),
            last: Gauges::default(),
        };
        r.last = r.read_gauges(pacer);
        r
    }

    fn read_gauges(&self, pacer: &Pacer) -> Gauges {
        Gauges {
            waiting: pacer.waiting(),
            in_flight: pacer.in_flight(),
            allowed_rate: pacer.allowed_rate(),
            limit_rate: pacer.full_rate(),
            paused: pacer.is_paused(),
            daily_left: pacer.daily_left(pacer.last_now()),
        }
    }

    fn second_of(&self, now: Duration) -> u64 {
        now.saturating_sub(self.base).as_secs()
    }

    fn blank(&self, t: u64) -> SecondRecord {
        SecondRecord {
            service: self.service.clone(),
            t,
            requested: 0,
            issued: 0,
            reissued: 0,
            finished: 0,
            rate_limited: 0,
            waiting: self.last.waiting,
            in_flight: self.last.in_flight,
            allowed_rate: self.last.allowed_rate,
            limit_rate: self.last.limit_rate,
            paused: self.last.paused,
            tokens: 0,
            input_tokens: 0,
            output_tokens: 0,
            requests_left_today: self.last.daily_left[0],
            tokens_left_today: self.last.daily_left[1],
            waits_ms: Vec::new(),
        }
    }

    /// The bucket of `now`'s second, opening it (and carrying gauges over the seconds
    /// in between while anything waited) when time moved on.
    fn bucket(&mut self, now: Duration) -> &mut SecondRecord {
        let t = self.second_of(now);
        let open = self.seconds.back().is_some_and(|s| s.t >= t);
        if !open {
            if let Some(b) = self.last_t
                && self.last.active()
            {
                for gap in b + 1..t {
                    let rec = self.blank(gap);
                    self.seconds.push_back(rec);
                }
            }
            let rec = self.blank(t);
            self.seconds.push_back(rec);
            self.last_t = Some(t);
        }
        let last = self.seconds.len() - 1;
        &mut self.seconds[last]
    }

    pub(crate) fn requested(&mut self, now: Duration) {
        self.bucket(now).requested += 1;
    }

    pub(crate) fn issued(&mut self, now: Duration, t: &Issued) {
        let b = self.bucket(now);
        b.issued += 1;
        b.tokens += t.cost;
        b.input_tokens += t.input;
        b.output_tokens += t.output;
        if t.retry {
            b.reissued += 1;
        }
        b.waits_ms.push(t.waited.as_millis() as u64);
    }

    pub(crate) fn finished(&mut self, now: Duration, outcome: Outcome) {
        let b = self.bucket(now);
        match outcome {
            Outcome::RateLimited { .. } => b.rate_limited += 1,
            _ => b.finished += 1,
        }
    }

    pub(crate) fn retry_exhausted(&mut self, now: Duration) {
        self.push_event(now, EventKind::RetryExhausted, None);
    }

    pub(crate) fn unknown_service(&mut self, now: Duration) {
        self.push_event(
            now,
            EventKind::UnknownService,
            Some("created at the default rate".into()),
        );
    }

    pub(crate) fn event(&mut self, at: Duration, event: Event) {
        let (kind, detail) = match event {
            Event::Pause { until, retry_after } => {
                let why = if retry_after {
                    "retry_after"
                } else {
                    "probe interval"
                };
                (
                    EventKind::Pause,
                    Some(format!("until {:.3}s ({why})", self.secs(until))),
                )
            }
            Event::ProbeFailed { until } => (
                EventKind::Pause,
                Some(format!(
                    "probe refused; next probe at {:.3}s",
                    self.secs(until)
                )),
            ),
            Event::Probe => (EventKind::Probe, None),
            Event::Resume => (EventKind::Resume, None),
            Event::LearnedRate(rate) => (
                EventKind::LearnedRate,
                Some(format!("{:.1} rpm", rate * 60.0)),
            ),
            Event::Hold { until } => (
                EventKind::Pause,
                Some(format!(
                    "provider budget spent; hold until {:.3}s",
                    self.secs(until)
                )),
            ),
        };
        self.push_event(at, kind, detail);
        if matches!(event, Event::Pause { .. } | Event::ProbeFailed { .. }) {
            self.bucket(at).paused = true;
        }
    }

    fn secs(&self, at: Duration) -> f64 {
        at.saturating_sub(self.base).as_secs_f64()
    }

    fn push_event(&mut self, at: Duration, kind: EventKind, detail: Option<String>) {
        let t_ms = at.saturating_sub(self.base).as_millis() as u64;
        self.events.push(EventRecord {
            service: self.service.clone(),
            t_ms,
            kind,
            detail,
        });
    }

    /// Refreshes the gauges of the current second from the engine.
    pub(crate) fn gauges(&mut self, now: Duration, pacer: &Pacer) {
        self.last = self.read_gauges(pacer);
        let g = self.last;
        let b = self.bucket(now);
        b.waiting = g.waiting;
        b.in_flight = g.in_flight;
        b.allowed_rate = g.allowed_rate;
        b.limit_rate = g.limit_rate;
        b.paused |= g.paused;
        b.requests_left_today = g.daily_left[0];
        b.tokens_left_today = g.daily_left[1];
    }

    /// Takes the seconds that are over at `now` (all of them when `all`) and the events.
    pub(crate) fn take(
        &mut self,
        now: Duration,
        all: bool,
    ) -> (Vec<SecondRecord>, Vec<EventRecord>) {
        let current = self.second_of(now);
        if all && self.last.active() {
            // Carry the gauges up to now, so a pause that is still on shows to the end.
            self.bucket(now);
        }
        let keep = if all {
            0
        } else {
            self.seconds.iter().filter(|s| s.t >= current).count()
        };
        let done = self.seconds.len() - keep;
        let seconds = self.seconds.drain(..done).collect();
        (seconds, std::mem::take(&mut self.events))
    }
}
