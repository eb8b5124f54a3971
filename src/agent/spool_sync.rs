//! The spool's syncs, off the agent's thread: when the outbox has written
//! records to the spool, this task has a filesystem helper fdatasync them
//! (and the directory, for a new segment), within [`SYNC_DEADLINE`]. The
//! records stay in memory until the sync returned; one that fails or does
//! not return in time gives them back to the ring and makes the spool
//! `spool_degraded` (see `uplink/outbox.rs`). A slow disk thus delays only
//! durability, never a probe, `/health` or the watchdog. Where no helper
//! can be started at all, the sync runs on the agent's thread (logged once):
//! the spool's promise does not depend on helpers.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::agent::state::AgentState;
use crate::os::fs_helper::{self, Answer, Call, CallError};
use crate::uplink::outbox::SyncOutcome;
use crate::uplink::spool::sync_error;

/// A sync that has not returned by then is given up (its helper killed):
/// a healthy disk answers in milliseconds, a busy one within seconds.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(10);

pub async fn run(state: Rc<AgentState>) {
    let wake = state.spool_sync.clone();
    let mut warned = false;
    loop {
        wake.wait().await;
        loop {
            // Not borrowed across the await.
            let job = state
                .uplink
                .borrow_mut()
                .as_mut()
                .and_then(|u| u.outbox.sync_job());
            let Some(job) = job else {
                break;
            };
            let start = Instant::now();
            let mut at = Call::Open;
            let answer =
                crate::os::alarm::until(start + SYNC_DEADLINE, fs_helper::call(&job, |c| at = c))
                    .await;
            let outcome = match answer {
                Some(Ok(Answer::Done)) => SyncOutcome::Done(start.elapsed()),
                Some(Ok(a)) => SyncOutcome::Failed(sync_error(&a)),
                Some(Err(CallError::Helper(m))) => {
                    // No helper could run it (no /proc, exec refused, an
                    // emulator without binfmt): durability comes first, so
                    // the sync runs on this thread, as it did before there
                    // were helpers.
                    if !warned {
                        warned = true;
                        log::warn!("spool: {m}; its syncs run on the agent's thread instead");
                    }
                    if let Some(u) = state.uplink.borrow_mut().as_mut() {
                        u.outbox.sync_in_place();
                    }
                    continue;
                }
                Some(Err(CallError::StillStuck { what, .. })) => SyncOutcome::still_stuck(&what),
                Some(Err(CallError::Full { stuck })) => SyncOutcome::NoAnswer(format!(
                    "all {} filesystem helpers are stuck in the kernel",
                    stuck.len()
                )),
                None => SyncOutcome::NoAnswer(format!(
                    "{} did not return within {} s (a failing or hung disk?)",
                    at.name(),
                    SYNC_DEADLINE.as_secs()
                )),
            };
            if let Some(u) = state.uplink.borrow_mut().as_mut() {
                u.outbox.sync_done(outcome);
            }
        }
    }
}
