//! Probes: one file per kind, each an `async fn` with the same shape, dispatched
//! by the one `match` in [`run`]. A probe reports *what it found*; the scheduler
//! owns the deadline, the total duration and the phase clock ([`Trace`]).
//! A probe fills the contract of [`crate::outcome`]; it may import
//! `config` (its spec), `net`, `outcome`, `os` and `format`.

pub mod cert_file;
pub mod dns;
pub mod exec;
pub mod file;
pub mod http;
pub mod system;
pub mod tcp;
pub mod tls;
pub mod writable;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::ProbeSpec;
use crate::net::connect::Context;
use crate::os::clock::rfc3339;
use crate::os::fs_helper::{self, Answer, CallError, Job};
use crate::outcome::{Reason, Report, Status, Trace};

/// Runs one probe of any kind; the single dispatch point.
pub async fn run(spec: &ProbeSpec, ctx: &Context<'_>, trace: &Trace) -> Report {
    // Each kind's state machine goes on the heap at its own size: inline, every
    // task would carry the largest kind, copied again by each combinator
    // around it (20 KiB a task, measured), and the heap would grow and shrink
    // by that every wake-up.
    match spec {
        ProbeSpec::Tcp(s) => Box::pin(tcp::probe(s, ctx, trace)).await,
        ProbeSpec::Http(s) => Box::pin(http::probe(s, ctx, trace)).await,
        ProbeSpec::Dns(s) => Box::pin(dns::probe(s, ctx, trace)).await,
        ProbeSpec::Tls(s) => Box::pin(tls::probe(s, ctx, trace)).await,
        ProbeSpec::CertFile(s) => Box::pin(cert_file::probe(s, trace)).await,
        ProbeSpec::Exec(s) => Box::pin(exec::probe(s)).await,
        ProbeSpec::File(s) => Box::pin(file::probe(s, trace)).await,
        ProbeSpec::Writable(s) => Box::pin(writable::probe(s, trace)).await,
        ProbeSpec::System(s) => Box::pin(system::probe(s, trace)).await,
    }
}

/// Runs a filesystem job in a helper, keeping the trace told which call is
/// in progress (the scheduler names it if the deadline passes: `fs_timeout`).
/// No answer at all is the probe's report.
async fn fs(job: &Job, trace: &Trace) -> Result<Answer, Report> {
    let path = job.path().display().to_string();
    let answer = fs_helper::call(job, |c| {
        trace.wait_on(Some(format!("{} {path}", c.name())));
    })
    .await;
    trace.wait_on(None);
    answer.map_err(|e| match e {
        CallError::StillStuck { what, since } => Report::crit(
            Reason::FsStuck,
            format!(
                "not tried: an earlier {what} has been stuck in the kernel since {} \
                 (SIGKILL cannot end it yet); tried again once it exits",
                rfc3339(since)
            ),
        ),
        CallError::Full { stuck } => Report::crit(
            Reason::FsStuck,
            format!(
                "not tried: all {} filesystem helpers are stuck in the kernel ({}); \
                 none is started until one exits",
                stuck.len(),
                stuck.join(", ")
            ),
        ),
        CallError::Helper(m) => Report::new(Status::Unknown, Some(Reason::FsHelperError), m),
    })
}

/// A helper's answer that does not fit the job.
fn out_of_format() -> Report {
    Report::new(
        Status::Unknown,
        Some(Reason::FsHelperError),
        "the filesystem helper answered out of format",
    )
}

/// A stat(2) modification time as a `SystemTime`.
fn mtime(secs: i64, nanos: u32) -> SystemTime {
    let whole = Duration::from_secs(secs.unsigned_abs());
    let at = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    at.and_then(|t| t.checked_add(Duration::from_nanos(nanos.into())))
        .unwrap_or(UNIX_EPOCH)
}
