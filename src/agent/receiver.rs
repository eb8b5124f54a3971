//! What the two receivers' loops (remote-write in `agent/remote_write.rs`,
//! OTLP in `agent/otlp.rs`) do alike: the loop itself ([`run`]: ticks,
//! turns, sleeps, the last flush at SIGTERM), the heartbeat and the spill
//! at each flush, the watch over a receiver that cannot be reached, and
//! the dead-letter files. A receiver says what differs ([`Lane`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

// The upstream's rotation size serves the receivers' dead letters too.
use crate::agent::delivery::DEAD_LETTER_MAX;
use crate::agent::health::{AgentStatus, Severity};
use futures_lite::FutureExt;

use crate::agent::state::AgentState;
use crate::net::url::Url;
use crate::os::alarm::Alarm;
use crate::os::clock::{rfc3339_millis, unix_millis};
use crate::os::wake::Notify;
use crate::uplink::link::{LinkState, Uplink, PROBE_EVERY};
use crate::uplink::remote_write::backoff;
use crate::uplink::spool::Dest;
use crate::uplink::upstream::retry_wait;

/// A held batch (401, 403, 404), or a search out of credit, goes again
/// after this.
pub const HOLD: Duration = Duration::from_secs(60);

/// What one receiver's loop has of its own.
pub(crate) trait Lane {
    /// Its section of the configuration.
    type Config: Clone;
    /// The batch in hand.
    type Held;
    const DEST: Dest;
    fn config(state: &AgentState) -> Option<Self::Config>;
    /// What wakes the loop (a reload, SIGTERM).
    fn wake(state: &AgentState) -> &Notify;
    fn flush_interval(c: &Self::Config) -> Duration;
    /// The request's whole deadline, shortened for the last flush.
    fn timeout(c: &mut Self::Config) -> &mut Duration;
    /// One step: wait (or probe an unreached receiver), take a batch if
    /// none is in hand and one is due, send its next request. `None` to go
    /// again at once; otherwise when to look again at the latest.
    async fn turn(
        state: &Rc<AgentState>,
        c: &Self::Config,
        tick: bool,
        held: &mut Option<Self::Held>,
    ) -> Option<Instant>;
}

/// Runs a receiver's loop for the life of the agent; idles while the
/// receiver is not configured. Every `flush_interval` it sends what is
/// waiting ([`flush_tick`]); between ticks it goes on at once while a
/// backlog drains or a full batch waits. Returns after its last flush once
/// `state.stop_by` is set (SIGTERM).
pub(crate) async fn run<L: Lane>(state: Rc<AgentState>) {
    let alarm = Alarm::new();
    let mut next_tick = Instant::now();
    let mut held: Option<L::Held> = None;
    loop {
        let c = L::config(&state);
        if let Some(end) = state.stop_by.get() {
            if let Some(c) = c {
                last_flush::<L>(&state, c, &mut held, end).await;
            }
            return;
        }
        let Some(c) = c else {
            held = None;
            L::wake(&state).wait().await;
            continue;
        };
        if state.uplink.borrow().is_none() {
            state.ensure_uplink();
            if state.uplink.borrow().is_none() {
                L::wake(&state).wait().await;
                continue;
            }
        }
        let now = Instant::now();
        let tick = now >= next_tick;
        if tick {
            next_tick = now + L::flush_interval(&c);
            flush_tick(&state, L::DEST);
        }
        if let Some(wake_at) = L::turn(&state, &c, tick, &mut held).await {
            alarm
                .sleep_until(wake_at.min(next_tick))
                .or(async {
                    L::wake(&state).wait().await;
                })
                .await;
        }
    }
}

/// SIGTERM: unless the receiver fails, what waits for it goes in one last
/// flush, by `end` (every request then too), the batch in hand first: a
/// request the loop had in flight was answered before this, so nothing it
/// carried is sent twice. What is left stays in the outbox, which the
/// caller closes (to the spool).
async fn last_flush<L: Lane>(
    state: &Rc<AgentState>,
    mut c: L::Config,
    held: &mut Option<L::Held>,
    end: Instant,
) {
    if !last_flush_due(state, L::DEST, held.is_some()) {
        return;
    }
    let t = L::timeout(&mut c);
    *t = (*t).min(end.saturating_duration_since(Instant::now()));
    let flush = async { while L::turn(state, &c, true, held).await.is_none() {} };
    crate::os::alarm::until(end, flush).await;
    let left = state
        .uplink
        .borrow()
        .as_ref()
        .map_or(0, |u| u.outbox.backlog_of(L::DEST));
    log::info!(
        "{}: last flush done, {left} records left to send",
        L::DEST.as_str()
    );
}

/// Every flush interval of receiver `d`'s loop: without the control plane,
/// the first configured receiver's loop makes the heartbeats (remote-write
/// before OTLP); while records are spooled, the ring goes to disk (so what
/// memory holds is at most one of this loop's flush intervals, whatever
/// the upstream's is).
pub fn flush_tick(state: &Rc<AgentState>, d: Dest) {
    let status = {
        let c = state.config.borrow();
        let maker = if c.remote_write.is_some() {
            Dest::RemoteWrite
        } else {
            Dest::Otlp
        };
        (c.upstream.is_none() && maker == d).then(|| state.agent_status())
    };
    let mut guard = state.uplink.borrow_mut();
    let Some(u) = guard.as_mut() else { return };
    if let Some(status) = status {
        let now = unix_millis(SystemTime::now());
        let hb = crate::agent::delivery::heartbeat(state, status, u, now);
        u.outbox.push(hb);
    }
    if u.outbox.spooling() {
        u.outbox.spill();
    }
}

/// Whether a last flush at SIGTERM is worth trying for `d`: something
/// waits for it (`held`: a batch in hand), and the receiver is neither
/// failing nor holding (a stop must not wait on a receiver that is known
/// not to take the request).
fn last_flush_due(state: &Rc<AgentState>, d: Dest, held: bool) -> bool {
    state.uplink.borrow().as_ref().is_some_and(|u| {
        let r = u.receiver(d);
        let failing = matches!(
            r.state,
            LinkState::Failing | LinkState::CredentialsRejected | LinkState::NotFound
        );
        let waiting = held || u.outbox.ring_len_of(d) > 0;
        !failing && !r.unreached && waiting
    })
}

/// `Some(when)` while `d`'s link must wait (backoff, hold, pace); an
/// unreached receiver is probed meanwhile, and a probe that connects ends
/// the wait.
pub async fn wait_or_probe(
    state: &Rc<AgentState>,
    d: Dest,
    url: &Url,
    timeout: Duration,
) -> Option<Instant> {
    let now = Instant::now();
    let (not_before, unreached, probe_at) = {
        let g = state.uplink.borrow();
        let r = g.as_ref()?.receiver(d);
        (r.not_before, r.unreached, r.probe_at)
    };
    if !unreached {
        return (now < not_before).then_some(not_before);
    }
    // Nothing answered: only a probe that connects lets a request go.
    if now < probe_at {
        return Some(probe_at);
    }
    let resolver = state.resolver.borrow().clone();
    let back = crate::uplink::post::reachable(url, &resolver, timeout.min(PROBE_EVERY * 3)).await;
    let mut g = state.uplink.borrow_mut();
    let r = g.as_mut()?.receiver_mut(d);
    r.probes += 1;
    if !back {
        r.probe_at = Instant::now() + probe_wait();
        return Some(r.probe_at);
    }
    log::info!(
        "{} {url}: the receiver takes connections again; sending now",
        d.as_str()
    );
    // A new attempt, not the next of the outage: its backoff starts over.
    r.unreached = false;
    r.consecutive_failures = 0;
    r.not_before = Instant::now();
    None
}

/// What a request that will go again does to `d`'s link (no answer, or a
/// busy one: 429, 5xx): the backoff, or `Retry-After` where longer; an
/// unreached receiver is watched by probes meanwhile; records are spooled.
/// `n` of `unit` (samples, points) were in it. When to look again.
#[allow(clippy::too_many_arguments)]
pub fn retry_later(
    u: &mut Uplink,
    d: Dest,
    url: &Url,
    (n, unit): (u64, &str),
    after: Option<Duration>,
    why: String,
    reached: bool,
) -> Instant {
    let now = Instant::now();
    let r = u.receiver_mut(d);
    let wait = retry_wait(after, backoff(r.consecutive_failures));
    if r.consecutive_failures == 0 {
        log::warn!(
            "{} {url}: {why}; {n} {unit} are sent again in {}, records are spooled meanwhile",
            d.as_str(),
            crate::config::duration::format_coarse(wait)
        );
    } else {
        log::debug!("{} {url}: {why}", d.as_str());
    }
    r.state = LinkState::Failing;
    r.consecutive_failures += 1;
    r.samples_retried += n;
    r.failed(why);
    r.not_before = now + wait;
    r.unreached = !reached;
    r.probe_at = now + probe_wait();
    let wake = if r.unreached {
        r.probe_at
    } else {
        r.not_before
    };
    u.outbox.failing(d);
    wake
}

/// What a 401, 403 or 404 (`st`) does to `d`'s link: nothing is set
/// aside, the batch is held and goes again after [`HOLD`] (at once after
/// SIGHUP); `not_found` says what to check for a 404. When to look again.
pub fn hold(
    u: &mut Uplink,
    d: Dest,
    url: &Url,
    (n, unit): (u64, &str),
    (st, why): (LinkState, String),
    not_found: &str,
) -> Instant {
    let r = u.receiver_mut(d);
    if r.state != st {
        log::error!(
            "{} {url}: {why}: {}; nothing is set aside, the {unit} are held (spooled) and sent again every {}s and on SIGHUP",
            d.as_str(),
            if st == LinkState::NotFound {
                not_found
            } else {
                "the receiver rejects the credentials; install valid ones and reload (systemctl reload tether)"
            },
            HOLD.as_secs()
        );
    }
    r.state = st;
    r.consecutive_failures += 1;
    r.samples_retried += n;
    r.failed(why);
    r.unreached = false;
    let until = Instant::now() + HOLD;
    r.not_before = until;
    u.outbox.failing(d);
    until
}

/// The agent's statuses and severities, as the series and points name
/// them (the uplink layer may not import the agent's types).
pub fn vocabulary() -> (Vec<&'static str>, Vec<&'static str>) {
    (
        AgentStatus::ALL.iter().map(|s| s.as_str()).collect(),
        Severity::ALL.iter().map(|s| s.as_str()).collect(),
    )
}

/// A random wait of one to three [`PROBE_EVERY`].
pub fn probe_wait() -> Duration {
    let ms = PROBE_EVERY.as_millis() as u64;
    Duration::from_millis(fastrand::u64(ms..=3 * ms))
}

/// What [`dead_letter`] did: whether the lines were written, and how many
/// older ones the rotation deleted.
pub struct Kept {
    pub written: bool,
    pub discarded: u64,
}

/// Appends refused points to the dead-letter file `name` in `dir`: a `#`
/// line saying when and why, then `lines` (one point each, each ending in
/// a newline). Rotated at [`DEAD_LETTER_MAX`]: the file becomes `.1`, and
/// the lines in the `.1` it replaces are counted as discarded. The two
/// files are the dead letters' own disk bound, beside the spool's.
pub fn dead_letter(dir: &Path, name: &str, why: &str, lines: &str) -> Kept {
    let path = dir.join(name);
    let text = format!(
        "# {} {}\n{lines}",
        rfc3339_millis(unix_millis(SystemTime::now())),
        crate::format::text::clip(why, 400).replace('\n', " ")
    );
    let mut discarded = 0;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    if size + text.len() as u64 > DEAD_LETTER_MAX {
        let older = dir.join(format!("{name}.1"));
        discarded = lines_in(&older);
        if let Err(e) = std::fs::rename(&path, &older) {
            log::error!("cannot rotate {}: {e}", path.display());
        } else if discarded > 0 {
            log::warn!(
                "{} rotated: {discarded} older dead letters deleted",
                path.display()
            );
        }
    }
    let r = crate::os::files::private_dir(dir).and_then(|()| {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?
            .write_all(text.as_bytes())
    });
    if let Err(e) = &r {
        log::error!("cannot write {}: {e}", path.display());
    }
    Kept {
        written: r.is_ok(),
        discarded,
    }
}

/// Point lines in a dead-letter file (at most a little over
/// [`DEAD_LETTER_MAX`] is read); 0 if there is none.
fn lines_in(path: &Path) -> u64 {
    let text = crate::os::files::read_file(path, 2 * DEAD_LETTER_MAX).unwrap_or_default();
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count() as u64
}
