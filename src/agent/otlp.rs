//! The OTLP loop: one task on the one thread that turns the outbox's
//! records into OTLP/HTTP export requests, oldest first, and the
//! receiver's answers into the link's state and counts.
//!
//! Every `flush_interval` it sends what is waiting (and, without
//! `[upstream]` and `[remote_write]`, queues the heartbeat whose points it
//! sends); between ticks it sends at once while a backlog drains or a full
//! batch waits. One batch is in hand at a time, given back to the outbox
//! only when the receiver has answered for every point in it:
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | stored; a `partial_success` names points it rejected: counted (`partial_success`) and logged with its message, not sent again |
//! | 429, 502, 503, 504, timeout, reset | the same request again after the backoff (full jitter over 1 s doubling to 30 s), or after `Retry-After` where that is longer (at most 5 min); new records are spooled meanwhile |
//! | no DNS answer or no TCP connection | the same, and meanwhile the receiver is watched with a bare TCP connect every 1–3 s; the request goes as soon as one succeeds |
//! | 401, 403, 404 | not the points' fault: the batch is held, the link shows `credentials_rejected` or `not_found`, the request goes again after a minute (at once after SIGHUP) |
//! | 413 | the request is halved, by records, and each half sent; a single record still too large is refused |
//! | 3xx (redirects are not followed) | retried as a 503 is |
//! | any other 4xx or 5xx | refused: the request's points go to the dead-letter file, counted by reason; the next request waits the backoff, so a receiver that refuses everything gets one request a second at most, doubling to one each 30 s |
//!
//! Records leave in the order they were made: the spool's backlog before
//! the ring (`uplink/outbox.rs`).

use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::agent::receiver::{self, hold, retry_later, vocabulary, wait_or_probe, Lane, HOLD};
use crate::agent::state::AgentState;
use crate::config::Otlp;
use crate::os::clock::unix_millis;
use crate::os::wake::Notify;
use crate::uplink::link::LinkState;
use crate::uplink::otlp::points::{Batch, Context};
use crate::uplink::otlp::resource::{attributes, Identity};
use crate::uplink::otlp::wire::{export_request, Metric, Origin};
use crate::uplink::otlp::{self as otlp_wire, Answer, Body};
use crate::uplink::outbox::Outgoing;
use crate::uplink::remote_write::backoff;
use crate::uplink::spool::Dest;

const D: Dest = Dest::Otlp;

/// Points a record gives at most (a heartbeat): a batch of
/// `batch_max_points / this` records never holds more than
/// `batch_max_points` points.
pub const POINTS_PER_RECORD: usize = 20;
/// Where refused points are set aside, in the spool directory.
pub const DEAD_LETTER: &str = "otlp-dead-letter.txt";

/// Every reason a refusal is counted under.
pub const REASONS: [&str; 5] = [
    "bad_request",
    "too_large",
    "http_4xx",
    "http_5xx",
    "partial_success",
];

/// The batch being delivered: its records (to give back), the record
/// ranges still to send (next on top; a 413 halves one), and the
/// request for the top range once encoded.
struct Held {
    out: Outgoing,
    todo: Vec<Range<usize>>,
    /// The top range's request: its body and its points.
    request: Option<(Body, u64)>,
    /// The resource its requests carry.
    resource: Vec<(String, String)>,
    refused: u64,
}

/// Runs for the life of the agent; idles while there is no `[otlp]`.
/// Returns after its last flush once `state.stop_by` is set (SIGTERM).
pub async fn run(state: Rc<AgentState>) {
    receiver::run::<OtlpLane>(state).await;
}

struct OtlpLane;

impl Lane for OtlpLane {
    type Config = Otlp;
    type Held = Held;
    const DEST: Dest = D;

    fn config(state: &AgentState) -> Option<Otlp> {
        state.config.borrow().otlp.clone()
    }

    fn wake(state: &AgentState) -> &Notify {
        &state.otlp
    }

    fn flush_interval(c: &Otlp) -> Duration {
        c.flush_interval
    }

    fn timeout(c: &mut Otlp) -> &mut Duration {
        &mut c.timeout
    }

    async fn turn(
        state: &Rc<AgentState>,
        c: &Otlp,
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
    o: &Otlp,
    tick: bool,
    held: &mut Option<Held>,
) -> Option<Instant> {
    if let Some(wait) = wait_or_probe(state, D, &o.url, o.timeout).await {
        return Some(wait);
    }
    if held.is_none() {
        *held = take(state, o, tick)?;
        if held.is_none() {
            return Some(Instant::now() + HOLD);
        }
    }
    let h = held.as_mut().expect("taken above");
    let range = h.todo.last()?.clone();
    if h.request.is_none() {
        let metrics = metrics_of_recs(&h.out, range.clone());
        let n = metrics.iter().map(|m| m.points.len()).sum::<usize>() as u64;
        h.request = Some((Body::new(request_body(&h.resource, &metrics), o.gzip), n));
    }
    let (body, n) = h.request.as_ref().expect("made above");
    let n = *n;
    let resolver = state.resolver.borrow().clone();
    let answer = otlp_wire::push(o, &resolver, body).await;
    let spool_dir = state.config.borrow().spool.dir.clone();
    let mut guard = state.uplink.borrow_mut();
    let u = guard.as_mut()?;
    let now = Instant::now();
    let r = &mut u.otlp;
    r.requests += 1;
    match answer {
        Answer::Stored { rejected, message } => {
            h.todo.pop();
            h.request = None;
            let rejected = rejected.min(n);
            r.samples_sent += n - rejected;
            if r.consecutive_failures > 0 && r.state != LinkState::Rejected {
                log::info!(
                    "otlp {} answers again; {} records to send",
                    o.url,
                    u.outbox.backlog_of(D)
                );
            }
            if r.state != LinkState::Rejected {
                r.state = LinkState::Up;
            }
            r.consecutive_failures = 0;
            r.unreached = false;
            r.last_success = Some(SystemTime::now());
            if rejected > 0 {
                r.state = LinkState::Rejected;
                r.reject("partial_success", rejected);
                h.refused += rejected;
                let why = if message.is_empty() {
                    "no message".to_string()
                } else {
                    message
                };
                r.failed(format!("rejected {rejected} of {n} points: {why}"));
                log::warn!(
                    "otlp {} stored a request but rejected {rejected} of its {n} points ({why}); they are counted, not sent again",
                    o.url
                );
            }
        }
        Answer::Retry {
            after,
            why,
            reached,
        } => {
            let n = (n, "points");
            return Some(retry_later(u, D, &o.url, n, after, why, reached));
        }
        Answer::Held(st, why) => {
            let not_found = "nothing at this URL takes OTLP metrics; check [otlp] url (a Collector: …:4318/v1/metrics)";
            return Some(hold(u, D, &o.url, (n, "points"), (st, why), not_found));
        }
        Answer::Rejected(code, why) => {
            h.todo.pop();
            h.request = None;
            // The next request waits the backoff: a receiver that refuses
            // everything is not sent the whole backlog at once.
            r.not_before = now + backoff(r.consecutive_failures);
            r.consecutive_failures += 1;
            r.failed(format!("refused: {why}"));
            if code == 413 && range.len() > 1 {
                let mid = range.start + range.len() / 2;
                h.todo.push(mid..range.end);
                h.todo.push(range.start..mid);
                log::warn!(
                    "otlp {}: {why}; the {n} points are sent again in halves",
                    o.url
                );
            } else {
                let reason = reason_of(code);
                r.state = LinkState::Rejected;
                r.reject(reason, n);
                h.refused += n;
                let lines = dead_letter_lines(&metrics_of_recs(&h.out, range));
                let kept = receiver::dead_letter(&spool_dir, DEAD_LETTER, &why, &lines);
                r.dead_letters_discarded += kept.discarded;
                log::error!(
                    "otlp {} refused {n} points for good ({why}, counted as {reason}){}",
                    o.url,
                    if kept.written {
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
        if done.refused == 0 {
            u.otlp.state = LinkState::Up;
        }
        u.outbox.acked_for(D, &done.out);
    }
    None
}

/// The counter label for a refusal by HTTP status.
fn reason_of(code: u16) -> &'static str {
    match code {
        400 => "bad_request",
        413 => "too_large",
        500..=599 => "http_5xx",
        _ => "http_4xx",
    }
}

/// The next batch, if one is due: `Some(None)` when nothing is, `None`
/// when there is no outbox.
fn take(state: &Rc<AgentState>, o: &Otlp, tick: bool) -> Option<Option<Held>> {
    let mut guard = state.uplink.borrow_mut();
    let u = guard.as_mut()?;
    let max_records = (o.batch_max_points / POINTS_PER_RECORD).max(1);
    let due = tick || u.outbox.ring_len_of(D) >= max_records || u.outbox.spool_records_of(D) > 0;
    if !due {
        return Some(None);
    }
    let now_ms = unix_millis(SystemTime::now());
    // Records that give no points (gaps, check transitions) are passed
    // over without a request.
    loop {
        let Some(out) = u.outbox.next_ordered(D, max_records, now_ms) else {
            return Some(None);
        };
        let all = 0..out.recs.len();
        let metrics = metrics_of_recs(&out, all.clone());
        let points = metrics.iter().map(|m| m.points.len()).sum::<usize>() as u64;
        if points == 0 {
            u.outbox.acked_for(D, &out);
            continue;
        }
        // Made once a request is due: the host name is read each time,
        // so a renamed host shows in the next request.
        let agent_id = u.identity.as_ref().map_or("", |s| s.as_str());
        let c = state.config.borrow();
        let resource = attributes(&Identity {
            agent: &c.agent.name,
            agent_id,
            host_name: &crate::config::host_name(),
            os_release: &state.os_release,
            labels: &c.agent.labels,
            extra: &o.resource,
        });
        drop(c);
        let body = Body::new(request_body(&resource, &metrics), o.gzip);
        return Some(Some(Held {
            out,
            todo: vec![all],
            request: Some((body, points)),
            resource,
            refused: 0,
        }));
    }
}

/// The metrics of records `range` of `out`.
fn metrics_of_recs(out: &Outgoing, range: Range<usize>) -> Vec<Metric> {
    let (statuses, severities) = vocabulary();
    let ctx = Context {
        agent_statuses: &statuses,
        severities: &severities,
    };
    let mut b = Batch::default();
    for r in out.recs.get(range).unwrap_or_default() {
        b.add(&r.body, r.time_ms, &ctx);
    }
    b.into_metrics()
}

/// An `ExportMetricsServiceRequest` from this resource, scope `tether`.
pub fn request_body(resource: &[(String, String)], metrics: &[Metric]) -> Vec<u8> {
    export_request(
        &Origin {
            resource,
            scope_name: "tether",
            scope_version: env!("CARGO_PKG_VERSION"),
        },
        metrics,
    )
}

/// One `name{attributes} value time_unix_nano` line per point.
fn dead_letter_lines(metrics: &[Metric]) -> String {
    let mut out = String::new();
    for m in metrics {
        for p in &m.points {
            let attrs: Vec<String> = p
                .all_attributes()
                .map(|(k, v)| format!("{k}=\"{}\"", crate::format::text::label_value(v)))
                .collect();
            out.push_str(&format!(
                "{}{{{}}} {} {}\n",
                m.name,
                attrs.join(","),
                p.value,
                p.time_ns
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_named_by_status() {
        assert_eq!(reason_of(400), "bad_request");
        assert_eq!(reason_of(413), "too_large");
        assert_eq!(reason_of(500), "http_5xx");
        assert_eq!(reason_of(422), "http_4xx");
        for r in [400, 413, 500, 422].map(reason_of) {
            assert!(REASONS.contains(&r));
        }
    }
}
