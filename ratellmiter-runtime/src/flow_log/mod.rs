//! Per-second flow logs: what each limiter was asked for, issued, refused and paused,
//! written as JSON Lines for the `llmiter` command to draw.
//!
//! The ticket path only bumps per-second counters under the
//! limiter's lock; a background thread started by [`Monitor::start`](crate::Monitor::start)
//! writes finished seconds at least once a second and everything on
//! [`Monitor::stop`](crate::Monitor::stop). An unwritable log degrades to a warning and
//! a count of dropped records; pacing goes on. The format is in [`mod@format`].

pub mod format;
mod recorder;
mod writer;

pub(crate) use recorder::Recorder;
pub(crate) use writer::{LogSink, Writer, write_records};
