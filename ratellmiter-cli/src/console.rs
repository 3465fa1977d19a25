//! Where a command writes: results and warnings, as the binary or a test wires them.

use std::io::Write;

/// Where a command writes: its results to `out`, warnings to `err`.
pub struct Console<'a> {
    /// Results: paths of drawn graphs, tables.
    pub out: &'a mut dyn Write,
    /// Warnings about the input that did not stop the command.
    pub err: &'a mut dyn Write,
}

impl Console<'_> {
    /// Writes a one-line warning to `err`. A warning that cannot be written is lost:
    /// the command's result matters more.
    pub fn warn(&mut self, message: impl std::fmt::Display) {
        let _ = writeln!(self.err, "llmiter: warning: {message}");
    }
}
