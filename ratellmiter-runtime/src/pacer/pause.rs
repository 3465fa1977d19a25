//! The pause after a rate limit and the probes that end it (the module docs' "Pause and
//! probe"): [`Pause`] is the cycle's state, and the engine's methods here tie it to the
//! ramp, the schedule and the events.

use std::time::Duration;

use super::{Event, Issued, Outcome, Pacer, ProbeId, WaiterId, later};
use crate::config::{LimiterConfig, RampShape};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Running,
    Paused { until: Duration },
    Probing { outstanding: Option<Probe> },
}

/// The probe the engine waits for, and when it stops waiting.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Probe {
    kind: ProbeKind,
    deadline: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum ProbeKind {
    Ticket(WaiterId),
    Service(ProbeId),
}

/// Where the pause stands when the engine polls.
pub(super) enum Gate {
    /// Nothing goes out before this time.
    Closed(Duration),
    /// A pause the server timed ended at this time, and issuing resumes without a probe.
    Resume(Duration),
    /// A ticket may go out: a call, or while probing the probe.
    Open,
}

#[derive(Debug, Clone)]
pub(super) struct Pause {
    mode: Mode,
    /// The wait before the next probe: `probe_initial`, grown after each failed probe.
    interval: Duration,
    // The configuration's `probe_initial`, `probe_factor`, `probe_max`, `probe_timeout`.
    initial: Duration,
    factor: f64,
    max: Duration,
    timeout: Duration,
    /// The ramp is the slow start: a timed pause ends without a probe.
    slow_start: bool,
    /// Probe by asking the driver ([`Step::ProbeService`](super::Step::ProbeService)).
    external: bool,
    /// Starts at 0 and grows at each resume; see the module docs.
    epoch: u64,
    /// The pause came with the server's `retry_after` and no probe has failed since.
    told_when: bool,
    /// When the current (or last) pause began.
    paused_at: Duration,
    /// The first id handed out in the current (or last) pause: probes of this pause have
    /// ids from here on.
    episode_start: u64,
}

impl Pause {
    pub(super) fn new(cfg: &LimiterConfig) -> Self {
        Self {
            mode: Mode::Running,
            interval: cfg.probe_initial,
            initial: cfg.probe_initial,
            factor: cfg.probe_factor,
            max: cfg.probe_max,
            timeout: cfg.probe_timeout,
            slow_start: cfg.ramp_shape == RampShape::SlowStart,
            external: false,
            epoch: 0,
            told_when: false,
            paused_at: Duration::ZERO,
            episode_start: 0,
        }
    }

    /// Issuing goes on: no pause, no probe.
    pub(super) fn is_running(&self) -> bool {
        self.mode == Mode::Running
    }

    /// The next ticket is the probe.
    pub(super) fn is_probing(&self) -> bool {
        matches!(self.mode, Mode::Probing { .. })
    }

    /// The driver checks the service instead of the engine issuing a call as the probe.
    pub(super) fn probes_service(&self) -> bool {
        self.external && self.is_probing()
    }

    /// The epoch tickets go out in now.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A ticket of `epoch` went out before the last resume.
    pub(super) fn is_stale(&self, epoch: u64) -> bool {
        epoch < self.epoch
    }

    /// The service check `id` belongs to the current pause.
    fn in_episode(&self, id: ProbeId) -> bool {
        !self.is_running() && id.0 >= self.episode_start
    }

    /// `kind` is the probe the engine waits for.
    fn is_current(&self, kind: ProbeKind) -> bool {
        matches!(self.mode, Mode::Probing { outstanding: Some(p) } if p.kind == kind)
    }

    /// With the slow start, a pause the server timed (`retry_after`) ends at that time
    /// without waiting for a probe's answer: a probe's round trip is seconds of quota
    /// for an LLM call, and the server said when it takes calls again. A refusal after
    /// the resume pauses again; a pause whose probe failed always probes.
    fn trust_retry_after(&self) -> bool {
        self.told_when && self.slow_start
    }

    /// Where the pause stands at `now`; the time for probing ends the wait.
    pub(super) fn gate(&mut self, now: Duration) -> Gate {
        match self.mode {
            Mode::Paused { until } if now < until => Gate::Closed(until),
            Mode::Paused { until } if self.trust_retry_after() => Gate::Resume(until),
            Mode::Paused { .. } => {
                self.mode = Mode::Probing { outstanding: None };
                Gate::Open
            }
            Mode::Probing {
                outstanding: Some(p),
            } => Gate::Closed(p.deadline),
            Mode::Probing { outstanding: None } | Mode::Running => Gate::Open,
        }
    }

    /// The deadline of the probe out, once `now` has passed it.
    fn overdue(&self, now: Duration) -> Option<Duration> {
        match self.mode {
            Mode::Probing {
                outstanding: Some(p),
            } if now >= p.deadline => Some(p.deadline),
            _ => None,
        }
    }

    /// A rate limit at `now` stops issuing; ids from `next_id` on belong to this pause.
    /// Returns when probing starts.
    fn start(&mut self, now: Duration, retry_after: Option<Duration>, next_id: u64) -> Duration {
        self.paused_at = now;
        self.told_when = retry_after.is_some();
        self.episode_start = next_id;
        let until = later(now, retry_after.unwrap_or(self.interval));
        self.mode = Mode::Paused { until };
        until
    }

    /// The probe was refused at `now`: backs off. Returns when the next probe goes out.
    fn probe_failed(&mut self, now: Duration, retry_after: Option<Duration>) -> Duration {
        self.told_when = false;
        let grown = self.interval.mul_f64(self.factor);
        self.interval = grown.min(self.max);
        let until = later(now, retry_after.unwrap_or(self.interval));
        self.mode = Mode::Paused { until };
        until
    }

    /// The store paused the fleet at `now` (a shared budget).
    pub(super) fn fleet_paused(&mut self, now: Duration) {
        self.paused_at = now;
    }

    /// The store resumed the fleet: a new epoch. Returns when the pause began.
    pub(super) fn fleet_resumed(&mut self) -> Duration {
        self.epoch += 1;
        self.paused_at
    }

    /// Issuing resumes in a new epoch. Returns whether the first probe succeeded: a
    /// momentary excess, not an outage.
    fn end(&mut self) -> bool {
        self.mode = Mode::Running;
        self.epoch += 1;
        let short = self.interval == self.initial;
        self.interval = self.initial;
        short
    }

    /// The probe `kind` went out at `now`.
    fn send(&mut self, now: Duration, kind: ProbeKind) {
        self.mode = Mode::Probing {
            outstanding: Some(Probe {
                kind,
                deadline: later(now, self.timeout),
            }),
        };
    }

    /// The probe `kind`, if the engine waits for it, ended without an answer: the next
    /// poll probes again.
    fn abandon(&mut self, kind: ProbeKind) {
        if self.is_current(kind) {
            self.mode = Mode::Probing { outstanding: None };
        }
    }
}

impl Pacer {
    /// Probe by asking the driver ([`Step::ProbeService`](super::Step::ProbeService))
    /// instead of by issuing a call.
    pub fn set_external_probe(&mut self, on: bool) {
        self.pause.external = on;
    }

    /// Reports the answer of the [`Step::ProbeService`](super::Step::ProbeService) check
    /// `id`. "Blocked" counts only from the check the engine waits for; "open" from any
    /// check of the current pause (one that timed out may still answer first).
    pub fn probe_result(&mut self, now: Duration, id: ProbeId, still_blocked: bool) {
        let now = self.advance(now);
        if !self.pause.in_episode(id) {
            return;
        }
        if !still_blocked {
            self.resume(now);
        } else if self.pause.is_current(ProbeKind::Service(id)) {
            self.probe_failed(now, None);
        }
    }

    /// The driver could not finish the [`Step::ProbeService`](super::Step::ProbeService)
    /// check `id` (it was cancelled): the next poll probes again.
    pub fn probe_abandoned(&mut self, id: ProbeId) {
        self.pause.abandon(ProbeKind::Service(id));
    }

    /// What the end of ticket `t`'s call says about the pause: a rate limit while
    /// running pauses, the probe's answer ends the pause or backs off.
    pub(super) fn on_outcome(&mut self, now: Duration, t: &Issued, outcome: Outcome) {
        let stale = self.pause.is_stale(t.epoch);
        // The probe the engine waits for now; an earlier probe of this episode that
        // timed out may still answer, and only a success of it counts.
        let current_probe = self.pause.is_current(ProbeKind::Ticket(t.id));
        let episode_probe = t.probe && !stale && !self.pause.is_running();
        match outcome {
            Outcome::RateLimited { retry_after } => {
                if current_probe {
                    self.probe_failed(now, retry_after);
                } else if self.pause.is_running() && !stale && !self.ramp.is_shared() {
                    // Shared: the store pauses the fleet (`Pacer::fleet_paused`).
                    self.start_pause(now, retry_after);
                }
            }
            Outcome::Success | Outcome::Error => {
                if episode_probe {
                    self.resume(now);
                }
            }
            Outcome::Abandoned => self.pause.abandon(ProbeKind::Ticket(t.id)),
        }
    }

    /// A probe unanswered for `probe_timeout` by `now` counts as refused at its deadline.
    pub(super) fn time_out_probe(&mut self, now: Duration) {
        if let Some(deadline) = self.pause.overdue(now) {
            self.probe_failed(deadline, None);
        }
    }

    /// Sends the probe `kind` at `now`.
    pub(super) fn send_probe(&mut self, now: Duration, kind: ProbeKind) {
        self.pause.send(now, kind);
        self.events.push((now, Event::Probe));
    }

    fn start_pause(&mut self, now: Duration, retry_after: Option<Duration>) {
        let until = self.pause.start(now, retry_after, self.next_id);
        self.events.push((
            now,
            Event::Pause {
                until,
                retry_after: retry_after.is_some(),
            },
        ));
        if let Some(learned) = self.ramp.refused(now, self.schedule.growth(now)) {
            self.events.push((now, Event::LearnedRate(learned)));
        }
    }

    fn probe_failed(&mut self, now: Duration, retry_after: Option<Duration>) {
        let until = self.pause.probe_failed(now, retry_after);
        self.events.push((now, Event::ProbeFailed { until }));
    }

    /// Issuing resumes at `now`; the ramp goes on, or starts again after an outage.
    pub(super) fn resume(&mut self, now: Duration) {
        let short = self.pause.end();
        self.ramp.resume(self.pause.paused_at, now, short);
        self.schedule.not_before(now);
        self.events.push((now, Event::Resume));
    }
}
