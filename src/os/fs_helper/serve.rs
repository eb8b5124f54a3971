//! The helper's side: a plain blocking loop in its own process that reads a
//! job from standard input, says which call it is about to make before each
//! one, makes it, and writes the answer to standard output. It holds no
//! state between jobs, so killing it at any point loses nothing but the job.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::wire::{frame, Answer, Call, Job, Kind, MAX_FRAME};

/// Serves jobs until the agent closes the socket; returns the exit code.
pub fn serve() -> i32 {
    // Gone with the agent even when it is killed without closing the
    // socket, unless it is stuck in the kernel (then the agent counts it).
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut say = |a: Answer| -> bool {
        output.write_all(&frame(&a.encode())).is_ok() && output.flush().is_ok()
    };
    loop {
        let mut len = [0u8; 4];
        if input.read_exact(&mut len).is_err() {
            return 0;
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return 2;
        }
        let mut payload = vec![0u8; len];
        if input.read_exact(&mut payload).is_err() {
            return 0;
        }
        let Some(job) = Job::decode(&payload) else {
            return 2;
        };
        if !run(&job, &mut say) {
            return 0;
        }
    }
}

/// Runs `job` in this process and returns its answer: for a caller that
/// accepts the risk of blocking (the doctor, on the agent's own state
/// directory, which the spool depends on anyway).
pub fn answer_here(job: &Job) -> Answer {
    let mut last = Answer::Failed {
        call: Call::Stat,
        errno: rustix::io::Errno::IO.raw_os_error(),
    };
    run(job, &mut |a| {
        if !matches!(a, Answer::Step(_)) {
            last = a;
        }
        true
    });
    last
}

/// Runs one job, announcing each call but the first; false when the agent
/// is gone.
fn run(job: &Job, say: &mut impl FnMut(Answer) -> bool) -> bool {
    let mut first = true;
    let mut say = |a: Answer| {
        if matches!(a, Answer::Step(_)) && std::mem::take(&mut first) {
            return true;
        }
        say(a)
    };
    let say = &mut say;
    macro_rules! step {
        ($call:expr) => {
            if !say(Answer::Step($call)) {
                return false;
            }
        };
    }
    let answer = match job {
        Job::Stat(path) => {
            step!(Call::Stat);
            match std::fs::metadata(path) {
                Ok(m) => meta(&m),
                Err(e) => failed(Call::Stat, &e),
            }
        }
        Job::Read { path, limit } => {
            step!(Call::Open);
            match std::fs::File::open(path) {
                Err(e) => failed(Call::Open, &e),
                Ok(f) => {
                    step!(Call::Read);
                    let mut data = Vec::new();
                    let limit = u64::from(*limit);
                    match f.take(limit + 1).read_to_end(&mut data) {
                        Err(e) => failed(Call::Read, &e),
                        Ok(n) if n as u64 > limit => Answer::TooLarge(n as u64),
                        Ok(_) => Answer::Bytes(data),
                    }
                }
            }
        }
        Job::Statvfs(path) => {
            step!(Call::Statvfs);
            match rustix::fs::statvfs(path.as_path()) {
                Ok(v) => Answer::Vfs {
                    blocks: v.f_blocks,
                    frsize: v.f_frsize,
                    bavail: v.f_bavail,
                },
                Err(e) => Answer::Failed {
                    call: Call::Statvfs,
                    errno: e.raw_os_error(),
                },
            }
        }
        Job::Writable {
            dir,
            name,
            leftovers,
        } => {
            for old in leftovers {
                step!(Call::Unlink);
                let _ = std::fs::remove_file(dir.join(old));
            }
            step!(Call::Stat);
            match std::fs::metadata(dir) {
                Err(e) => failed(Call::Stat, &e),
                Ok(m) if !m.is_dir() => Answer::Failed {
                    call: Call::Stat,
                    errno: rustix::io::Errno::NOTDIR.raw_os_error(),
                },
                Ok(_) => match writable(&dir.join(name), say) {
                    Some(a) => a,
                    None => return false,
                },
            }
        }
        Job::Sync {
            dir,
            names,
            dir_entry,
        } => {
            let files = names.iter().map(|n| (dir.join(n), true));
            let dir = dir_entry.then(|| (dir.to_path_buf(), false));
            match sync(files.chain(dir), say) {
                Some(a) => a,
                None => return false,
            }
        }
    };
    say(answer)
}

/// `call` failed with `e` (EIO for an error without an errno).
fn failed(call: Call, e: &std::io::Error) -> Answer {
    Answer::Failed {
        call,
        errno: e
            .raw_os_error()
            .unwrap_or(rustix::io::Errno::IO.raw_os_error()),
    }
}

/// Create, write, fsync, close, remove; the first failure is the answer,
/// and the file is removed whatever happened after it was created.
fn writable(file: &Path, say: &mut impl FnMut(Answer) -> bool) -> Option<Answer> {
    say(Answer::Step(Call::Create)).then_some(())?;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file);
    let mut f = match created {
        Ok(f) => f,
        Err(e) => return Some(failed(Call::Create, &e)),
    };
    say(Answer::Step(Call::Write)).then_some(())?;
    let mut first = f
        .write_all(b"tether writable probe\n")
        .err()
        .map(|e| failed(Call::Write, &e));
    if first.is_none() {
        say(Answer::Step(Call::Fsync)).then_some(())?;
        first = f.sync_all().err().map(|e| failed(Call::Fsync, &e));
    }
    drop(f);
    say(Answer::Step(Call::Unlink)).then_some(())?;
    let removed = std::fs::remove_file(file)
        .err()
        .map(|e| failed(Call::Unlink, &e));
    Some(first.or(removed).unwrap_or(Answer::Done))
}

/// Opens and syncs each path (fdatasync for a file, fsync for the
/// directory); a file that is gone is passed over. The first failure is
/// the answer.
fn sync(
    paths: impl Iterator<Item = (std::path::PathBuf, bool)>,
    say: &mut impl FnMut(Answer) -> bool,
) -> Option<Answer> {
    for (path, file) in paths {
        say(Answer::Step(Call::Open)).then_some(())?;
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if file && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Some(failed(Call::Open, &e)),
        };
        say(Answer::Step(Call::Fsync)).then_some(())?;
        let r = if file { f.sync_data() } else { f.sync_all() };
        if let Err(e) = r {
            return Some(failed(Call::Fsync, &e));
        }
    }
    Some(Answer::Done)
}

fn meta(m: &std::fs::Metadata) -> Answer {
    Answer::Meta {
        kind: if m.is_file() {
            Kind::File
        } else if m.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        },
        size: m.len(),
        mtime_secs: m.mtime(),
        mtime_nanos: m.mtime_nsec().clamp(0, 999_999_999) as u32,
    }
}
