//! The flow log's records (JSON Lines, version [`FORMAT_VERSION`]) and a reader that
//! turns a log file back into them for the `llmiter` command.
//!
//! A log is one file per monitor run, `<log_dir>/<start unix seconds>.jsonl`. Every line
//! is a JSON object tagged by `"type"`:
//!
//! 1. a [`Header`] first, with the settings of the services known at start;
//! 2. a [`ServiceSettings`] line (`"type":"service"`) for each service added later;
//! 3. a [`SecondRecord`] per service per second of activity (idle seconds are omitted);
//! 4. an [`EventRecord`] for each pause, probe, resume, exhausted retry, …;
//! 5. a [`Footer`] last, when the monitor stopped cleanly.
//!
//! Readers ignore unknown types and unknown fields, so a newer writer may add them
//! without a new version; a header whose `version` is greater than [`FORMAT_VERSION`]
//! is refused.
//!
//! # Reading a log
//!
//! ```
//! use ratellmiter::flow_log::format::FlowLog;
//!
//! let text = r#"{"type":"header","format":"ratellmiter-flow","version":1,"start_unix_ms":1764375000123,"services":[]}
//! {"type":"second","service":"gpt-4o","t":0,"requested":3,"issued":2,"reissued":0,"finished":1,"rate_limited":0,"waiting":1,"in_flight":1,"allowed_rate":2.5,"limit_rate":10.0,"paused":false,"tokens":0,"waits_ms":[0,40]}
//! {"type":"second","service":"gpt-4o","t":1,"requ
//! {"type":"footer","end_unix_ms":1764375002000,"dropped_records":0}
//! "#;
//! let log = FlowLog::parse(text.as_bytes())?;
//! assert_eq!(log.service_names(), ["gpt-4o"]);
//! assert_eq!(log.seconds_for("gpt-4o").map(|s| s.issued).sum::<u64>(), 2);
//! // The truncated third line is skipped and reported, not fatal.
//! assert_eq!(log.malformed.count, 1);
//! assert_eq!(log.malformed.first_line_numbers, [3]);
//! # Ok::<(), ratellmiter::flow_log::format::ReadError>(())
//! ```
//!
//! The newest log of a directory, as `llmiter` picks it by default:
//!
//! ```no_run
//! use std::path::Path;
//! use ratellmiter::flow_log::format::{newest_log, read_log};
//!
//! let path = newest_log(Path::new("ratellmiter_logs"))?;
//! let log = read_log(&path)?;
//! println!("{}: {} seconds of activity", path.display(), log.seconds.len());
//! # Ok::<(), ratellmiter::flow_log::format::ReadError>(())
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The version of the format this module writes and the greatest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The `format` field of every header.
pub const FORMAT_NAME: &str = "ratellmiter-flow";

/// The longest line the reader keeps, in bytes. Real lines are a few hundred bytes
/// (a busy second's `waits_ms` a few kilobytes); anything longer is damage, and is
/// streamed past rather than held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How many malformed line numbers [`MalformedLines`] keeps for a report.
pub const MALFORMED_LINES_KEPT: usize = 5;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The first line: format, version, start time and the services known at start.
    Header(Header),
    /// A service added after the header.
    Service(ServiceSettings),
    /// One service's counts for one second.
    Second(SecondRecord),
    /// Something that happened to a service at a precise time.
    Event(EventRecord),
    /// The last line of a log whose monitor stopped cleanly.
    Footer(Footer),
    /// A record type this reader does not know, from a newer writer; never written.
    #[serde(other)]
    Unknown,
}

/// The first line of a log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The format version, [`FORMAT_VERSION`] when written by this crate.
    pub version: u32,
    /// When the monitor started, milliseconds since the Unix epoch; every `t` and
    /// `t_ms` in the log counts from here.
    pub start_unix_ms: u64,
    /// The services registered when the log started.
    #[serde(default)]
    pub services: Vec<ServiceSettings>,
}

/// A service's limiter settings, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSettings {
    /// The exact service name: any UTF-8, possibly with `/` or `..`; see
    /// [`sanitize_service_name`] before using it in a file name.
    pub name: String,
    /// Requests per minute allowed.
    pub rpm: u32,
    /// Tokens per minute allowed, when there is a token budget.
    pub tpm: Option<u64>,
    /// The fraction of the full rate a ramp starts from.
    pub ramp_start: f64,
    /// The fraction of the full rate added per ramp step.
    pub ramp_step: f64,
    /// The first probe interval after a rate limit, milliseconds.
    pub probe_initial_ms: u64,
    /// The factor a failed probe multiplies the interval by.
    pub probe_factor: f64,
    /// The longest probe interval, milliseconds.
    pub probe_max_ms: u64,
    /// Rate-limited attempts retried before giving up.
    pub max_retries: u32,
    /// Whether the limiter learns a lower ceiling from rate limits.
    pub adaptive: bool,
}

/// One service's activity during one second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondRecord {
    /// The service's exact name.
    pub service: String,
    /// Whole seconds since [`Header::start_unix_ms`].
    pub t: u64,
    /// New ticket requests (`r` in `llmiter -lines`).
    pub requested: u64,
    /// Tickets issued, re-issues included (`i`).
    pub issued: u64,
    /// Of the issued tickets, those re-issued after a rate limit.
    pub reissued: u64,
    /// Calls finished with any outcome but a rate limit (`f`).
    pub finished: u64,
    /// Rate-limit errors reported (`e`).
    pub rate_limited: u64,
    /// Calls waiting for a ticket at the end of the second (`o`, "overflow").
    pub waiting: u64,
    /// Tickets out at the end of the second.
    pub in_flight: u64,
    /// Tickets per second the pacer allowed at the end of the second (ramp, learned
    /// ceiling).
    pub allowed_rate: f64,
    /// The configured limit, tickets per second (`rpm / 60`).
    pub limit_rate: f64,
    /// Whether the limiter was paused (waiting to probe) at any moment of the second.
    pub paused: bool,
    /// Tokens charged (0 without a token budget).
    pub tokens: u64,
    /// How long each ticket issued this second waited, milliseconds.
    pub waits_ms: Vec<u64>,
}

/// Something that happened to a service, to the millisecond.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The service's exact name.
    pub service: String,
    /// Milliseconds since [`Header::start_unix_ms`].
    pub t_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// Free text for people, when there is something to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What an [`EventRecord`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Issuing stopped after a rate limit, until a probe.
    Pause,
    /// A single call let through to test whether the provider accepts calls again.
    Probe,
    /// Issuing resumed after a successful probe.
    Resume,
    /// A call was rate limited more times than `max_retries` and gave up.
    RetryExhausted,
    /// A call named a service nobody registered; it got a default limiter.
    UnknownService,
    /// The limiter learned a new ceiling from rate limits.
    LearnedRate,
    /// A kind this reader does not know, from a newer writer; never written.
    #[serde(other)]
    Other,
}

/// The last line of a log whose monitor stopped cleanly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    /// When the monitor stopped, milliseconds since the Unix epoch.
    pub end_unix_ms: u64,
    /// Records the writer could not write (full or unwritable disk).
    pub dropped_records: u64,
}

/// The lines of a log that could not be read, skipped rather than fatal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MalformedLines {
    /// How many lines were skipped.
    pub count: u64,
    /// The 1-based numbers of the first [`MALFORMED_LINES_KEPT`] of them.
    pub first_line_numbers: Vec<u64>,
}

impl MalformedLines {
    fn push(&mut self, line_number: u64) {
        self.count += 1;
        if self.first_line_numbers.len() < MALFORMED_LINES_KEPT {
            self.first_line_numbers.push(line_number);
        }
    }
}

/// A whole log, read back.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowLog {
    /// The header line.
    pub header: Header,
    /// The settings of every service, in the order written: the header's, then those
    /// added later. A service re-registered under the same name appears again.
    pub services: Vec<ServiceSettings>,
    /// Every second of every service, in the order written (by time within a service).
    pub seconds: Vec<SecondRecord>,
    /// Every event, in the order written.
    pub events: Vec<EventRecord>,
    /// The footer; `None` when the monitor did not stop cleanly (or still runs).
    pub footer: Option<Footer>,
    /// The lines skipped because they could not be read.
    pub malformed: MalformedLines,
}

impl FlowLog {
    /// Reads a log from `reader`. Malformed lines are skipped and counted in
    /// [`FlowLog::malformed`]; only a missing or unsupported header, or an I/O error,
    /// fails the read.
    pub fn parse(reader: impl BufRead) -> Result<Self, ReadError> {
        Self::parse_capped(reader, MAX_LINE_BYTES)
    }

    fn parse_capped(mut reader: impl BufRead, cap: usize) -> Result<Self, ReadError> {
        let mut buf = Vec::new();
        let mut line_number = 0u64;
        let mut log: Option<FlowLog> = None;
        while let Some(fits) = read_capped_line(&mut reader, &mut buf, cap)? {
            line_number += 1;
            let line = buf.trim_ascii();
            let Some(log) = &mut log else {
                if fits && line.is_empty() {
                    continue;
                }
                let header = parse_header(fits.then_some(line))?;
                log = Some(FlowLog::new(header));
                continue;
            };
            if !fits {
                log.malformed.push(line_number);
                continue;
            }
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(record) => log.add(record, line_number),
                Err(_) => log.malformed.push(line_number),
            }
        }
        log.ok_or(ReadError::Empty)
    }

    fn new(header: Header) -> Self {
        Self {
            services: header.services.clone(),
            header,
            seconds: Vec::new(),
            events: Vec::new(),
            footer: None,
            malformed: MalformedLines::default(),
        }
    }

    fn add(&mut self, record: Record, line_number: u64) {
        match record {
            // Two headers mean two logs run together; the second one's times would
            // restart at zero, so its line is not trusted.
            Record::Header(_) => self.malformed.push(line_number),
            Record::Service(s) => self.services.push(s),
            Record::Second(s) => self.seconds.push(s),
            Record::Event(e) => self.events.push(e),
            Record::Footer(f) => self.footer = Some(f),
            Record::Unknown => {}
        }
    }

    /// The names of the services with settings or seconds in the log, each once, in
    /// the order they first appear.
    pub fn service_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let all = self.services.iter().map(|s| s.name.as_str());
        for name in all.chain(self.seconds.iter().map(|s| s.service.as_str())) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// The latest settings written for `service`.
    pub fn service(&self, service: &str) -> Option<&ServiceSettings> {
        self.services.iter().rev().find(|s| s.name == service)
    }

    /// The seconds of `service`, in time order.
    pub fn seconds_for<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = &'a SecondRecord> + 'a {
        self.seconds.iter().filter(move |s| s.service == service)
    }

    /// The events of `service`, in time order.
    pub fn events_for<'a>(
        &'a self,
        service: &'a str,
    ) -> impl Iterator<Item = &'a EventRecord> + 'a {
        self.events.iter().filter(move |e| e.service == service)
    }
}

/// Reads the line at `reader` into `buf`, newline dropped. Returns `None` at the end,
/// `Some(false)` for a line longer than `cap` bytes: such a line is consumed to its
/// end, but `buf` never grows past `cap`.
fn read_capped_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<Option<bool>> {
    buf.clear();
    let mut fits = true;
    let mut started = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(started.then_some(fits));
        }
        started = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        if fits {
            if buf.len() + chunk.len() > cap {
                fits = false;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = newline.map_or(available.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(fits));
        }
    }
}

/// Checks the first line: a header, of this format, of a version this reader knows.
/// `None` is a line too long to be one.
fn parse_header(line: Option<&[u8]>) -> Result<Header, ReadError> {
    let value: serde_json::Value = line
        .and_then(|l| serde_json::from_slice(l).ok())
        .ok_or(ReadError::MissingHeader)?;
    if value.get("type").and_then(|t| t.as_str()) != Some("header") {
        return Err(ReadError::MissingHeader);
    }
    let format = value.get("format").and_then(|f| f.as_str()).unwrap_or("");
    if format != FORMAT_NAME {
        return Err(ReadError::NotAFlowLog {
            format: format.to_owned(),
        });
    }
    // The version is checked before the rest, because a newer header may have fields
    // this reader cannot parse; the user should hear "too new", not "malformed".
    if let Some(found) = value.get("version").and_then(|v| v.as_u64())
        && found > u64::from(FORMAT_VERSION)
    {
        return Err(ReadError::UnsupportedVersion { found });
    }
    serde_json::from_value(value).map_err(|e| ReadError::BadHeader(e.to_string()))
}

/// Reads the log at `path`; see [`FlowLog::parse`]. Errors do not repeat the path.
pub fn read_log(path: &Path) -> Result<FlowLog, ReadError> {
    let file = File::open(path)?;
    FlowLog::parse(BufReader::new(file))
}

/// The newest non-empty `*.jsonl` log in `dir`: the greatest start time in its name
/// (`<start unix seconds>.jsonl`), or among names that are no number, the latest
/// modified. This is what `llmiter` graphs when no file is named.
pub fn newest_log(dir: &Path) -> Result<PathBuf, ReadError> {
    if !dir.exists() {
        return Err(ReadError::NoLogDir(dir.to_owned()));
    }
    if !dir.is_dir() {
        return Err(ReadError::NotADir(dir.to_owned()));
    }
    let mut newest: Option<(Option<u64>, SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        // An entry that vanished or cannot be read is not a log to pick.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.is_file() || meta.len() == 0 {
            continue;
        }
        let start = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok());
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let key = (start, modified, path);
        if newest.as_ref().is_none_or(|n| key > *n) {
            newest = Some(key);
        }
    }
    newest
        .map(|(_, _, path)| path)
        .ok_or_else(|| ReadError::NoLogs(dir.to_owned()))
}

/// Why a log could not be found or read.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading failed.
    Io(io::Error),
    /// The log directory does not exist.
    NoLogDir(PathBuf),
    /// The log directory is a file.
    NotADir(PathBuf),
    /// The directory holds no non-empty `*.jsonl` file.
    NoLogs(PathBuf),
    /// The file is empty.
    Empty,
    /// The first line is not a header.
    MissingHeader,
    /// The header names another format.
    NotAFlowLog {
        /// The `format` the header gives (empty when it gives none).
        format: String,
    },
    /// The header is from a newer writer than this reader.
    UnsupportedVersion {
        /// The version in the header.
        found: u64,
    },
    /// The header has the right format and version but wrong fields.
    BadHeader(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::NoLogDir(d) => write!(f, "log directory {} does not exist", d.display()),
            Self::NotADir(d) => write!(f, "{} is not a directory", d.display()),
            Self::NoLogs(d) => write!(f, "no flow log (non-empty *.jsonl) in {}", d.display()),
            Self::Empty => write!(f, "the log is empty"),
            Self::MissingHeader => write!(
                f,
                "not a ratellmiter flow log: the first line is not a {FORMAT_NAME} header"
            ),
            Self::NotAFlowLog { format } => write!(
                f,
                "not a ratellmiter flow log: format {format:?}, expected {FORMAT_NAME:?}"
            ),
            Self::UnsupportedVersion { found } => write!(
                f,
                "flow log version {found} is newer than this reader, which knows versions up \
                 to {FORMAT_VERSION}; upgrade ratellmiter to read it"
            ),
            Self::BadHeader(why) => write!(f, "malformed flow log header: {why}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// The longest sanitized name before its hash suffix, in bytes.
const MAX_NAME_BYTES: usize = 100;

/// `name` made safe as part of a file name: no `/`, `\`, `..`, NUL, control or
/// Windows-reserved characters, no leading dot, at most 100 bytes (cut on a character
/// boundary). A name that had to change gets `-` and 8 hex digits of a hash of the
/// original, so distinct service names keep distinct files; a safe name is kept as is.
///
/// ```
/// use ratellmiter::flow_log::format::sanitize_service_name;
///
/// assert_eq!(sanitize_service_name("gpt-4o"), "gpt-4o");
/// let s = sanitize_service_name("openai/gpt-4o");
/// assert!(s.starts_with("openai_gpt-4o-") && !s.contains('/'));
/// assert_ne!(s, sanitize_service_name("openai\\gpt-4o"));
/// ```
pub fn sanitize_service_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_NAME_BYTES));
    let mut prev = None;
    for c in name.chars() {
        let bad = c.is_control()
            || matches!(c, '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*')
            // A leading dot hides the file; a dot after a dot makes `..`.
            || (c == '.' && matches!(prev, None | Some('.')));
        prev = Some(c);
        let c = if bad { '_' } else { c };
        if out.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    if out == name && !name.is_empty() {
        return out;
    }
    format!("{out}-{:08x}", fnv1a(name.as_bytes()) as u32)
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions and platforms, so
/// the file name a writer chose is the one a later reader computes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn settings(name: &str) -> ServiceSettings {
        ServiceSettings {
            name: name.into(),
            rpm: 500,
            tpm: None,
            ramp_start: 0.25,
            ramp_step: 0.1,
            probe_initial_ms: 10_000,
            probe_factor: 1.5,
            probe_max_ms: 65_000,
            max_retries: 20,
            adaptive: true,
        }
    }

    fn header() -> Header {
        Header {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            start_unix_ms: 1_764_375_000_123,
            services: vec![settings("gpt-4o")],
        }
    }

    fn second(service: &str, t: u64) -> SecondRecord {
        SecondRecord {
            service: service.into(),
            t,
            requested: 10,
            issued: 9,
            reissued: 1,
            finished: 8,
            rate_limited: 0,
            waiting: 3,
            in_flight: 5,
            allowed_rate: 8.5,
            limit_rate: 10.0,
            paused: false,
            tokens: 1234,
            waits_ms: vec![0, 12, 340],
        }
    }

    fn line(record: &Record) -> String {
        serde_json::to_string(record).unwrap() + "\n"
    }

    fn header_line() -> String {
        line(&Record::Header(header()))
    }

    fn parse(text: &str) -> Result<FlowLog, ReadError> {
        FlowLog::parse(text.as_bytes())
    }

    #[test]
    fn every_record_type_round_trips() {
        let records = [
            Record::Header(header()),
            Record::Service(ServiceSettings {
                tpm: Some(30_000),
                ..settings("claude")
            }),
            Record::Second(second("gpt-4o", 12)),
            Record::Event(EventRecord {
                service: "gpt-4o".into(),
                t_ms: 30_512,
                kind: EventKind::Pause,
                detail: Some("retry_after=2s".into()),
            }),
            Record::Event(EventRecord {
                service: "gpt-4o".into(),
                t_ms: 40_000,
                kind: EventKind::RetryExhausted,
                detail: None,
            }),
            Record::Footer(Footer {
                end_unix_ms: 1_764_375_600_000,
                dropped_records: 2,
            }),
        ];
        for r in records {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r, "{json}");
        }
    }

    #[test]
    fn the_spec_examples_read_as_written() {
        let second = r#"{"type":"second","service":"gpt-4o","t":12,"requested":10,"issued":9,"reissued":1,"finished":8,"rate_limited":0,"waiting":3,"in_flight":5,"allowed_rate":8.5,"limit_rate":10.0,"paused":false,"tokens":1234,"waits_ms":[0,12,340]}"#;
        assert_eq!(
            serde_json::from_str::<Record>(second).unwrap(),
            Record::Second(super::tests::second("gpt-4o", 12))
        );
        let service = r#"{"type":"service","name":"gpt-4o","rpm":500,"tpm":null,"ramp_start":0.25,"ramp_step":0.1,"probe_initial_ms":10000,"probe_factor":1.5,"probe_max_ms":65000,"max_retries":20,"adaptive":true}"#;
        assert_eq!(
            serde_json::from_str::<Record>(service).unwrap(),
            Record::Service(settings("gpt-4o"))
        );
        let event = r#"{"type":"event","service":"gpt-4o","t_ms":30512,"kind":"learned_rate"}"#;
        let Record::Event(e) = serde_json::from_str(event).unwrap() else {
            panic!("an event")
        };
        assert_eq!((e.kind, e.detail), (EventKind::LearnedRate, None));
        let footer = r#"{"type":"footer","end_unix_ms":1764375600000,"dropped_records":0}"#;
        assert!(matches!(
            serde_json::from_str(footer).unwrap(),
            Record::Footer(Footer {
                dropped_records: 0,
                ..
            })
        ));
    }

    #[test]
    fn unknown_types_fields_and_event_kinds_are_ignored_not_malformed() {
        let text = header_line()
            + r#"{"type":"histogram","buckets":[1,2]}"#
            + "\n"
            + r#"{"type":"footer","end_unix_ms":5,"dropped_records":0,"compressed":true}"#
            + "\n"
            + r#"{"type":"event","service":"a","t_ms":1,"kind":"throttle_warning"}"#
            + "\n";
        let log = parse(&text).unwrap();
        assert_eq!(log.malformed, MalformedLines::default());
        assert_eq!(log.footer.unwrap().end_unix_ms, 5);
        assert_eq!(log.events[0].kind, EventKind::Other);
    }

    #[test]
    fn a_log_reads_into_services_seconds_events_and_footer() {
        let mut text = header_line();
        text += &line(&Record::Second(second("gpt-4o", 0)));
        text += &line(&Record::Service(settings("a/../b")));
        text += &line(&Record::Second(second("a/../b", 1)));
        text += &line(&Record::Second(second("gpt-4o", 1)));
        text += "\n";
        text += &line(&Record::Event(EventRecord {
            service: "a/../b".into(),
            t_ms: 1500,
            kind: EventKind::Probe,
            detail: None,
        }));
        text += &line(&Record::Footer(Footer {
            end_unix_ms: 1,
            dropped_records: 0,
        }));
        let log = parse(&text).unwrap();
        assert_eq!(log.header, header());
        assert_eq!(log.service_names(), ["gpt-4o", "a/../b"]);
        assert_eq!(
            log.seconds_for("gpt-4o").map(|s| s.t).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(log.seconds_for("a/../b").count(), 1);
        assert_eq!(log.events_for("a/../b").count(), 1);
        assert_eq!(log.events_for("gpt-4o").count(), 0);
        assert_eq!(log.service("a/../b").unwrap().rpm, 500);
        assert!(log.footer.is_some());
        assert_eq!(log.malformed.count, 0);
    }

    #[test]
    fn malformed_lines_are_skipped_counted_and_numbered() {
        let good = line(&Record::Second(second("s", 0)));
        let lines = [
            header_line(),                                        // 1
            good.clone(),                                         // 2
            good[..good.len() / 2].to_owned() + "\n",             // 3: truncated
            r#"{"type":"second","service":5}"#.to_owned() + "\n", // 4: wrong type
            good.replace("\"issued\":9", "\"issued\":1e30"),      // 5: huge number
            good.replace("\"issued\":9", "\"issued\":-1"),        // 6: negative count
            good.replace("8.5", "1e999"),                         // 7: out of f64 range
            "not json\n".into(),                                  // 8
            r#"{"no":"type"}"#.to_owned() + "\n",                 // 9
            header_line(),                                        // 10: second header
            good.clone(),                                         // 11
            "[[[[[[[[[[".repeat(100) + "\n",                      // 12: deep nesting
            good.trim_end().to_owned(),                           // 13: last, no newline
        ];
        let log = parse(&lines.concat()).unwrap();
        assert_eq!(log.seconds.len(), 3, "lines 2, 11 and 13");
        assert_eq!(log.malformed.count, 9);
        assert_eq!(log.malformed.first_line_numbers, [3, 4, 5, 6, 7]);
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let mut bytes = header_line().into_bytes();
        bytes.extend_from_slice(
            b"{\"type\":\"event\",\"service\":\"\xff\xfe\",\"t_ms\":1,\"kind\":\"probe\"}\n",
        );
        let log = FlowLog::parse(&bytes[..]).unwrap();
        assert_eq!(log.malformed.first_line_numbers, [2]);
    }

    #[test]
    fn crlf_line_ends_are_accepted() {
        let text = header_line().replace('\n', "\r\n") + &line(&Record::Second(second("s", 0)));
        let log = parse(&text.replace('\n', "\r\n")).unwrap();
        assert_eq!((log.seconds.len(), log.malformed.count), (1, 0));
    }

    /// A reader of `n` bytes of `x` that holds none of them, to prove a gigantic line
    /// streams past.
    struct Endless(usize);

    impl Read for Endless {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.0);
            out[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_line_over_the_cap_is_streamed_past_and_counted() {
        let tail = line(&Record::Second(second("s", 7)));
        let head = header_line();
        let input = head
            .as_bytes()
            .chain(Endless(3 * MAX_LINE_BYTES))
            .chain(&b"\n"[..])
            .chain(tail.as_bytes());
        let log = FlowLog::parse(BufReader::with_capacity(64 * 1024, input)).unwrap();
        assert_eq!(log.malformed.first_line_numbers, [2]);
        assert_eq!(log.seconds[0].t, 7);

        // The buffer grows to about the cap (a Vec doubles), not to the line's length.
        let mut buf = Vec::new();
        let mut r = BufReader::with_capacity(16, Endless(100_000).chain(&b"\nok\n"[..]));
        assert_eq!(
            read_capped_line(&mut r, &mut buf, 100).unwrap(),
            Some(false)
        );
        assert!(buf.capacity() <= 256, "kept {} bytes", buf.capacity());
        assert_eq!(read_capped_line(&mut r, &mut buf, 100).unwrap(), Some(true));
        assert_eq!(buf, b"ok");
        assert_eq!(read_capped_line(&mut r, &mut buf, 100).unwrap(), None);
    }

    #[test]
    fn a_line_exactly_at_the_cap_fits() {
        let mut buf = Vec::new();
        let mut r = &b"12345\n123456\n"[..];
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(true));
        assert_eq!(buf, b"12345");
        assert_eq!(read_capped_line(&mut r, &mut buf, 5).unwrap(), Some(false));
    }

    #[test]
    fn a_newer_version_is_refused_with_a_clear_message() {
        let newer = r#"{"type":"header","format":"ratellmiter-flow","version":2,"start":"later"}"#;
        let err = parse(newer).unwrap_err();
        assert!(matches!(err, ReadError::UnsupportedVersion { found: 2 }));
        let msg = err.to_string();
        assert!(
            msg.contains("version 2") && msg.contains("up to 1"),
            "{msg}"
        );
        let huge = newer.replace("\"version\":2", "\"version\":99999999999");
        assert!(matches!(
            parse(&huge).unwrap_err(),
            ReadError::UnsupportedVersion {
                found: 99_999_999_999
            }
        ));
    }

    #[test]
    fn a_log_without_a_good_header_is_refused() {
        let second = line(&Record::Second(second("s", 0)));
        assert!(matches!(parse(&second), Err(ReadError::MissingHeader)));
        assert!(matches!(
            parse("{\"type\":\"head"),
            Err(ReadError::MissingHeader)
        ));
        assert!(matches!(parse(""), Err(ReadError::Empty)));
        assert!(matches!(parse("\n\n"), Err(ReadError::Empty)));
        let other = header_line().replace(FORMAT_NAME, "otel");
        assert!(
            matches!(parse(&other), Err(ReadError::NotAFlowLog { format }) if format == "otel")
        );
        let bad = header_line().replace(
            "\"start_unix_ms\":1764375000123",
            "\"start_unix_ms\":\"now\"",
        );
        assert!(matches!(parse(&bad), Err(ReadError::BadHeader(_))));
        let long = FlowLog::parse_capped(header_line().as_bytes(), 10);
        assert!(matches!(long, Err(ReadError::MissingHeader)));
    }

    #[test]
    fn blank_lines_before_the_header_are_skipped() {
        let log = parse(&("\n  \n".to_owned() + &header_line())).unwrap();
        assert_eq!(log.header.version, 1);
    }

    #[test]
    fn newest_log_takes_the_greatest_start_time_with_data() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("999.jsonl", "x");
        write("1000.jsonl", "x");
        write("99999.jsonl", ""); // newest, but empty
        write("5000.txt", "x");
        write("notes.jsonl", "x");
        std::fs::create_dir(dir.path().join("7000.jsonl")).unwrap();
        assert_eq!(
            newest_log(dir.path()).unwrap(),
            dir.path().join("1000.jsonl")
        );
    }

    #[test]
    fn newest_log_explains_a_missing_dir_and_no_logs() {
        let dir = tempfile::tempdir().unwrap();
        let err = newest_log(dir.path()).unwrap_err();
        assert!(matches!(err, ReadError::NoLogs(_)));
        assert!(err.to_string().contains("no flow log"), "{err}");
        let missing = dir.path().join("nope");
        let err = newest_log(&missing).unwrap_err();
        assert!(matches!(err, ReadError::NoLogDir(_)));
        assert!(err.to_string().contains("does not exist"), "{err}");
        std::fs::write(&missing, "").unwrap();
        assert!(matches!(newest_log(&missing), Err(ReadError::NotADir(_))));
    }

    #[test]
    fn read_log_reads_a_file_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.jsonl");
        std::fs::write(&path, header_line()).unwrap();
        assert_eq!(read_log(&path).unwrap().header, header());
        let err = read_log(&dir.path().join("2.jsonl")).unwrap_err();
        assert!(matches!(&err, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound));
    }

    #[test]
    fn safe_names_are_kept() {
        for name in [
            "default",
            "gpt-4o",
            "claude-3.5-sonnet",
            "mistral large",
            "模型",
        ] {
            assert_eq!(sanitize_service_name(name), name);
        }
    }

    #[test]
    fn unsafe_names_are_replaced_and_suffixed_with_a_hash() {
        let cases = [
            ("openai/gpt-4o", "openai_gpt-4o-"),
            ("a\\b", "a_b-"),
            ("..", "__-"),
            ("../../etc/passwd", "___.__etc_passwd-"),
            ("a...b", "a.__b-"),
            (".hidden", "_hidden-"),
            ("a\0b\nc\u{7f}", "a_b_c_-"),
            ("C:*?", "C___-"),
            ("", "-"),
        ];
        for (name, prefix) in cases {
            let s = sanitize_service_name(name);
            assert!(s.starts_with(prefix), "{name:?} gave {s:?}");
            assert_eq!(s.len(), prefix.len() + 8, "{name:?} gave {s:?}");
            assert!(!s.contains(['/', '\\', '\0']) && !s.contains(".."), "{s:?}");
            assert!(!s.chars().any(char::is_control), "{s:?}");
        }
    }

    #[test]
    fn names_that_sanitize_alike_stay_distinct() {
        let names = ["a/b", "a\\b", "a:b", "a_b"];
        let mut out: Vec<String> = names.iter().map(|n| sanitize_service_name(n)).collect();
        out.sort();
        out.dedup();
        assert_eq!(out.len(), names.len(), "{out:?}");
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300); // 600 bytes
        let s = sanitize_service_name(&long);
        assert_eq!(
            s,
            format!("{}-{:08x}", "é".repeat(50), fnv1a(long.as_bytes()) as u32)
        );
        let other = "é".repeat(301);
        assert_ne!(
            sanitize_service_name(&other),
            s,
            "same cut, different names"
        );
        let ascii = "x".repeat(101);
        assert_eq!(sanitize_service_name(&ascii).len(), 100 + 9);
        assert_eq!(sanitize_service_name(&"x".repeat(100)), "x".repeat(100));
    }

    #[test]
    fn the_hash_is_stable() {
        // Written logs and their file names must agree across builds: FNV-1a test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            sanitize_service_name("a/b"),
            format!("a_b-{:08x}", fnv1a(b"a/b") as u32)
        );
    }
}
