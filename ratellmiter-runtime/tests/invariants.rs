//! Invariants of the pure pacing engine, checked by property tests.
//!
//! An event-driven simulator plays a random scenario against [`Pacer`] in virtual time:
//! arrivals in bursts, steady streams and idle gaps; calls of both priorities with token
//! estimates; random latencies; rate limits injected with and without `retry_after`;
//! cancellations while waiting or running; service probes; a change of rpm. It acts as
//! a driver would (a rate-limited call re-queues as a retry, a cancelled running call
//! gives its ticket back as abandoned) and, after every step, checks what the engine
//! promises:
//!
//! - at most R tickets in any 60 s window, at most ceil(R/60) in any 1 s window, on the
//!   actual issue times of a driver that wakes up to 5 ms late; at most TPM tokens in
//!   the 60 s window of every issue, counting what the engine knew then (usage is
//!   reported when the call ends, seconds later, below or above the estimate);
//! - retries before new calls, FIFO within each class, high priority ahead of normal
//!   with at most `high_priority_streak` high tickets in a row while normal calls wait;
//! - `issued + waiting + cancelled == requested` at every step, the engine's `waiting`
//!   and `in_flight` equal the simulator's, and `in_flight` is 0 at the end;
//! - every call not cancelled ends (no starvation), within a generous bound of time;
//! - the allowed rate grows at most as the ramp's shape allows per second of the
//!   schedule (linear: `ramp_step` of the full rate; slow start: `ramp_step` of
//!   itself, or `AVOIDANCE_STEP` of the full rate after a refusal), from at least its
//!   start, and never exceeds the full rate;
//! - while paused nothing is issued but the probe, and nothing before the pause ends.
//!
//! Failing cases proptest finds are kept in `proptest-regressions/invariants.txt`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ratellmiter_runtime::pacer::{
    Cost, Event, Issued, Outcome, Pacer, Priority, ProbeId, Request, Step, WaiterId,
};

/// The engine's tuning, as its module docs state it (the constants are private; a unit
/// test in `pacer/tests.rs` pins the same values): after a refusal the slow start climbs
/// by 10 % of the full rate per second, and the learned ceiling never drops below 1 %.
const AVOIDANCE_STEP: f64 = 0.10;
const FLOOR: f64 = 0.01;
use ratellmiter_runtime::{LimiterConfig, RampShape};
use ratellmiter_sim::metrics::max_weight_in_window;

// ---------------------------------------------------------------- scenario

/// How the k-th ticket's call ends (tickets past the list succeed).
#[derive(Debug, Clone, Copy)]
enum Fate {
    Success,
    Error,
    RateLimited(Option<Duration>),
}

/// What the service says when asked whether it still refuses calls.
#[derive(Debug, Clone, Copy)]
enum ProbeAnswer {
    Open,
    Blocked,
    /// The check was dropped before it answered.
    Abandoned,
}

#[derive(Debug, Clone)]
struct CallSpec {
    arrival: Duration,
    priority: Priority,
    cost: u64,
    /// Share of the estimate the call really uses, reported when it ends.
    usage: f64,
    /// Cancelled this long after its arrival, whatever state it is in.
    cancel_after: Option<Duration>,
    /// Tries `try_issue` first and queues only when that fails.
    try_first: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    cfg: LimiterConfig,
    external_probe: bool,
    calls: Vec<CallSpec>,
    fates: Vec<Fate>,
    latencies: Vec<Duration>,
    /// How much earlier than asked the driver looks again, cycled per wake-up (a
    /// driver may poll at any time: another call arrives, a timer fires early).
    early_polls: Vec<Duration>,
    /// How much later than asked the driver wakes, cycled per wake-up (timer lateness).
    late_polls: Vec<Duration>,
    probe_answers: Vec<ProbeAnswer>,
    /// The rpm changes to this at this time.
    rpm_change: Option<(Duration, u32)>,
}

/// One stretch of the arrival pattern.
#[derive(Debug, Clone)]
enum Phase {
    Burst(usize),
    Steady(usize, Duration),
    Idle(Duration),
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        (1usize..120).prop_map(Phase::Burst),
        (1usize..120, 0u64..3_000)
            .prop_map(|(n, gap)| Phase::Steady(n, Duration::from_millis(gap))),
        (0u64..200_000).prop_map(|gap| Phase::Idle(Duration::from_millis(gap))),
    ]
}

fn arrival_times(phases: &[Phase]) -> Vec<Duration> {
    let mut t = Duration::ZERO;
    let mut times = Vec::new();
    for p in phases {
        match *p {
            Phase::Burst(n) => times.extend(std::iter::repeat_n(t, n)),
            Phase::Steady(n, gap) => {
                for _ in 0..n {
                    times.push(t);
                    t += gap;
                }
            }
            Phase::Idle(gap) => t += gap,
        }
    }
    times
}

fn rpm() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=120, 121u32..=2_000, 2_001u32..=20_000]
}

fn config() -> impl Strategy<Value = LimiterConfig> {
    (
        rpm(),
        prop::option::weighted(0.4, 1u64..=2_000_000),
        0.01f64..=1.0,
        0.01f64..=1.0,
        any::<bool>(),
        0u32..=5,
        1u64..=20_000,
        prop_oneof![Just(60_000u64), 1_000u64..=20_000],
        prop_oneof![Just(RampShape::SlowStart), Just(RampShape::Linear)],
    )
        .prop_map(
            |(rpm, tpm, ramp_start, ramp_step, adaptive, streak, probe_ms, timeout_ms, shape)| {
                LimiterConfig {
                    rpm,
                    tpm,
                    ramp_start,
                    ramp_step,
                    adaptive,
                    high_priority_streak: streak,
                    probe_initial: Duration::from_millis(probe_ms),
                    probe_max: Duration::from_millis(probe_ms).max(Duration::from_secs(65)),
                    probe_timeout: Duration::from_millis(timeout_ms),
                    ramp_shape: shape,
                    ..Default::default()
                }
            },
        )
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        6 => Just(Fate::Success),
        1 => Just(Fate::Error),
        2 => Just(Fate::RateLimited(None)),
        2 => (0u64..90_000).prop_map(|ms| Fate::RateLimited(Some(Duration::from_millis(ms)))),
    ]
}

fn probe_answer() -> impl Strategy<Value = ProbeAnswer> {
    prop_oneof![
        2 => Just(ProbeAnswer::Open),
        2 => Just(ProbeAnswer::Blocked),
        1 => Just(ProbeAnswer::Abandoned),
    ]
}

/// Per-call attributes, drawn before the token budget is known.
#[derive(Debug, Clone, Copy)]
struct Attrs {
    high: bool,
    cost_share: f64,
    usage: f64,
    cancel_after: Option<u64>,
    try_first: bool,
}

fn attrs() -> impl Strategy<Value = Attrs> {
    (
        prop::bool::weighted(0.3),
        prop_oneof![9 => 0.0f64..0.05, 1 => 0.0f64..=1.0],
        prop_oneof![3 => Just(1.0f64), 1 => 0.0f64..=1.0, 1 => 1.0f64..=1.5],
        prop::option::weighted(0.15, 0u64..120_000),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(high, cost_share, usage, cancel_after, try_first)| Attrs {
            high,
            cost_share,
            usage,
            cancel_after,
            try_first,
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        config(),
        any::<bool>(),
        prop::collection::vec(phase(), 1..6),
        prop::collection::vec(attrs(), 400),
        prop::collection::vec(fate(), 0..40),
        prop::collection::vec(0u64..5_000, 1..20),
        prop::collection::vec(prop_oneof![Just(0u64), Just(1), 1u64..2_000_000], 1..8),
        prop::collection::vec(0u64..=5_000, 1..8),
        prop::collection::vec(probe_answer(), 0..6),
        prop::option::weighted(0.25, (0u64..300_000, rpm())),
    )
        .prop_map(
            |(
                cfg,
                external_probe,
                phases,
                attrs,
                fates,
                latencies,
                early,
                late,
                probe_answers,
                change,
            )| {
                let calls = arrival_times(&phases)
                    .into_iter()
                    .zip(attrs)
                    .map(|(arrival, a)| CallSpec {
                        arrival,
                        priority: if a.high {
                            Priority::High
                        } else {
                            Priority::Normal
                        },
                        cost: cfg.tpm.map_or(0, |tpm| (tpm as f64 * a.cost_share) as u64),
                        usage: a.usage,
                        cancel_after: a.cancel_after.map(Duration::from_millis),
                        try_first: a.try_first,
                    })
                    .collect();
                Scenario {
                    cfg,
                    external_probe,
                    calls,
                    fates,
                    latencies: latencies.into_iter().map(Duration::from_millis).collect(),
                    early_polls: early.into_iter().map(Duration::from_micros).collect(),
                    late_polls: late.into_iter().map(Duration::from_micros).collect(),
                    probe_answers,
                    rpm_change: change.map(|(ms, rpm)| (Duration::from_millis(ms), rpm)),
                }
            },
        )
}

// ---------------------------------------------------------------- simulator

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Retry,
    High,
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CallState {
    NotArrived,
    Waiting(WaiterId),
    Running(Issued),
    Done,
    Cancelled,
}

/// Things scheduled for a time; ordered so that equal times run in a fixed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Finish {
        call: usize,
        ticket: u64,
    },
    ProbeAnswer,
    Cancel {
        call: usize,
    },
    RpmChange,
    Arrive {
        call: usize,
    },
    /// A poll with nothing else to do.
    Poll,
}

/// One ticket as seen from outside: when it went out and its token estimate.
#[derive(Debug, Clone, Copy)]
struct IssueRecord {
    at: Duration,
    cost: u64,
    probe: bool,
}

struct Sim<'a> {
    sc: &'a Scenario,
    p: Pacer,
    now: Duration,
    states: Vec<CallState>,
    /// The engine's waiters, as this driver knows them: the call and its class.
    waiting: HashMap<WaiterId, (usize, Class)>,
    /// Queue order of each class (cancelled ids are removed at once here).
    queues: BTreeMap<Class, VecDeque<WaiterId>>,
    agenda: BTreeMap<(Duration, Action), ()>,
    wake: Option<Duration>,
    issues: Vec<IssueRecord>,
    /// Tokens each ticket is charged as far as the engine knows: its estimate until the
    /// call reports its usage, by ticket number.
    charged: HashMap<u64, u64>,
    /// The service probe out now.
    service_probe: Option<ProbeId>,
    /// When the engine last resumed after a pause.
    resumed_at: Option<Duration>,
    tickets: u64,
    probe_answers: usize,
    high_streak: u32,
    last_rate: Option<(Duration, f64)>,
    /// No ticket may go out before this (the end of the latest pause).
    blocked_until: Duration,
    rpm_changed_at: Option<Duration>,
    wake_ups: usize,
    requested: u64,
    pauses: u64,
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario) -> Self {
        let mut p = Pacer::new(sc.cfg.clone()).expect("generated configs are valid");
        p.set_external_probe(sc.external_probe);
        let mut agenda = BTreeMap::new();
        for (i, c) in sc.calls.iter().enumerate() {
            agenda.insert((c.arrival, Action::Arrive { call: i }), ());
            if let Some(after) = c.cancel_after {
                agenda.insert((c.arrival + after, Action::Cancel { call: i }), ());
            }
        }
        if let Some((at, _)) = sc.rpm_change {
            agenda.insert((at, Action::RpmChange), ());
        }
        Self {
            sc,
            p,
            now: Duration::ZERO,
            states: vec![CallState::NotArrived; sc.calls.len()],
            waiting: HashMap::new(),
            queues: BTreeMap::new(),
            agenda,
            wake: None,
            issues: Vec::new(),
            charged: HashMap::new(),
            service_probe: None,
            resumed_at: None,
            tickets: 0,
            probe_answers: 0,
            high_streak: 0,
            last_rate: None,
            blocked_until: Duration::ZERO,
            rpm_changed_at: None,
            wake_ups: 0,
            requested: 0,
            pauses: 0,
        }
    }

    fn latency(&self, n: u64) -> Duration {
        self.sc.latencies[n as usize % self.sc.latencies.len()]
    }

    fn enqueue(&mut self, call: usize, retry: bool) {
        let spec = &self.sc.calls[call];
        let req = Request {
            retry,
            priority: spec.priority,
            cost: Cost::tokens(spec.cost),
            deadline: None,
        };
        let class = match (retry, spec.priority) {
            (true, _) => Class::Retry,
            (false, Priority::High) => Class::High,
            (false, Priority::Normal) => Class::Normal,
            (false, p) => unreachable!("the scenarios make normal and high calls, not {p:?}"),
        };
        let id = self
            .p
            .enqueue(self.now, req)
            .expect("costs never exceed the budget");
        self.requested += 1;
        self.waiting.insert(id, (call, class));
        self.queues.entry(class).or_default().push_back(id);
        self.states[call] = CallState::Waiting(id);
    }

    fn front(&self, class: Class) -> Option<WaiterId> {
        self.queues.get(&class).and_then(|q| q.front().copied())
    }

    /// Checks one ticket against the promises, then starts its call.
    fn on_issued(&mut self, t: Issued, paused_before: bool) -> Result<(), TestCaseError> {
        let now = self.now;
        let (call, class) = match self.waiting.remove(&t.id()) {
            Some(w) => w,
            None => return Err(TestCaseError::fail(format!("{:?} was not waiting", t.id()))),
        };
        // Queue order: retries first, then high with a bounded streak, then normal.
        let (retry, high, normal) = (
            self.front(Class::Retry),
            self.front(Class::High),
            self.front(Class::Normal),
        );
        let streak = self.sc.cfg.high_priority_streak;
        let expected = match (retry, high, normal) {
            (Some(r), _, _) => r,
            (None, Some(h), Some(n)) => {
                if self.high_streak >= streak {
                    n
                } else {
                    h
                }
            }
            (None, Some(h), None) => h,
            (None, None, Some(n)) => n,
            (None, None, None) => unreachable!("the ticket's waiter is queued"),
        };
        prop_assert_eq!(
            t.id(),
            expected,
            "at {:?}: wrong call issued (class {:?}, streak {})",
            now,
            class,
            self.high_streak
        );
        self.queues.get_mut(&class).unwrap().pop_front();
        self.high_streak = if class == Class::High {
            self.high_streak + 1
        } else {
            0
        };
        prop_assert_eq!(t.is_retry(), class == Class::Retry);

        // Pauses: only the probe goes out, and never before the pause ends.
        prop_assert!(
            now >= self.blocked_until,
            "issued at {:?} during a pause until {:?}",
            now,
            self.blocked_until
        );
        // A ticket during a pause is its probe, unless the slow start trusted the
        // server's retry-after and resumed when it said, without one.
        let trusted =
            self.sc.cfg.ramp_shape == RampShape::SlowStart && self.resumed_at == Some(now);
        prop_assert_eq!(
            t.is_probe(),
            paused_before && !trusted,
            "probe flag vs pause at {:?}",
            now
        );
        prop_assert!(
            !(self.sc.external_probe && t.is_probe()),
            "a service probe never issues a call"
        );
        if t.is_probe() {
            // A probe older than the time-out counts as refused: another may go out.
            let timeout = self.sc.cfg.probe_timeout;
            let probes_out = self
                .states
                .iter()
                .filter(|s| matches!(s, CallState::Running(r) if r.is_probe()))
                .count();
            let timed_out = self
                .issues
                .iter()
                .filter(|i| i.probe && i.at + timeout <= now)
                .count();
            prop_assert!(probes_out <= timed_out, "a second probe at {:?}", now);
        }

        // Ramp: at most one step of the full rate per second of the schedule, from at
        // least its start. The schedule runs on slots, which a late driver issues up to
        // its lateness after their time.
        let lateness = self.sc.late_polls.iter().max().copied().unwrap_or_default();
        let rate = self.p.allowed_rate();
        let full = self.p.full_rate();
        prop_assert!(
            rate <= full * (1.0 + 1e-12),
            "rate {} above full {}",
            rate,
            full
        );
        if let Some((at, before)) = self.last_rate {
            let start = self.sc.cfg.ramp_start * full;
            let step = self.sc.cfg.ramp_step;
            let dt = (now - at + lateness).as_secs_f64();
            let bound = match self.sc.cfg.ramp_shape {
                RampShape::Linear => before.max(start) + step * full * dt,
                // Doubling, or after a refusal the linear climb of congestion avoidance.
                _ => (before.max(start) * (1.0 + step).powf(dt))
                    .max(before.max(start) + AVOIDANCE_STEP * full * dt),
            };
            prop_assert!(
                rate <= bound * (1.0 + 1e-9) + 1e-12,
                "rate grew from {} to {} in {:?} (step {}/s)",
                before,
                rate,
                now - at,
                step
            );
        }
        self.last_rate = Some((now, rate));

        let ticket = self.tickets;
        self.tickets += 1;
        self.charged.insert(ticket, t.cost());
        self.issues.push(IssueRecord {
            at: now,
            cost: t.cost(),
            probe: t.is_probe(),
        });
        // Tokens: what the engine knew of the last minute's tickets, this one included.
        if let Some(tpm) = self.sc.cfg.tpm {
            let known: u64 = self
                .issues
                .iter()
                .enumerate()
                .rev()
                .take_while(|(_, i)| i.at + Duration::from_secs(60) > now)
                .map(|(k, _)| self.charged[&(k as u64)])
                .sum();
            prop_assert!(
                known <= tpm,
                "{} tokens in 60 s under {} tpm at {:?}",
                known,
                tpm,
                now
            );
        }
        self.states[call] = CallState::Running(t);
        let done = now + self.latency(ticket);
        self.agenda
            .insert((done, Action::Finish { call, ticket }), ());
        Ok(())
    }

    fn step_action(&mut self, action: Action) -> Result<(), TestCaseError> {
        match action {
            Action::Arrive { call } => {
                if self.states[call] != CallState::NotArrived {
                    return Ok(()); // cancelled before it arrived
                }
                let spec = &self.sc.calls[call];
                if spec.try_first {
                    let nobody_waits = self.waiting.is_empty();
                    let paused = self.p.is_paused();
                    let req = Request {
                        retry: false,
                        priority: spec.priority,
                        cost: Cost::tokens(spec.cost),
                        deadline: None,
                    };
                    if let Ok(t) = self.p.try_issue(self.now, req) {
                        prop_assert!(
                            nobody_waits && !paused,
                            "try_issue jumped the queue or a pause"
                        );
                        self.requested += 1;
                        let class = if spec.priority == Priority::High {
                            Class::High
                        } else {
                            Class::Normal
                        };
                        self.waiting.insert(t.id(), (call, class));
                        self.queues.entry(class).or_default().push_back(t.id());
                        return self.on_issued(t, false);
                    }
                }
                self.enqueue(call, false);
            }
            Action::Cancel { call } => match self.states[call] {
                CallState::NotArrived => self.states[call] = CallState::Cancelled,
                CallState::Waiting(id) => {
                    prop_assert!(self.p.cancel(self.now, id), "a waiting call must cancel");
                    let (_, class) = self.waiting.remove(&id).unwrap();
                    self.queues.get_mut(&class).unwrap().retain(|&w| w != id);
                    self.states[call] = CallState::Cancelled;
                }
                CallState::Running(t) => {
                    // The driver drops the running call: its ticket comes back, outcome unknown.
                    self.agenda
                        .retain(|k, _| !matches!(k.1, Action::Finish { call: c, .. } if c == call));
                    self.p.finish(self.now, &t, Outcome::Abandoned);
                    self.states[call] = CallState::Cancelled;
                }
                CallState::Done | CallState::Cancelled => {}
            },
            Action::Finish { call, ticket } => {
                let CallState::Running(t) = self.states[call] else {
                    return Err(TestCaseError::fail("a finish for a call not running"));
                };
                // The answer brings the usage, below or above the estimate.
                let used = (t.cost() as f64 * self.sc.calls[call].usage) as u64;
                self.p.record_usage(&t, used);
                self.charged.insert(ticket, used);
                match self
                    .sc
                    .fates
                    .get(ticket as usize)
                    .copied()
                    .unwrap_or(Fate::Success)
                {
                    Fate::Success => {
                        self.p.finish(self.now, &t, Outcome::Success);
                        self.states[call] = CallState::Done;
                    }
                    Fate::Error => {
                        self.p.finish(self.now, &t, Outcome::Error);
                        self.states[call] = CallState::Done;
                    }
                    Fate::RateLimited(retry_after) => {
                        self.p
                            .finish(self.now, &t, Outcome::RateLimited { retry_after });
                        // A refused call used no tokens: the engine refunds it.
                        self.charged.insert(ticket, 0);
                        self.enqueue(call, true);
                    }
                }
            }
            Action::ProbeAnswer => {
                let answer = self
                    .sc
                    .probe_answers
                    .get(self.probe_answers)
                    .copied()
                    .unwrap_or(ProbeAnswer::Open);
                self.probe_answers += 1;
                let Some(id) = self.service_probe.take() else {
                    return Err(TestCaseError::fail("an answer without a probe"));
                };
                match answer {
                    ProbeAnswer::Open => self.p.probe_result(self.now, id, false),
                    ProbeAnswer::Blocked => self.p.probe_result(self.now, id, true),
                    ProbeAnswer::Abandoned => self.p.probe_abandoned(id),
                }
            }
            Action::Poll => {}
            Action::RpmChange => {
                let (_, rpm) = self.sc.rpm_change.unwrap();
                self.p
                    .set_rpm(self.now, rpm)
                    .expect("generated rpm is valid");
                self.rpm_changed_at = Some(self.now);
                // A lower limit takes effect at once: the ramp is bounded by the new rate.
                self.last_rate = self
                    .last_rate
                    .map(|(at, r)| (at, r.min(self.p.full_rate())));
            }
        }
        Ok(())
    }

    /// Issues everything due now and notes when to look again.
    fn poll_all(&mut self) -> Result<(), TestCaseError> {
        self.wake = None;
        loop {
            let paused_before = self.p.is_paused();
            match self.p.poll(self.now) {
                Step::Issued(t) => {
                    self.drain_events();
                    self.on_issued(t, paused_before)?;
                }
                Step::WaitUntil(at) => {
                    prop_assert!(
                        at > self.now,
                        "WaitUntil({:?}) at {:?} would spin",
                        at,
                        self.now
                    );
                    let late = self.sc.late_polls[self.wake_ups % self.sc.late_polls.len()];
                    self.wake = Some(at + late);
                    let early = self.sc.early_polls[self.wake_ups % self.sc.early_polls.len()];
                    self.wake_ups += 1;
                    if at - self.now > early && !early.is_zero() {
                        self.agenda.insert((at - early, Action::Poll), ());
                    }
                    break;
                }
                Step::ProbeService(id) => {
                    prop_assert!(self.sc.external_probe);
                    // A probe that timed out is dropped by the driver: its answer never comes.
                    self.agenda.retain(|k, _| k.1 != Action::ProbeAnswer);
                    self.service_probe = Some(id);
                    let at = self.now + self.latency(self.probe_answers as u64);
                    self.agenda.insert((at, Action::ProbeAnswer), ());
                }
                Step::QuotaExhausted { .. } | Step::AtCapacity => {
                    prop_assert!(false, "no daily quota or in-flight cap is configured here");
                }
                Step::Idle => break,
            }
        }
        self.drain_events();
        Ok(())
    }

    fn drain_events(&mut self) {
        for (_, e) in self.p.drain_events() {
            match e {
                Event::Pause { until, .. } => {
                    self.pauses += 1;
                    self.blocked_until = self.blocked_until.max(until);
                }
                Event::ProbeFailed { until } => {
                    self.pauses += 1;
                    self.blocked_until = self.blocked_until.max(until);
                }
                // A probe that timed out may still answer first: the pause ends then.
                Event::Resume => {
                    self.blocked_until = self.blocked_until.min(self.now);
                    self.resumed_at = Some(self.now);
                }
                _ => {}
            }
        }
    }

    fn check_balance(&mut self) -> Result<(), TestCaseError> {
        let c = self.p.stats(self.now);
        prop_assert_eq!(c.issued + self.p.waiting() + c.cancelled, c.requested);
        prop_assert_eq!(c.requested, self.requested);
        prop_assert_eq!(self.p.waiting(), self.waiting.len() as u64);
        let running = self
            .states
            .iter()
            .filter(|s| matches!(s, CallState::Running(_)))
            .count() as u64;
        prop_assert_eq!(self.p.in_flight(), running);
        Ok(())
    }

    fn run(&mut self) -> Result<(), TestCaseError> {
        let mut steps = 0u64;
        loop {
            let next_action = self.agenda.keys().next().map(|k| k.0);
            let next = match (next_action, self.wake) {
                (Some(a), Some(w)) => a.min(w),
                (a, w) => match a.or(w) {
                    Some(t) => t,
                    None => return Ok(()),
                },
            };
            prop_assert!(next >= self.now, "time ran backwards");
            self.now = next;
            while let Some((&(at, action), _)) = self.agenda.iter().next() {
                if at > self.now {
                    break;
                }
                self.agenda.remove(&(at, action));
                self.step_action(action)?;
                self.check_balance()?;
            }
            self.poll_all()?;
            self.check_balance()?;
            steps += 1;
            prop_assert!(steps < 2_000_000, "the simulation does not settle");
        }
    }

    /// A generous bound on when the last call may end: every ticket spaced at the
    /// slowest rate the engine may fall to, each token charge waiting a full window and
    /// its slowest spacing, every pause at its longest, every call at its longest.
    fn time_bound(&self) -> Duration {
        let cfg = &self.sc.cfg;
        let min_rpm = cfg.rpm.min(self.sc.rpm_change.map_or(u32::MAX, |c| c.1));
        let min_share = cfg.ramp_start.min(FLOOR);
        let per_ticket = 60.0 / (min_rpm as f64 * min_share);
        let per_token = cfg
            .tpm
            .map_or(0.0, |tpm| 60.0 / (tpm as f64 * min_share.max(1e-3)));
        let tokens: f64 = self
            .issues
            .iter()
            .map(|i| i.cost as f64 * per_token + 60.0)
            .sum();
        let longest_retry_after = self
            .sc
            .fates
            .iter()
            .filter_map(|f| match f {
                Fate::RateLimited(Some(d)) => Some(d.as_secs_f64()),
                _ => None,
            })
            .fold(0.0, f64::max);
        let per_pause = cfg.probe_max.as_secs_f64().max(longest_retry_after) + 5.0;
        let last_input = self
            .sc
            .calls
            .iter()
            .map(|c| c.arrival)
            .max()
            .unwrap_or_default()
            .max(self.sc.rpm_change.map_or(Duration::ZERO, |c| c.0));
        last_input
            + Duration::from_secs_f64(
                self.issues.len() as f64 * (per_ticket + 5.0)
                    + tokens
                    + (self.pauses + self.sc.probe_answers.len() as u64) as f64 * per_pause
                    + 1.0,
            )
    }
}

// ---------------------------------------------------------------- window checks

fn check_windows(points: &[(Duration, u64)], rpm: u32) -> Result<(), TestCaseError> {
    let per_minute = max_weight_in_window(points, Duration::from_secs(60));
    prop_assert!(
        per_minute <= rpm as u64,
        "{} tickets in 60 s at {} rpm",
        per_minute,
        rpm
    );
    let per_second = max_weight_in_window(points, Duration::from_secs(1));
    let bound = (rpm as u64).div_ceil(60);
    prop_assert!(
        per_second <= bound,
        "{} tickets in 1 s at {} rpm (bound {})",
        per_second,
        rpm,
        bound
    );
    Ok(())
}

fn check_scenario(sc: &Scenario) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(sc);
    sim.run()?;

    // Nobody starves, nothing leaks.
    for (i, s) in sim.states.iter().enumerate() {
        prop_assert!(
            matches!(s, CallState::Done | CallState::Cancelled),
            "call {} ends {:?} (arrived {:?})",
            i,
            s,
            sc.calls[i].arrival
        );
    }
    prop_assert_eq!(sim.p.in_flight(), 0);
    prop_assert_eq!(sim.p.waiting(), 0);
    let bound = sim.time_bound();
    prop_assert!(
        sim.now <= bound,
        "the last call ended at {:?}, bound {:?}",
        sim.now,
        bound
    );

    // Request windows, split at the change of rpm: each part keeps its own limit (the
    // first ticket after a change is spaced by the new interval from the last before).
    let split = sim.rpm_changed_at.map_or(sim.issues.len(), |at| {
        sim.issues
            .iter()
            .position(|i| i.at >= at)
            .unwrap_or(sim.issues.len())
    });
    let ones: Vec<(Duration, u64)> = sim.issues.iter().map(|i| (i.at, 1)).collect();
    check_windows(&ones[..split], sc.cfg.rpm)?;
    if let Some((_, rpm)) = sc.rpm_change {
        check_windows(&ones[split.saturating_sub(1)..], rpm)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES overrides the 600 (scripts/mutants.sh runs fewer, soak runs more).
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(600),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/invariants.txt"
        )))),
        ..ProptestConfig::default()
    })]

    /// Every promise of the engine, over random scenarios.
    #[test]
    fn the_engine_keeps_its_promises(sc in scenario()) {
        check_scenario(&sc)?;
    }
}
