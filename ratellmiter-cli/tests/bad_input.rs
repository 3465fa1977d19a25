//! Bad input never panics: each case is one line on stderr and a non-zero exit when
//! nothing could be drawn (1 for the input, 2 for the arguments), or a one-line warning
//! when the rest could still be drawn.

mod common;

use common::{Output, header, llmiter, second, standard_log, write_log, write_text};
use ratellmiter_runtime::flow_log::format::{Record, SecondRecord};

/// The run failed with `code` and said so in one line containing `words`.
fn assert_one_line_error(out: &Output, code: i32, words: &[&str]) {
    assert_eq!(out.code, code, "{out:?}");
    assert_eq!(out.stdout, "", "nothing drawn");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    assert!(
        out.stderr.starts_with("llmiter: error: "),
        "{:?}",
        out.stderr
    );
    for w in words {
        assert!(out.stderr.contains(w), "{w:?} in {:?}", out.stderr);
    }
}

#[test]
fn a_missing_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = llmiter(dir.path(), &["-dir=nowhere"]);
    assert_one_line_error(&out, 1, &["log directory nowhere does not exist"]);
    let out = llmiter(dir.path(), &["summary"]);
    assert_one_line_error(&out, 1, &["log directory ratellmiter_logs does not exist"]);
}

#[test]
fn no_logs_in_the_dir() {
    let dir = tempfile::tempdir().unwrap();
    write_text(dir.path(), "1764375000.jsonl", ""); // empty: not a log to pick
    write_text(dir.path(), "notes.txt", "x");
    let out = llmiter(dir.path(), &["--dir", "."]);
    assert_one_line_error(&out, 1, &["no flow log", "in ."]);
}

#[test]
fn a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = llmiter(dir.path(), &["--dir", ".", "--file", "17.jsonl"]);
    assert_one_line_error(&out, 1, &["log file 17.jsonl not found"]);
}

#[test]
fn an_unknown_service_lists_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let out = llmiter(dir.path(), &["--dir", "."]);
    assert_one_line_error(
        &out,
        1,
        &[
            "unknown service \"default\"",
            "known: \"svc\", \"other\"",
            "--name",
        ],
    );
}

#[test]
fn a_service_without_activity() {
    let dir = tempfile::tempdir().unwrap();
    write_log(
        dir.path(),
        "1.jsonl",
        &[header(&["idle"]), common::footer()],
    );
    let out = llmiter(dir.path(), &["--dir", ".", "--name", "idle"]);
    assert_one_line_error(&out, 1, &["service \"idle\" has no activity"]);
    let out = llmiter(dir.path(), &["--dir", ".", "--compare"]);
    assert_one_line_error(&out, 1, &["no activity to draw"]);
}

#[test]
fn malformed_lines_are_a_warning_and_the_rest_is_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let log = standard_log(dir.path());
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.insert_str(
        text.find('\n').unwrap() + 1,
        "{\"type\":\"second\",\"service\":\"svc\",\"t\":\"x\"}\nnot json\n",
    );
    text.push_str("{\"type\":\"second\",\"ser"); // a log cut off mid-write
    std::fs::write(&log, text).unwrap();
    let out = llmiter(dir.path(), &["--dir", ".", "--name", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim_end(), "./1764375000_svc_iroef.png");
    assert_eq!(
        out.stderr,
        "llmiter: warning: ./1764375000.jsonl: skipped 3 malformed lines (line 2, 3, 39)\n"
    );
}

#[test]
fn many_malformed_lines_report_the_first_five() {
    let dir = tempfile::tempdir().unwrap();
    let log = standard_log(dir.path());
    let text = std::fs::read_to_string(&log).unwrap() + &"{\n".repeat(7);
    std::fs::write(&log, text).unwrap();
    let out = llmiter(dir.path(), &["summary", "--dir", "."]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("skipped 7 malformed lines (first at line 37, 38, 39, 40, 41)"),
        "{out:?}"
    );
}

#[test]
fn a_newer_format_version() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"type":"header","format":"ratellmiter-flow","version":2,"start_unix_ms":1,"services":[]}"#;
    write_text(dir.path(), "5.jsonl", line);
    let out = llmiter(dir.path(), &["--dir", "."]);
    assert_one_line_error(
        &out,
        1,
        &[
            "./5.jsonl: flow log version 2 is newer",
            "up to 1",
            "upgrade",
        ],
    );
    let out = llmiter(dir.path(), &["summary", "--dir", "."]);
    assert_one_line_error(&out, 1, &["version 2"]);
}

#[test]
fn a_file_that_is_no_flow_log() {
    let dir = tempfile::tempdir().unwrap();
    write_text(
        dir.path(),
        "5.jsonl",
        "{\"level\":\"info\",\"msg\":\"hello\"}\n",
    );
    let out = llmiter(dir.path(), &["--dir", "."]);
    assert_one_line_error(&out, 1, &["not a ratellmiter flow log"]);
}

#[test]
fn unknown_line_letters_list_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = llmiter(dir.path(), &["-lines=rix"]);
    assert_eq!(out.code, 2, "an argument error: {out:?}");
    let first = out.stderr.lines().next().unwrap();
    assert!(first.contains("unknown line letter 'x'"), "{first}");
    assert!(first.contains("i (issued), r (requests), o (overflow (waiting)), e (rate-limit exceptions), f (finished)"), "{first}");
}

#[test]
fn an_unwritable_output() {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let out = llmiter(
        dir.path(),
        &["--dir", ".", "--name", "svc", "--out", "no/such/dir/g.png"],
    );
    assert_one_line_error(&out, 1, &["cannot write no/such/dir/g.png"]);
    let out = llmiter(
        dir.path(),
        &["--dir", ".", "--name", "svc", "--out", "g.jpg"],
    );
    assert_one_line_error(&out, 1, &["end it in .png or .svg"]);
}

#[test]
fn absurd_numbers_neither_panic_nor_hang() {
    let dir = tempfile::tempdir().unwrap();
    let absurd = SecondRecord {
        issued: u64::MAX,
        requested: u64::MAX,
        allowed_rate: f64::MAX,
        limit_rate: f64::MAX,
        paused: true,
        waits_ms: vec![u64::MAX, u64::MAX],
        ..second("s", u64::MAX)
    };
    let records = [
        header(&["s"]),
        Record::Second(SecondRecord {
            issued: u64::MAX,
            ..second("s", 0)
        }),
        Record::Second(absurd),
    ];
    write_log(dir.path(), "1.jsonl", &records);
    for args in [
        &["--dir", ".", "--name", "s"][..],
        &["--dir", ".", "--name", "s", "--format", "svg"],
        &["--dir", ".", "--compare"],
        &["summary", "--dir", "."],
    ] {
        let out = llmiter(dir.path(), args);
        assert_eq!(
            (out.code, out.stderr.as_str()),
            (0, ""),
            "{args:?}: {out:?}"
        );
    }
}

#[test]
fn mock_server_outages_must_say_where_they_count_from_at_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    // `--rpm 0` makes a run that got past the arguments fail at once instead of serving.
    let out = llmiter(
        dir.path(),
        &["mock-server", "--rpm", "0", "--outage", "+5..35"],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "");
    for w in ["--outage", "+5..35", "both ends with `+` or neither"] {
        assert!(out.stderr.contains(w), "{w:?} in {:?}", out.stderr);
    }
    let out = llmiter(
        dir.path(),
        &["mock-server", "--rpm", "0", "--outage", "+5..+x"],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("`+x` is not a number"),
        "{:?}",
        out.stderr
    );
}

#[test]
fn mock_server_help_documents_every_flag_and_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let out = llmiter(dir.path(), &["mock-server", "--help"]);
    assert_eq!(out.code, 0, "{out:?}");
    for w in [
        "GET /metrics",
        "GET /log",
        "POST /v1/chat/completions",
        "OPENAI_BASE_URL",
        "+START..+END",
        "--rpm",
        "--tpm",
        "--outage-retry-after",
        "--acceleration",
        "--penalty",
        "--latency-ms",
        "--seed",
        "--port",
    ] {
        assert!(out.stdout.contains(w), "{w:?} in {}", out.stdout);
    }
}
