//! `llmiter` draws: the PNG has the size asked for and exactly the chosen lines'
//! colours, rates and the queue in panels of their own, 429s as marks, probes as lines,
//! a title with the run's start and a summary, a 10 s mean at low rates; the SVG names
//! the service and strokes the same colours, the compare chart has a colour per
//! service, and rateLLMiter's spelling draws the same image.

mod common;

use std::path::Path;

use common::{Image, llmiter, llmiter_with_path, standard_log};
use ratellmiter_cli::chart::{
    ALLOWED_COLOUR, BUDGET_LABEL, COMPARE_PALETTE, IN_FLIGHT_COLOUR, INPUT_COLOUR, LIMIT_COLOUR,
    MEAN_COLOUR, OUTPUT_COLOUR, PAUSE_COLOUR, PROBE_COLOUR, QUEUE_LABEL, TODAY_COLOUR, TODAY_LABEL,
};
use ratellmiter_cli::lines::Line;

/// Enough pixels of a colour to be a line or a legend sample, not a stray pixel.
const VISIBLE: usize = 30;

fn graph(dir: &Path, args: &[&str]) -> String {
    let out = llmiter(dir, args);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "only the path on stdout: {out:?}"
    );
    out.stdout.trim_end().to_owned()
}

#[test]
fn the_default_graph_draws_every_line_with_pauses_limit_and_allowed_rate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    standard_log(&dir.path().join("logs"));
    let path = graph(dir.path(), &["--dir", "logs", "--name", "svc"]);
    assert_eq!(path, "logs/1764375000_svc_iroef.png");
    let image = Image::read(&dir.path().join(&path));
    assert_eq!((image.width, image.height), (1200, 600));
    for line in Line::ALL {
        assert!(image.count(line.colour()) > VISIBLE, "{line:?} is drawn");
    }
    for (what, colour) in [
        ("limit", LIMIT_COLOUR),
        ("allowed", ALLOWED_COLOUR),
        ("pause", PAUSE_COLOUR),
        ("probe", PROBE_COLOUR),
        ("in flight", IN_FLIGHT_COLOUR),
    ] {
        assert!(image.count(colour) > VISIBLE, "{what} is drawn");
    }
    // The title is drawn with the embedded font though the environment is empty.
    assert!(image.dark_in_rows(10..40) > 100, "the title has text");
    assert!(image.dark_in_rows(40..56) > 100, "the summary has text");
}

/// The standard log (a burst, three 429s at 10 s, a pause, a probe at 15 s) as SVG.
fn standard_svg() -> String {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let path = graph(
        dir.path(),
        &["--dir", ".", "--name", "svc", "--format", "svg"],
    );
    std::fs::read_to_string(dir.path().join(path)).unwrap()
}

#[test]
fn rates_and_the_queue_are_drawn_in_panels_of_their_own() {
    // Up to 40 calls wait, while rates stay at 10 per second: on one axis the count
    // would set the scale. Every green pixel (issued, rates panel) lies above every
    // purple one (waiting, queue panel); each panel names its axis.
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let path = graph(dir.path(), &["--dir", ".", "--name", "svc"]);
    let image = Image::read(&dir.path().join(path));
    let issued = image.rows_of(Line::Issued.colour());
    let waiting = image.rows_of(Line::Overflow.colour());
    assert!(!issued.is_empty() && !waiting.is_empty());
    assert!(
        issued.end <= waiting.start,
        "issued in rows {issued:?}, waiting in rows {waiting:?}"
    );
    let svg = standard_svg();
    assert!(svg.contains(">\nper second\n<"), "the rates axis");
    assert!(
        svg.contains(&format!(">\n{QUEUE_LABEL}\n<")),
        "the queue axis"
    );
}

#[test]
fn rate_limits_are_marks_in_their_colour_and_probes_are_lines() {
    let svg = standard_svg();
    let red = Line::Exceptions.colour().hex();
    let marks = svg
        .lines()
        .filter(|l| l.starts_with("<circle") && l.contains(&format!("fill=\"{red}\"")))
        .count();
    assert_eq!(
        marks, 2,
        "one mark for the one second with 429s, one in the legend"
    );
    let probe = PROBE_COLOUR.hex();
    let probe_lines = svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains(&format!("stroke=\"{probe}\"")))
        .count();
    assert_eq!(probe_lines, 2, "the probe at 15 s and the legend's sample");
}

#[test]
fn the_title_names_the_service_and_the_run_s_start_with_a_summary() {
    let svg = standard_svg();
    // start_unix_ms 1_764_375_000_123.
    assert!(
        svg.contains("svc — run of Sat, 29 Nov 2025 00:10:00 GMT"),
        "the title"
    );
    // 210 calls finished from 0 s to the end of 29 s; 210 at 600 rpm ideally take 21 s.
    assert!(
        svg.contains("210 calls in 30 s · 1.43 × ideal at 600 rpm · 3 × 429 · 1 pause · 1 probe"),
        "the summary"
    );
}

#[test]
fn a_burst_far_above_the_rates_is_cut_with_its_peak_written() {
    // 30 requests a second against rates of 10: the axis stops at 1.2 × 2 × 10 = 24.
    let svg = standard_svg();
    assert!(svg.contains(">\n 30 ↑\n<"), "the peak is written");
}

#[test]
fn low_rates_get_a_10_s_mean_beside_the_whole_second_counts() {
    // At 100 rpm (1.67 per second) whole seconds count 1 or 2 however even the pacing.
    let dir = tempfile::tempdir().unwrap();
    let mut records = vec![common::header(&["slow"])];
    records.extend((0..40).map(|t| {
        ratellmiter_runtime::flow_log::format::Record::Second(
            ratellmiter_runtime::flow_log::format::SecondRecord {
                requested: 2,
                issued: 1 + u64::from(t % 3 != 0),
                finished: 1 + u64::from(t % 3 != 0),
                allowed_rate: 100.0 / 60.0,
                limit_rate: 100.0 / 60.0,
                ..common::second("slow", t)
            },
        )
    }));
    common::write_log(dir.path(), "1.jsonl", &records);
    let path = graph(dir.path(), &["--dir", ".", "--name", "slow"]);
    let image = Image::read(&dir.path().join(path));
    assert!(image.count(MEAN_COLOUR) > VISIBLE, "the 10 s mean is drawn");
    assert!(image.count(Line::Issued.colour()) > 0, "beside the counts");

    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let path = graph(dir.path(), &["--dir", ".", "--name", "svc"]);
    let image = Image::read(&dir.path().join(path));
    assert_eq!(image.count(MEAN_COLOUR), 0, "at 10 per second, no mean");
}

#[test]
fn only_the_chosen_lines_are_drawn_at_the_size_asked() {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let path = graph(
        dir.path(),
        &[
            "--dir", ".", "--name", "svc", "--lines", "ri", "--width", "640", "--height", "400",
        ],
    );
    let image = Image::read(&dir.path().join(path));
    assert_eq!((image.width, image.height), (640, 400));
    assert!(image.count(Line::Issued.colour()) > VISIBLE);
    assert!(image.count(Line::Requests.colour()) > VISIBLE);
    for absent in [Line::Overflow, Line::Exceptions, Line::Finished] {
        assert_eq!(image.count(absent.colour()), 0, "{absent:?} was not chosen");
    }
}

#[test]
fn the_svg_strokes_the_chosen_colours_and_names_the_service() {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let path = graph(
        dir.path(),
        &[
            "--dir", ".", "--name", "svc", "--lines", "ef", "--format", "svg",
        ],
    );
    assert_eq!(path, "./1764375000_svc_ef.svg");
    let svg = std::fs::read_to_string(dir.path().join(path)).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("svc — run of "), "the title");
    assert!(
        svg.contains(&format!("stroke=\"{}\"", Line::Finished.colour().hex())),
        "finished is a line"
    );
    assert!(
        svg.contains(&format!("fill=\"{}\"", Line::Exceptions.colour().hex())),
        "429s are marks"
    );
    for line in [Line::Issued, Line::Requests, Line::Overflow] {
        assert!(
            !svg.contains(&line.colour().hex()),
            "{line:?} was not chosen"
        );
    }
    assert!(svg.contains(&format!("stroke=\"{}\"", LIMIT_COLOUR.hex())));
    assert!(svg.contains(&format!("fill=\"{}\"", PAUSE_COLOUR.hex())));
}

#[test]
fn a_service_name_with_separators_gets_a_safe_file_name_and_an_escaped_title() {
    let dir = tempfile::tempdir().unwrap();
    let name = "../<evil>/gpt";
    let mut records = vec![common::header(&[name])];
    records.extend(common::busy(name, 5));
    common::write_log(dir.path(), "7.jsonl", &records);
    let path = graph(
        dir.path(),
        &["--dir", ".", "--name", name, "--format", "svg"],
    );
    let file = Path::new(&path).file_name().unwrap().to_str().unwrap();
    assert!(
        file.starts_with("7_____evil__gpt-") && file.ends_with("_iroef.svg"),
        "{file}"
    );
    assert_eq!(Path::new(&path).parent(), Some(Path::new(".")));
    let svg = std::fs::read_to_string(dir.path().join(&path)).unwrap();
    assert!(
        svg.contains("../&lt;evil&gt;/gpt"),
        "the exact name, escaped"
    );
}

#[test]
fn compare_draws_finished_per_second_of_every_service() {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let path = graph(dir.path(), &["--dir", ".", "-compare"]);
    assert_eq!(path, "./1764375000_compare.png");
    let image = Image::read(&dir.path().join(&path));
    assert!(image.count(COMPARE_PALETTE[0]) > VISIBLE, "svc");
    assert!(image.count(COMPARE_PALETTE[1]) > VISIBLE, "other");
    assert_eq!(
        image.count(COMPARE_PALETTE[2]),
        0,
        "two services, two colours"
    );
    assert_eq!(image.count(PAUSE_COLOUR), 0, "no pauses in a compare chart");

    let svg = graph(dir.path(), &["--dir", ".", "--compare", "--out", "cmp.svg"]);
    let svg = std::fs::read_to_string(dir.path().join(svg)).unwrap();
    assert!(
        svg.contains(">\nsvc\n<") && svg.contains(">\nother\n<"),
        "legend names both"
    );
}

#[test]
fn ratellmiters_spelling_draws_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    standard_log(&dir.path().join("logs"));
    let single = graph(
        dir.path(),
        &[
            "-dir=logs",
            "-name=svc",
            "-file=1764375000.jsonl",
            "-lines=ri",
        ],
    );
    let image = std::fs::read(dir.path().join(&single)).unwrap();
    let double = graph(
        dir.path(),
        &[
            "--dir",
            "logs",
            "--name",
            "svc",
            "--file",
            "1764375000.jsonl",
            "--lines",
            "ri",
        ],
    );
    assert_eq!(single, double);
    assert_eq!(image, std::fs::read(dir.path().join(&double)).unwrap());
    let explicit = graph(
        dir.path(),
        &["graph", "-dir", "logs", "-name", "svc", "-lines", "ri"],
    );
    assert_eq!(explicit, double);
}

#[test]
fn the_newest_log_with_data_is_drawn_by_default() {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path()); // 1764375000.jsonl
    common::write_text(dir.path(), "1764379999.jsonl", ""); // newer, empty
    let mut older = vec![common::header(&["svc"])];
    older.extend(common::busy("svc", 3));
    common::write_log(dir.path(), "1000.jsonl", &older);
    assert_eq!(
        graph(dir.path(), &["--dir", ".", "--name", "svc"]),
        "./1764375000_svc_iroef.png"
    );
}

#[test]
fn out_chooses_the_path_and_its_extension_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let log = standard_log(dir.path());
    let out = dir.path().join("g.svg");
    let printed = graph(
        dir.path(),
        &[
            "--file",
            log.to_str().unwrap(),
            "--name",
            "svc",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(printed, out.to_str().unwrap());
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("<svg"));
}

#[test]
fn open_runs_the_desktop_opener_on_the_image() {
    let dir = tempfile::tempdir().unwrap();
    standard_log(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let opened = dir.path().join("opened");
    for opener in ["xdg-open", "open"] {
        let script = bin.join(opener);
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho \"$1\" > '{}'\n", opened.display()),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
    }
    let out = llmiter_with_path(
        dir.path(),
        &["--dir", ".", "--name", "svc", "--open"],
        bin.to_str().unwrap(),
    );
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert_eq!(std::fs::read_to_string(&opened).unwrap(), out.stdout);

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = llmiter_with_path(
        dir.path(),
        &["--dir", ".", "--name", "svc", "--open"],
        empty.to_str().unwrap(),
    );
    assert_eq!(out.code, 0, "the graph is drawn all the same");
    assert!(
        out.stderr
            .starts_with("llmiter: warning: no desktop opener"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1);
}

#[test]
fn the_binary_does_not_link_a_font_library() {
    // The libraries a binary needs are named in it as NUL-terminated strings;
    // fontconfig or freetype among them would tie graphs to the machine's fonts.
    let binary = std::fs::read(env!("CARGO_BIN_EXE_llmiter")).unwrap();
    let strings = binary.split(|&b| b == 0);
    let needed: Vec<&[u8]> = strings
        .filter(|s| s.starts_with(b"lib") && s.windows(3).any(|w| w == b".so"))
        .collect();
    assert!(
        needed.iter().any(|s| s.starts_with(b"libc.so")),
        "the check sees libraries"
    );
    for library in needed {
        let name = String::from_utf8_lossy(library);
        assert!(
            !name.contains("fontconfig") && !name.contains("freetype"),
            "{name}"
        );
    }
}

/// A log with budgets by kind gets their own panels under the others: input and
/// output tokens per second, and the requests left today; a log without them (the
/// standard one) gets neither.
#[test]
fn budgets_by_kind_are_drawn_in_a_panel_of_their_own_only_when_present() {
    use ratellmiter_runtime::flow_log::format::{Record, SecondRecord};
    let dir = tempfile::tempdir().unwrap();
    let mut records = vec![common::header(&["svc"])];
    records.extend((0..30).map(|t| {
        Record::Second(SecondRecord {
            issued: 1,
            finished: 1,
            input_tokens: 2_000,
            output_tokens: 1_024,
            requests_left_today: Some(100 - t),
            ..common::second("svc", t)
        })
    }));
    records.push(common::footer());
    common::write_log(dir.path(), "1764375000.jsonl", &records);
    let path = graph(dir.path(), &["--dir", ".", "--name", "svc"]);
    let image = Image::read(&dir.path().join(path));
    let (issued, input) = (
        image.rows_of(Line::Issued.colour()),
        image.rows_of(INPUT_COLOUR),
    );
    let today = image.rows_of(TODAY_COLOUR);
    assert!(image.count(OUTPUT_COLOUR) > VISIBLE);
    assert!(
        issued.end <= input.start && input.end <= today.start,
        "issued in rows {issued:?}, input tokens in {input:?}, left today in {today:?}"
    );
    let svg = graph(
        dir.path(),
        &["--dir", ".", "--name", "svc", "--format", "svg"],
    );
    let svg = std::fs::read_to_string(dir.path().join(svg)).unwrap();
    assert!(
        svg.contains(&format!(">\n{BUDGET_LABEL}\n<")),
        "the budgets axis"
    );
    assert!(
        svg.contains(&format!(">\n{TODAY_LABEL}\n<")),
        "the daily axis"
    );
    let plain = standard_svg();
    assert!(!plain.contains(BUDGET_LABEL) && !plain.contains(TODAY_LABEL));
}
