//! Child processes on the one thread, for `exec` checks: spawn in a new
//! process group, read stdout and stderr through the reactor, wait for the
//! exit through a pidfd (readable when the child exits: no SIGCHLD handler,
//! no waiter thread), and kill the whole group if the run is dropped at its
//! deadline. A killed child that has not been reaped yet is kept and reaped
//! later ([`reap_orphans`]), never waited for in a blocking call.
//!
//! `Command::spawn` itself is a short blocking fork+exec (std waits until
//! exec succeeded or failed); everything after it is asynchronous.

use std::cell::RefCell;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::AsyncReadExt;
use rustix::process::{kill_process_group, pidfd_open, Pid, PidfdFlags, Signal};

thread_local! {
    /// Killed children not yet reaped.
    static ORPHANS: RefCell<Vec<Child>> = const { RefCell::new(Vec::new()) };
}

/// Reaps killed children that have exited since; cheap when there are none.
pub fn reap_orphans() {
    ORPHANS.with(|o| {
        o.borrow_mut()
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)))
    });
}

/// What a finished command left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output beyond the limit was read and dropped.
    pub truncated: bool,
}

/// A running child in its own process group; dropping it kills the group.
struct Running {
    child: Option<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        // The group id is the child's pid (process_group(0)).
        let _ = kill_process_group(Pid::from_child(&child), Signal::KILL);
        if !matches!(child.try_wait(), Ok(Some(_))) {
            ORPHANS.with(|o| o.borrow_mut().push(child));
        }
    }
}

/// Runs `argv` with exactly `env` (nothing inherited), stdin from /dev/null,
/// in a new process group with "/" as its working directory; reads at most
/// `limit` bytes of each output stream. Dropping the future kills the group.
pub async fn run(argv: &[String], env: &[(String, String)], limit: usize) -> io::Result<Finished> {
    reap_orphans();
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().map(Async::new).transpose()?;
    let stderr = child.stderr.take().map(Async::new).transpose()?;
    let pid = Pid::from_child(&child);
    let mut running = Running { child: Some(child) };
    let out = read_capped(stdout, limit);
    let err = read_capped(stderr, limit);
    let ((stdout, t1), (stderr, t2)) = futures_lite::future::zip(out, err).await;
    let status = wait_exit(&mut running, pid).await?;
    Ok(Finished {
        status,
        stdout,
        stderr,
        truncated: t1 || t2,
    })
}

/// Reads to EOF, keeping the first `limit` bytes: a chatty command must not
/// block on a full pipe.
async fn read_capped<R>(r: Option<Async<R>>, limit: usize) -> (Vec<u8>, bool)
where
    R: std::io::Read + std::os::fd::AsFd + async_io::IoSafe,
{
    let Some(mut r) = r else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 4096];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, truncated),
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                truncated |= n > room;
            }
        }
    }
}

/// Waits for the child's exit: its pidfd becomes readable when it exits.
/// Without pidfds (Linux before 5.3, or a seccomp filter), polls every 20 ms.
async fn wait_exit(running: &mut Running, pid: Pid) -> io::Result<ExitStatus> {
    let pidfd = pidfd_open(pid, PidfdFlags::empty())
        .map_err(io::Error::from)
        .and_then(Async::new);
    loop {
        let child = running
            .child
            .as_mut()
            .ok_or_else(|| io::Error::other("child already reaped"))?;
        if let Some(status) = child.try_wait()? {
            running.child = None;
            return Ok(status);
        }
        match &pidfd {
            Ok(fd) => fd.readable().await?,
            Err(_) => {
                Timer::after(Duration::from_millis(20)).await;
            }
        }
    }
}

/// `exit 3` or `killed by signal 9 (SIGKILL)`.
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}{}", signal_name(s)),
        _ => "ended".into(),
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        _ => "",
    }
}
