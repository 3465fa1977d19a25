//! What a graph shows, decided before anything is drawn: panels of titled series,
//! shaded pauses and marked probes, a title and a one-line summary, built from a flow
//! log.
//!
//! A service's graph has two panels over one time axis. The upper one holds rates per
//! second: the lines of [`crate::lines`], 429s as marks, the rate the pacer allowed (a
//! wide pale band) and the configured limit (dark grey, dashed, on top of the band, so
//! neither hides the other), and when the allowed rate stays below [`LOW_RATE`] a 10 s
//! mean of the tickets issued. A burst of requests far above the rest is cut at the
//! top of the axis with its peak written there.
//! The lower one holds the queue, counts of calls rather than rates, so that a hundred
//! waiting calls do not flatten the rates (calls in flight there are the ones a
//! `max_in_flight` cap holds). When the log has budgets by kind, panels of their own
//! follow: tokens charged per second (total, input, output reserved), and the
//! requests a daily quota has left. The compare chart gives every service a colour of
//! [`COMPARE_PALETTE`] in one panel.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use ratellmiter_runtime::flow_log::format::{EventKind, FlowLog, SecondRecord};

use crate::lines::{Line, Lines, Rgb};
use crate::logs::printable;

/// The configured limit, `limit_rate`: a dashed line.
pub const LIMIT_COLOUR: Rgb = Rgb(0x40, 0x40, 0x40);
/// The rate the pacer allowed, `allowed_rate` (ramp, learned ceiling): a wide pale band
/// under the data, which the dashed limit crosses without covering.
pub const ALLOWED_COLOUR: Rgb = Rgb(0x9E, 0xE3, 0xEC);
/// The 10 s mean of tickets issued, drawn below [`LOW_RATE`]: a darker green than
/// the whole-second counts it smooths.
pub const MEAN_COLOUR: Rgb = Rgb(0x0B, 0x5D, 0x1E);
/// Calls in flight, in the queue panel.
pub const IN_FLIGHT_COLOUR: Rgb = Rgb(0x8C, 0x56, 0x4B);
/// Seconds the limiter was paused, waiting to probe: shaded spans.
pub const PAUSE_COLOUR: Rgb = Rgb(0xF6, 0xD5, 0xD5);
/// Probes: a vertical line at each.
pub const PROBE_COLOUR: Rgb = Rgb(0x7B, 0x10, 0x10);
/// The services' colours in the compare chart, in the order the services appear;
/// after ten they repeat.
pub const COMPARE_PALETTE: [Rgb; 10] = [
    Rgb(0x1F, 0x77, 0xB4),
    Rgb(0xFF, 0x7F, 0x0E),
    Rgb(0x2C, 0xA0, 0x2C),
    Rgb(0xD6, 0x27, 0x28),
    Rgb(0x94, 0x67, 0xBD),
    Rgb(0x8C, 0x56, 0x4B),
    Rgb(0xE3, 0x77, 0xC2),
    Rgb(0x7F, 0x7F, 0x7F),
    Rgb(0xBC, 0xBD, 0x22),
    Rgb(0x17, 0xBE, 0xCF),
];

/// Below this allowed rate, per second, whole-second counts jump between ⌊r⌋ and ⌈r⌉ even
/// under perfectly even pacing, so the graph adds a 10 s mean of the tickets issued.
pub const LOW_RATE: f64 = 10.0;

/// The seconds the mean of [`LOW_RATE`] spans.
const MEAN_SECONDS: u64 = 10;

/// The y-axis label of the budgets panel: tokens charged per second, by kind.
pub const BUDGET_LABEL: &str = "tokens per second";
/// The y-axis label of the daily panel.
pub const TODAY_LABEL: &str = "left today";
/// Tokens charged (the total budget), in the budgets panel.
pub const TOKENS_COLOUR: Rgb = Rgb(0x7F, 0x7F, 0x7F);
/// Input tokens, in the budgets panel.
pub const INPUT_COLOUR: Rgb = Rgb(0x17, 0xBE, 0xCF);
/// Output tokens reserved, in the budgets panel.
pub const OUTPUT_COLOUR: Rgb = Rgb(0xBC, 0xBD, 0x22);
/// Requests left today, in the daily panel.
pub const TODAY_COLOUR: Rgb = Rgb(0xE3, 0x77, 0xC2);

/// The y-axis label of the queue panel.
pub const QUEUE_LABEL: &str = "calls waiting / in flight";

/// The longest service name shown in a title or legend, in characters.
const MAX_NAME_CHARS: usize = 60;

/// A graph, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Above the plot.
    pub title: String,
    /// A line under the title: calls, time against the ideal, 429s, pauses, probes.
    pub summary: Option<String>,
    /// Under the x axis.
    pub x_label: &'static str,
    /// The x axis runs from 0 to here, seconds.
    pub x_end: f64,
    /// The panels, top to bottom, sharing the x axis; the first is the tallest.
    pub panels: Vec<Panel>,
    /// Shaded spans `[from, to)` of seconds, behind the lines of every panel.
    pub pauses: Vec<(f64, f64)>,
    /// Seconds at which a probe went out.
    pub probes: Vec<f64>,
}

/// One plot of a chart: series sharing a y axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// Beside the y axis.
    pub y_label: &'static str,
    /// The y axis runs from 0 to here. A series going higher (a burst of requests) is
    /// cut at the top, its peak written there.
    pub y_top: f64,
    /// The series, drawn in order (later ones on top).
    pub series: Vec<Series>,
}

impl Panel {
    /// A panel of `series` whose y axis leaves a fifth of headroom above the highest
    /// point, for the legend (an empty panel still gets an axis).
    fn new(y_label: &'static str, series: Vec<Series>) -> Self {
        let y_top = headroom(series.iter().map(Series::max).fold(0.0, f64::max));
        Self {
            y_label,
            y_top,
            series,
        }
    }
}

/// The top of an axis whose highest point is `max`.
fn headroom(max: f64) -> f64 {
    (max * 1.2).clamp(1.0, f64::MAX)
}

/// How far above the rest of the rates panel a burst of requests may rise before it is
/// cut: a burst's first second (a hundred calls, when the rates are ten) would flatten
/// the ramp and the pacing, which are the story.
const BURST_CUT: f64 = 2.0;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend's text.
    pub label: String,
    /// The line's colour.
    pub colour: Rgb,
    /// How the line is drawn.
    pub stroke: Stroke,
    /// `(seconds, value)` in time order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// The highest point (0 with none).
    pub fn max(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// A data line.
    Solid,
    /// A data line that something smoother is drawn beside.
    Thin,
    /// A limit.
    Dashed,
    /// A wide pale band that other lines cross.
    Band,
    /// A filled mark at each point, no line: rare events that a line at zero hides.
    Marks,
}

/// The graph of `service`: rates (the chosen lines but `o`, the 10 s mean at low
/// rates, the allowed rate and the limit) over the queue (`o`: waiting and in flight),
/// with pauses shaded and probes marked, titled with the service and the run's start.
pub fn service_chart(log: &FlowLog, service: &str, lines: &Lines) -> Chart {
    let seconds: Vec<&SecondRecord> = log.seconds_for(service).collect();
    let x_end = seconds
        .iter()
        .map(|s| s.t)
        .max()
        .map_or(1.0, |t| t as f64 + 1.0);
    let allowed = gauge(&seconds, |s| s.allowed_rate);
    let low_rate = allowed.iter().all(|&(_, v)| v < LOW_RATE);
    let mut rates = vec![Series {
        label: "allowed rate".into(),
        colour: ALLOWED_COLOUR,
        stroke: Stroke::Band,
        points: allowed,
    }];
    let mut marks = Vec::new();
    let mut queue = Vec::new();
    for line in lines.iter() {
        let series = |stroke, points| Series {
            label: line.label().into(),
            colour: line.colour(),
            stroke,
            points,
        };
        match line {
            Line::Overflow => {
                queue.push(series(Stroke::Solid, counts(&seconds, |s| s.waiting)));
                queue.push(Series {
                    label: "in flight".into(),
                    colour: IN_FLIGHT_COLOUR,
                    stroke: Stroke::Solid,
                    points: counts(&seconds, |s| s.in_flight),
                });
            }
            Line::Exceptions => {
                let points = counts(&seconds, |s| s.rate_limited);
                marks.push(series(
                    Stroke::Marks,
                    points.into_iter().filter(|p| p.1 > 0.0).collect(),
                ));
            }
            Line::Issued if low_rate => {
                let per_second = counts(&seconds, |s| s.issued);
                rates.push(series(Stroke::Thin, per_second));
                rates.push(Series {
                    label: format!("issued, {MEAN_SECONDS} s mean"),
                    colour: MEAN_COLOUR,
                    stroke: Stroke::Solid,
                    points: trailing_mean(&seconds, |s| s.issued, x_end),
                });
            }
            _ => rates.push(series(Stroke::Solid, counts(&seconds, |s| line.value(s)))),
        }
    }
    rates.push(Series {
        label: "limit".into(),
        colour: LIMIT_COLOUR,
        stroke: Stroke::Dashed,
        points: steps(&gauge(&seconds, |s| s.limit_rate), x_end),
    });
    rates.extend(marks);
    rates.retain(|s| !s.points.is_empty());
    queue.retain(|s| !s.points.is_empty());
    let requests = rates
        .iter()
        .filter(|s| s.label == Line::Requests.label())
        .map(Series::max)
        .fold(0.0, f64::max);
    let others = rates
        .iter()
        .filter(|s| s.label != Line::Requests.label())
        .map(Series::max)
        .fold(0.0, f64::max);
    let mut panels = vec![Panel {
        y_top: headroom(others.max(requests.min(BURST_CUT * others))),
        ..Panel::new("per second", rates)
    }];
    if !queue.is_empty() {
        panels.push(Panel::new(QUEUE_LABEL, queue));
    }
    panels.extend(budget_panels(&seconds, x_end));
    let probes = log
        .events_for(service)
        .filter(|e| e.kind == EventKind::Probe)
        .map(|e| e.t_ms as f64 / 1000.0)
        .collect();
    Chart {
        title: format!(
            "{} — run of {}",
            printable(service, MAX_NAME_CHARS),
            run_start(log)
        ),
        summary: Some(summary(log, service, &seconds)),
        x_label: "seconds since start",
        x_end,
        panels,
        pauses: pauses(&seconds),
        probes,
    }
}

/// The budgets' own panels, each drawn only when the log has it: tokens charged per
/// second by kind (total, input, output), and what a daily quota has left.
fn budget_panels(seconds: &[&SecondRecord], x_end: f64) -> Vec<Panel> {
    type Kind = (&'static str, Rgb, fn(&SecondRecord) -> u64);
    let kinds: [Kind; 3] = [
        ("tokens", TOKENS_COLOUR, |s| s.tokens),
        ("input tokens", INPUT_COLOUR, |s| s.input_tokens),
        ("output tokens reserved", OUTPUT_COLOUR, |s| s.output_tokens),
    ];
    let tokens: Vec<Series> = kinds
        .into_iter()
        .filter(|(_, _, value)| seconds.iter().any(|s| value(s) > 0))
        .map(|(label, colour, value)| Series {
            label: label.into(),
            colour,
            stroke: Stroke::Solid,
            points: counts(seconds, value),
        })
        .collect();
    let mut panels = Vec::new();
    if !tokens.is_empty() {
        panels.push(Panel::new(BUDGET_LABEL, tokens));
    }
    // Seconds without a daily quota give NaN, which `gauge` leaves out.
    let today = gauge(seconds, |s| {
        s.requests_left_today.map_or(f64::NAN, |n| n as f64)
    });
    if !today.is_empty() {
        panels.push(Panel::new(
            TODAY_LABEL,
            vec![Series {
                label: "requests left today".into(),
                colour: TODAY_COLOUR,
                stroke: Stroke::Solid,
                points: steps(&today, x_end),
            }],
        ));
    }
    panels
}

/// When the monitor started, as an HTTP date (`Sat, 29 Nov 2025 00:10:00 GMT`).
fn run_start(log: &FlowLog) -> String {
    let start = UNIX_EPOCH + Duration::from_millis(log.header.start_unix_ms);
    httpdate::fmt_http_date(start)
}

/// `600 calls in 64 s · 1.07 × ideal at 600 rpm · 12 × 429 · 1 pause · 2 probes`.
/// Calls are those finished (a retried call requests again, so requests count it more
/// than once); the time runs from the first request's second to the end of the last
/// finish's, to the second; the ideal is the calls at the configured rpm.
fn summary(log: &FlowLog, service: &str, seconds: &[&SecondRecord]) -> String {
    let calls: u64 = seconds.iter().map(|s| s.finished).sum();
    let refused: u64 = seconds.iter().map(|s| s.rate_limited).sum();
    let first = seconds
        .iter()
        .filter(|s| s.requested > 0)
        .map(|s| s.t)
        .min();
    let last = seconds.iter().filter(|s| s.finished > 0).map(|s| s.t).max();
    let span = match (first, last) {
        (Some(a), Some(b)) if b >= a => Some(b - a + 1),
        _ => None,
    };
    let count_events = |kind| log.events_for(service).filter(|e| e.kind == kind).count();
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let mut parts = vec![match span {
        Some(span) => format!("{calls} calls in {span} s"),
        None => format!("{calls} calls"),
    }];
    if let (Some(span), Some(rpm)) = (span, log.service(service).map(|s| s.rpm))
        && calls > 0
        && rpm > 0
    {
        let ideal = calls as f64 * 60.0 / f64::from(rpm);
        parts.push(format!("{:.2} × ideal at {rpm} rpm", span as f64 / ideal));
    }
    parts.push(format!("{refused} × 429"));
    parts.push(plural(count_events(EventKind::Pause), "pause"));
    parts.push(plural(count_events(EventKind::Probe), "probe"));
    parts.join(" · ")
}

/// Finished calls per second of every service in one chart, as rateLLMiter's compare
/// graph.
pub fn compare_chart(log: &FlowLog) -> Chart {
    let x_end = log
        .seconds
        .iter()
        .map(|s| s.t)
        .max()
        .map_or(1.0, |t| t as f64 + 1.0);
    let series = log
        .service_names()
        .into_iter()
        .filter_map(|name| {
            let seconds: Vec<&SecondRecord> = log.seconds_for(name).collect();
            (!seconds.is_empty())
                .then(|| counts(&seconds, |s| s.finished))
                .map(|points| (name, points))
        })
        .zip(COMPARE_PALETTE.iter().cycle())
        .map(|((name, points), &colour)| Series {
            label: printable(name, MAX_NAME_CHARS),
            colour,
            stroke: Stroke::Solid,
            points,
        })
        .collect();
    Chart {
        title: format!(
            "finished per second, every service — run of {}",
            run_start(log)
        ),
        summary: None,
        x_label: "seconds since start",
        x_end,
        panels: vec![Panel::new("finished per second", series)],
        pauses: Vec::new(),
        probes: Vec::new(),
    }
}

/// The mean of a count over the trailing [`MEAN_SECONDS`] (fewer at the start of the
/// log), at every second a count falls in the window of and the second it leaves it,
/// up to `x_end`.
fn trailing_mean(
    seconds: &[&SecondRecord],
    value: impl Fn(&SecondRecord) -> u64,
    x_end: f64,
) -> Vec<(f64, f64)> {
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for s in seconds {
        let sum = per_second.entry(s.t).or_default();
        *sum = sum.saturating_add(value(s));
    }
    let mut at: Vec<u64> = per_second
        .keys()
        .flat_map(|&t| (t..=t.saturating_add(MEAN_SECONDS)).take_while(|&u| (u as f64) < x_end))
        .collect();
    at.sort_unstable();
    at.dedup();
    at.into_iter()
        .map(|t| {
            let from = t.saturating_sub(MEAN_SECONDS - 1);
            let sum: u64 = per_second.range(from..=t).map(|(_, v)| v).sum();
            (t as f64, sum as f64 / (t - from + 1) as f64)
        })
        .collect()
}

/// A count per second as points, with zeros for the seconds the log omits (they had
/// no activity). Only the edges of a gap get points, so a bogus huge `t` costs nothing.
fn counts(seconds: &[&SecondRecord], value: impl Fn(&SecondRecord) -> u64) -> Vec<(f64, f64)> {
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    for s in seconds {
        let sum = per_second.entry(s.t).or_default();
        *sum = sum.saturating_add(value(s));
    }
    let mut points = Vec::with_capacity(per_second.len());
    let mut next = 0; // the first second not yet drawn
    for (t, v) in per_second {
        if t > next {
            points.push((next as f64, 0.0));
            if t - 1 > next {
                points.push(((t - 1) as f64, 0.0));
            }
        }
        points.push((t as f64, v as f64));
        next = t.saturating_add(1);
    }
    points
}

/// A gauge as points at the seconds the log has, the last value of each second.
/// Values that cannot be drawn (negative, not finite) are left out.
fn gauge(seconds: &[&SecondRecord], value: impl Fn(&SecondRecord) -> f64) -> Vec<(f64, f64)> {
    let per_second: BTreeMap<u64, f64> = seconds
        .iter()
        .map(|s| (s.t, value(s)))
        .filter(|(_, v)| v.is_finite() && *v >= 0.0)
        .collect();
    per_second.into_iter().map(|(t, v)| (t as f64, v)).collect()
}

/// A step line over the whole axis through `points`: each value holds from the start
/// (the first one) or from its own second until the next change.
fn steps(points: &[(f64, f64)], x_end: f64) -> Vec<(f64, f64)> {
    let Some(&(_, first)) = points.first() else {
        return Vec::new();
    };
    let mut out = vec![(0.0, first)];
    let mut current = first;
    for &(t, v) in &points[1..] {
        if v != current {
            out.push((t, current));
            out.push((t, v));
            current = v;
        }
    }
    out.push((x_end, current));
    out
}

/// The paused seconds, merged into spans.
fn pauses(seconds: &[&SecondRecord]) -> Vec<(f64, f64)> {
    let mut paused: Vec<u64> = seconds.iter().filter(|s| s.paused).map(|s| s.t).collect();
    paused.sort_unstable();
    paused.dedup();
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for t in paused {
        match spans.last_mut() {
            Some((_, end)) if *end == t => *end = t + 1,
            _ => spans.push((t, t.saturating_add(1))),
        }
    }
    spans
        .into_iter()
        .map(|(a, b)| (a as f64, b as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64, issued: u64, paused: bool) -> SecondRecord {
        SecondRecord {
            service: "s".into(),
            t,
            requested: 0,
            issued,
            reissued: 0,
            finished: 0,
            rate_limited: 0,
            waiting: 0,
            in_flight: 0,
            allowed_rate: 1.0,
            limit_rate: 10.0,
            paused,
            tokens: 0,
            input_tokens: 0,
            output_tokens: 0,
            requests_left_today: None,
            tokens_left_today: None,
            waits_ms: Vec::new(),
        }
    }

    #[test]
    fn omitted_seconds_count_zero() {
        let s = [
            second(2, 5, false),
            second(3, 6, false),
            second(9, 1, false),
        ];
        let refs: Vec<&SecondRecord> = s.iter().collect();
        assert_eq!(
            counts(&refs, |s| s.issued),
            [
                (0.0, 0.0),
                (1.0, 0.0),
                (2.0, 5.0),
                (3.0, 6.0),
                (4.0, 0.0),
                (8.0, 0.0),
                (9.0, 1.0)
            ]
        );
    }

    #[test]
    fn a_huge_second_costs_two_points() {
        let s = [second(0, 1, false), second(u64::MAX, 1, false)];
        let refs: Vec<&SecondRecord> = s.iter().collect();
        assert_eq!(counts(&refs, |s| s.issued).len(), 4);
    }

    #[test]
    fn paused_seconds_merge_into_spans() {
        let s = [
            second(1, 0, true),
            second(2, 0, true),
            second(3, 0, false),
            second(5, 0, true),
        ];
        let refs: Vec<&SecondRecord> = s.iter().collect();
        assert_eq!(pauses(&refs), [(1.0, 3.0), (5.0, 6.0)]);
    }

    #[test]
    fn the_mean_spans_the_trailing_10_s_and_falls_to_zero_after() {
        // 1, 2, 1, 2, … issued: whole seconds jump, the mean settles at 1.5.
        let s: Vec<SecondRecord> = (0..30).map(|t| second(t, 1 + t % 2, false)).collect();
        let refs: Vec<&SecondRecord> = s.iter().collect();
        let mean = trailing_mean(&refs, |s| s.issued, 30.0);
        assert_eq!(mean.len(), 30);
        assert_eq!(mean[0], (0.0, 1.0), "only the first second so far");
        assert!(mean[9..].iter().all(|&(_, v)| v == 1.5), "{mean:?}");
        let one = [second(0, 10, false)];
        let refs: Vec<&SecondRecord> = one.iter().collect();
        let mean = trailing_mean(&refs, |s| s.issued, 100.0);
        assert_eq!(mean.len(), 11);
        assert_eq!(mean[9], (9.0, 1.0));
        assert_eq!(mean[10], (10.0, 0.0), "the burst has left the window");
    }

    #[test]
    fn a_limit_is_a_step_line_over_the_whole_axis() {
        assert_eq!(
            steps(&[(3.0, 10.0), (4.0, 10.0)], 9.0),
            [(0.0, 10.0), (9.0, 10.0)]
        );
        assert_eq!(
            steps(&[(3.0, 10.0), (5.0, 5.0)], 9.0),
            [(0.0, 10.0), (5.0, 10.0), (5.0, 5.0), (9.0, 5.0)]
        );
    }
}
