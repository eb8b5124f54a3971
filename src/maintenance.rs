//! Maintenance mode: `tether disable` creates `<state_dir>/disabled`,
//! `tether enable` removes it. The agent looks for the file every scheduler
//! turn. The switch lives in the state directory, which only the agent's user
//! and root can write, never behind an unauthenticated HTTP call.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn flag_path(state_dir: &Path) -> PathBuf {
    state_dir.join("disabled")
}

pub fn is_disabled(state_dir: &Path) -> bool {
    flag_path(state_dir).exists()
}

/// Writes the flag atomically (temp file + rename) with who/why/when inside.
pub fn disable(state_dir: &Path, reason: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let tmp = state_dir.join(".disabled.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(
        f,
        "since={}",
        crate::clock::rfc3339(std::time::SystemTime::now())
    )?;
    writeln!(f, "reason={}", reason.replace('\n', " "))?;
    f.sync_all()?;
    std::fs::rename(&tmp, flag_path(state_dir))
}

pub fn enable(state_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(flag_path(state_dir)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
