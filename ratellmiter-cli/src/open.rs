//! Showing a drawn image with the desktop's opener, when the machine has one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::console::Console;

/// The opener to look for. Not `open` outside macOS: on Debian it is `openvt`.
#[cfg(target_os = "macos")]
const OPENER: &str = "open";
#[cfg(not(target_os = "macos"))]
const OPENER: &str = "xdg-open";

/// Opens `path` with the desktop's opener, or says why not; the image is drawn
/// either way, so this only warns.
pub(crate) fn open(path: &Path, console: &mut Console<'_>) {
    let Some(opener) = find_in_path(OPENER) else {
        console.warn(format_args!(
            "no desktop opener ({OPENER}) found; the image is at {}",
            path.display()
        ));
        return;
    };
    // The opener's chatter stays off stdout, which holds only the image's path.
    let status = Command::new(&opener)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => console.warn(format_args!(
            "{} {} failed: {s}",
            opener.display(),
            path.display()
        )),
        Err(e) => console.warn(format_args!("cannot run {}: {e}", opener.display())),
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}
