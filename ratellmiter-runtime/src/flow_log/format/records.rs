//! The format's records: one type per line kind, and the constants a reader checks.

use serde::{Deserialize, Serialize};

/// The version of the format this module writes and the greatest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The `format` field of every header.
pub const FORMAT_NAME: &str = "ratellmiter-flow";

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
    /// [`sanitize_service_name`](super::sanitize_service_name) before using it in a file name.
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
    /// Input tokens per minute allowed, when there is such a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tpm: Option<u64>,
    /// Output tokens per minute allowed, when there is such a budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tpm: Option<u64>,
    /// Requests per day allowed, when there is a daily quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpd: Option<u64>,
    /// Tokens per day allowed, when there is a daily quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpd: Option<u64>,
    /// The most calls in flight allowed, when capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
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
    /// Input tokens charged to the input budget (0 without one).
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens reserved against the output budget (0 without one).
    #[serde(default)]
    pub output_tokens: u64,
    /// Requests left today at the end of the second, under a daily quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_left_today: Option<u64>,
    /// Tokens left today at the end of the second, under a daily quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_left_today: Option<u64>,
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
