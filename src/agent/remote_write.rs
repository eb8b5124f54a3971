//! The remote-write loop: one task on the one thread that turns the
//! outbox's records into remote-write requests, oldest first, and the
//! receiver's answers into the link's state and counts.
//!
//! Every `flush_interval` it sends what is waiting (and, without
//! `[upstream]`, queues the heartbeat whose series it sends); between ticks
//! it sends at once while a backlog drains or a full batch waits. One batch
//! is in hand at a time, and it is given back to the outbox only when the
//! receiver has answered for every sample in it:
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | stored; the batch is done |
//! | 5xx, 429, network, timeout | the same request again after the wait: `Retry-After` (≤ 5 min) or full jitter over 1 s doubling to 30 s; new records are spooled meanwhile |
//! | other 4xx | the request is halved and each half sent (at most [`SPLITS`] times per batch), so a sample the store refuses (too old, out of order) costs that sample, not its neighbours; a single sample refused, or the budget spent, goes to the dead-letter file and is counted by reason |
//!
//! Records of one series leave in the order they were made: the spool's
//! backlog before the ring, and never past the reconnect heartbeat the
//! upstream has in flight (`uplink/outbox.rs`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use futures_lite::FutureExt;

use crate::agent::health::{AgentStatus, Severity};
use crate::agent::state::AgentState;
use crate::config::RemoteWrite;
use crate::os::alarm::Alarm;
use crate::os::clock::{rfc3339_millis, unix_millis};
use crate::uplink::link::LinkState;
use crate::uplink::outbox::Outgoing;
use crate::uplink::remote_write::series::{Batch, Context};
use crate::uplink::remote_write::wire::{self, Series};
use crate::uplink::remote_write::{self as rw_wire, Answer};
use crate::uplink::spool::Dest;

/// Halvings allowed per batch after 4xx answers.
pub const SPLITS: u32 = 32;
/// The dead-letter file is rotated at this size (one older file is kept).
pub const DEAD_LETTER_MAX: u64 = 1 << 20;
/// Samples a record gives at most (a heartbeat: info, status, severity,
/// overload, counts): a batch of `batch_max_samples / this` records never
/// holds more than `batch_max_samples` samples.
const SAMPLES_PER_RECORD: usize = 20;

/// The batch being delivered: the records (to give back) and the requests
/// still to send for them, next on top.
struct Held {
    out: Outgoing,
    todo: Vec<Vec<Series>>,
    splits: u32,
}

/// Runs for the life of the agent; idles while there is no `[remote_write]`.
pub async fn run(state: Rc<AgentState>) {
    let alarm = Alarm::new();
    let mut next_tick = Instant::now();
    let mut held: Option<Held> = None;
    loop {
        let Some(rw) = state.config.borrow().remote_write.clone() else {
            held = None;
            state.remote.wait().await;
            continue;
        };
        if state.uplink.borrow().is_none() {
            state.ensure_uplink();
            if state.uplink.borrow().is_none() {
                state.remote.wait().await;
                continue;
            }
        }
        if let Some(wake_at) = turn(&state, &rw, &mut next_tick, &mut held).await {
            alarm
                .sleep_until(wake_at)
                .or(async {
                    state.remote.wait().await;
                })
                .await;
        }
    }
}

/// One step: take a batch if none is in hand and one is due, send its next
/// request. `None` to go again at once; otherwise when to look again.
async fn turn(
    state: &Rc<AgentState>,
    rw: &RemoteWrite,
    next_tick: &mut Instant,
    held: &mut Option<Held>,
) -> Option<Instant> {
    let now = Instant::now();
    let tick = now >= *next_tick;
    if tick {
        *next_tick = now + rw.flush_interval;
        if state.config.borrow().upstream.is_none() {
            // Without the control plane, this loop makes the heartbeats.
            let status = state.agent_status();
            let mut guard = state.uplink.borrow_mut();
            let u = guard.as_mut()?;
            let hb =
                crate::agent::delivery::heartbeat(state, status, u, unix_millis(SystemTime::now()));
            u.outbox.push(hb);
            if u.outbox.spooling() {
                u.outbox.spill();
            }
        }
    }
    let not_before = state.uplink.borrow().as_ref()?.remote.not_before;
    if now < not_before {
        return Some((*next_tick).min(not_before));
    }
    if held.is_none() {
        *held = take(state, rw, tick)?;
        if held.is_none() {
            return Some(*next_tick);
        }
    }
    let h = held.as_mut().expect("taken above");
    let request = h.todo.last()?;
    let n: usize = request.iter().map(|s| s.samples.len()).sum();
    let body = wire::body(request);
    let resolver = state.resolver.borrow().clone();
    let answer = rw_wire::push(rw, &resolver, &body).await;
    let spool_dir = state.config.borrow().spool.dir.clone();
    let mut guard = state.uplink.borrow_mut();
    let u = guard.as_mut()?;
    let now = Instant::now();
    u.remote.requests += 1;
    match answer {
        Answer::Stored => {
            h.todo.pop();
            u.remote.samples_sent += n as u64;
            if u.remote.state != LinkState::Up && u.remote.state != LinkState::Rejected {
                if u.remote.consecutive_failures > 0 {
                    log::info!(
                        "remote_write {} answers again; {} records to send",
                        rw.url,
                        u.outbox.backlog_of(Dest::RemoteWrite)
                    );
                }
                u.remote.state = LinkState::Up;
            }
            u.remote.consecutive_failures = 0;
            u.remote.last_success = Some(SystemTime::now());
        }
        Answer::Retry(after, why) => {
            let wait = after.unwrap_or_else(|| rw_wire::backoff(u.remote.consecutive_failures));
            if u.remote.consecutive_failures == 0 {
                log::warn!(
                    "remote_write {}: {why}; {n} samples are sent again in {}, records are spooled meanwhile",
                    rw.url,
                    crate::config::duration::format_coarse(wait)
                );
            } else {
                log::debug!("remote_write {}: {why}", rw.url);
            }
            u.remote.state = LinkState::Failing;
            u.remote.consecutive_failures += 1;
            u.remote.samples_retried += n as u64;
            u.remote.last_error = Some(why);
            u.remote.not_before = now + wait;
            u.outbox.failing(Dest::RemoteWrite);
            return Some(u.remote.not_before);
        }
        Answer::Rejected(code, why) => {
            let request = h.todo.pop().expect("checked");
            if n > 1 && h.splits > 0 {
                h.splits -= 1;
                let (a, b) = halves(request);
                h.todo.push(b);
                h.todo.push(a);
                log::debug!(
                    "remote_write {}: {why}; {n} samples sent again in halves",
                    rw.url
                );
            } else {
                let reason = reason_of(code, &why);
                u.remote.reject(reason, n as u64);
                u.remote.state = LinkState::Rejected;
                u.remote.last_error = Some(format!("refused: {why}"));
                let kept = dead_letter(&spool_dir, &request, &why);
                log::error!(
                    "remote_write {} refused {n} samples for good ({why}, counted as {reason}){}",
                    rw.url,
                    if kept {
                        format!(
                            "; they are set aside in {}",
                            spool_dir.join(DEAD_LETTER).display()
                        )
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    if h.todo.is_empty() {
        let done = held.take().expect("checked");
        u.outbox.acked_for(Dest::RemoteWrite, &done.out);
    }
    None
}

/// The next batch and its requests, if one is due: `Some(None)` when
/// nothing is, `None` when there is no outbox.
fn take(state: &Rc<AgentState>, rw: &RemoteWrite, tick: bool) -> Option<Option<Held>> {
    let (status_names, severity_names) = vocabulary();
    let agent = state.config.borrow().agent.name.clone();
    let mut guard = state.uplink.borrow_mut();
    let u = guard.as_mut()?;
    let max_records = (rw.batch_max_samples / SAMPLES_PER_RECORD).max(1);
    let due = tick
        || u.outbox.ring_len_of(Dest::RemoteWrite) >= max_records
        || u.outbox.spool_records_of(Dest::RemoteWrite) > 0;
    if !due {
        return Some(None);
    }
    let now_ms = unix_millis(SystemTime::now());
    let agent_id = u.identity.as_ref().map_or("", |s| s.as_str()).to_string();
    let ctx = Context {
        agent: &agent,
        agent_id: &agent_id,
        labels: &rw.labels,
        agent_statuses: &status_names,
        severities: &severity_names,
    };
    // Records that give no samples (gaps, check transitions) are passed
    // over without a request.
    loop {
        let Some(out) = u.outbox.next_remote(max_records, now_ms) else {
            return Some(None);
        };
        let mut batch = Batch::default();
        for r in &out.recs {
            batch.add(&r.body, r.time_ms, &ctx);
        }
        if batch.is_empty() {
            u.outbox.acked_for(Dest::RemoteWrite, &out);
            continue;
        }
        return Some(Some(Held {
            out,
            todo: vec![batch.series().to_vec()],
            splits: SPLITS,
        }));
    }
}

fn vocabulary() -> (Vec<&'static str>, Vec<&'static str>) {
    (
        AgentStatus::ALL.iter().map(|s| s.as_str()).collect(),
        Severity::ALL.iter().map(|s| s.as_str()).collect(),
    )
}

/// A request in two, in order: the first half of its series (or of its one
/// series' samples) first.
fn halves(mut request: Vec<Series>) -> (Vec<Series>, Vec<Series>) {
    if request.len() > 1 {
        let b = request.split_off(request.len() / 2);
        return (request, b);
    }
    let mut s = request.pop().unwrap_or_default();
    let b = s.split_off(s.samples.len() / 2);
    (vec![s], vec![b])
}

/// Every reason [`reason_of`] gives.
pub const REASONS: [&str; 5] = [
    "too_old",
    "out_of_order",
    "duplicate",
    "bad_request",
    "http_4xx",
];

/// The counter label for a refusal, from what the receiver said.
fn reason_of(code: u16, why: &str) -> &'static str {
    let w = why.to_ascii_lowercase();
    if w.contains("out of bounds") || w.contains("too old") || w.contains("too far in the past") {
        "too_old"
    } else if w.contains("out of order") {
        "out_of_order"
    } else if w.contains("duplicate") {
        "duplicate"
    } else if code == 400 {
        "bad_request"
    } else {
        "http_4xx"
    }
}

/// Where refused samples are set aside, in the spool directory.
pub const DEAD_LETTER: &str = "remote-write-dead-letter.txt";

/// Appends refused samples, one `name{labels} value timestamp_ms` line
/// each after a `#` line saying when and why; rotated at
/// [`DEAD_LETTER_MAX`] (one older file kept). `false` if nothing could be
/// written (logged).
fn dead_letter(dir: &Path, request: &[Series], why: &str) -> bool {
    let path = dir.join(DEAD_LETTER);
    let mut text = format!(
        "# {} {}\n",
        rfc3339_millis(unix_millis(SystemTime::now())),
        crate::format::text::clip(why, 400).replace('\n', " ")
    );
    for s in request {
        let all = s.labels();
        let name = all
            .iter()
            .find(|(k, _)| k == "__name__")
            .map_or("", |(_, v)| v);
        let labels: Vec<String> = all
            .iter()
            .filter(|(k, _)| k != "__name__")
            .map(|(k, v)| format!("{k}=\"{}\"", crate::format::text::label_value(v)))
            .collect();
        for (v, t) in &s.samples {
            text.push_str(&format!("{name}{{{}}} {v} {t}\n", labels.join(",")));
        }
    }
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    if size + text.len() as u64 > DEAD_LETTER_MAX {
        let _ = std::fs::rename(&path, dir.join(format!("{DEAD_LETTER}.1")));
    }
    let r = std::fs::create_dir_all(dir).and_then(|()| {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?
            .write_all(text.as_bytes())
    });
    match r {
        Ok(()) => true,
        Err(e) => {
            log::error!("cannot write {}: {e}", path.display());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, n: usize) -> Series {
        Series::new(
            [("__name__", name)],
            (0..n).map(|i| (i as f64, i as i64)).collect(),
        )
    }

    #[test]
    fn halves_keep_every_sample_in_order() {
        let (a, b) = halves(vec![s("a", 1), s("b", 2), s("c", 3)]);
        assert_eq!((a.len(), b.len()), (1, 2));
        let (a, b) = halves(vec![s("a", 5)]);
        assert_eq!(a[0].samples.len() + b[0].samples.len(), 5);
        assert!(a[0].samples.last().unwrap().1 < b[0].samples[0].1);
    }

    #[test]
    fn refusals_are_named_by_what_the_store_said() {
        assert_eq!(reason_of(400, "HTTP 400: out of bounds"), "too_old");
        assert_eq!(reason_of(400, "out of order sample"), "out_of_order");
        assert_eq!(
            reason_of(400, "duplicate sample for timestamp"),
            "duplicate"
        );
        assert_eq!(reason_of(400, "nonsense"), "bad_request");
        assert_eq!(reason_of(422, "x"), "http_4xx");
    }

    #[test]
    fn wait_is_bounded() {
        assert!(rw_wire::backoff(100) <= std::time::Duration::from_secs(30));
    }
}
