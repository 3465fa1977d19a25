//! The flow-log reader on hostile input: random lines, truncated and mutated records,
//! huge numbers, wrong types, unknown versions and a very long line never panic; what
//! cannot be read is skipped and counted, with memory bounded by the line cap.

use std::io::{BufReader, Cursor, Read};

use proptest::prelude::*;
use ratellmiter_runtime::flow_log::format::{FlowLog, MAX_LINE_BYTES, ReadError};

const HEADER: &str =
    r#"{"type":"header","format":"ratellmiter-flow","version":1,"start_unix_ms":1,"services":[]}"#;
const SECOND: &str = r#"{"type":"second","service":"s","t":3,"requested":1,"issued":1,"reissued":0,"finished":1,"rate_limited":0,"waiting":0,"in_flight":0,"allowed_rate":2.5,"limit_rate":10.0,"paused":false,"tokens":0,"waits_ms":[0]}"#;

/// A line that is a valid record, a cut or mutated one, or noise.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SECOND.to_owned()),
        (0..SECOND.len()).prop_map(|n| SECOND[..n].to_owned()),
        (
            0..SECOND.len(),
            any::<char>().prop_filter("stays one line", |c| *c != '\n' && *c != '\r')
        )
            .prop_map(|(n, c)| {
                let mut s: Vec<char> = SECOND.chars().collect();
                s[n] = c;
                s.into_iter().collect()
            }),
        Just(SECOND.replace("\"t\":3", "\"t\":18446744073709551616")),
        Just(SECOND.replace("\"t\":3", "\"t\":-1")),
        Just(SECOND.replace("\"issued\":1", "\"issued\":\"many\"")),
        Just(r#"{"type":"from-the-future","x":1}"#.to_owned()),
        ".{0,200}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_lines_after_a_header_parse_without_panic(lines in prop::collection::vec(line(), 0..40)) {
        let text = std::iter::once(HEADER.to_owned()).chain(lines.iter().cloned()).collect::<Vec<_>>().join("\n");
        let log = FlowLog::parse(Cursor::new(text)).expect("a header makes a log");
        let kept = log.seconds.len() as u64;
        prop_assert!(kept + log.malformed.count <= lines.len() as u64);
        prop_assert!(log.malformed.first_line_numbers.len() <= 5);
        prop_assert!(log.malformed.first_line_numbers.iter().all(|n| *n >= 2 && *n <= lines.len() as u64 + 1));
    }

    #[test]
    fn any_bytes_give_a_log_or_an_error_never_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = FlowLog::parse(Cursor::new(bytes));
    }
}

#[test]
fn a_newer_version_is_refused_by_name() {
    let text = HEADER.replace("\"version\":1", "\"version\":99");
    let err = FlowLog::parse(Cursor::new(text)).unwrap_err();
    assert!(matches!(err, ReadError::UnsupportedVersion { .. }), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
}

#[test]
fn a_64_mib_line_is_streamed_past_and_counted() {
    // 64 × the cap, never held whole: the reader keeps at most the cap of it.
    let long = std::io::repeat(b'x').take(64 * MAX_LINE_BYTES as u64);
    let input = Cursor::new(format!("{HEADER}\n"))
        .chain(long)
        .chain(Cursor::new(format!("\n{SECOND}\n")));
    let log = FlowLog::parse(BufReader::new(input)).unwrap();
    assert_eq!(log.malformed.count, 1);
    assert_eq!(log.malformed.first_line_numbers, vec![2]);
    assert_eq!(log.seconds.len(), 1, "the line after the long one is read");
}
