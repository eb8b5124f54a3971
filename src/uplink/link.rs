//! The upstream side of the agent, as data: the outbox, the identity in use
//! and what the link is doing ([`LinkState`]), with the figures `/status`
//! and `/metrics` show ([`UpstreamView`]). The delivery loop changes it;
//! the agent state holds it; neither this nor the outbox knows either.

use std::cell::Cell;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::os::clock::unix_millis;
use crate::uplink::outbox::Outbox;
use crate::uplink::spool::Dest;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// No answer yet since start.
    Connecting,
    Up,
    /// Uploads fail (network, 5xx, timeouts, 429/503).
    Failing,
    CredentialsRejected,
    VersionUnsupported,
    /// The identity file is unusable: records are spooled, nothing is sent.
    NoIdentity,
    /// The upstream refuses what it is sent (a 4xx other than 401, 403,
    /// 404, 409 and a 413 that halving can fix).
    Rejected,
    /// HTTP 404: nothing at the configured URL takes reports (a wrong
    /// URL): held, not refused.
    NotFound,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Up => "up",
            LinkState::Failing => "failing",
            LinkState::CredentialsRejected => "credentials_rejected",
            LinkState::VersionUnsupported => "version_unsupported",
            LinkState::NoIdentity => "no_identity",
            LinkState::Rejected => "rejected",
            LinkState::NotFound => "not_found",
        }
    }

    pub const ALL: [LinkState; 8] = [
        LinkState::Connecting,
        LinkState::Up,
        LinkState::Failing,
        LinkState::CredentialsRejected,
        LinkState::VersionUnsupported,
        LinkState::NoIdentity,
        LinkState::Rejected,
        LinkState::NotFound,
    ];

    /// The remote-write link's states (`tether_remote_write_state`).
    pub const REMOTE: [LinkState; 6] = [
        LinkState::Connecting,
        LinkState::Up,
        LinkState::Failing,
        LinkState::Rejected,
        LinkState::CredentialsRejected,
        LinkState::NotFound,
    ];
}

/// The upstream side of the agent: its outbox and what the link is doing.
pub struct Uplink {
    pub outbox: Outbox,
    /// The agent id, or why there is none (`needs_recovery`).
    pub identity: Result<String, String>,
    pub state: LinkState,
    /// The first failure of the current outage.
    pub failing_since: Option<Instant>,
    pub last_success: Option<SystemTime>,
    pub consecutive_failures: u32,
    /// The last failure and when: kept after a success, shown as past.
    pub last_error: Option<(String, SystemTime)>,
    /// What the upstream said the minimum version is (409).
    pub min_version: Option<String>,
    /// Records acknowledged.
    pub sent: u64,
    /// Records in uploads that failed (they are sent again).
    pub retried: u64,
    /// Records the upstream refused for good (set aside in the dead-letter file).
    pub dead_lettered: u64,
    /// Dead letters deleted when the dead-letter file rotated (their
    /// numbers were reported by `rejected` gaps when they were refused).
    pub dead_letters_discarded: u64,
    /// The batch size after 413s.
    pub batch_limit: usize,
    /// An upload should go now: the agent status changed, or SIGHUP.
    pub urgent: Cell<bool>,
    /// Not before this (backoff, Retry-After, refused credentials).
    pub not_before: Instant,
    /// The remote-write receiver's side.
    pub remote: RemoteLink,
    /// The OTLP receiver's side.
    pub otlp: RemoteLink,
}

/// What a receiver's link (remote-write, OTLP) is doing, and its counts
/// (of samples, or of OTLP data points).
#[derive(Debug)]
pub struct RemoteLink {
    /// One of [`LinkState::REMOTE`]: `Failing` (5xx, 429, network),
    /// `Rejected` (its last batch had samples refused for good),
    /// `CredentialsRejected` (401, 403) or `NotFound` (404) while held.
    pub state: LinkState,
    pub last_success: Option<SystemTime>,
    pub consecutive_failures: u32,
    /// The last error and when it came; kept after the link is up again.
    pub last_error: Option<(String, SystemTime)>,
    pub not_before: Instant,
    /// The last failure never reached the receiver (no DNS answer, no TCP
    /// connection): it is watched with a TCP connect every one to three
    /// [`PROBE_EVERY`] until it takes one, then the request goes at once.
    pub unreached: bool,
    pub probe_at: Instant,
    /// TCP connects made to see whether an unreached receiver is back.
    pub probes: u64,
    /// Requests the search for refused samples may still make at its pace
    /// (`agent/remote_write.rs` says what spends and earns, up to
    /// [`SEARCH_CREDIT`]); at none, it goes on once a minute.
    pub credit: u32,
    pub samples_sent: u64,
    /// Samples in requests that failed and went again.
    pub samples_retried: u64,
    /// Samples refused for good, by reason (`too_old`, `out_of_order`,
    /// `duplicate`, `too_large`, `bad_request`, `http_4xx`), sorted.
    pub samples_rejected: Vec<(&'static str, u64)>,
    /// Dead letters deleted when the dead-letter file rotated.
    pub dead_letters_discarded: u64,
    pub requests: u64,
}

impl Default for RemoteLink {
    fn default() -> RemoteLink {
        RemoteLink {
            state: LinkState::Connecting,
            last_success: None,
            consecutive_failures: 0,
            last_error: None,
            not_before: Instant::now(),
            unreached: false,
            probe_at: Instant::now(),
            probes: 0,
            credit: SEARCH_CREDIT,
            samples_sent: 0,
            samples_retried: 0,
            samples_rejected: Vec::new(),
            dead_letters_discarded: 0,
            requests: 0,
        }
    }
}

/// How often an unreached remote-write receiver is probed: a random wait
/// between one and three times this.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The most requests the search for refused samples makes at its pace
/// before it slows to one a minute.
pub const SEARCH_CREDIT: u32 = 32;

impl RemoteLink {
    pub fn failed(&mut self, why: String) {
        self.last_error = Some((why, SystemTime::now()));
    }

    pub fn reject(&mut self, reason: &'static str, n: u64) {
        match self.samples_rejected.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => *c += n,
            None => {
                self.samples_rejected.push((reason, n));
                self.samples_rejected.sort();
            }
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.samples_rejected.iter().map(|(_, n)| n).sum()
    }
}

/// A receiver's figures in `/status`, `/metrics` and the heartbeat.
#[derive(Clone, Debug)]
pub struct RemoteView {
    pub url: String,
    pub state: LinkState,
    pub last_success: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub last_error: Option<(String, SystemTime)>,
    pub backlog_records: u64,
    pub spool_records: u64,
    pub oldest_age_seconds: Option<f64>,
    pub requests: u64,
    pub probes: u64,
    pub samples_sent: u64,
    pub samples_retried: u64,
    pub samples_rejected: Vec<(&'static str, u64)>,
    pub dead_letters_discarded: u64,
    /// Records dropped (ring or spool full) before this receiver had them.
    pub records_lost: u64,
}

impl Uplink {
    /// A receiver's side (`d`: remote-write or OTLP).
    pub fn receiver(&self, d: Dest) -> &RemoteLink {
        match d {
            Dest::Otlp => &self.otlp,
            _ => &self.remote,
        }
    }

    pub fn receiver_mut(&mut self, d: Dest) -> &mut RemoteLink {
        match d {
            Dest::Otlp => &mut self.otlp,
            _ => &mut self.remote,
        }
    }

    /// A receiver's figures (`d`: remote-write or OTLP).
    pub fn receiver_view(&self, d: Dest, url: String, now: SystemTime) -> RemoteView {
        let r = self.receiver(d);
        RemoteView {
            url,
            state: r.state,
            last_success: r.last_success,
            consecutive_failures: r.consecutive_failures,
            last_error: r.last_error.clone(),
            backlog_records: self.outbox.backlog_of(d),
            spool_records: self.outbox.spool_records_of(d),
            oldest_age_seconds: self
                .outbox
                .oldest_ms_of(d)
                .map(|t| unix_millis(now).saturating_sub(t) as f64 / 1000.0),
            requests: r.requests,
            probes: r.probes,
            samples_sent: r.samples_sent,
            samples_retried: r.samples_retried,
            samples_rejected: r.samples_rejected.clone(),
            dead_letters_discarded: r.dead_letters_discarded,
            records_lost: self.outbox.lost[d as usize],
        }
    }
}

impl Uplink {
    /// The outbox and identity for these destinations; `batch_max_records`
    /// is the upstream's batch size.
    pub fn new(
        state_dir: &Path,
        batch_max_records: usize,
        spool: &crate::config::SpoolConfig,
        dests: &[Dest],
    ) -> Uplink {
        let now_ms = unix_millis(SystemTime::now());
        let (identity, fresh) = match crate::uplink::identity::load_or_create(state_dir) {
            crate::uplink::identity::Loaded::Existing(i) => (Ok(i.id), false),
            crate::uplink::identity::Loaded::Created(i) => {
                log::info!("new agent identity {} in {}", i.id, state_dir.display());
                (Ok(i.id), true)
            }
            crate::uplink::identity::Loaded::NoAccess(why) => {
                log::error!(
                    "{why}: nothing is sent upstream until the agent can use its state directory (then restart it)"
                );
                (Err(why), false)
            }
            crate::uplink::identity::Loaded::Broken(why) => {
                log::error!(
                    "{why}. Reports are kept in the spool and not sent. To start anew: systemctl stop tether; tether enroll; systemctl start tether"
                );
                (Err(why), false)
            }
        };
        let outbox = Outbox::open_for(spool, state_dir, fresh, now_ms, dests);
        Uplink {
            outbox,
            state: if identity.is_ok() {
                LinkState::Connecting
            } else {
                LinkState::NoIdentity
            },
            identity,
            failing_since: None,
            last_success: None,
            consecutive_failures: 0,
            last_error: None,
            min_version: None,
            sent: 0,
            retried: 0,
            dead_lettered: 0,
            dead_letters_discarded: 0,
            batch_limit: batch_max_records,
            urgent: Cell::new(false),
            not_before: Instant::now(),
            remote: RemoteLink::default(),
            otlp: RemoteLink::default(),
        }
    }

    /// Uploads have failed for longer than `offline_after`.
    pub fn offline(&self, offline_after: Duration, now: Instant) -> bool {
        self.failing_since
            .is_some_and(|t| now.duration_since(t) >= offline_after)
    }
}

/// The upstream figures of `/status` and `/metrics`.
#[derive(Clone, Debug)]
pub struct UpstreamView {
    pub url: String,
    pub state: LinkState,
    pub agent_id: Option<String>,
    pub last_success: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// When `last_error` happened (`None` for a missing identity).
    pub last_error_at: Option<SystemTime>,
    pub min_version: Option<String>,
    pub backlog_records: u64,
    pub backlog_bytes: u64,
    /// Of the backlog, on disk.
    pub spool_records: u64,
    pub oldest_age_seconds: Option<f64>,
    pub sent: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
    pub dead_letters_discarded: u64,
    pub retried: u64,
    /// Why the spool is not usable, when it is not (`spool_degraded`).
    pub spool_degraded: Option<String>,
}

impl Uplink {
    pub fn view(&self, url: String, now: SystemTime) -> UpstreamView {
        let now_ms = unix_millis(now);
        UpstreamView {
            url,
            state: self.state,
            agent_id: self.identity.as_ref().ok().cloned(),
            last_success: self.last_success,
            consecutive_failures: self.consecutive_failures,
            last_error: match &self.identity {
                Err(why) => Some(why.clone()),
                Ok(_) => self.last_error.as_ref().map(|e| e.0.clone()),
            },
            last_error_at: self
                .last_error
                .as_ref()
                .filter(|_| self.identity.is_ok())
                .map(|e| e.1),
            min_version: self.min_version.clone(),
            backlog_records: self.outbox.backlog_records(),
            backlog_bytes: self.outbox.backlog_bytes(),
            spool_records: self.outbox.spool_records(),
            oldest_age_seconds: self
                .outbox
                .oldest_ms()
                .map(|t| now_ms.saturating_sub(t) as f64 / 1000.0),
            sent: self.sent,
            dropped: self.outbox.dropped,
            dead_lettered: self.dead_lettered,
            dead_letters_discarded: self.dead_letters_discarded,
            retried: self.retried,
            spool_degraded: self.outbox.disk_error.clone(),
        }
    }
}
