//! Reading a log back into its records: malformed lines skipped and counted, a
//! header checked first, long lines streamed past.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::records::{
    EventRecord, FORMAT_NAME, FORMAT_VERSION, Footer, Header, Record, SecondRecord, ServiceSettings,
};

/// The longest line the reader keeps, in bytes. Real lines are a few hundred bytes
/// (a busy second's `waits_ms` a few kilobytes); anything longer is damage, and is
/// streamed past rather than held in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How many malformed line numbers [`MalformedLines`] keeps for a report.
pub const MALFORMED_LINES_KEPT: usize = 5;

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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::flow_log::format::EventKind;

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
            input_tpm: None,
            output_tpm: None,
            rpd: None,
            tpd: None,
            max_in_flight: None,
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
            input_tokens: 0,
            output_tokens: 0,
            requests_left_today: None,
            tokens_left_today: None,
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
    fn read_log_reads_a_file_and_reports_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.jsonl");
        std::fs::write(&path, header_line()).unwrap();
        assert_eq!(read_log(&path).unwrap().header, header());
        let err = read_log(&dir.path().join("2.jsonl")).unwrap_err();
        assert!(matches!(&err, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound));
    }
}
