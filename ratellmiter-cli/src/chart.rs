//! What a graph shows, decided before anything is drawn: titled series of points,
//! reference lines and shaded pauses, built from a flow log.
//!
//! Besides the lines of [`crate::lines`], a service's graph has the configured limit
//! (dark grey, dashed), the rate the pacer allowed (thin cyan) and its pauses (pale
//! red spans). The compare chart gives every service a colour of [`COMPARE_PALETTE`].

use std::collections::BTreeMap;

use ratellmiter_runtime::flow_log::format::{FlowLog, SecondRecord};

use crate::lines::{Lines, Rgb};
use crate::logs::printable;

/// The configured limit, `limit_rate`: a dashed line.
pub const LIMIT_COLOUR: Rgb = Rgb(0x40, 0x40, 0x40);
/// The rate the pacer allowed, `allowed_rate` (ramp, learned ceiling): a thin line.
pub const ALLOWED_COLOUR: Rgb = Rgb(0x17, 0xBE, 0xCF);
/// Seconds the limiter was paused, waiting to probe: shaded spans.
pub const PAUSE_COLOUR: Rgb = Rgb(0xF6, 0xD5, 0xD5);
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

/// The longest service name shown in a title or legend, in characters.
const MAX_NAME_CHARS: usize = 60;

/// A graph, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Above the plot.
    pub title: String,
    /// Under the x axis.
    pub x_label: &'static str,
    /// Beside the y axis.
    pub y_label: &'static str,
    /// The x axis runs from 0 to here, seconds.
    pub x_end: f64,
    /// The lines, drawn in order (later ones on top).
    pub series: Vec<Series>,
    /// Shaded spans `[from, to)` of seconds, behind the lines.
    pub pauses: Vec<(f64, f64)>,
}

impl Chart {
    /// The greatest value of any series (0 with none).
    pub fn y_max(&self) -> f64 {
        let values = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1));
        values.fold(0.0, f64::max)
    }
}

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

/// How a series' line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stroke {
    /// A data line.
    Solid,
    /// A reference line that should not hide the data.
    Thin,
    /// A limit.
    Dashed,
}

/// The graph of `service`: one series per chosen line, then the allowed rate and the
/// limit, with its pauses shaded. `file` names the log in the title.
pub fn service_chart(log: &FlowLog, file: &str, service: &str, lines: &Lines) -> Chart {
    let seconds: Vec<&SecondRecord> = log.seconds_for(service).collect();
    let x_end = seconds
        .iter()
        .map(|s| s.t)
        .max()
        .map_or(1.0, |t| t as f64 + 1.0);
    let mut series: Vec<Series> = lines
        .iter()
        .map(|line| Series {
            label: line.label().into(),
            colour: line.colour(),
            stroke: Stroke::Solid,
            points: counts(&seconds, |s| line.value(s)),
        })
        .collect();
    series.push(Series {
        label: "allowed rate".into(),
        colour: ALLOWED_COLOUR,
        stroke: Stroke::Thin,
        points: gauge(&seconds, |s| s.allowed_rate),
    });
    series.push(Series {
        label: "limit".into(),
        colour: LIMIT_COLOUR,
        stroke: Stroke::Dashed,
        points: steps(&gauge(&seconds, |s| s.limit_rate), x_end),
    });
    series.retain(|s| !s.points.is_empty());
    Chart {
        title: format!(
            "{} — {}",
            printable(service, MAX_NAME_CHARS),
            printable(file, MAX_NAME_CHARS)
        ),
        x_label: "seconds since start",
        y_label: "per second",
        x_end,
        series,
        pauses: pauses(&seconds),
    }
}

/// Finished calls per second of every service in one chart, as rateLLMiter's compare
/// graph.
pub fn compare_chart(log: &FlowLog, file: &str) -> Chart {
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
            "finished per second, every service — {}",
            printable(file, MAX_NAME_CHARS)
        ),
        x_label: "seconds since start",
        y_label: "finished per second",
        x_end,
        series,
        pauses: Vec::new(),
    }
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
