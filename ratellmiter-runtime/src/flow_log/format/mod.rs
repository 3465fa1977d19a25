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

mod discovery;
mod names;
mod reader;
mod records;

pub use discovery::newest_log;
pub use names::sanitize_service_name;
pub use reader::{
    FlowLog, MALFORMED_LINES_KEPT, MAX_LINE_BYTES, MalformedLines, ReadError, read_log,
};
pub use records::{
    EventKind, EventRecord, FORMAT_NAME, FORMAT_VERSION, Footer, Header, Record, SecondRecord,
    ServiceSettings,
};
