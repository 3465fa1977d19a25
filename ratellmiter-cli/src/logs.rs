//! Finding and reading the flow log a command works on, warning about what was skipped,
//! and printing the log's names safely.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ratellmiter_runtime::flow_log::format::{FlowLog, newest_log, read_log};

use crate::args::LogArgs;
use crate::console::Console;

/// A log read from a file.
#[derive(Debug, Clone)]
pub struct LoadedLog {
    /// Where it was read from.
    pub path: PathBuf,
    /// What it holds.
    pub log: FlowLog,
}

/// Finds the log `args` names (the newest in the directory by default), reads it, and
/// warns on `console` about malformed lines and records the writer dropped.
pub fn load(args: &LogArgs, console: &mut Console<'_>) -> Result<LoadedLog> {
    let path = locate(args)?;
    let log = read_log(&path).with_context(|| path.display().to_string())?;
    let skipped = &log.malformed;
    if skipped.count > 0 {
        let numbers: Vec<String> = skipped
            .first_line_numbers
            .iter()
            .map(u64::to_string)
            .collect();
        let first = if skipped.count > numbers.len() as u64 {
            "first at "
        } else {
            ""
        };
        console.warn(format_args!(
            "{}: skipped {} malformed line{} ({first}line {})",
            path.display(),
            skipped.count,
            if skipped.count == 1 { "" } else { "s" },
            numbers.join(", "),
        ));
    }
    if let Some(footer) = &log.footer
        && footer.dropped_records > 0
    {
        console.warn(format_args!(
            "{}: the monitor could not write {} records (full or unwritable disk); they are missing",
            path.display(),
            footer.dropped_records
        ));
    }
    Ok(LoadedLog { path, log })
}

/// The log to read: `--file` in `--dir` or as a path, else the newest log in `--dir`.
fn locate(args: &LogArgs) -> Result<PathBuf> {
    let Some(file) = &args.file else {
        return Ok(newest_log(&args.dir)?);
    };
    let in_dir = args.dir.join(file);
    for candidate in [&in_dir, file] {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    if in_dir == *file {
        bail!("log file {} not found", file.display());
    }
    bail!(
        "log file {} not found (nor {} in {})",
        file.display(),
        file.display(),
        args.dir.display()
    )
}

/// `name` fit to print in a title, a legend or a terminal: control characters shown as
/// `�`, at most `max_chars` characters.
pub fn printable(name: &str, max_chars: usize) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .take(max_chars)
        .collect();
    if name.chars().count() > max_chars {
        out.pop();
        out.push('…');
    }
    out
}

/// The names of `log`'s services, quoted, for an error that lists them.
pub fn known_services(log: &FlowLog) -> String {
    let names = log.service_names();
    if names.is_empty() {
        return "the log names no service".into();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!("known: {}", quoted.join(", "))
}

/// `path` without its extension, for naming what is drawn from it.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "log".into(), |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_names_have_no_control_characters_and_a_bounded_length() {
        assert_eq!(printable("gpt-4o", 10), "gpt-4o");
        assert_eq!(printable("a\nb\u{1b}[31m", 20), "a\u{FFFD}b\u{FFFD}[31m");
        assert_eq!(printable("abcdef", 4), "abc…");
    }
}
