//! The measures of one run, read from the provider's own record of every request, and
//! the markdown table that lays runs side by side.

use std::fmt::Write as _;
use std::time::Duration;

use ratellmiter_sim::RequestRecord;
use ratellmiter_sim::metrics::{Metrics, first_accept_after, gap_cv, short_gap_share};

use super::{ClientKind, Observed, Scenario, ScenarioKind};

/// A gap between two accepted requests shorter than this is a clump: at 600 rpm an
/// even gap is 100 ms.
pub const SHORT_GAP: Duration = Duration::from_millis(10);

/// The measures of one scenario run by one client.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scenario.
    pub scenario: ScenarioKind,
    /// The client.
    pub client: ClientKind,
    /// When the last call returned.
    pub completion: Duration,
    /// Completion ÷ (calls ÷ the server's true rate).
    pub vs_ideal: f64,
    /// Requests the server refused.
    pub refused: u64,
    /// Calls that failed after their retries.
    pub failed: u64,
    /// Most requests received in any 1 s, per model.
    pub max_1s: Vec<u64>,
    /// Most requests received in any 60 s, per model.
    pub max_60s: Vec<u64>,
    /// Coefficient of variation of the gaps between accepted requests of the first
    /// model while calls were backlogged (before any outage).
    pub gap_cv: Option<f64>,
    /// Of the same gaps, the share under [`SHORT_GAP`]: requests sent in clumps.
    pub short_gaps: Option<f64>,
    /// From the outage's end to the first accepted request.
    pub outage_lag: Option<Duration>,
}

impl Row {
    /// Measures a run from what the client observed and the provider's `log`.
    pub fn new(
        scenario: &Scenario,
        client: ClientKind,
        observed: &Observed,
        log: &[RequestRecord],
    ) -> Self {
        let per_model: Vec<Metrics> = scenario
            .models
            .iter()
            .map(|m| Metrics::from_records(log.iter().filter(|r| r.model == m.name)))
            .collect();
        let first = &scenario.models[0].name;
        let backlogged_until = scenario
            .outage
            .as_ref()
            .map_or(observed.completion, |o| o.start);
        Row {
            scenario: scenario.kind,
            client,
            completion: observed.completion,
            vs_ideal: observed.completion.as_secs_f64() / scenario.ideal.as_secs_f64(),
            refused: per_model.iter().map(|m| m.rejected).sum(),
            failed: observed.failed,
            max_1s: per_model
                .iter()
                .map(|m| m.max_attempted_in_any_1s)
                .collect(),
            max_60s: per_model
                .iter()
                .map(|m| m.max_attempted_in_any_60s)
                .collect(),
            gap_cv: gap_cv(
                log.iter().filter(|r| &r.model == first),
                Duration::ZERO..backlogged_until,
            ),
            short_gaps: short_gap_share(
                log.iter().filter(|r| &r.model == first),
                Duration::ZERO..backlogged_until,
                SHORT_GAP,
            ),
            outage_lag: scenario.outage.as_ref().and_then(|o| {
                first_accept_after(log.iter().filter(|r| &r.model == first), o.end)
                    .map(|t| t - o.end)
            }),
        }
    }
}

fn slash(values: &[u64]) -> String {
    values
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("/")
}

/// A markdown table of `rows`, one line each.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | client | completion | ÷ ideal | 429s | failed | max/1 s | max/60 s | gap CV | gaps < 10 ms | outage → 1st success |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let scenario = clap::ValueEnum::to_possible_value(&r.scenario)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {scenario} | {} | {:.1} s | {:.3} | {} | {} | {} | {} | {} | {} | {} |",
            r.client.label(),
            r.completion.as_secs_f64(),
            r.vs_ideal,
            r.refused,
            r.failed,
            slash(&r.max_1s),
            slash(&r.max_60s),
            r.gap_cv.map_or("–".into(), |cv| format!("{cv:.2}")),
            r.short_gaps
                .map_or("–".into(), |share| format!("{:.0} %", share * 100.0)),
            r.outage_lag
                .map_or("–".into(), |d| format!("{:.1} s", d.as_secs_f64())),
        );
    }
    out
}
