//! The delivery loop: one task on the one thread that turns the outbox into
//! uploads and the upstream's answers into the agent's upstream state.
//!
//! Every `flush_interval` it queues a heartbeat and flushes. Between ticks it
//! uploads at once when the ring holds a full batch, when the agent's status
//! changed, or while a backlog drains. After a failure, and on start, the
//! next upload is a fresh heartbeat alone: when the upstream answers again,
//! the current state is the first thing it hears.
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | acknowledged; the link is up |
//! | 429, 503 | spool; wait `Retry-After` (≤ 5 min) or back off |
//! | other 5xx, network, garbage | spool; back off: full jitter, 1 s doubling to 15 s |
//! | 401, 403 | spool; `needs_recovery`; retry every 5 min and on SIGHUP |
//! | 409 | spool; `version_unsupported`; retry every 5 min |
//! | 413 | halve the batch size and retry at once (at most log2 of it in a row) |
//! | 413 for one record, other 4xx | spool; `rejected`, back off; the batch goes to the dead-letter file and a `rejected` gap is queued |
//!
//! Gap records travel in batches of their own, so a receiver that refuses
//! a batch for one bad record never takes the gap records with it. A batch
//! of gap records that is refused is kept (never dead-lettered) and tried
//! again after the backoff, until the receiver takes it.
//!
//! Every answer but a 2xx goes through a wait: no answer, in any link
//! state, makes the loop send again at once (but the bounded 413 halving).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use futures_lite::FutureExt;

use crate::agent::health::{AgentStatus, Severity};
use crate::agent::state::AgentState;
use crate::config::Upstream;
use crate::os::alarm::Alarm;
use crate::os::clock::{rfc3339_millis, unix_millis};
use crate::uplink::link::{LinkState, Uplink};
use crate::uplink::outbox::{Outgoing, Source};
use crate::uplink::record::{self, Body, Gap, GapReason};
use crate::uplink::spool::Dest;
use crate::uplink::upstream::{self, Answer, Upload};

/// Retry period after the upstream refused our credentials or version.
pub const REFUSED_RETRY: Duration = Duration::from_secs(300);
/// The dead-letter file is rotated at this size (one older file is kept).
pub const DEAD_LETTER_MAX: u64 = 1 << 20;
/// The last upload attempt at SIGTERM.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

/// `type = "heartbeat"`: the whole current state.
/// `status` comes from [`AgentState::agent_status`], read before `u` was
/// borrowed.
pub fn heartbeat(
    state: &AgentState,
    (status, severity): (AgentStatus, Severity),
    u: &Uplink,
    now_ms: u64,
) -> Body {
    let mut b = Body::new(now_ms, "heartbeat");
    let j = b.json();
    j.str(Some("agent"), &state.config.borrow().agent.name)
        .str(Some("version"), env!("CARGO_PKG_VERSION"))
        .str(Some("os_release"), &state.os_release)
        .str(Some("status"), status.as_str())
        .str(Some("severity"), severity.as_str())
        .uint(Some("backlog_records"), u.outbox.backlog_records())
        .uint(Some("backlog_bytes"), u.outbox.backlog_bytes())
        .uint(Some("dropped"), u.outbox.dropped)
        // Since when `dropped` counts: an OTLP counter's start time.
        .uint(
            Some("process_start_ms"),
            crate::os::clock::unix_millis(state.started),
        )
        .uint(Some("dead_lettered"), u.dead_lettered)
        .bool(Some("spool_degraded"), u.outbox.disk_error.is_some())
        .opt_str(
            Some("durability_lost"),
            state.durability_lost_of(Some(u)).map(|d| d.reason),
        )
        .bool(Some("overloaded"), overloaded(state))
        .opt_str(
            Some("config_revision"),
            state
                .remote_config
                .borrow()
                .running
                .as_ref()
                .map(|(r, _)| r.as_str()),
        )
        .str(Some("config_hash"), &state.config_hash.borrow())
        .float(
            Some("heartbeat_interval_seconds"),
            state.heartbeat_interval(),
        );
    let config = state.config.borrow();
    let receivers = [
        (
            Dest::RemoteWrite,
            config.remote_write.as_ref().map(|r| &r.url),
            "samples",
        ),
        (Dest::Otlp, config.otlp.as_ref().map(|o| &o.url), "points"),
    ];
    for (d, url, what) in receivers {
        let Some(url) = url else { continue };
        let v = u.receiver_view(d, url.to_string(), SystemTime::now());
        j.begin_object(Some(d.as_str()))
            .str(Some("state"), v.state.as_str())
            .uint(Some("backlog_records"), v.backlog_records)
            .uint(Some(&format!("{what}_sent")), v.samples_sent)
            .uint(Some(&format!("{what}_retried")), v.samples_retried)
            .uint(
                Some(&format!("{what}_rejected")),
                u.receiver(d).rejected_total(),
            )
            .uint(Some("records_lost"), v.records_lost)
            .end_object();
    }
    drop(config);
    j.begin_array(Some("checks"));
    for c in state.checks.borrow().iter() {
        j.begin_object(None)
            .str(Some("name"), &c.spec.name)
            .str(
                Some("status"),
                c.health.status.map_or("pending", |s| s.as_str()),
            )
            .end_object();
    }
    j.end_array();
    b
}

/// A system check's CPU is at or above its `warn_percent`.
fn overloaded(state: &AgentState) -> bool {
    state.checks.borrow().iter().any(|c| c.health.overloaded())
}

/// Runs for the life of the agent; idles while there is no `[upstream]`.
pub async fn run(state: Rc<AgentState>) {
    let alarm = Alarm::new();
    let mut next_tick = Instant::now();
    loop {
        let Some(up) = state.config.borrow().upstream.clone() else {
            state.deliver.wait().await;
            continue;
        };
        if let Some(wake_at) = turn(&state, &up, &mut next_tick).await {
            alarm
                .sleep_until(wake_at)
                .or(async {
                    state.deliver.wait().await;
                })
                .await;
        }
    }
}

/// One decision: queue a heartbeat if due, upload if there is reason to.
/// `None` after an upload; otherwise when to look again.
async fn turn(state: &Rc<AgentState>, up: &Upstream, next_tick: &mut Instant) -> Option<Instant> {
    let (out, id) = match prepare(state, up, next_tick) {
        Ok(batch) => batch,
        Err(wake) => return Some(wake),
    };
    // The agent's labels as configured now; a check's own are in its
    // records (`label.NAME`), kept from when they were made.
    let labels = record::labels_field(&state.config.borrow().agent.labels);
    let mut body = Vec::with_capacity(
        out.recs
            .iter()
            .map(|r| r.body.len() + labels.len() + 64)
            .sum(),
    );
    for r in &out.recs {
        record::write_line(&mut body, &id, r.seq, &labels, &r.body);
    }
    let upload = Upload {
        agent_id: &id,
        first_seq: out.recs.first().map_or(0, |r| r.seq),
        last_seq: out.recs.last().map_or(0, |r| r.seq),
        body: &body,
    };
    let resolver = state.resolver.borrow().clone();
    let answer = upstream::post(up, &resolver, &upload).await;
    {
        let config = state.config.borrow();
        let sent = Sent {
            first_seq: upload.first_seq,
            last_seq: upload.last_seq,
            id: &id,
            spool_dir: &config.spool.dir,
        };
        let mut guard = state.uplink.borrow_mut();
        let u = guard.as_mut().expect("created in prepare");
        answered(u, up, out, &sent, answer, Instant::now());
    }
    state.observe_status();
    None
}

/// The batch to upload now and the id to send it under, or when to wake:
/// queues the tick's heartbeat and reports drops on the way.
fn prepare(
    state: &Rc<AgentState>,
    up: &Upstream,
    next_tick: &mut Instant,
) -> Result<(Outgoing, String), Instant> {
    if state.uplink.borrow().is_none() {
        state.ensure_uplink();
    }
    let now = Instant::now();
    let now_ms = unix_millis(SystemTime::now());
    let tick = now >= *next_tick;
    if tick {
        *next_tick = now + up.flush_interval;
    }
    let status = state.agent_status();
    let mut guard = state.uplink.borrow_mut();
    let u = guard.as_mut().expect("created above");
    let probe_now = u.state != LinkState::Up && u.identity.is_ok() && now >= u.not_before;
    // A probe carries a fresh heartbeat itself.
    if tick && !probe_now {
        let hb = heartbeat(state, status, u, now_ms);
        u.outbox.push(hb);
        if u.outbox.spooling() {
            u.outbox.spill();
        }
    }
    u.outbox.report_drops(now_ms);
    let id = match &u.identity {
        Ok(id) => id.clone(),
        Err(_) => {
            // Nothing can be sent: keep everything on disk.
            u.outbox.spool_from_now();
            drop(guard);
            state.observe_status();
            return Err(*next_tick);
        }
    };
    let urgent = u.urgent.replace(false);
    if now < u.not_before {
        // Wake for the next tick, the end of the wait, or the moment the
        // outage turns the agent offline.
        let offline_at = u
            .failing_since
            .map(|t| t + up.offline_after)
            .filter(|t| *t > now);
        let wake = (*next_tick).min(u.not_before);
        drop(guard);
        state.observe_status();
        return Err(offline_at.map_or(wake, |o| wake.min(o)));
    }
    let due = tick
        || urgent
        || probe_now
        || u.outbox.ring_len() >= u.batch_limit
        || u.outbox.spool_records() > 0;
    if !due {
        return Err(*next_tick);
    }
    let batch = if probe_now {
        let hb = heartbeat(state, status, u, now_ms);
        Some(u.outbox.make_fresh(hb))
    } else {
        u.outbox
            .next_batch(u.batch_limit, up.batch_max_bytes, now_ms)
    };
    batch.map(|b| (b, id)).ok_or(*next_tick)
}

/// What went up, for the answer's bookkeeping.
struct Sent<'a> {
    first_seq: u64,
    last_seq: u64,
    id: &'a str,
    spool_dir: &'a Path,
}

impl Sent<'_> {
    /// `first-last`, for log lines.
    fn range(&self) -> String {
        format!("{}-{}", self.first_seq, self.last_seq)
    }
}

/// Applies the upstream's answer to the link and the outbox (the table at
/// the top of this file).
fn answered(
    u: &mut Uplink,
    up: &Upstream,
    out: Outgoing,
    sent: &Sent,
    answer: Answer,
    now: Instant,
) {
    let n = out.recs.len() as u64;
    match answer {
        Answer::Acked => acked(u, up, &out, now),
        Answer::TooLarge(_) if n > 1 => {
            u.batch_limit = (n as usize / 2).max(1);
            log::warn!(
                "upstream: HTTP 413 for {n} records ({}); batches are now at most {}",
                sent.range(),
                u.batch_limit
            );
            if let Source::Fresh = out.source {
                u.outbox.failed(out);
            }
        }
        Answer::TooLarge(m) => refused(u, up, out, sent, format!("{m} (for a single record)"), now),
        Answer::Rejected(_, m) => refused(u, up, out, sent, m, now),
        other => failed(u, up, out, other, now),
    }
}

/// 2xx: the link is up.
fn acked(u: &mut Uplink, up: &Upstream, out: &Outgoing, now: Instant) {
    let n = out.recs.len() as u64;
    if u.state != LinkState::Up {
        let outage = u
            .failing_since
            .map(|t| {
                format!(
                    " after {}",
                    crate::config::duration::format_coarse(now.duration_since(t))
                )
            })
            .unwrap_or_default();
        log::info!(
            "upstream {} answers{outage}; {} records to send",
            up.url,
            u.outbox.backlog_records()
        );
    }
    u.outbox.acked(out);
    u.state = LinkState::Up;
    u.failing_since = None;
    u.consecutive_failures = 0;
    u.min_version = None;
    u.last_success = Some(SystemTime::now());
    u.sent += n;
    if u.batch_limit < up.batch_max_records && n as usize >= u.batch_limit {
        // Grow back slowly after a 413.
        u.batch_limit = (u.batch_limit * 2).min(up.batch_max_records);
    }
}

/// Refused for good (a 4xx the agent cannot fix): the records go to the
/// dead-letter file and a `rejected` gap is queued; gap records are kept.
fn refused(u: &mut Uplink, up: &Upstream, out: Outgoing, sent: &Sent, why: String, now: Instant) {
    let n = out.recs.len() as u64;
    let range = sent.range();
    let only_gaps = out.recs.iter().all(|r| r.gap.is_some());
    if only_gaps {
        // Gap records are never set aside: they are what tells the
        // receiver about loss. Kept, and tried again after the wait.
        log::error!("upstream refused gap records {range} ({why}); they are kept and sent again");
    } else {
        let dir = sent.spool_dir;
        u.dead_letters_discarded += dead_letter(dir, &out.recs, sent.id, &why);
        log::error!(
            "upstream refused records {range} for good ({why}); they are set aside in {}",
            dir.join("dead-letter.ndjson").display()
        );
        u.dead_lettered += n;
        u.outbox.acked(&out);
        let g = Gap {
            first: sent.first_seq,
            last: sent.last_seq,
            count: n,
            reason: GapReason::Rejected,
            dests: crate::uplink::spool::Dest::Upstream.bit(),
        };
        u.outbox.push_gap(g, unix_millis(SystemTime::now()));
    }
    if u.state != LinkState::Rejected {
        log::warn!("upstream {}: {why}; retrying after a backoff", up.url);
    }
    u.state = LinkState::Rejected;
    u.last_error = Some((format!("refused: {why}"), SystemTime::now()));
    u.not_before = now + upstream::backoff(u.consecutive_failures);
    u.consecutive_failures += 1;
    if only_gaps {
        u.outbox.failed(out);
    } else {
        u.outbox.spool_from_now();
    }
}

/// Not taken this time (network, 5xx, busy, credentials, version): the
/// records stay, the link waits.
fn failed(u: &mut Uplink, up: &Upstream, out: Outgoing, answer: Answer, now: Instant) {
    let n = out.recs.len() as u64;
    let failures = u.consecutive_failures;
    let (state_now, wait, why) = match answer {
        Answer::Busy(after) => (
            LinkState::Failing,
            upstream::retry_wait(after, upstream::backoff(failures)),
            format!("busy (HTTP 429/503{})", after.map(|d| format!(", Retry-After {}s", d.as_secs())).unwrap_or_default()),
        ),
        Answer::CredentialsRejected(code) => (
            LinkState::CredentialsRejected,
            REFUSED_RETRY,
            format!("HTTP {code}: the token was rejected; install a valid token ({}) and reload (SIGHUP)", up.token.source),
        ),
        Answer::VersionUnsupported(min) => {
            u.min_version = min.clone();
            (
                LinkState::VersionUnsupported,
                REFUSED_RETRY,
                format!(
                    "HTTP 409: tether {} is no longer accepted{}; upgrade the agent",
                    env!("CARGO_PKG_VERSION"),
                    min.map(|m| format!(" (minimum {m})")).unwrap_or_default()
                ),
            )
        }
        Answer::NotFound(m) => (
            LinkState::NotFound,
            REFUSED_RETRY,
            format!("{m}: nothing at this URL takes reports; check [upstream] url (the records are kept) and reload (SIGHUP)"),
        ),
        Answer::Failed(m) => (LinkState::Failing, upstream::backoff(failures), m),
        _ => unreachable!("handled above"),
    };
    if u.consecutive_failures == 0 || u.state != state_now {
        log::warn!(
            "upstream {}: {why}; records are spooled and sent later",
            up.url
        );
    } else {
        log::debug!("upstream {}: {why}", up.url);
    }
    u.state = state_now;
    u.failing_since.get_or_insert(now);
    u.consecutive_failures += 1;
    u.retried += n;
    u.last_error = Some((why, SystemTime::now()));
    u.not_before = now + wait;
    u.outbox.failed(out);
}

/// Appends a refused batch to `<dir>/dead-letter.ndjson` after one line
/// saying why. The file is rotated at [`DEAD_LETTER_MAX`] bytes (one older
/// file is kept, so the two hold at most twice that); returns how many
/// letters that deleted (from the older file, or of this batch past the
/// bound), which are logged: their loss was already reported
/// upstream by the batch's `rejected` gap.
fn dead_letter(dir: &Path, recs: &[record::Rec], id: &str, why: &str) -> u64 {
    let path = dir.join("dead-letter.ndjson");
    let older = dir.join("dead-letter.ndjson.1");
    let mut lines = Vec::new();
    let mut kept = 0;
    for r in recs {
        let mut line = Vec::new();
        record::write_line(&mut line, id, r.seq, "", &r.body);
        if lines.len() + line.len() + 512 > DEAD_LETTER_MAX as usize {
            break;
        }
        lines.extend_from_slice(&line);
        kept += 1;
    }
    let mut discarded = 0;
    if kept < recs.len() {
        let cut = &recs[kept..];
        log::error!(
            "dead letters for seq {}-{} not kept: a refused batch over {} bytes",
            cut[0].seq,
            cut[cut.len() - 1].seq,
            DEAD_LETTER_MAX
        );
        discarded += cut.len() as u64;
    }
    let mut j = crate::format::json::Json::new();
    j.begin_object(None)
        .begin_object(Some("dead_letter"))
        .str(
            Some("time"),
            &rfc3339_millis(unix_millis(SystemTime::now())),
        )
        .str(Some("error"), &crate::format::text::clip(why, 400))
        .uint(Some("records"), kept as u64)
        .end_object()
        .end_object();
    let mut text = j.finish().into_bytes();
    text.push(b'\n');
    text.extend_from_slice(&lines);
    let size = fs::metadata(&path).map_or(0, |m| m.len());
    if size + text.len() as u64 > DEAD_LETTER_MAX {
        if let Ok(old) = fs::read(&older) {
            let letters = old
                .split(|b| *b == b'\n')
                .filter(|l| l.starts_with(b"{\"agent_id\""))
                .count();
            if letters > 0 {
                log::warn!(
                    "{} rotated: {letters} older dead letters deleted",
                    path.display()
                );
                discarded += letters as u64;
            }
        }
        let _ = fs::rename(&path, &older);
    }
    let r = crate::os::files::private_dir(dir).and_then(|()| {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?
            .write_all(&text)
    });
    if let Err(e) = r {
        log::error!(
            "cannot write {}: {e}; the refused records are not kept",
            path.display()
        );
        discarded += kept as u64;
    }
    discarded
}

/// SIGTERM, with the loop stopped: one last upload (at most
/// [`SHUTDOWN_DEADLINE`]) while the upstream is up; then [`close`].
pub async fn last_upload(state: &Rc<AgentState>) {
    if state.uplink.borrow().is_none() {
        return;
    }
    let up = state.config.borrow().upstream.clone();
    let mut tick = Instant::now() + Duration::from_secs(3600);
    let up_now = state.uplink.borrow().as_ref().is_some_and(|u| {
        // `urgent` makes the turn upload whatever the ring holds.
        u.urgent.set(true);
        u.state == LinkState::Up && u.outbox.ring_len() > 0
    });
    if let Some(up) = up.filter(|_| up_now) {
        let mut short = up.clone();
        short.timeout = short.timeout.min(SHUTDOWN_DEADLINE);
        crate::os::alarm::until(
            Instant::now() + SHUTDOWN_DEADLINE,
            turn(state, &short, &mut tick),
        )
        .await;
    }
}

/// The end of shutdown: everything unacknowledged goes to disk, synced.
pub fn close(state: &Rc<AgentState>) {
    if let Some(u) = state.uplink.borrow_mut().as_mut() {
        u.outbox.close();
        log::info!(
            "{} records left to send, kept in {}",
            u.outbox.backlog_records(),
            state.config.borrow().spool.dir.display()
        );
    }
}
