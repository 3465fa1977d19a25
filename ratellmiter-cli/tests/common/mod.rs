//! Synthetic flow logs written through the format types, and a runner for the
//! `llmiter` binary.
#![allow(dead_code)] // each test file uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::Command;

use ratellmiter_runtime::flow_log::format::{
    EventKind, EventRecord, FORMAT_NAME, FORMAT_VERSION, Footer, Header, Record, SecondRecord,
    ServiceSettings,
};

/// Settings of a 600 rpm (10 per second) service.
pub fn settings(name: &str) -> ServiceSettings {
    ServiceSettings {
        name: name.into(),
        rpm: 600,
        tpm: None,
        ramp_start: 0.25,
        ramp_step: 0.1,
        probe_initial_ms: 10_000,
        probe_factor: 1.5,
        probe_max_ms: 65_000,
        max_retries: 20,
        adaptive: true,
        input_tpm: None,
        output_tpm: None,
        rpd: None,
        tpd: None,
        max_in_flight: None,
    }
}

pub fn header(services: &[&str]) -> Record {
    Record::Header(Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        start_unix_ms: 1_764_375_000_123,
        services: services.iter().map(|n| settings(n)).collect(),
    })
}

pub fn footer() -> Record {
    Record::Footer(Footer {
        end_unix_ms: 1_764_375_100_000,
        dropped_records: 0,
    })
}

/// A quiet second of `service`: nothing happened, nothing waits, rates at 10 per second.
pub fn second(service: &str, t: u64) -> SecondRecord {
    SecondRecord {
        service: service.into(),
        t,
        requested: 0,
        issued: 0,
        reissued: 0,
        finished: 0,
        rate_limited: 0,
        waiting: 0,
        in_flight: 0,
        allowed_rate: 10.0,
        limit_rate: 10.0,
        paused: false,
        tokens: 0,
        input_tokens: 0,
        output_tokens: 0,
        requests_left_today: None,
        tokens_left_today: None,
        waits_ms: Vec::new(),
    }
}

/// A busy service over `seconds` seconds: a burst of 30 requests a second for 3 s, then
/// 8; every line nonzero at some point; three 429s at 10 s followed by a pause of 5 s
/// and a probe at 15 s.
pub fn busy(service: &str, seconds: u64) -> Vec<Record> {
    let event = |t_ms, kind| {
        Record::Event(EventRecord {
            service: service.into(),
            t_ms,
            kind,
            detail: None,
        })
    };
    let mut records: Vec<Record> = (0..seconds)
        .map(|t| {
            let mut s = second(service, t);
            s.requested = if t < 3 { 30 } else { 8 };
            s.issued = 7 + t % 3;
            s.finished = 6 + t % 3;
            s.waiting = 40u64.saturating_sub(t * 4);
            s.rate_limited = u64::from(t == 10) * 3;
            s.paused = (10..15).contains(&t);
            s.allowed_rate = (2.5 + t as f64).min(10.0);
            s.in_flight = 5;
            s.waits_ms = vec![t * 10; s.issued as usize];
            Record::Second(s)
        })
        .collect();
    if seconds > 15 {
        records.push(event(10_200, EventKind::Pause));
        records.push(event(15_000, EventKind::Probe));
        records.push(event(15_300, EventKind::Resume));
    }
    records
}

/// Writes `records` as a log file `name` in `dir`, one JSON line each.
pub fn write_log(dir: &Path, name: &str, records: &[Record]) -> PathBuf {
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    write_text(dir, name, &text)
}

pub fn write_text(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A log of one busy service `svc` and a quiet `other`, as `<dir>/1764375000.jsonl`.
pub fn standard_log(dir: &Path) -> PathBuf {
    let mut records = vec![header(&["svc", "other"])];
    records.extend(busy("svc", 30));
    records.push(Record::Second(SecondRecord {
        finished: 4,
        ..second("other", 3)
    }));
    records.push(footer());
    write_log(dir, "1764375000.jsonl", &records)
}

/// What a run of the binary printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `llmiter args` in `cwd` with an empty environment but PATH: no fonts, no
/// fontconfig, no display.
pub fn llmiter(cwd: &Path, args: &[&str]) -> Output {
    llmiter_with_path(cwd, args, "/usr/bin:/bin")
}

pub fn llmiter_with_path(cwd: &Path, args: &[&str], path: &str) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_llmiter"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", path)
        .output()
        .unwrap();
    Output {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A decoded PNG: width, height and RGB pixels.
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Image {
    pub fn read(path: &Path) -> Image {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut rgb).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        rgb.truncate(info.buffer_size());
        Image {
            width: info.width,
            height: info.height,
            rgb,
        }
    }

    /// How many pixels have exactly `colour`.
    pub fn count(&self, colour: ratellmiter_cli::lines::Rgb) -> usize {
        self.rgb
            .chunks_exact(3)
            .filter(|p| p == &[colour.0, colour.1, colour.2])
            .count()
    }

    /// The rows from the first to the last holding a pixel of exactly `colour`
    /// (empty without any).
    pub fn rows_of(&self, colour: ratellmiter_cli::lines::Rgb) -> std::ops::Range<u32> {
        let rows: Vec<u32> = self
            .rgb
            .chunks_exact(3)
            .enumerate()
            .filter(|(_, p)| p == &[colour.0, colour.1, colour.2])
            .map(|(i, _)| i as u32 / self.width)
            .collect();
        match (rows.first(), rows.last()) {
            (Some(&a), Some(&b)) => a..b + 1,
            _ => 0..0,
        }
    }

    /// How many dark pixels (text, axes) the rows `rows` hold.
    pub fn dark_in_rows(&self, rows: std::ops::Range<u32>) -> usize {
        let row_bytes = self.width as usize * 3;
        let part = &self.rgb[rows.start as usize * row_bytes..rows.end as usize * row_bytes];
        part.chunks_exact(3)
            .filter(|p| p.iter().all(|&c| c < 100))
            .count()
    }
}
