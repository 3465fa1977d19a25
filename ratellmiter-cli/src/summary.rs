//! The summary command: one row per service of what the log says happened, ticket
//! counts, peaks, pauses, waits and the rates at the end.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;
use ratellmiter_runtime::flow_log::format::{FlowLog, SecondRecord};

use crate::args::SummaryArgs;
use crate::console::Console;
use crate::logs::{self, printable};

/// The longest service name shown in the table, in characters.
const MAX_NAME_CHARS: usize = 40;

/// What one service did over a log.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSummary {
    /// The service's exact name.
    pub service: String,
    /// Calls that asked for a ticket (`requested`).
    pub calls: u64,
    /// Tickets issued, re-issues included.
    pub tickets: u64,
    /// Rate-limit errors reported (HTTP 429s).
    pub rate_limited: u64,
    /// The most tickets issued in one second.
    pub peak_per_second: u64,
    /// The most tickets issued in any 60 consecutive seconds.
    pub peak_per_minute: u64,
    /// Seconds in which the limiter was paused.
    pub paused_seconds: u64,
    /// The mean wait for a ticket, milliseconds; `None` when no ticket was issued.
    pub mean_wait_ms: Option<f64>,
    /// The 99th percentile (nearest rank) of the waits for a ticket, milliseconds.
    pub p99_wait_ms: Option<u64>,
    /// The rate the pacer allowed in the last second logged, tickets per second.
    pub allowed_rate: Option<f64>,
    /// The configured limit in the last second logged, tickets per second.
    pub limit_rate: Option<f64>,
    /// The use of each budget beside requests.
    pub budgets: BudgetUse,
}

/// How much of each budget beside requests a service used (zero, or `None`, for a
/// budget it does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BudgetUse {
    /// The most tokens (total) charged in any 60 consecutive seconds.
    pub peak_tokens_per_minute: u64,
    /// The most input tokens charged in any 60 consecutive seconds.
    pub peak_input_per_minute: u64,
    /// The most output tokens reserved in any 60 consecutive seconds.
    pub peak_output_per_minute: u64,
    /// The most calls in flight at the end of any second.
    pub peak_in_flight: u64,
    /// Requests left today at the end of the log, under a daily quota.
    pub requests_left_today: Option<u64>,
    /// Tokens left today at the end of the log, under a daily quota.
    pub tokens_left_today: Option<u64>,
}

impl BudgetUse {
    /// Whether the log shows any budget beside requests.
    fn any(&self) -> bool {
        self.peak_tokens_per_minute > 0
            || self.peak_input_per_minute > 0
            || self.peak_output_per_minute > 0
            || self.requests_left_today.is_some()
            || self.tokens_left_today.is_some()
    }
}

/// One summary per service of `log`, in the order the services appear.
pub fn summarize(log: &FlowLog) -> Vec<ServiceSummary> {
    log.service_names()
        .into_iter()
        .map(|name| summarize_service(name, log.seconds_for(name)))
        .collect()
}

fn summarize_service<'a>(
    service: &str,
    seconds: impl Iterator<Item = &'a SecondRecord>,
) -> ServiceSummary {
    let mut sum = ServiceSummary {
        service: service.to_owned(),
        calls: 0,
        tickets: 0,
        rate_limited: 0,
        peak_per_second: 0,
        peak_per_minute: 0,
        paused_seconds: 0,
        mean_wait_ms: None,
        p99_wait_ms: None,
        allowed_rate: None,
        limit_rate: None,
        budgets: BudgetUse::default(),
    };
    let mut by_kind: [BTreeMap<u64, u64>; 3] = Default::default();
    // Per second, in case a second was written twice.
    let mut issued: BTreeMap<u64, u64> = BTreeMap::new();
    let mut paused: BTreeMap<u64, ()> = BTreeMap::new();
    let mut waits: Vec<u64> = Vec::new();
    let mut last: Option<&SecondRecord> = None;
    for s in seconds {
        sum.calls = sum.calls.saturating_add(s.requested);
        sum.tickets = sum.tickets.saturating_add(s.issued);
        sum.rate_limited = sum.rate_limited.saturating_add(s.rate_limited);
        let i = issued.entry(s.t).or_default();
        *i = i.saturating_add(s.issued);
        if s.paused {
            paused.insert(s.t, ());
        }
        waits.extend_from_slice(&s.waits_ms);
        for (m, v) in by_kind
            .iter_mut()
            .zip([s.tokens, s.input_tokens, s.output_tokens])
        {
            let e = m.entry(s.t).or_default();
            *e = e.saturating_add(v);
        }
        sum.budgets.peak_in_flight = sum.budgets.peak_in_flight.max(s.in_flight);
        if last.is_none_or(|l| s.t >= l.t) {
            last = Some(s);
        }
    }
    sum.peak_per_second = issued.values().copied().max().unwrap_or(0);
    sum.peak_per_minute = peak_in_window(&issued, 60);
    sum.paused_seconds = paused.len() as u64;
    if !waits.is_empty() {
        let total: u128 = waits.iter().map(|&w| u128::from(w)).sum();
        sum.mean_wait_ms = Some(total as f64 / waits.len() as f64);
        waits.sort_unstable();
        // Nearest rank: the smallest wait that at least 99% of the waits do not exceed.
        let rank = (waits.len() * 99).div_ceil(100);
        sum.p99_wait_ms = Some(waits[rank.max(1) - 1]);
    }
    let [tokens, input, output] = by_kind.map(|m| peak_in_window(&m, 60));
    sum.budgets.peak_tokens_per_minute = tokens;
    sum.budgets.peak_input_per_minute = input;
    sum.budgets.peak_output_per_minute = output;
    sum.budgets.requests_left_today = last.and_then(|l| l.requests_left_today);
    sum.budgets.tokens_left_today = last.and_then(|l| l.tokens_left_today);
    sum.allowed_rate = last.map(|l| l.allowed_rate);
    sum.limit_rate = last.map(|l| l.limit_rate);
    sum
}

/// The greatest sum of `per_second` over `window` consecutive seconds.
fn peak_in_window(per_second: &BTreeMap<u64, u64>, window: u64) -> u64 {
    let entries: Vec<(u64, u64)> = per_second.iter().map(|(&t, &v)| (t, v)).collect();
    let (mut start, mut sum, mut peak) = (0, 0u64, 0u64);
    for &(t, v) in &entries {
        sum = sum.saturating_add(v);
        while t - entries[start].0 >= window {
            sum = sum.saturating_sub(entries[start].1);
            start += 1;
        }
        peak = peak.max(sum);
    }
    peak
}

/// Prints the summary of the log `args` names.
pub fn run(args: &SummaryArgs, console: &mut Console<'_>) -> Result<()> {
    let loaded = logs::load(&args.log, console)?;
    let summaries = summarize(&loaded.log);
    writeln!(console.out, "{}", loaded.path.display())?;
    if summaries.is_empty() {
        writeln!(console.out, "no service in this log")?;
        return Ok(());
    }
    let mut rows = vec![
        [
            "service",
            "calls",
            "tickets",
            "429s",
            "peak/s",
            "peak/min",
            "paused_s",
            "wait_mean_ms",
            "wait_p99_ms",
            "allowed/s",
            "limit/s",
        ]
        .map(String::from),
    ];
    rows.extend(summaries.iter().map(row));
    write_table(console.out, &rows)?;
    // Budgets beside requests, for the services that have any.
    let with_budgets: Vec<_> = summaries.iter().filter(|s| s.budgets.any()).collect();
    if !with_budgets.is_empty() {
        writeln!(console.out)?;
        let mut rows = vec![
            [
                "service",
                "tokens/min",
                "input/min",
                "output/min",
                "in_flight",
                "requests_left_today",
                "tokens_left_today",
            ]
            .map(String::from),
        ];
        rows.extend(with_budgets.into_iter().map(budget_row));
        write_table(console.out, &rows)?;
    }
    Ok(())
}

/// Peaks are over any 60 consecutive seconds; what is left today is at the log's end.
fn budget_row(s: &ServiceSummary) -> [String; 7] {
    let b = &s.budgets;
    let left = |v: Option<u64>| v.map_or_else(|| "-".into(), |n| n.to_string());
    [
        printable(&s.service, MAX_NAME_CHARS),
        b.peak_tokens_per_minute.to_string(),
        b.peak_input_per_minute.to_string(),
        b.peak_output_per_minute.to_string(),
        b.peak_in_flight.to_string(),
        left(b.requests_left_today),
        left(b.tokens_left_today),
    ]
}

fn row(s: &ServiceSummary) -> [String; 11] {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    [
        printable(&s.service, MAX_NAME_CHARS),
        s.calls.to_string(),
        s.tickets.to_string(),
        s.rate_limited.to_string(),
        s.peak_per_second.to_string(),
        s.peak_per_minute.to_string(),
        s.paused_seconds.to_string(),
        or_dash(s.mean_wait_ms.map(|w| decimal(w, 1))),
        or_dash(s.p99_wait_ms.map(|w| w.to_string())),
        or_dash(s.allowed_rate.map(|r| decimal(r, 2))),
        or_dash(s.limit_rate.map(|r| decimal(r, 2))),
    ]
}

/// `v` with `places` decimals, or in scientific notation when it is too large to read
/// that way (a damaged log).
fn decimal(v: f64, places: usize) -> String {
    if v.abs() < 1e12 {
        format!("{v:.places$}")
    } else {
        format!("{v:.3e}")
    }
}

/// Writes `rows` in aligned columns: the first left-aligned, numbers right-aligned.
fn write_table<const N: usize>(out: &mut dyn Write, rows: &[[String; N]]) -> std::io::Result<()> {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if i == 0 {
                line += &format!("{cell}{pad}");
            } else {
                line += &format!("  {pad}{cell}");
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_minute_is_any_sixty_consecutive_seconds() {
        // 10 at 0, 20 at 59, 30 at 60: [0, 60) holds 30, [59, 119) holds 50.
        let per: BTreeMap<u64, u64> = [(0, 10), (59, 20), (60, 30)].into();
        assert_eq!(peak_in_window(&per, 60), 50);
        let per: BTreeMap<u64, u64> = [(0, 10), (59, 20)].into();
        assert_eq!(peak_in_window(&per, 60), 30);
        assert_eq!(peak_in_window(&BTreeMap::new(), 60), 0);
    }

    #[test]
    fn columns_align() {
        let rows = [
            ["a".to_string(), "1".into()],
            ["long".into(), "1000".into()],
        ];
        let mut out = Vec::new();
        write_table(&mut out, &rows).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a        1\nlong  1000\n");
    }
}
