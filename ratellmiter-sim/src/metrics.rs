//! The record of each request and the measures benchmarks take of them: window maxima,
//! first and last acceptances, lag after a given time, and regularity of spacing.
//!
//! Every window is half-open, `[t, t + w)`, and the maxima are exact: a two-pointer
//! sweep over the sorted times, so two requests `w` apart never share a window.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::RejectKind;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// One request as the provider saw it. In JSON, times are seconds (`at_s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival, since the scenario start.
    #[serde(rename = "at_s", with = "secs")]
    pub at: Duration,
    /// The requested model.
    pub model: String,
    /// Tokens the request asked for.
    pub tokens: u64,
    /// Of them, input tokens, when the request said ([`Ask::input`](crate::Ask::input)).
    #[serde(default)]
    pub input: u64,
    /// HTTP status answered: 200, 429, or the outage status.
    pub status: u16,
    /// Why it was refused, if it was.
    pub rejection: Option<RejectKind>,
}

impl RequestRecord {
    /// Whether it was accepted.
    pub fn accepted(&self) -> bool {
        self.rejection.is_none()
    }
}

/// Summary of a run of requests. In JSON, times are seconds (`first_accept_s`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Requests received.
    pub requests: u64,
    /// Requests accepted.
    pub accepted: u64,
    /// Requests refused.
    pub rejected: u64,
    /// Refusals by reason; reasons that never occurred are absent.
    pub rejected_by_kind: BTreeMap<RejectKind, u64>,
    /// Most accepted requests in any `[t, t + 1 s)`.
    pub max_accepted_in_any_1s: u64,
    /// Most requests received, accepted or not, in any `[t, t + 1 s)`.
    pub max_attempted_in_any_1s: u64,
    /// Most accepted requests in any `[t, t + 60 s)`.
    pub max_accepted_in_any_60s: u64,
    /// Most requests received in any `[t, t + 60 s)`.
    pub max_attempted_in_any_60s: u64,
    /// Most tokens accepted in any `[t, t + 60 s)`.
    pub max_accepted_tokens_in_any_60s: u64,
    /// The first acceptance.
    #[serde(rename = "first_accept_s", with = "opt_secs")]
    pub first_accept: Option<Duration>,
    /// The last acceptance.
    #[serde(rename = "last_accept_s", with = "opt_secs")]
    pub last_accept: Option<Duration>,
}

impl Metrics {
    /// Summarizes `records`, in any order. Pass a filtered iterator for one model:
    /// `Metrics::from_records(log.iter().filter(|r| r.model == "gpt-4o"))`.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a RequestRecord>) -> Self {
        let mut m = Self::default();
        let (mut attempted, mut accepted) = (Vec::new(), Vec::new());
        for r in records {
            m.requests += 1;
            attempted.push(r.at);
            match r.rejection {
                None => accepted.push((r.at, r.tokens)),
                Some(kind) => *m.rejected_by_kind.entry(kind).or_default() += 1,
            }
        }
        attempted.sort_unstable();
        accepted.sort_unstable();
        let accepted_times: Vec<Duration> = accepted.iter().map(|&(t, _)| t).collect();
        m.accepted = accepted.len() as u64;
        m.rejected = m.requests - m.accepted;
        m.max_accepted_in_any_1s = max_in_window(&accepted_times, SECOND);
        m.max_attempted_in_any_1s = max_in_window(&attempted, SECOND);
        m.max_accepted_in_any_60s = max_in_window(&accepted_times, MINUTE);
        m.max_attempted_in_any_60s = max_in_window(&attempted, MINUTE);
        m.max_accepted_tokens_in_any_60s = max_weight_in_window(&accepted, MINUTE);
        m.first_accept = accepted_times.first().copied();
        m.last_accept = accepted_times.last().copied();
        m
    }
}

/// Most of the sorted `times` in any half-open window `[t, t + window)`.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter_sim::metrics::max_in_window;
/// let ms = Duration::from_millis;
/// // 0 and 1000 are a full window apart; 500, 1000 and 1499 share [500, 1500).
/// assert_eq!(max_in_window(&[ms(0), ms(500), ms(1000), ms(1499)], ms(1000)), 3);
/// ```
pub fn max_in_window(times: &[Duration], window: Duration) -> u64 {
    let mut best = 0;
    let mut start = 0;
    for (end, &t) in times.iter().enumerate() {
        while times[start] + window <= t {
            start += 1;
        }
        best = best.max(end + 1 - start);
    }
    best as u64
}

/// Most total weight of the sorted `(time, weight)` points in any window `[t, t + window)`.
pub fn max_weight_in_window(points: &[(Duration, u64)], window: Duration) -> u64 {
    let (mut best, mut sum, mut start) = (0u128, 0u128, 0);
    for &(t, weight) in points {
        sum += u128::from(weight);
        while points[start].0 + window <= t {
            sum -= u128::from(points[start].1);
            start += 1;
        }
        best = best.max(sum);
    }
    u64::try_from(best).unwrap_or(u64::MAX)
}

/// The first acceptance at or after `t`: with `t` an outage's end, the lag to the first
/// success is the result minus `t`.
pub fn first_accept_after<'a>(
    records: impl IntoIterator<Item = &'a RequestRecord>,
    t: Duration,
) -> Option<Duration> {
    records
        .into_iter()
        .filter(|r| r.accepted() && r.at >= t)
        .map(|r| r.at)
        .min()
}

/// The gaps between consecutive acceptances within `range`, in seconds.
fn accepted_gaps<'a>(
    records: impl IntoIterator<Item = &'a RequestRecord>,
    range: Range<Duration>,
) -> Vec<f64> {
    let mut times: Vec<f64> = records
        .into_iter()
        .filter(|r| r.accepted() && range.contains(&r.at))
        .map(|r| r.at.as_secs_f64())
        .collect();
    times.sort_unstable_by(f64::total_cmp);
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Coefficient of variation (population standard deviation over mean) of the gaps
/// between consecutive acceptances within `range`: 0 for perfectly even spacing, about 1
/// for Poisson arrivals. `None` with fewer than two acceptances or a zero mean gap.
pub fn gap_cv<'a>(
    records: impl IntoIterator<Item = &'a RequestRecord>,
    range: Range<Duration>,
) -> Option<f64> {
    let gaps = accepted_gaps(records, range);
    if gaps.is_empty() {
        return None;
    }
    let n = gaps.len() as f64;
    let mean = gaps.iter().sum::<f64>() / n;
    if mean <= 0.0 {
        return None;
    }
    let variance = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
    Some(variance.sqrt() / mean)
}

/// The share of the gaps between consecutive acceptances within `range` shorter than
/// `under`: near 0 for even spacing, near 1 when requests go out in clumps (a whole
/// second's batch at once). `None` with fewer than two acceptances.
pub fn short_gap_share<'a>(
    records: impl IntoIterator<Item = &'a RequestRecord>,
    range: Range<Duration>,
    under: Duration,
) -> Option<f64> {
    let gaps = accepted_gaps(records, range);
    let short = gaps.iter().filter(|&&g| g < under.as_secs_f64()).count();
    (!gaps.is_empty()).then(|| short as f64 / gaps.len() as f64)
}

/// Durations as fractional seconds in JSON.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Duration::try_from_secs_f64(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Optional durations as fractional seconds or `null` in JSON.
mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|v| Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn record(at_ms: u64, tokens: u64, rejection: Option<RejectKind>) -> RequestRecord {
        RequestRecord {
            at: ms(at_ms),
            model: "m".into(),
            tokens,
            input: 0,
            status: if rejection.is_some() { 429 } else { 200 },
            rejection,
        }
    }

    #[test]
    fn window_maxima_are_exact_on_half_open_windows() {
        // Two bursts of 3 one second apart: [0, 1000) holds 0, 10, 20 only.
        let times: Vec<Duration> = [0, 10, 20, 1000, 1010, 1020].map(ms).to_vec();
        assert_eq!(max_in_window(&times, ms(1000)), 3);
        // [20, 1021) holds 20, 1000, 1010, 1020.
        assert_eq!(max_in_window(&times, ms(1001)), 4);
        assert_eq!(max_in_window(&[], ms(1000)), 0);
        let points = [
            (ms(0), 100),
            (ms(30_000), 50),
            (ms(59_999), 25),
            (ms(60_000), 200),
        ];
        // [0, 60000) holds 175; [30000, 90000) holds 275.
        assert_eq!(max_weight_in_window(&points, MINUTE), 275);
    }

    #[test]
    fn summary_counts_accepted_and_attempted_apart() {
        let log = [
            record(0, 10, None),
            record(100, 10, None),
            record(200, 10, Some(RejectKind::Requests)),
            record(300, 10, Some(RejectKind::Requests)),
            record(1100, 10, None),
            record(5000, 999, Some(RejectKind::Outage)),
            record(61_000, 10, None),
        ];
        let m = Metrics::from_records(&log);
        assert_eq!((m.requests, m.accepted, m.rejected), (7, 4, 3));
        assert_eq!(m.rejected_by_kind[&RejectKind::Requests], 2);
        assert_eq!(m.rejected_by_kind[&RejectKind::Outage], 1);
        assert_eq!(m.max_accepted_in_any_1s, 2); // 0, 100 (1100 is 1 s after 100)
        assert_eq!(m.max_attempted_in_any_1s, 4); // 0..300
        assert_eq!(m.max_accepted_in_any_60s, 3); // 0, 100, 1100
        assert_eq!(m.max_attempted_in_any_60s, 6);
        assert_eq!(m.max_accepted_tokens_in_any_60s, 30); // the refused 999 does not count
        assert_eq!(
            (m.first_accept, m.last_accept),
            (Some(ms(0)), Some(ms(61_000)))
        );
        assert_eq!(first_accept_after(&log, ms(101)), Some(ms(1100)));
        assert_eq!(first_accept_after(&log, ms(61_001)), None);
    }

    #[test]
    fn gap_cv_is_zero_for_even_spacing_and_half_for_alternating_gaps() {
        let even: Vec<_> = (0..10).map(|i| record(i * 100, 1, None)).collect();
        assert!(gap_cv(&even, ms(0)..ms(10_000)).unwrap() < 1e-9);
        // Gaps alternate 0.1 s and 0.3 s: mean 0.2, standard deviation 0.1.
        let uneven: Vec<_> = [0, 100, 400, 500, 800].map(|t| record(t, 1, None)).to_vec();
        let cv = gap_cv(&uneven, ms(0)..ms(10_000)).unwrap();
        assert!((cv - 0.5).abs() < 1e-9, "{cv}");
        // The range drops 0 and 800: gaps 0.3, 0.1.
        let cv = gap_cv(&uneven, ms(50)..ms(800)).unwrap();
        assert!((cv - 0.5).abs() < 1e-9, "{cv}");
        assert_eq!(gap_cv(&uneven, ms(0)..ms(50)), None);
    }

    #[test]
    fn json_uses_seconds() {
        let m = Metrics::from_records(&[
            record(1500, 10, None),
            record(1600, 10, Some(RejectKind::Tokens)),
        ]);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["first_accept_s"], 1.5);
        assert_eq!(json["rejected_by_kind"]["tokens"], 1);
        assert_eq!(serde_json::from_value::<Metrics>(json).unwrap(), m);
    }
}
