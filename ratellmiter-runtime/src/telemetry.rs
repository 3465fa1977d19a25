//! Where the limiter reports to `tracing` and, with the `metrics` feature, to the
//! `metrics` facade: counters and gauges named `ratellmiter_*` with a `service` label.

use crate::pacer::{Event, Pacer};

/// Counters (`ratellmiter_issued_total`, `ratellmiter_rate_limited_total`) and gauges
/// (`ratellmiter_waiting`, `ratellmiter_in_flight`, `ratellmiter_allowed_rate`,
/// `ratellmiter_paused`) after a state change. A no-op without the `metrics` feature.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn publish(service: &str, pacer: &Pacer) {
    #[cfg(feature = "metrics")]
    {
        let label = [("service", service.to_owned())];
        let c = pacer.counters();
        metrics::counter!("ratellmiter_issued_total", &label).absolute(c.issued);
        metrics::counter!("ratellmiter_rate_limited_total", &label).absolute(c.rate_limited);
        metrics::gauge!("ratellmiter_waiting", &label).set(pacer.waiting() as f64);
        metrics::gauge!("ratellmiter_in_flight", &label).set(pacer.in_flight() as f64);
        metrics::gauge!("ratellmiter_allowed_rate", &label).set(pacer.allowed_rate());
        metrics::gauge!("ratellmiter_paused", &label).set(if pacer.is_paused() {
            1.0
        } else {
            0.0
        });
    }
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
