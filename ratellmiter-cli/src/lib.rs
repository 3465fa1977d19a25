//! The `llmiter` command: graphs and summaries of the flow logs the ratellmiter monitor
//! writes, the Rust successor of rateLLMiter's `llmiter` script.
//!
//! ```text
//! llmiter -dir=ratellmiter_logs -name=gpt-4o -lines=ri    # rateLLMiter's spelling
//! llmiter --name gpt-4o --lines ri --format svg --open    # the usual one
//! llmiter --compare                                       # finished/s of every service
//! llmiter summary                                         # a table of every service
//! ```
//!
//! Graphing is the default action; every other action is a subcommand. A new one is a
//! variant of [`args::Command`] with its options struct in [`args`], a module holding
//! its `run`, and an arm in [`run`].
//!
//! Each module imports only modules listed before it here: [`console`], [`lines`],
//! [`scenario`] (workloads and the clients compared), [`args`] (plain option structs),
//! [`logs`], [`chart`], `plot`, `open`, then the commands [`graph`], [`summary`],
//! [`mod@bench`], [`mock_server`] and [`demo`] (which draws with [`graph`]).
//!
//! Errors are one line on stderr (`llmiter: error: …`) with exit code 1; argument
//! errors are clap's, with exit code 2. Text is drawn with an embedded DejaVu Sans,
//! so graphs render on machines without any font installed.

pub mod args;
pub mod bench;
pub mod chart;
pub mod console;
pub mod demo;
pub mod graph;
pub mod lines;
pub mod logs;
pub mod mock_server;
mod open;
mod plot;
pub mod scenario;
pub mod summary;

use std::ffi::OsString;
use std::io;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
pub use crate::console::Console;

/// Runs the command `cli` describes.
pub fn run(cli: Cli, console: &mut Console<'_>) -> anyhow::Result<()> {
    match cli.command {
        None => graph::run(&cli.graph, console),
        Some(Command::Graph(args)) => graph::run(&args, console),
        Some(Command::Summary(args)) => summary::run(&args, console),
        Some(Command::Bench(args)) => bench::run(&args, console),
        Some(Command::Demo(args)) => demo::run(&args, console),
        Some(Command::MockServer(args)) => mock_server::run(&args, console),
    }
}

/// The whole program on `args` (the program name first): parses them, runs the
/// command, reports an error on one line and gives the exit code.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args::normalize(args)) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are "errors" that print to stdout and exit 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let (stdout, stderr) = (io::stdout(), io::stderr());
    let mut console = Console {
        out: &mut stdout.lock(),
        err: &mut stderr.lock(),
    };
    match run(cli, &mut console) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(console.err, "llmiter: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
