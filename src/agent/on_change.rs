//! The `on_change` command: run on every change of the agent's status (or
//! its severity) with the old status, the new status and the reason appended
//! to its argv (no shell; the severities are in `TETHER_OLD_SEVERITY` and
//! `TETHER_NEW_SEVERITY`), in order, one at a time, each killed (its whole process group)
//! after `on_change_timeout`. It runs as its own task on the one thread
//! ([`crate::os::process`]): the scheduler and the endpoint go on meanwhile.
//! At most [`QUEUE_MAX`] changes wait; past that the oldest is dropped,
//! counted and logged.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::agent::health::{AgentStatus, Severity};
use crate::config::exec_env;
use crate::os::alarm::until;
use crate::os::process;
use crate::os::wake::Notify;

pub const QUEUE_MAX: usize = 16;
/// Output kept from each stream, for the log line.
pub const OUTPUT_LIMIT: usize = 4096;

struct Change {
    from: (AgentStatus, Severity),
    to: (AgentStatus, Severity),
    why: String,
}

#[derive(Default)]
pub struct OnChange {
    /// (old, new, reason) waiting to run.
    queue: RefCell<VecDeque<Change>>,
    wake: Notify,
    /// Changes dropped because [`QUEUE_MAX`] were waiting.
    pub dropped: Cell<u64>,
}

impl OnChange {
    pub fn push(&self, from: (AgentStatus, Severity), to: (AgentStatus, Severity), why: &str) {
        let mut q = self.queue.borrow_mut();
        if q.len() >= QUEUE_MAX {
            q.pop_front();
            self.dropped.set(self.dropped.get() + 1);
            log::warn!(
                "on_change: {QUEUE_MAX} changes wait for the command; the oldest is dropped"
            );
        }
        q.push_back(Change {
            from,
            to,
            why: why.into(),
        });
        self.wake.notify();
    }
}

/// What to run for a change, read from the running configuration when the
/// change comes up (a reload may have changed or removed it).
pub struct Command {
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// The agent's name, for `TETHER_AGENT`.
    pub agent: String,
}

/// Runs for the life of the agent: each change in `queue`, in order, with
/// the command `current` gives at that moment (none: the change is passed).
pub async fn run(queue: &OnChange, current: impl Fn() -> Option<Command>) {
    loop {
        let next = queue.queue.borrow_mut().pop_front();
        let Some(ch) = next else {
            queue.wake.wait().await;
            continue;
        };
        let Some(Command {
            argv,
            timeout,
            agent: name,
        }) = current()
        else {
            continue;
        };
        let program = argv[0].clone();
        let mut argv = argv;
        argv.extend([
            ch.from.0.as_str().to_string(),
            ch.to.0.as_str().to_string(),
            ch.why.clone(),
        ]);
        let mut env = exec_env();
        env.extend([
            ("TETHER_AGENT".to_string(), name),
            ("TETHER_OLD_SEVERITY".to_string(), ch.from.1.as_str().into()),
            ("TETHER_NEW_SEVERITY".to_string(), ch.to.1.as_str().into()),
        ]);
        let change = format!("{} -> {}", ch.from.0.as_str(), ch.to.0.as_str());
        let run = process::run(&argv, &env, OUTPUT_LIMIT);
        match until(Instant::now() + timeout, run).await {
            Some(Ok(f)) if f.status.success() => {
                log::info!("on_change {program} ({change}): done");
            }
            Some(Ok(f)) => {
                let said = String::from_utf8_lossy(&f.stderr);
                let said = said.lines().next().unwrap_or("").trim();
                log::warn!(
                    "on_change {program} ({change}): {}{}",
                    process::describe(&f.status),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!(": {said}")
                    }
                );
            }
            Some(Err(e)) => log::warn!("on_change: cannot run {program}: {e}"),
            None => log::warn!(
                "on_change {program} ({change}): killed after {} (on_change_timeout)",
                crate::config::duration::format(timeout)
            ),
        }
    }
}
