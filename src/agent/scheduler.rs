//! The fixed-cycle scheduler. One loop on the one thread wakes at the earliest
//! due slot (and at least once per agent interval, the heartbeat `/health`
//! watches), starts every due check as its own task, and goes back to sleep.
//!
//! Check i runs at t0 + offset_i + k·interval: the next slot is computed from
//! the previous slot, not from when a probe finished, so the schedule never
//! drifts. A check never overlaps itself: its deadline is slot + timeout and
//! the configuration guarantees timeout < interval; a slot that arrives while
//! a run is still in flight is skipped. The scheduler, not the probe, owns the
//! deadline, the duration and the timeout reason: every probe is raced
//! against a timer here, once for all kinds.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use async_executor::{LocalExecutor, Task};
use futures_lite::FutureExt;

use crate::agent::limit::Limit;
use crate::agent::maintenance;
use crate::agent::state::AgentState;
use crate::config::Check;
use crate::net::connect::Context;
use crate::net::resolve::Resolver;
use crate::os::alarm::until;
use crate::os::alarm::Alarm;
use crate::outcome::{Outcome, Phase, Reason, Report, Status, Trace};
use crate::probe;

/// Runs forever; drop the task to stop it.
pub async fn run(ex: &'static LocalExecutor<'static>, state: Rc<AgentState>) {
    let mut flag_checked: Option<Instant> = None;
    // systemd: WATCHDOG=1 from this loop, so a stuck loop goes unpinged;
    // STATUS= looked at once a second (and at once on a status change).
    let mut next_ping = Instant::now();
    let mut next_status = Instant::now();
    let alarm = Alarm::new();
    loop {
        let now = Instant::now();
        state.last_turn.set(now);
        let mut wake = now + state.config.borrow().agent.interval;
        if let Some(period) = state.systemd.watchdog {
            if now >= next_ping {
                state.systemd.watchdog_ping();
                next_ping = now + period;
            }
            wake = wake.min(next_ping);
        }
        if state.systemd.enabled() {
            if now >= next_status {
                state.notify_status();
                next_status = now + Duration::from_secs(1);
            }
            wake = wake.min(next_status);
        }
        // exec children killed at their deadline and not yet reaped.
        crate::os::process::reap_orphans();
        // The maintenance flag is a stat(2): look at most once a second.
        if flag_checked.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            flag_checked = Some(now);
            refresh_maintenance(&state);
        }
        {
            let mut checks = state.checks.borrow_mut();
            for c in checks.iter_mut() {
                if c.next <= now {
                    let slot = c.next;
                    if c.running {
                        state.skipped.set(state.skipped.get() + 1);
                        log::debug!(
                            "check {}: still running at its next slot, slot skipped",
                            c.spec.name
                        );
                    } else {
                        c.running = true;
                        spawn_run(ex, &state, c.spec.clone(), slot).detach();
                    }
                    c.next = next_slot(slot, c.spec.interval, now);
                }
                wake = wake.min(c.next);
            }
        }
        alarm
            .sleep_until(wake)
            .or(async {
                state.wake.wait().await;
            })
            .await;
    }
}

fn refresh_maintenance(state: &AgentState) {
    let dir = state.config.borrow().agent.state_dir.clone();
    // A stat each turn; the file is read only while it exists.
    let flag = if maintenance::flag_path(&dir).exists() {
        maintenance::read(&dir)
    } else {
        None
    };
    let now = SystemTime::now();
    let mut ended = "maintenance ended (tether enable)".to_string();
    if let Some(f) = flag.as_ref().filter(|f| f.expired(now)) {
        ended = format!("maintenance ended by itself (it was {})", f.describe());
        if let Err(e) = maintenance::enable(&dir) {
            log::error!("cannot remove the expired maintenance flag: {e}");
        }
    }
    let flag = flag.filter(|f| !f.expired(now));
    let disabled = flag.is_some();
    if disabled && *state.maintenance.borrow() != flag {
        *state.maintenance.borrow_mut() = flag.clone();
    }
    if disabled != state.disabled.get() {
        match &flag {
            Some(f) => log::warn!("maintenance mode on: {}; nothing is alarmed", f.describe()),
            None => log::warn!("{ended}"),
        }
        if !disabled {
            *state.maintenance.borrow_mut() = None;
            *state.maintenance_ended.borrow_mut() = Some(ended);
        }
        state.disabled.set(disabled);
        // The transition, with its reason, now: not at the next result.
        state.observe_status();
    }
}

/// The first slot after `now` on the grid `slot + k·interval`.
pub fn next_slot(slot: Instant, interval: Duration, now: Instant) -> Instant {
    let behind = now.saturating_duration_since(slot);
    let k = behind.as_nanos() / interval.as_nanos().max(1) + 1;
    slot + interval * k as u32
}

/// One run of one check: wait for an in-flight permit, race the probe against
/// `slot + timeout`, and time it.
pub async fn run_check(spec: &Check, resolver: &Resolver, limit: &Limit, slot: Instant) -> Outcome {
    let deadline = slot + spec.timeout;
    let permit = until(deadline, limit.acquire()).await;
    let start = Instant::now();
    let trace = Trace::new(start);
    let report = match permit {
        None => Report::new(
            Status::Unknown,
            Some(Reason::InFlightLimit),
            "could not start before its deadline: the in-flight cap (max_in_flight) was full",
        ),
        Some(_permit) => {
            let ctx = Context { resolver, deadline };
            let report = until(deadline, probe::run(&spec.probe, &ctx, &trace)).await;
            match (report, trace.waiting_on()) {
                (Some(r), _) => r,
                (None, Some(call)) => Report::crit(
                    Reason::FsTimeout,
                    format!(
                        "no result within {}: {call} did not return (a hung mount or a failing disk?)",
                        crate::config::duration::format(spec.timeout),
                    ),
                ),
                (None, None) => {
                    let phase = trace.current();
                    let during = phase.map_or(String::new(), |p| format!(" during {}", p.as_str()));
                    let with = trace.peer().map_or(String::new(), |p| format!(" ({p})"));
                    Report::crit(
                        Phase::timeout_reason(phase),
                        format!(
                            "no result within {}{during}{with}",
                            crate::config::duration::format(spec.timeout)
                        ),
                    )
                }
            }
        }
    };
    let (duration, phases, peer) = trace.finish(Instant::now());
    Outcome {
        status: report.status,
        reason: report.reason,
        message: report.message,
        duration,
        phases,
        peer,
        at: SystemTime::now(),
        detail: report.detail,
        late: start.saturating_duration_since(slot),
    }
}

/// One run of `spec` at `slot` as its own task, recorded into `state` when done.
fn spawn_run(
    ex: &'static LocalExecutor<'static>,
    state: &Rc<AgentState>,
    spec: Rc<Check>,
    slot: Instant,
) -> Task<()> {
    let state = state.clone();
    ex.spawn(async move {
        let resolver = state.resolver.borrow().clone();
        let limit = state.limit.borrow().clone();
        let outcome = run_check(&spec, &resolver, &limit, slot).await;
        log_outcome(&spec, &outcome);
        state.record(&spec, outcome);
    })
}

/// Runs every check once, concurrently under the cap (`tether check`).
pub async fn run_all_once(ex: &'static LocalExecutor<'static>, state: &Rc<AgentState>) {
    let specs: Vec<Rc<Check>> = state
        .checks
        .borrow()
        .iter()
        .map(|c| c.spec.clone())
        .collect();
    let now = Instant::now();
    let tasks: Vec<Task<()>> = specs
        .into_iter()
        .map(|spec| spawn_run(ex, state, spec, now))
        .collect();
    for t in tasks {
        t.await;
    }
}

fn log_outcome(spec: &Check, o: &Outcome) {
    let reason = o.reason.map_or("", |r| r.code());
    log::debug!(
        "check {}: {} {reason} in {:?}: {}",
        spec.name,
        o.status.as_str(),
        o.duration,
        o.message
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_slot_stays_on_the_grid() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        assert_eq!(next_slot(t0, s, t0), t0 + s);
        assert_eq!(next_slot(t0, s, t0 + Duration::from_millis(300)), t0 + s);
        // Fell behind by 2.5 intervals: skip to the next grid point, no burst.
        assert_eq!(
            next_slot(t0, s, t0 + Duration::from_millis(2_500)),
            t0 + 3 * s
        );
    }
}
