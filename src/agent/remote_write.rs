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
//! | 2xx | stored; the batch (or this part of it) is done |
//! | 5xx, 429, timeout, reset | the same request again after the backoff (full jitter over 1 s doubling to 30 s), or after `Retry-After` where that is longer (at most 5 min); new records are spooled meanwhile |
//! | no DNS answer or no TCP connection | the same, and meanwhile the receiver is watched with a bare TCP connect every 1–3 s; the request goes as soon as one succeeds |
//! | 401, 403, 404 | not the samples' fault: nothing is split or set aside; the batch is held, the link shows `credentials_rejected` or `not_found`, the request goes again after a minute (at once after SIGHUP) |
//! | any other 4xx (413 too) | the request is halved, series first, and each half sent, until every refused sample stands alone: it goes to the dead-letter file, counted by reason; the other samples are stored |
//!
//! The search for refused samples is paced: its requests go at most every
//! [`SEARCH_PACE`], and each refusal spends one of the link's
//! [`SEARCH_CREDIT`] requests, while each stored part earns two back and a
//! sample refused alone for a fault of its own (too old, out of order,
//! duplicate, too large) one; with none left it goes on once a [`HOLD`]. A
//! batch with refused samples costs at most about refused × 2·log2(batch)
//! requests at that pace; a receiver that refuses everything for no such
//! reason gets [`SEARCH_CREDIT`] requests, then one a minute.
//!
//! Records of one series leave in the order they were made: the spool's
//! backlog before the ring (`uplink/outbox.rs`).

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::agent::receiver::{
    self, hold, retry_later, vocabulary, wait_or_probe, Kept, Lane, HOLD,
};
use crate::agent::state::AgentState;
use crate::config::RemoteWrite;
use crate::os::clock::unix_millis;
use crate::os::wake::Notify;
use crate::uplink::link::{LinkState, SEARCH_CREDIT};
use crate::uplink::outbox::Outgoing;
use crate::uplink::remote_write::series::{Batch, Context};
use crate::uplink::remote_write::wire::{self, Series};
use crate::uplink::remote_write::{self as rw_wire, Answer};
use crate::uplink::spool::Dest;

/// Samples a record gives at most (a heartbeat: info, status, severity,
/// overload, counts): a batch of `batch_max_samples / this` records never
/// holds more than `batch_max_samples` samples.
const SAMPLES_PER_RECORD: usize = 20;
/// The search for refused samples sends at most one request this often.
pub const SEARCH_PACE: Duration = Duration::from_millis(25);

/// The batch being delivered: the records (to give back) and the requests
/// still to send for them, next on top.
struct Held {
    out: Outgoing,
    todo: Vec<Vec<Series>>,
    /// Samples of it refused for good.
    refused: u64,
    /// A request of it was refused: the rest goes at the search's pace.
    searching: bool,
}

/// Runs for the life of the agent; idles while there is no `[remote_write]`.
/// Returns after its last flush once `state.stop_by` is set (SIGTERM).
pub async fn run(state: Rc<AgentState>) {
    receiver::run::<RemoteWriteLane>(state).await;
}

struct RemoteWriteLane;

impl Lane for RemoteWriteLane {
    type Config = RemoteWrite;
    type Held = Held;
    const DEST: Dest = Dest::RemoteWrite;

    fn config(state: &AgentState) -> Option<RemoteWrite> {
        state.config.borrow().remote_write.clone()
    }

    fn wake(state: &AgentState) -> &Notify {
        &state.remote
    }

    fn flush_interval(c: &RemoteWrite) -> Duration {
        c.flush_interval
    }

    fn timeout(c: &mut RemoteWrite) -> &mut Duration {
        &mut c.timeout
    }

    async fn turn(
        state: &Rc<AgentState>,
        c: &RemoteWrite,
        tick: bool,
        held: &mut Option<Held>,
    ) -> Option<Instant> {
        turn(state, c, tick, held).await
    }
}

/// One step: wait (or probe an unreached receiver), take a batch if none is
/// in hand and one is due, send its next request. `None` to go again at
/// once; otherwise when to look again at the latest.
async fn turn(
    state: &Rc<AgentState>,
    rw: &RemoteWrite,
    tick: bool,
    held: &mut Option<Held>,
) -> Option<Instant> {
    if let Some(wait) = wait_or_probe(state, Dest::RemoteWrite, &rw.url, rw.timeout).await {
        return Some(wait);
    }
    if held.is_none() {
        *held = take(state, rw, tick)?;
        if held.is_none() {
            return Some(Instant::now() + HOLD);
        }
    }
    let h = held.as_mut().expect("taken above");
    let request = h.todo.last()?;
    let n = request.iter().map(|s| s.samples.len()).sum::<usize>() as u64;
    let body = wire::body(request);
    let resolver = state.resolver.borrow().clone();
    let answer = rw_wire::push(rw, &resolver, &body).await;
    let spool_dir = state.config.borrow().spool.dir.clone();
    let mut guard = state.uplink.borrow_mut();
    let u = guard.as_mut()?;
    let now = Instant::now();
    let r = &mut u.remote;
    r.requests += 1;
    match answer {
        Answer::Stored => {
            h.todo.pop();
            r.samples_sent += n;
            if r.state != LinkState::Up && r.state != LinkState::Rejected {
                if r.consecutive_failures > 0 {
                    log::info!(
                        "remote_write {} answers again; {} records to send",
                        rw.url,
                        u.outbox.backlog_of(Dest::RemoteWrite)
                    );
                }
                r.state = LinkState::Up;
            }
            r.consecutive_failures = 0;
            r.unreached = false;
            r.last_success = Some(SystemTime::now());
            if h.searching {
                r.credit = (r.credit + 2).min(SEARCH_CREDIT);
                r.not_before = now + SEARCH_PACE;
            }
        }
        Answer::Retry {
            after,
            why,
            reached,
        } => {
            let n = (n, "samples");
            return Some(retry_later(
                u,
                Dest::RemoteWrite,
                &rw.url,
                n,
                after,
                why,
                reached,
            ));
        }
        Answer::Held(st, why) => {
            let not_found =
                "nothing at this URL takes remote-write requests; check [remote_write] url";
            return Some(hold(
                u,
                Dest::RemoteWrite,
                &rw.url,
                (n, "samples"),
                (st, why),
                not_found,
            ));
        }
        Answer::Rejected(code, why) => {
            let request = h.todo.pop().expect("checked");
            h.searching = true;
            if code != 413 {
                // Too large is no refusal of the samples: the state says
                // so only if one sample alone is too large.
                r.state = LinkState::Rejected;
            }
            r.failed(format!("refused: {why}"));
            let reason = reason_of(code, &why);
            // A sample refused alone for a fault of its own (too old, out
            // of order, ...) is what the search looks for: it earns, as a
            // stored part does. A store that refuses everything for no
            // such reason only spends.
            let had = r.credit;
            r.credit = if n == 1 && names_a_sample(reason) {
                (r.credit + 1).min(SEARCH_CREDIT)
            } else {
                r.credit.saturating_sub(1)
            };
            r.not_before = now + if r.credit > 0 { SEARCH_PACE } else { HOLD };
            if r.credit == 0 && had > 0 {
                log::warn!(
                    "remote_write {}: the receiver refuses most of what it is sent ({why}); the search for the refused samples slows to one request every {}s",
                    rw.url,
                    HOLD.as_secs()
                );
            }
            if n > 1 {
                let (a, b) = halves(request);
                h.todo.push(b);
                h.todo.push(a);
                log::debug!(
                    "remote_write {}: {why}; {n} samples sent again in halves",
                    rw.url
                );
            } else {
                r.state = LinkState::Rejected;
                r.reject(reason, n);
                h.refused += n;
                let kept = dead_letter(&spool_dir, &request, &why);
                r.dead_letters_discarded += kept.discarded;
                log::error!(
                    "remote_write {} refused a sample for good ({why}, counted as {reason}){}",
                    rw.url,
                    if kept.written {
                        format!(
                            "; it is set aside in {}",
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
        if done.refused == 0 {
            u.remote.state = LinkState::Up;
        }
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
    let labels = state.config.borrow().push_labels();
    let ctx = Context {
        agent: &agent,
        agent_id: &agent_id,
        labels: &labels,
        agent_statuses: &status_names,
        severities: &severity_names,
    };
    // Records that give no samples (gaps, check transitions) are passed
    // over without a request.
    loop {
        let Some(out) = u
            .outbox
            .next_ordered(Dest::RemoteWrite, max_records, now_ms)
        else {
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
            todo: vec![batch.into_series()],
            refused: 0,
            searching: false,
        }));
    }
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
pub const REASONS: [&str; 6] = [
    "too_old",
    "out_of_order",
    "duplicate",
    "too_large",
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
    } else if code == 413 {
        "too_large"
    } else if code == 400 {
        "bad_request"
    } else {
        "http_4xx"
    }
}

/// The receiver said what is wrong with the sample itself.
fn names_a_sample(reason: &str) -> bool {
    matches!(
        reason,
        "too_old" | "out_of_order" | "duplicate" | "too_large"
    )
}

/// Where refused samples are set aside, in the spool directory.
pub const DEAD_LETTER: &str = "remote-write-dead-letter.txt";

/// Appends refused samples (the search hands them over one at a time, so
/// each call writes a few hundred bytes), one `name{labels} value
/// timestamp_ms` line each after a `#` line saying when and why.
fn dead_letter(dir: &Path, request: &[Series], why: &str) -> Kept {
    let mut lines = String::new();
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
            lines.push_str(&format!("{name}{{{}}} {v} {t}\n", labels.join(",")));
        }
    }
    receiver::dead_letter(dir, DEAD_LETTER, why, &lines)
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
