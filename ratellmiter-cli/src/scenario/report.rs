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
    /// How the scenario's budget was used, for the scenarios of budgets by kind.
    pub budget: Option<BudgetUse>,
}

/// The figure that tells how a scenario's binding budget was used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetUse {
    /// The least share of the input tokens per minute accepted in any whole minute
    /// once warm (from the second minute to the last whole minute before the last
    /// accepted request).
    InputPerMinute(f64),
    /// A daily quota: the requests accepted, the calls the client itself failed with
    /// `QuotaExhausted`, and from the last accepted request to the last failure
    /// (zero: the rest failed as soon as the quota was known spent).
    Quota {
        /// Requests the server accepted.
        sent: u64,
        /// Calls failed by the client as a spent quota.
        exhausted: u64,
        /// Last accepted request → last failed call.
        fail_lag: Option<Duration>,
    },
    /// Requests accepted per second, sustained: over the middle 80 % of the ideal run.
    CallsPerSecond(f64),
}

impl std::fmt::Display for BudgetUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetUse::InputPerMinute(share) => {
                write!(f, "ITPM ≥ {:.1} %/min", share * 100.0)
            }
            BudgetUse::Quota {
                sent,
                exhausted,
                fail_lag,
            } => {
                write!(f, "{sent} sent, {exhausted} QuotaExhausted")?;
                if let Some(lag) = fail_lag {
                    write!(f, ", last failure +{:.1} s", lag.as_secs_f64())?;
                }
                Ok(())
            }
            BudgetUse::CallsPerSecond(rate) => write!(f, "{rate:.3} calls/s"),
        }
    }
}

/// The least share of `limit` input tokens accepted per whole minute once warm.
fn input_per_minute(log: &[RequestRecord], limit: u64) -> Option<f64> {
    const MINUTE: Duration = Duration::from_secs(60);
    let accepted: Vec<&RequestRecord> = log.iter().filter(|r| r.accepted()).collect();
    let last = accepted.iter().map(|r| r.at).max()?;
    (1u32..)
        .map(|m| (MINUTE * m, MINUTE * (m + 1)))
        .take_while(|(_, to)| *to <= last)
        .map(|(from, to)| {
            let used: u64 = accepted
                .iter()
                .filter(|r| r.at >= from && r.at < to)
                .map(|r| r.input)
                .sum();
            used as f64 / limit as f64
        })
        .min_by(f64::total_cmp)
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
        let accepted = log.iter().filter(|r| r.accepted());
        let budget = match scenario.kind {
            ScenarioKind::InputOutput => scenario.models[0]
                .server
                .input_tpm
                .and_then(|limit| input_per_minute(log, limit))
                .map(BudgetUse::InputPerMinute),
            ScenarioKind::DailyQuota => Some(BudgetUse::Quota {
                sent: accepted.clone().count() as u64,
                exhausted: observed.quota_exhausted,
                fail_lag: observed.last_failure.and_then(|failed| {
                    let sent = accepted.map(|r| r.at).max()?;
                    Some(failed.saturating_sub(sent))
                }),
            }),
            ScenarioKind::InFlight => {
                // Sustained: the middle 80 % of the ideal run, past the first calls'
                // ramp and before the last ones drain.
                let (from, to) = (scenario.ideal / 10, scenario.ideal * 9 / 10);
                let n = accepted.filter(|r| r.at >= from && r.at < to).count();
                Some(BudgetUse::CallsPerSecond(
                    n as f64 / (to - from).as_secs_f64(),
                ))
            }
            _ => None,
        };
        Row {
            budget,
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
        "| scenario | client | completion | ÷ ideal | 429s | failed | max/1 s | max/60 s | gap CV | gaps < 10 ms | outage → 1st success | budget use |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let scenario = clap::ValueEnum::to_possible_value(&r.scenario)
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {scenario} | {} | {:.1} s | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} |",
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
            r.budget.map_or("–".into(), |b| b.to_string()),
        );
    }
    out
}
