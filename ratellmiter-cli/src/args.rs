//! The command line: clap's description of every subcommand and option as plain
//! structs, and the rewriting that lets rateLLMiter's single-dash spelling (`-dir=DIR`)
//! through. The commands depend on this module, never the other way round.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ratellmiter_sim::{ErrorStyle, OutageWindow};

use crate::lines::Lines;
use crate::scenario::{ClientKind, ScenarioKind};

/// Graphs and summaries of ratellmiter flow logs.
///
/// Without a subcommand, draws a graph of one service (or with --compare, of every
/// service). rateLLMiter's spelling is accepted too: -dir=DIR -name=NAME -file=FILE
/// -lines=LETTERS -compare.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "llmiter", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; drawing a graph when none is given.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The graph's options, when no subcommand is given.
    #[command(flatten)]
    pub graph: GraphArgs,
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum Command {
    /// Draw a graph of one service's flow, or of every service with --compare
    /// (the default action).
    Graph(GraphArgs),
    /// Print a table of every service: calls, tickets, 429s, peaks, pauses, waits, rates.
    Summary(SummaryArgs),
    /// Run every benchmark scenario with every client in virtual time and print the
    /// results as a markdown table.
    Bench(BenchArgs),
    /// Start a mock provider, run a burst of real HTTP calls through ratellmiter (and
    /// with --compare through backoff and a token bucket too), and print the results.
    Demo(DemoArgs),
    /// Run the mock OpenAI-compatible provider on 127.0.0.1 until ctrl-c.
    ///
    /// Point any OpenAI client at it with OPENAI_BASE_URL=http://127.0.0.1:PORT/v1.
    /// Routes: POST /v1/chat/completions (answers, or 429 with OpenAI's body,
    /// `retry-after` and `x-ratelimit-*` headers), GET /v1/models, GET /metrics (what
    /// the server saw so far, as JSON: requests, accepted, rejected in all and by kind,
    /// the most requests in any 1 s and 60 s, first and last acceptance) and GET /log
    /// (every request: time, model, tokens, status, why refused). On ctrl-c it prints
    /// the final /metrics.
    MockServer(MockServerArgs),
}

/// Which log to read.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct LogArgs {
    /// The directory the monitor writes its logs to.
    #[arg(long, value_name = "DIR", default_value = "ratellmiter_logs")]
    pub dir: PathBuf,
    /// The log to read: a file in DIR, or a path [default: the newest non-empty log in DIR]
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Options of the graph.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct GraphArgs {
    /// Which log to read.
    #[command(flatten)]
    pub log: LogArgs,
    /// The service to draw, as named in the program.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub name: String,
    /// The lines to draw, one letter each: i issued (green), r requests (orange),
    /// e rate-limit exceptions (red marks), f finished (blue) in the rates panel;
    /// o overflow: the queue panel of calls waiting (purple) and in flight (brown).
    /// The allowed rate, the limit, pauses and probes are always drawn.
    #[arg(long, value_name = "LETTERS", default_value = "iroef")]
    pub lines: Lines,
    /// Draw finished requests per second of every service in one chart instead.
    #[arg(long, conflicts_with_all = ["name", "lines"])]
    pub compare: bool,
    /// The image format [default: from --out's extension, else png]
    #[arg(long, value_enum)]
    pub format: Option<ImageFormat>,
    /// Where to write the image [default: beside the log, named after the log,
    /// the service and the lines]
    #[arg(long, short, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Open the image with the desktop's opener (xdg-open, open) once drawn.
    #[arg(long)]
    pub open: bool,
    /// The image's width in pixels.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(200..=8000))]
    pub width: u32,
    /// The image's height in pixels.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(150..=8000))]
    pub height: u32,
}

/// Options of the summary.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct SummaryArgs {
    /// Which log to read.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Options of `llmiter demo`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct DemoArgs {
    /// The mock server's true requests per minute, and the rate the clients are told.
    #[arg(long, default_value_t = 600)]
    pub rpm: u32,
    /// Calls of the burst.
    #[arg(long, default_value_t = 600)]
    pub calls: usize,
    /// Calls in flight at most, per client.
    #[arg(long, default_value_t = 100)]
    pub concurrency: usize,
    /// The workload.
    #[arg(long, value_enum, default_value = "burst")]
    pub scenario: ScenarioKind,
    /// Also run the same workload with exponential backoff (backon), a governor token
    /// bucket plus backoff, and ratellmiter configured as rateLLMiter works, each
    /// against its own mock server at the same time, and print one table.
    #[arg(long)]
    pub compare: bool,
    /// Run in virtual time against the provider model in-process (no HTTP, no flow
    /// log): the same table in a second instead of a minute.
    #[arg(long)]
    pub fast: bool,
    /// Where the flow log and its graph go.
    #[arg(long, value_name = "DIR", default_value = "ratellmiter_logs")]
    pub dir: PathBuf,
}

/// Options of `llmiter bench`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct BenchArgs {
    /// The server's true requests per minute (each scenario derives its limits from it).
    #[arg(long, default_value_t = 600)]
    pub rpm: u32,
    /// Calls of a burst.
    #[arg(long, default_value_t = 600)]
    pub calls: usize,
    /// Only these scenarios [default: all].
    #[arg(long, value_enum)]
    pub scenario: Vec<ScenarioKind>,
    /// Only these clients [default: all].
    #[arg(long, value_enum)]
    pub client: Vec<ClientKind>,
}

/// Options of `llmiter mock-server`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct MockServerArgs {
    /// Requests per minute, enforced per second as OpenAI does (rpm/60 in any 1 s).
    #[arg(long, default_value_t = 600)]
    pub rpm: u32,
    /// Tokens per minute, enforced per second likewise (a request bigger than a
    /// second's share goes alone into a second; only one above the whole minute is
    /// refused as too large) [default: unlimited].
    #[arg(long)]
    pub tpm: Option<u64>,
    /// An outage, refusing every request: START..END in seconds since the server
    /// started, or +START..+END since a model's first request (+5..+35, or +5s..+35s).
    /// Repeatable; back-to-back windows are one outage.
    #[arg(long, value_name = "[+]START..[+]END", value_parser = parse_outage)]
    pub outage: Vec<OutageWindow>,
    /// Tell clients when an outage ends with `retry-after`.
    #[arg(long)]
    pub outage_retry_after: bool,
    /// Refuse sharp jumps in traffic, as Anthropic's acceleration limit does.
    #[arg(long)]
    pub acceleration: bool,
    /// Refuse everything for 60 s after 20 refusals within 10 s.
    #[arg(long)]
    pub penalty: bool,
    /// Median latency of a completion, in milliseconds (log-normal).
    #[arg(long, default_value_t = 300)]
    pub latency_ms: u64,
    /// Seed of the latency draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Requests per day (Gemini's and Groq's RPD), the day ending 24 h after the
    /// server starts [default: unlimited].
    #[arg(long)]
    pub rpd: Option<u64>,
    /// At most this many requests in flight; one more is refused [default: no cap].
    #[arg(long)]
    pub max_concurrent: Option<u32>,
    /// The shape of refusals: OpenAI's body and `x-ratelimit-*`/`retry-after` headers;
    /// Gemini's `RESOURCE_EXHAUSTED` body with `QuotaFailure` and
    /// `RetryInfo.retryDelay` and no header; or Anthropic's `rate_limit_error` body
    /// with `anthropic-ratelimit-*` and `retry-after` headers.
    #[arg(long, value_enum, default_value_t = ErrorStyleArg::Openai)]
    pub error_style: ErrorStyleArg,
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

/// `--error-style`: whose refusals the mock server imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ErrorStyleArg {
    /// OpenAI's.
    Openai,
    /// Gemini's.
    Gemini,
    /// Anthropic's.
    Anthropic,
}

impl From<ErrorStyleArg> for ErrorStyle {
    fn from(arg: ErrorStyleArg) -> Self {
        match arg {
            ErrorStyleArg::Openai => ErrorStyle::OpenAi,
            ErrorStyleArg::Gemini => ErrorStyle::Gemini,
            ErrorStyleArg::Anthropic => ErrorStyle::Anthropic,
        }
    }
}

fn parse_outage(spec: &str) -> Result<OutageWindow, String> {
    ratellmiter_sim::parse_outage(spec).map_err(|e| e.to_string())
}

/// The image formats a graph can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// A bitmap.
    Png,
    /// A vector image.
    Svg,
}

impl ImageFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Svg => "svg",
        }
    }
}

/// The words rateLLMiter's `llmiter` takes after a single dash, also without `=`.
const RATELLMITER_WORDS: [&str; 5] = ["dir", "name", "file", "lines", "compare"];

/// Rewrites rateLLMiter's spelling into clap's: `-word=value` (any word of two or more
/// letters) becomes `--word=value`, and `-dir`, `-name`, `-file`, `-lines`,
/// `-compare` become their `--` forms. Arguments after `--` are left alone.
///
/// ```
/// use std::ffi::OsString;
/// let args = ["llmiter", "-dir=logs", "-lines", "ri", "-o", "x.png", "--", "-name=x"];
/// let out: Vec<OsString> = ratellmiter_cli::args::normalize(args.map(OsString::from));
/// assert_eq!(out, ["llmiter", "--dir=logs", "--lines", "ri", "-o", "x.png", "--", "-name=x"]);
/// ```
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut after_terminator = false;
    args.into_iter()
        .map(|arg| {
            if after_terminator {
                return arg;
            }
            let Some(text) = arg.to_str() else {
                return arg;
            };
            if text == "--" {
                after_terminator = true;
                return arg;
            }
            let Some(rest) = text.strip_prefix('-').filter(|r| !r.starts_with('-')) else {
                return arg;
            };
            let word = rest.split_once('=').map_or(rest, |(w, _)| w);
            let long_word =
                word.len() >= 2 && word.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            let rewrite = if rest.contains('=') {
                long_word
            } else {
                RATELLMITER_WORDS.contains(&word)
            };
            if rewrite {
                format!("-{text}").into()
            } else {
                arg
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let args = args.iter().map(OsString::from);
        Cli::try_parse_from(normalize(args)).unwrap()
    }

    #[test]
    fn ratellmiter_spelling_parses_as_the_double_dash_one() {
        let single = parse(&[
            "llmiter",
            "-dir=logs",
            "-name=gpt-4o",
            "-file=1.jsonl",
            "-lines=ri",
        ]);
        let double = parse(&[
            "llmiter", "--dir", "logs", "--name", "gpt-4o", "--file", "1.jsonl", "--lines", "ri",
        ]);
        assert_eq!(single, double);
        assert_eq!(single.graph.name, "gpt-4o");
        assert_eq!(single.graph.lines.to_string(), "ri");
        let spaced = parse(&[
            "llmiter", "-dir", "logs", "-name", "gpt-4o", "-file", "1.jsonl", "-lines", "ri",
        ]);
        assert_eq!(spaced, double);
        assert_eq!(
            parse(&["llmiter", "-compare"]),
            parse(&["llmiter", "--compare"])
        );
    }

    #[test]
    fn defaults_are_ratellmiters() {
        let cli = parse(&["llmiter"]);
        assert_eq!(cli.command, None);
        assert_eq!(cli.graph.log.dir, PathBuf::from("ratellmiter_logs"));
        assert_eq!(cli.graph.log.file, None);
        assert_eq!(cli.graph.name, "default");
        assert_eq!(cli.graph.lines.to_string(), "iroef");
        assert_eq!(cli.graph.format, None);
    }

    #[test]
    fn short_options_and_values_are_left_alone() {
        let args = ["llmiter", "-o", "a.png", "-o=b.png", "--name", "-x", "-"];
        let out = normalize(args.map(OsString::from));
        assert_eq!(out, args.map(OsString::from));
    }

    #[test]
    fn subcommands_take_the_log_options() {
        let cli = parse(&["llmiter", "summary", "-dir=logs"]);
        let Some(Command::Summary(s)) = cli.command else {
            panic!("summary: {cli:?}")
        };
        assert_eq!(s.log.dir, PathBuf::from("logs"));
    }

    #[test]
    fn graph_options_do_not_mix_with_subcommands_or_compare() {
        let args = |a: &[&str]| Cli::try_parse_from(normalize(a.iter().map(OsString::from)));
        assert!(args(&["llmiter", "--name", "x", "summary"]).is_err());
        assert!(args(&["llmiter", "--compare", "--lines", "ri"]).is_err());
        assert!(args(&["llmiter", "--lines", "rx"]).is_err());
    }
}
