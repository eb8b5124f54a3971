//! `exec`: run a command (argv, no shell) like a Nagios plugin. Exit 0 is
//! ok, 1 warn, 2 crit, anything else or a signal unknown. The first line of
//! output is the message; its performance data is parsed and exported in
//! `/metrics`. The command runs in its own process group with a clean
//! environment; at the deadline the scheduler drops the run, which kills the
//! whole group ([`crate::os::process`]).

use crate::config::ExecSpec;
use crate::format::perfdata;
use crate::os::process;
use crate::outcome::{Reason, Report, Status};

/// Output kept per stream; a plugin's status line and perfdata fit easily.
const MAX_OUTPUT: usize = 16 * 1024;

pub async fn probe(s: &ExecSpec) -> Report {
    let prog = &s.command[0];
    let done = match process::run(&s.command, &s.env, MAX_OUTPUT).await {
        Ok(d) => d,
        Err(e) => {
            return Report::new(
                Status::Unknown,
                Some(Reason::ExecError),
                format!("cannot run {prog}: {e}"),
            )
        }
    };
    let stdout = String::from_utf8_lossy(&done.stdout);
    let (mut text, perf) = perfdata::parse(&stdout);
    if text.is_empty() {
        // Nothing on stdout: the first line of stderr says why, usually.
        let err = String::from_utf8_lossy(&done.stderr);
        text = err.lines().next().unwrap_or("").trim().to_string();
    }
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .take(512)
        .collect();
    let how = process::describe(&done.status);
    let (status, reason) = match done.status.code() {
        Some(0) => (Status::Ok, None),
        Some(1) => (Status::Warn, Some(Reason::ExecStatus)),
        Some(2) => (Status::Crit, Some(Reason::ExecStatus)),
        Some(_) => (Status::Unknown, Some(Reason::ExecStatus)),
        None => (Status::Unknown, Some(Reason::ExecSignal)),
    };
    let message = if text.is_empty() {
        format!("{prog}: {how}, no output")
    } else if status == Status::Ok {
        text
    } else {
        format!("{text} ({how})")
    };
    let mut r = Report::new(status, reason, message);
    r.detail.perf = perf;
    r
}
