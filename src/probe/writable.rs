//! `writable`: the agent can create, write, fsync and remove a file in a
//! directory (its state or cache directory). The probe file is
//! `.tether-writable-<pid>-<n>`, created exclusively so it never touches an
//! existing file, and removed whatever happens after it was created. The
//! calls run in a filesystem helper ([`crate::os::fs_helper`]); when one
//! is killed at the deadline with its file still there, the next run of
//! the check removes that file first.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use crate::config::WritableSpec;
use crate::os::fs_helper::{self, Answer, Call, Job};
use crate::outcome::{Reason, Report, Trace};

/// Names of probe files per directory of runs killed before they could
/// remove them: at most this many are remembered per directory.
const MAX_LEFTOVERS: usize = 16;

thread_local! {
    static N: Cell<u64> = const { Cell::new(0) };
    /// Per directory (a few at most: one per `writable` check).
    static LEFTOVERS: RefCell<Vec<(PathBuf, Vec<String>)>> = const { RefCell::new(Vec::new()) };
}

fn next_name() -> String {
    let n = N.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    format!(".tether-writable-{}-{n}", std::process::id())
}

pub async fn probe(s: &WritableSpec, trace: &Trace) -> Report {
    let name = next_name();
    // Until the helper answers, this run's file counts as a leftover too:
    // if the run is dropped at its deadline, the next one removes it.
    let leftovers = LEFTOVERS.with(|l| {
        let mut l = l.borrow_mut();
        let at = match l.iter().position(|(d, _)| *d == s.path) {
            Some(i) => i,
            None => {
                l.push((s.path.clone(), Vec::new()));
                l.len() - 1
            }
        };
        let list = &mut l[at].1;
        let old = list.clone();
        list.push(name.clone());
        let over = list.len().saturating_sub(MAX_LEFTOVERS);
        list.drain(..over);
        old
    });
    let job = Job::Writable {
        dir: s.path.clone(),
        name: name.clone(),
        leftovers,
    };
    let answer = match super::fs(&job, trace).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    // Tried: every leftover removed (or gone), this run's file unless its
    // unlink failed.
    let kept = matches!(
        answer,
        Answer::Failed {
            call: Call::Unlink,
            ..
        }
    );
    LEFTOVERS.with(|l| {
        let mut l = l.borrow_mut();
        l.retain(|(d, _)| *d != s.path);
        if kept {
            l.push((s.path.clone(), vec![name.clone()]));
        }
    });
    report(&s.path, &s.path.join(&name), answer)
}

/// The same sequence in this process, for the doctor (see
/// [`fs_helper::serve::answer_here`]).
pub fn probe_here(dir: &Path) -> Report {
    let name = next_name();
    let job = Job::Writable {
        dir: dir.to_path_buf(),
        name: name.clone(),
        leftovers: Vec::new(),
    };
    report(dir, &dir.join(&name), fs_helper::serve::answer_here(&job))
}

fn report(dir: &Path, file: &Path, answer: Answer) -> Report {
    let shown = dir.display();
    let Answer::Failed { call, errno } = answer else {
        return match answer {
            Answer::Done => Report::ok(format!(
                "{shown}: created, wrote, synced and removed a file"
            )),
            _ => super::out_of_format(),
        };
    };
    let e = std::io::Error::from_raw_os_error(errno);
    let not = |m: String| Report::crit(Reason::NotWritable, m);
    match call {
        Call::Stat if e.kind() == std::io::ErrorKind::NotFound => {
            Report::crit(Reason::FileMissing, format!("{shown} does not exist"))
        }
        Call::Stat if errno == rustix::io::Errno::NOTDIR.raw_os_error() => {
            not(format!("{shown} is not a directory"))
        }
        Call::Create => not(format!("{shown}: cannot create a file: {e}")),
        Call::Unlink => not(format!("{shown}: cannot remove {}: {e}", file.display())),
        Call::Write | Call::Fsync => not(format!("{shown}: {} failed: {e}", call.name())),
        _ => not(format!("{shown}: {e}")),
    }
}
