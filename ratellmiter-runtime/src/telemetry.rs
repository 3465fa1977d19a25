//! Where the limiter reports to `tracing` and, with the `metrics` feature, to the
//! `metrics` facade: counters, gauges and a histogram named `ratellmiter_*` with a
//! `service` label.
//!
//! Every value is recorded as a change (counters by `increment`, gauges by
//! `increment`/`decrement`), so several limiters under one label (the "unnamed" ones,
//! or one service name used by many monitors) add up instead of overwriting each other.
//! The changes are [staged](Metrics::stage) under the limiter's lock and
//! [emitted](Staged::emit) after it is released.

use crate::pacer::{Event, Pacer};

/// What one limiter last published, to compute the next change from.
#[derive(Default)]
pub(crate) struct Metrics {
    #[cfg(feature = "metrics")]
    published: Option<Values>,
    #[cfg(feature = "metrics")]
    staged: Vec<Change>,
}

/// The changes staged under the lock, to [`emit`](Self::emit) once it is released.
#[must_use = "staged metrics are only published by `emit`"]
pub(crate) struct Staged(#[cfg(feature = "metrics")] Vec<Change>);

#[cfg(feature = "metrics")]
#[derive(Clone, PartialEq)]
struct Values {
    service: String,
    issued: u64,
    rate_limited: u64,
    waiting: f64,
    in_flight: f64,
    allowed_rate: f64,
    paused: f64,
}

/// One label's change: counter increments and gauge deltas.
#[cfg(feature = "metrics")]
struct Change {
    service: String,
    issued: u64,
    rate_limited: u64,
    gauges: [(&'static str, f64); 4],
}

impl Metrics {
    /// Stages the change since the last call: counters `ratellmiter_issued_total` and
    /// `ratellmiter_rate_limited_total`, gauges `ratellmiter_waiting`,
    /// `ratellmiter_in_flight`, `ratellmiter_allowed_rate` and `ratellmiter_paused`
    /// (each the sum over the limiters sharing the label). A no-op without the
    /// `metrics` feature.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn stage(&mut self, service: &str, pacer: &Pacer) {
        #[cfg(feature = "metrics")]
        {
            let c = pacer.counters();
            let now = Values {
                service: service.to_owned(),
                issued: c.issued,
                rate_limited: c.rate_limited,
                waiting: pacer.waiting() as f64,
                in_flight: pacer.in_flight() as f64,
                allowed_rate: pacer.allowed_rate(),
                paused: if pacer.is_paused() { 1.0 } else { 0.0 },
            };
            let before = self.published.replace(now.clone());
            if before.as_ref() == Some(&now) {
                return;
            }
            let zero = Values {
                service: now.service.clone(),
                issued: 0,
                rate_limited: 0,
                waiting: 0.0,
                in_flight: 0.0,
                allowed_rate: 0.0,
                paused: 0.0,
            };
            match before {
                // A limiter named after its first events: its gauges move to the new
                // label; the counters already counted stay where they were counted.
                Some(old) if old.service != now.service => {
                    let moved = Values {
                        issued: old.issued,
                        rate_limited: old.rate_limited,
                        ..zero
                    };
                    self.staged.push(change(&old, &moved));
                    self.staged.push(change(&moved, &now));
                }
                Some(old) => self.staged.push(change(&old, &now)),
                None => self.staged.push(change(&zero, &now)),
            }
        }
    }

    /// The changes staged so far, to emit once the lock is released.
    pub(crate) fn take(&mut self) -> Staged {
        Staged(
            #[cfg(feature = "metrics")]
            std::mem::take(&mut self.staged),
        )
    }
}

/// A limiter that goes away takes its gauges out of its label's sums.
#[cfg(feature = "metrics")]
impl Drop for Metrics {
    fn drop(&mut self) {
        if let Some(last) = self.published.take() {
            let gone = Values {
                waiting: 0.0,
                in_flight: 0.0,
                allowed_rate: 0.0,
                paused: 0.0,
                ..last.clone()
            };
            self.staged.push(change(&last, &gone));
        }
        self.take().emit();
    }
}

/// From `old` to `new` under `old`'s label (the counters only ever grow).
#[cfg(feature = "metrics")]
fn change(old: &Values, new: &Values) -> Change {
    Change {
        service: old.service.clone(),
        issued: new.issued.saturating_sub(old.issued),
        rate_limited: new.rate_limited.saturating_sub(old.rate_limited),
        gauges: [
            ("ratellmiter_waiting", new.waiting - old.waiting),
            ("ratellmiter_in_flight", new.in_flight - old.in_flight),
            (
                "ratellmiter_allowed_rate",
                new.allowed_rate - old.allowed_rate,
            ),
            ("ratellmiter_paused", new.paused - old.paused),
        ],
    }
}

impl Staged {
    /// Records the staged changes in the `metrics` recorder.
    pub(crate) fn emit(self) {
        #[cfg(feature = "metrics")]
        for c in self.0 {
            let label = [("service", c.service)];
            metrics::counter!("ratellmiter_issued_total", &label).increment(c.issued);
            metrics::counter!("ratellmiter_rate_limited_total", &label).increment(c.rate_limited);
            for (name, delta) in c.gauges {
                metrics::gauge!(name, &label).increment(delta);
            }
        }
    }
}

/// Records in the histogram `ratellmiter_wait_seconds` how long a call waited for its
/// ticket (zero when it was free at once). A no-op without the `metrics` feature.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn waited(service: &str, waited: std::time::Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("ratellmiter_wait_seconds", "service" => service.to_owned())
        .record(waited.as_secs_f64());
}

/// One `tracing` event per state change of the engine.
pub(crate) fn trace_event(service: &str, event: Event) {
    match event {
        Event::Pause { until, retry_after } => {
            tracing::warn!(
                service,
                until_ms = until.as_millis() as u64,
                retry_after,
                "rate limited: pausing"
            )
        }
        Event::Probe => tracing::info!(service, "probing the server"),
        Event::ProbeFailed { until } => {
            tracing::info!(
                service,
                next_probe_ms = until.as_millis() as u64,
                "probe refused: backing off"
            )
        }
        Event::Resume => tracing::info!(
            service,
            "server accepts calls again: resuming with the ramp"
        ),
        Event::LearnedRate(rate) => {
            tracing::info!(service, rpm = rate * 60.0, "learned a lower rate")
        }
        Event::Hold { until } => {
            tracing::debug!(
                service,
                until_ms = until.as_millis() as u64,
                "provider budget spent: holding"
            )
        }
    }
}
