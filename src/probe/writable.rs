//! `writable`: the agent can create, write, fsync and remove a file in a
//! directory (its state or cache directory). The probe file is
//! `.tether-writable-<pid>-<n>`, created exclusively so it never touches an
//! existing file, and removed whatever happens after it was created. Like
//! `file`, these are a few system calls on the agent's thread.

use std::cell::Cell;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::config::WritableSpec;
use crate::outcome::{Reason, Report};

thread_local! {
    static N: Cell<u64> = const { Cell::new(0) };
}

pub fn probe(s: &WritableSpec) -> Report {
    let dir = s.path.display();
    match std::fs::metadata(&s.path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Report::crit(Reason::FileMissing, format!("{dir} does not exist"))
        }
        Err(e) => return Report::crit(Reason::NotWritable, format!("{dir}: {e}")),
        Ok(m) if !m.is_dir() => {
            return Report::crit(Reason::NotWritable, format!("{dir} is not a directory"))
        }
        Ok(_) => {}
    }
    let n = N.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let file = s
        .path
        .join(format!(".tether-writable-{}-{n}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file);
    let mut f = match created {
        Ok(f) => f,
        Err(e) => {
            return Report::crit(
                Reason::NotWritable,
                format!("{dir}: cannot create a file: {e}"),
            )
        }
    };
    let written = f
        .write_all(b"tether writable probe\n")
        .map_err(|e| ("write", e))
        .and_then(|_| f.sync_all().map_err(|e| ("fsync", e)));
    drop(f);
    let removed = std::fs::remove_file(&file);
    match (written, removed) {
        (Err((step, e)), _) => {
            Report::crit(Reason::NotWritable, format!("{dir}: {step} failed: {e}"))
        }
        (Ok(()), Err(e)) => Report::crit(
            Reason::NotWritable,
            format!("{dir}: cannot remove {}: {e}", file.display()),
        ),
        (Ok(()), Ok(())) => Report::ok(format!("{dir}: created, wrote, synced and removed a file")),
    }
}
