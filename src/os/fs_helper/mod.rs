//! Filesystem calls that cannot hang the agent. A `stat` on a dead NFS
//! mount, an `open` of a FIFO nobody writes, an `fsync` on a failing disk:
//! each can block for ever, and on the agent's one thread that would stop
//! every probe, `/health` and the watchdog. So the checks' filesystem calls
//! run in helper processes (the agent's own binary, `/proc/self/exe
//! __fs-helper`, which stays the running image across an upgrade), one job
//! at a time each, over a socket pair the reactor watches ([`wire`] is the
//! format, [`serve`] the helper's loop).
//!
//! A job takes an idle helper or starts one (at most [`MAX_HELPERS`] alive;
//! an idle one unused for a minute is stopped). The caller races the job against its deadline;
//! dropping the call before the answer kills that helper (SIGKILL) and
//! the next job starts a fresh one. A helper in uninterruptible sleep
//! survives SIGKILL until the kernel lets go: it is kept as *stuck*,
//! reaped when it exits ([`reap`], no zombie is left behind once it does),
//! counted in [`stats`], and no new job is sent to the path it is stuck
//! on meanwhile (that would only strand another helper). When
//! [`MAX_HELPERS`] are stuck, every filesystem job fails at once with
//! [`CallError::Full`] until one exits: the agent never holds more
//! processes than that, whatever the mounts do.

pub mod serve;
pub mod wire;

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

pub use wire::{Answer, Call, Job, Kind};

/// The argument that makes the binary a helper (`cli` dispatches on it).
pub const HELPER_ARG: &str = "__fs-helper";

/// Helpers alive at once, stuck ones included: the bound on processes a
/// hung filesystem can cost.
pub const MAX_HELPERS: usize = 8;

/// An idle helper unused this long is stopped. Jobs take the most recently
/// used helper first, so the helpers a burst of concurrent jobs needed
/// stay while bursts recur, and the extra ones age out after it.
const IDLE_FOR: Duration = Duration::from_secs(60);

/// A job that finds every helper busy waits this long for one to finish
/// before it starts another: a healthy call answers in microseconds, so
/// only a slow or hung one makes another process worth its start (~0.4 ms
/// of CPU and a megabyte of mostly shared pages).
const START_AFTER: Duration = Duration::from_millis(20);

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Runs helpers from `program` instead of `/proc/self/exe`: for a test
/// binary that links the library (its own image is not `tether`).
pub fn set_program(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// Why a job has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// An earlier helper is still stuck on this path (`what` is its call
    /// and path), since `since`.
    StillStuck { what: String, since: SystemTime },
    /// [`MAX_HELPERS`] helpers are stuck in the kernel.
    Full { stuck: Vec<String> },
    /// The helper could not be started, died, or answered out of format.
    Helper(String),
}

/// The helpers, for `/status` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Alive and usable: idle or working on a job.
    pub running: usize,
    /// Killed at a deadline and not exited yet: the call they are in and
    /// when they were killed.
    pub stuck: Vec<(String, SystemTime)>,
    pub started_total: u64,
    pub killed_total: u64,
    /// Jobs refused because a helper was stuck on the path, or all were.
    pub refused_total: u64,
}

struct Helper {
    child: Child,
    /// When its last job ended.
    used: std::time::Instant,
    sock: Async<UnixStream>,
    /// Bytes read and not yet parsed: a step and the answer often come in
    /// one read.
    buf: Vec<u8>,
}

struct Stuck {
    child: Child,
    what: String,
    since: SystemTime,
    path: PathBuf,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Helper>,
    busy: usize,
    stuck: Vec<Stuck>,
    /// Stopped (killed) helpers not reaped yet.
    exiting: Vec<Child>,
    /// Jobs waiting for a helper to finish.
    waiters: Vec<std::task::Waker>,
    started: u64,
    killed: u64,
    refused: u64,
}

impl Pool {
    /// The helper stuck in a call on `path`, if one is: no other job is
    /// sent there meanwhile.
    fn stuck_on(&self, path: &Path) -> Option<&Stuck> {
        self.stuck.iter().find(|s| s.path == path)
    }
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Stops idle helpers unused for [`IDLE_FOR`] and reaps helpers that have
/// exited since; cheap when there are none.
pub fn reap() {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let now = std::time::Instant::now();
        while p
            .idle
            .first()
            .is_some_and(|h| now.saturating_duration_since(h.used) >= IDLE_FOR)
        {
            let mut child = p.idle.remove(0).child;
            let _ = child.kill();
            p.exiting.push(child);
        }
        p.stuck
            .retain_mut(|s| matches!(s.child.try_wait(), Ok(None)));
        p.exiting.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    });
}

/// The call a helper killed on `path` is still stuck in, if one is: the
/// spool writes nothing to a directory whose sync has not come back.
pub fn stuck_on(path: &Path) -> Option<String> {
    reap();
    POOL.with(|p| p.borrow().stuck_on(path).map(|s| s.what.clone()))
}

pub fn stats() -> Stats {
    reap();
    POOL.with(|p| {
        let p = p.borrow();
        Stats {
            running: p.idle.len() + p.busy,
            stuck: p.stuck.iter().map(|s| (s.what.clone(), s.since)).collect(),
            started_total: p.started,
            killed_total: p.killed,
            refused_total: p.refused,
        }
    })
}

/// Runs `job` in a helper; `on_step` hears each call before it is made (so
/// a caller whose deadline passes can name the call that did not return).
/// Dropping the future kills the helper.
pub async fn call(job: &Job, mut on_step: impl FnMut(Call)) -> Result<Answer, CallError> {
    reap();
    let path = job.path();
    let refused = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let e = p.stuck_on(path).map(|s| CallError::StillStuck {
            what: s.what.clone(),
            since: s.since,
        });
        p.refused += u64::from(e.is_some());
        e
    });
    if let Some(e) = refused {
        return Err(e);
    }
    let asked = std::time::Instant::now();
    let helper = loop {
        match take_or_start(asked.elapsed() >= START_AFTER) {
            Ok(Some(h)) => break h,
            // Every helper is working on a job: wait for one to finish, or
            // until another may be started (the caller's deadline bounds
            // the wait).
            Ok(None) => {
                // Until START_AFTER, then (at the cap, all busy) now and
                // then: a stuck helper's exit wakes nobody.
                let wait = match START_AFTER.checked_sub(asked.elapsed()) {
                    Some(left) => left.max(Duration::from_millis(1)),
                    None => Duration::from_millis(50),
                };
                futures_lite::future::or(released(), async {
                    Timer::after(wait).await;
                })
                .await;
            }
            Err(e) => return Err(e),
        }
    };
    let mut lease = Lease {
        helper: Some(helper),
        call: None,
        path: path.to_path_buf(),
    };
    match exchange(&mut lease, job, &mut on_step).await {
        Ok(a) => {
            lease.finish();
            Ok(a)
        }
        // Dropping the lease kills the helper: its state is unknown.
        Err(e) => Err(e),
    }
}

/// Resolves at the next wake-up from a helper that finished (or died).
async fn released() {
    let mut registered = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut registered, true) {
            return std::task::Poll::Ready(());
        }
        POOL.with(|p| p.borrow_mut().waiters.push(cx.waker().clone()));
        std::task::Poll::Pending
    })
    .await
}

/// An idle helper, a new one (if `may_start`, or none is busy), `None` to
/// wait for a busy one, or [`CallError::Full`] when they are all stuck.
fn take_or_start(may_start: bool) -> Result<Option<Helper>, CallError> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        while let Some(mut h) = p.idle.pop() {
            if matches!(h.child.try_wait(), Ok(None)) {
                p.busy += 1;
                return Ok(Some(h));
            }
        }
        if p.busy > 0 && !may_start {
            return Ok(None);
        }
        if p.busy + p.stuck.len() >= MAX_HELPERS {
            if p.busy > 0 {
                return Ok(None);
            }
            p.refused += 1;
            return Err(CallError::Full {
                stuck: p.stuck.iter().map(|s| s.what.clone()).collect(),
            });
        }
        let h = start()
            .map_err(|e| CallError::Helper(format!("cannot start the filesystem helper: {e}")))?;
        p.started += 1;
        p.busy += 1;
        Ok(Some(h))
    })
}

fn program() -> &'static Path {
    PROGRAM
        .get()
        .map_or(Path::new("/proc/self/exe"), PathBuf::as_path)
}

fn start() -> io::Result<Helper> {
    let (ours, theirs) = UnixStream::pair()?;
    let out = theirs.try_clone()?;
    let child = Command::new(program())
        .arg0("tether")
        .arg(HELPER_ARG)
        .env_clear()
        .current_dir("/")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(out)))
        .stderr(Stdio::null())
        // Not in the terminal's group: a Ctrl-C meant for a foreground
        // `tether run` reaches the agent, which then ends its helpers.
        .process_group(0)
        .spawn()?;
    Ok(Helper {
        child,
        used: std::time::Instant::now(),
        sock: Async::new(ours)?,
        buf: Vec::new(),
    })
}

/// A helper working on one job. Dropped before [`Lease::finish`], it kills
/// the helper.
struct Lease {
    helper: Option<Helper>,
    /// The call the helper said it was making.
    call: Option<Call>,
    path: PathBuf,
}

impl Lease {
    fn finish(mut self) {
        let Some(mut h) = self.helper.take() else {
            return;
        };
        h.used = std::time::Instant::now();
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            p.busy -= 1;
            // Oldest first: `take_or_start` pops the newest.
            p.idle.push(h);
            p.waiters.drain(..).for_each(std::task::Waker::wake);
        });
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(h) = self.helper.take() else {
            return;
        };
        let mut child = h.child;
        let _ = child.kill();
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        let what = match self.call {
            Some(c) => format!("{} {}", c.name(), self.path.display()),
            None => format!("a job on {}", self.path.display()),
        };
        POOL.with(|p| {
            let mut p = p.borrow_mut();
            p.busy -= 1;
            p.killed += 1;
            p.waiters.drain(..).for_each(std::task::Waker::wake);
            if !exited {
                p.stuck.push(Stuck {
                    child,
                    what,
                    since: SystemTime::now(),
                    path: std::mem::take(&mut self.path),
                });
            }
        });
    }
}

async fn exchange(
    lease: &mut Lease,
    job: &Job,
    on_step: &mut impl FnMut(Call),
) -> Result<Answer, CallError> {
    let lost = |e: io::Error| CallError::Helper(format!("the filesystem helper went away: {e}"));
    let garbled = || CallError::Helper("the filesystem helper answered out of format".into());
    let Some(h) = lease.helper.as_mut() else {
        return Err(garbled());
    };
    let first = job.first_call();
    lease.call = Some(first);
    on_step(first);
    (&h.sock)
        .write_all(&wire::frame(&job.encode()))
        .await
        .map_err(lost)?;
    loop {
        // Whole frames already read first, then read more.
        if let Some(len) = h.buf.get(..4) {
            let n = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            if n > wire::MAX_FRAME {
                return Err(garbled());
            }
            if h.buf.len() >= 4 + n {
                let answer = Answer::decode(&h.buf[4..4 + n]);
                h.buf.drain(..4 + n);
                match answer {
                    Some(Answer::Step(c)) => {
                        lease.call = Some(c);
                        on_step(c);
                        continue;
                    }
                    Some(a) if h.buf.is_empty() => return Ok(a),
                    // More after the answer: out of step with the job.
                    _ => return Err(garbled()),
                }
            }
        }
        let had = h.buf.len();
        h.buf.resize(had + 4096, 0);
        let got = (&h.sock).read(&mut h.buf[had..]).await;
        h.buf.truncate(had + *got.as_ref().unwrap_or(&0));
        match got {
            Ok(0) => return Err(lost(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) => return Err(lost(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper SIGKILL could not end (in uninterruptible sleep): a child
    /// that is simply never killed stands in for it.
    fn stuck_on(path: &str) {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        POOL.with(|p| {
            p.borrow_mut().stuck.push(Stuck {
                child,
                what: format!("stat {path}"),
                since: SystemTime::now(),
                path: path.into(),
            })
        });
    }

    #[test]
    fn stuck_helpers_are_counted_capped_and_reaped() {
        let run = |path: &str| async_io::block_on(call(&Job::Stat(path.into()), |_| {}));
        stuck_on("/mnt/dead/a");
        // The same path again would only strand another helper.
        match run("/mnt/dead/a") {
            Err(CallError::StillStuck { what, .. }) => assert_eq!(what, "stat /mnt/dead/a"),
            other => panic!("{other:?}"),
        }
        for n in 1..MAX_HELPERS {
            stuck_on(&format!("/mnt/dead/{n}"));
        }
        // At the cap, any path is refused at once: no new process.
        match run("/elsewhere") {
            Err(CallError::Full { stuck }) => assert_eq!(stuck.len(), MAX_HELPERS),
            other => panic!("{other:?}"),
        }
        let s = stats();
        assert_eq!((s.stuck.len(), s.started_total, s.refused_total), (8, 0, 2));
        // Once they exit (the kernel let go), they are reaped: no zombie.
        let pids: Vec<u32> = POOL.with(|p| p.borrow().stuck.iter().map(|s| s.child.id()).collect());
        for pid in &pids {
            Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
        }
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while !stats().stuck.is_empty() {
            assert!(std::time::Instant::now() < end, "not reaped");
            std::thread::sleep(Duration::from_millis(10));
        }
        for pid in pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "{pid} left a zombie"
            );
        }
    }
}
