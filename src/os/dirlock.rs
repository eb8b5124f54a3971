//! One agent per directory: an exclusive `flock` on `<dir>/lock`, held for
//! the life of the process. The kernel drops it when the process ends, even
//! by SIGKILL, so a lock is never stale and never needs cleaning. The file
//! holds the holder's PID (a line), written after the lock is taken, so a
//! second agent can name the one it found.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "lock";

/// A directory held by this process (dropping it releases the lock).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

#[derive(Debug)]
pub enum Refused {
    /// Another process holds it: its PID when the file names one.
    Held { dir: PathBuf, pid: Option<u32> },
    /// The lock file cannot be made or opened (the directory is not
    /// writable, or missing): nothing to hold.
    Unusable { dir: PathBuf, error: std::io::Error },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Held { dir, pid } => {
                let pid = pid.map_or(String::new(), |p| format!(" (pid {p})"));
                write!(
                    f,
                    "another tether{pid} holds {}; one agent per state directory",
                    dir.display()
                )
            }
            Refused::Unusable { dir, error } => {
                write!(f, "cannot write {} ({error})", dir.display())
            }
        }
    }
}

/// Takes `<dir>/lock` without waiting, and writes this process's PID into it.
pub fn take(dir: &Path) -> Result<DirLock, Refused> {
    let unusable = |error| Refused::Unusable {
        dir: dir.to_path_buf(),
        error,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(FILE_NAME))
        .map_err(unusable)?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut text = String::new();
        let _ = (&file).take(32).read_to_string(&mut text);
        return Err(Refused::Held {
            dir: dir.to_path_buf(),
            pid: text.trim().parse().ok(),
        });
    }
    // Ours now: the PID replaces whatever an earlier holder left.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    Ok(DirLock { _file: file })
}
