//! `llmiter summary` on a hand-made log: the numbers worked out by hand below.

mod common;

use common::{footer, header, llmiter, second, write_log};
use ratellmiter_cli::summary::{BudgetUse, ServiceSummary, summarize};
use ratellmiter_runtime::flow_log::format::{Record, SecondRecord};

/// `hand` asks 5 + 2 + 1 + 0 calls and gets 3, 4, 2, 6 tickets at 0 s, 1 s, 30 s, 65 s;
/// one 429 at 1 s; paused at 1 s and 30 s; 15 waits summing to 2060 ms, the longest
/// 1000 ms. `waits` gets 200 tickets in one second, waiting 1..=200 ms.
fn hand_made_log() -> Vec<Record> {
    let hand = |t, requested, issued, paused, waits_ms: Vec<u64>| SecondRecord {
        requested,
        issued,
        paused,
        waits_ms,
        ..second("hand", t)
    };
    let seconds = [
        hand(0, 5, 3, false, vec![0, 10, 20]),
        SecondRecord {
            rate_limited: 1,
            ..hand(1, 2, 4, true, vec![100, 200, 300, 400])
        },
        hand(30, 1, 2, true, vec![1000, 0]),
        SecondRecord {
            allowed_rate: 7.5,
            limit_rate: 8.0,
            ..hand(65, 0, 6, false, vec![5; 6])
        },
        SecondRecord {
            requested: 200,
            issued: 200,
            waits_ms: (1..=200).collect(),
            ..second("waits", 2)
        },
    ];
    let mut records = vec![header(&["hand", "waits", "idle"])];
    records.extend(seconds.map(Record::Second));
    records.push(footer());
    records
}

#[test]
fn the_numbers_are_the_ones_worked_out_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), "1.jsonl", &hand_made_log());
    let log = ratellmiter_runtime::flow_log::format::read_log(&path).unwrap();
    let summaries = summarize(&log);
    assert_eq!(
        summaries[0],
        ServiceSummary {
            service: "hand".into(),
            calls: 8,
            tickets: 15,
            rate_limited: 1,
            peak_per_second: 6,
            // [0, 60) holds 3 + 4 + 2; [30, 90) only 2 + 6.
            peak_per_minute: 9,
            paused_seconds: 2,
            mean_wait_ms: Some(2060.0 / 15.0),
            // Nearest rank: ceil(0.99 × 15) = 15th of 15.
            p99_wait_ms: Some(1000),
            allowed_rate: Some(7.5),
            limit_rate: Some(8.0),
            budgets: BudgetUse::default(),
        }
    );
    let waits = &summaries[1];
    assert_eq!(waits.mean_wait_ms, Some(100.5));
    assert_eq!(waits.p99_wait_ms, Some(198), "ceil(0.99 × 200) = 198th");
    assert_eq!((waits.peak_per_second, waits.peak_per_minute), (200, 200));
    let idle = &summaries[2];
    assert_eq!(
        (
            idle.service.as_str(),
            idle.tickets,
            idle.p99_wait_ms,
            idle.allowed_rate
        ),
        ("idle", 0, None, None)
    );
}

#[test]
fn the_table_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), "1.jsonl", &hand_made_log());
    let out = llmiter(dir.path(), &["summary", "-dir=."]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "./1.jsonl");
    let cells = |line: &str| {
        line.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        cells(lines[1]),
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
            "limit/s"
        ]
    );
    assert_eq!(
        cells(lines[2]),
        [
            "hand", "8", "15", "1", "6", "9", "2", "137.3", "1000", "7.50", "8.00"
        ]
    );
    assert_eq!(
        cells(lines[3]),
        [
            "waits", "200", "200", "0", "200", "200", "0", "100.5", "198", "10.00", "10.00"
        ]
    );
    assert_eq!(
        cells(lines[4]),
        ["idle", "0", "0", "0", "0", "0", "0", "-", "-", "-", "-"]
    );
    assert_eq!(lines.len(), 5);
}

/// Each budget's use: the peak minute of each kind of token, the most calls in flight,
/// and what the daily quota had left at the end (2 000 input and 1 024 output at 0 s
/// and 59 s, 2 000 and 1 024 at 60 s: [0, 60) and [59, 119) hold two each).
#[test]
fn each_budgets_use_is_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let kinds = |t, in_flight, left| SecondRecord {
        issued: 1,
        input_tokens: 2_000,
        output_tokens: 1_024,
        tokens: 3_024,
        in_flight,
        requests_left_today: Some(left),
        ..second("kinds", t)
    };
    let mut records = vec![header(&["kinds"])];
    records.extend([kinds(0, 1, 99), kinds(59, 8, 98), kinds(60, 3, 97)].map(Record::Second));
    records.push(footer());
    let path = write_log(dir.path(), "1.jsonl", &records);
    let log = ratellmiter_runtime::flow_log::format::read_log(&path).unwrap();
    assert_eq!(
        summarize(&log)[0].budgets,
        BudgetUse {
            peak_tokens_per_minute: 6_048,
            peak_input_per_minute: 4_000,
            peak_output_per_minute: 2_048,
            peak_in_flight: 8,
            requests_left_today: Some(97),
            tokens_left_today: None,
        }
    );
}
