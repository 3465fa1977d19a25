//! The background side of the flow log: a thread that takes finished seconds from every
//! limiter at least once a second and appends them to the log, off the ticket path.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use super::format::{FORMAT_NAME, FORMAT_VERSION, Footer, Header, Record, ServiceSettings};

/// Where records go; a failing sink degrades to counting dropped records.
pub(crate) struct LogSink {
    path: PathBuf,
    out: Box<dyn Write + Send>,
    dropped: u64,
    warned: bool,
}

impl LogSink {
    /// Creates `<dir>/<start unix seconds>.jsonl` and writes the header.
    pub(crate) fn create(
        dir: &Path,
        start: SystemTime,
        services: Vec<ServiceSettings>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let since = start.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut secs = since.as_secs();
        // Two runs in one second get distinct files.
        let (path, file) = loop {
            let path = dir.join(format!("{secs}.jsonl"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => secs += 1,
                Err(e) => return Err(e),
            }
        };
        let mut sink = Self::with_writer(path, Box::new(BufWriter::new(file)));
        sink.write(&Record::Header(Header {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            start_unix_ms: since.as_millis() as u64,
            services,
        }));
        Ok(sink)
    }

    pub(crate) fn with_writer(path: PathBuf, out: Box<dyn Write + Send>) -> Self {
        Self {
            path,
            out,
            dropped: 0,
            warned: false,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    pub(crate) fn write(&mut self, record: &Record) {
        let line = match serde_json::to_string(record) {
            Ok(l) => l,
            Err(e) => return self.fail(&e),
        };
        if let Err(e) = writeln!(self.out, "{line}") {
            self.fail(&e);
        }
    }

    fn fail(&mut self, e: &dyn std::fmt::Display) {
        self.dropped += 1;
        if !self.warned {
            self.warned = true;
            tracing::warn!(path = %self.path.display(), error = %e, "flow log unwritable: dropping records, pacing goes on");
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.out.flush() {
            self.fail(&e);
        }
    }

    pub(crate) fn finish(&mut self) {
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let footer = Footer {
            end_unix_ms: end.as_millis() as u64,
            dropped_records: self.dropped,
        };
        self.write(&Record::Footer(footer));
        self.flush();
    }
}

/// Writes records the limiters took from their recorders, and flushes.
pub(crate) fn write_records(sink: &Mutex<LogSink>, records: &[Record]) {
    let mut sink = sink.lock();
    for r in records {
        sink.write(r);
    }
    sink.flush();
}

/// The writer thread and its stop signal.
pub(crate) struct Writer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Runs `tick(false)` every second until stopped, then `tick(true)` once.
    pub(crate) fn spawn(tick: impl Fn(bool) + Send + 'static) -> std::io::Result<Self> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ratellmiter-flow-log".into())
            .spawn(move || {
                let (lock, cvar) = &*signal;
                let mut stopped = lock.lock();
                loop {
                    if !*stopped {
                        cvar.wait_for(&mut stopped, Duration::from_secs(1));
                    }
                    let last = *stopped;
                    drop(stopped);
                    tick(last);
                    if last {
                        return;
                    }
                    stopped = lock.lock();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread after its final flush.
    pub(crate) fn stop(mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow_log::format::EventKind;
    use crate::flow_log::format::EventRecord;

    /// A disk that is full: every write fails.
    struct FullDisk;

    impl Write for FullDisk {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device",
            ))
        }
    }

    #[test]
    fn a_full_disk_counts_dropped_records_and_goes_on() {
        let mut sink = LogSink::with_writer(PathBuf::from("full.jsonl"), Box::new(FullDisk));
        let event = Record::Event(EventRecord {
            service: "gpt-4o".into(),
            t_ms: 1,
            kind: EventKind::Pause,
            detail: None,
        });
        for _ in 0..3 {
            sink.write(&event);
        }
        assert_eq!(sink.dropped(), 3);
        sink.finish(); // the footer and the flush fail too; nothing panics
        assert_eq!(sink.dropped(), 5);
    }
}
