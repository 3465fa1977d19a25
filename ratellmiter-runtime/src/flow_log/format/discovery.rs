//! Finding the log to read in a directory.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::reader::ReadError;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
