//! The agent's live state, shared by the scheduler, the local endpoint and the
//! reload path on the one thread (`Rc` + `RefCell`, no locks): the running
//! configuration, each check's schedule and health, and process-wide flags.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::agent::health::{overall, AgentStatus, CheckHealth, Severity};
use crate::agent::history::{History, Transition};
use crate::agent::lateness::Lateness;
use crate::agent::limit::Limit;
use crate::agent::maintenance;
use crate::agent::on_change::OnChange;
use crate::config::{Check, Config};
use crate::net::resolve::Resolver;
use crate::os::clock::unix_millis;
use crate::os::notify::Notifier;
use crate::os::wake::Notify;
use crate::outcome::Outcome;
use crate::uplink::link::{LinkState, Uplink};
use crate::uplink::record;
use crate::uplink::spool::Dest;

pub struct CheckState {
    /// Shared with the check's in-flight run and with snapshots; a run
    /// records into this state only if it is still the same `Rc`, so a run
    /// of a check that a reload changed or removed is dropped.
    pub spec: Rc<Check>,
    /// Shared with snapshots, copied on write: a snapshot of 1,000 checks
    /// costs 1,000 pointers, and only a check that records a result while
    /// one is held is copied.
    pub health: Rc<CheckHealth>,
    /// A run is in flight: the check never overlaps itself.
    pub running: bool,
    /// The next slot: t0 + offset + k·interval, never moved by probe duration.
    pub next: Instant,
}

pub struct AgentState {
    pub config: RefCell<Config>,
    pub checks: RefCell<Vec<CheckState>>,
    pub resolver: RefCell<Rc<Resolver>>,
    pub limit: RefCell<Rc<Limit>>,
    /// Last time the scheduler loop turned; `/health` goes 503 after three
    /// agent intervals without a turn.
    pub last_turn: Cell<Instant>,
    pub started: SystemTime,
    /// Maintenance mode, refreshed from the state directory every turn.
    pub disabled: Cell<bool>,
    /// The maintenance flag in force (why, who, until when).
    pub maintenance: RefCell<Option<maintenance::Flag>>,
    /// How the last maintenance ended, for the transition out of it.
    pub maintenance_ended: RefCell<Option<String>>,
    pub reloads: Cell<u64>,
    pub reload_failures: Cell<u64>,
    /// Wakes the scheduler early after a reload.
    pub wake: Notify,
    /// The outbox and both links, created by [`AgentState::ensure_uplink`]
    /// when `[upstream]` or `[remote_write]` is configured.
    pub uplink: RefCell<Option<Uplink>>,
    /// Wakes the delivery loop.
    pub deliver: Notify,
    /// Wakes the remote-write loop.
    pub remote: Notify,
    /// Wakes the OTLP loop.
    pub otlp: Notify,
    /// SIGTERM: the loops make their last sends by then, and stop.
    pub stop_by: Cell<Option<Instant>>,
    /// The last agent status seen, to notice changes.
    pub last_status: Cell<Option<(AgentStatus, Severity)>>,
    /// PRETTY_NAME from /etc/os-release, for heartbeats.
    pub os_release: String,
    /// systemd's notify socket (a no-op when not run by systemd).
    pub systemd: Notifier,
    /// When the agent's status last changed (or the agent started).
    pub status_since: Cell<SystemTime>,
    /// Status transitions, agent and checks: in memory, and on disk once
    /// the agent opens it ([`History::open`]).
    pub history: RefCell<History>,
    /// The `on_change` command's queue.
    pub on_change: OnChange,
    /// How late probes start after their slots.
    pub lateness: Lateness,
    /// Slots that came while the check's previous run was still going, so
    /// no run started (an overloaded agent or a slow target).
    pub skipped: Cell<u64>,
    /// Why the state directory could not be locked (and so not written) at
    /// start: the agent runs, without the durability it promises, until a
    /// restart finds it usable.
    pub state_error: RefCell<Option<String>>,
    /// State changes are logged (not in `tether check` unless `-v`).
    pub log_changes: Cell<bool>,
    /// The local configuration (file and drop-ins), which `config` is with
    /// the control plane's checks added; `None` in one-shot commands.
    pub local: RefCell<Option<Config>>,
    /// The control plane's document and what became of it.
    pub remote_config: RefCell<RemoteState>,
    /// Wakes the remote configuration's poll (a reload).
    pub config_poll: Notify,
    /// Wakes the spool's sync task (the outbox wrote to the spool).
    pub spool_sync: Rc<Notify>,
    /// [`crate::config::effective::hash`] of `config`, made when it changes.
    pub config_hash: RefCell<String>,
}

/// What came from the control plane and what became of it.
#[derive(Clone, Debug, Default)]
pub struct RemoteState {
    /// The revision and document running (or cached and running), if any.
    pub running: Option<(String, String)>,
    /// The last document received was refused: its revision and errors.
    pub rejected: Option<(String, Vec<String>)>,
    /// Remote checks left out because a local check has the name.
    pub clashes: Vec<String>,
    /// Why the last poll got no document (logged when it changes).
    pub failing: Option<String>,
}

/// The resolver a configuration names (its hosts file and resolv.conf).
pub fn resolver_for(config: &Config) -> Resolver {
    Resolver::system(
        config.agent.hosts_file.clone(),
        config.agent.resolv_conf.clone(),
    )
}

/// Why the agent cannot keep its promises on disk (`durability_lost`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurabilityLost {
    /// `state_unwritable` or `spool_unavailable`.
    pub reason: &'static str,
    pub message: String,
}

pub const DURABILITY_REASONS: [&str; 2] = ["state_unwritable", "spool_unavailable"];

impl AgentState {
    pub fn new(mut config: Config, resolver: Resolver, systemd: Notifier) -> Rc<AgentState> {
        let now = Instant::now();
        let checks = schedule(&mut config, Vec::new(), now);
        let hash = crate::config::effective::hash(&config);
        Rc::new(AgentState {
            limit: RefCell::new(Rc::new(Limit::new(config.agent.max_in_flight))),
            disabled: Cell::new(maintenance::is_disabled(&config.agent.state_dir)),
            maintenance: RefCell::new(
                maintenance::read(&config.agent.state_dir)
                    .filter(|f| !f.expired(SystemTime::now())),
            ),
            maintenance_ended: RefCell::new(None),
            config: RefCell::new(config),
            checks: RefCell::new(checks),
            resolver: RefCell::new(Rc::new(resolver)),
            last_turn: Cell::new(now),
            started: SystemTime::now(),
            reloads: Cell::new(0),
            reload_failures: Cell::new(0),
            wake: Notify::default(),
            uplink: RefCell::new(None),
            deliver: Notify::default(),
            remote: Notify::default(),
            otlp: Notify::default(),
            stop_by: Cell::new(None),
            last_status: Cell::new(None),
            os_release: os_release(),
            systemd,
            status_since: Cell::new(SystemTime::now()),
            history: RefCell::new(History::memory()),
            on_change: OnChange::default(),
            lateness: Lateness::default(),
            skipped: Cell::new(0),
            state_error: RefCell::new(None),
            log_changes: Cell::new(true),
            local: RefCell::new(None),
            remote_config: RefCell::new(Default::default()),
            config_poll: Notify::default(),
            spool_sync: Rc::default(),
            config_hash: RefCell::new(hash),
        })
    }

    /// Replaces the configuration. A check whose name and whole definition are
    /// unchanged keeps its health, counters and in-flight run.
    pub fn apply(&self, mut config: Config, resolver: Resolver) {
        let old = std::mem::take(&mut *self.checks.borrow_mut());
        // Series of checks that are gone (or now another kind or role) end
        // with a stale marker: a `removed` transition record.
        // (Or with other labels: its series are others then.)
        let gone: Vec<Rc<Check>> = old
            .iter()
            .filter(|c| {
                !config.checks.iter().any(|n| {
                    n.name == c.spec.name
                        && n.probe.kind() == c.spec.probe.kind()
                        && n.role == c.spec.role
                        && n.labels == c.spec.labels
                })
            })
            .map(|c| c.spec.clone())
            .collect();
        *self.checks.borrow_mut() = schedule(&mut config, old, Instant::now());
        *self.limit.borrow_mut() = Rc::new(Limit::new(config.agent.max_in_flight));
        *self.resolver.borrow_mut() = Rc::new(resolver);
        *self.config_hash.borrow_mut() = crate::config::effective::hash(&config);
        *self.config.borrow_mut() = config;
        self.reloads.set(self.reloads.get() + 1);
        self.wake.notify();
        self.ensure_uplink();
        // SIGHUP retries the upstream and a failed disk at once, and picks
        // up an identity made by `tether enroll`.
        if let Some(u) = self.uplink.borrow_mut().as_mut() {
            let now_ms = unix_millis(std::time::SystemTime::now());
            for c in &gone {
                u.outbox.push(record::removed(c, now_ms));
            }
            u.not_before = Instant::now();
            for r in [&mut u.remote, &mut u.otlp] {
                r.not_before = Instant::now();
                r.unreached = false;
            }
            u.urgent.set(true);
            u.outbox.retry_disk_now();
            // A new identity (`tether enroll`) applies from the next upload,
            // which is a fresh heartbeat; a missing or damaged file does not
            // replace the one in use (the next start reports it).
            let dir = self.config.borrow().agent.state_dir.clone();
            if let Ok(Some(i)) = crate::uplink::identity::read(&dir) {
                if u.identity.as_ref().ok() != Some(&i.id) {
                    log::info!("agent identity {} read from {}", i.id, dir.display());
                    u.identity = Ok(i.id);
                    u.state = LinkState::Connecting;
                }
            }
        }
        self.deliver.notify();
        self.remote.notify();
        self.otlp.notify();
    }

    /// How often this agent's heartbeat series reach a store at the
    /// latest: heartbeats are made every `[upstream] flush_interval` (or,
    /// without an upstream, every `[remote_write] flush_interval`, or
    /// without either, every `[otlp] flush_interval`) and pushed every
    /// receiver's `flush_interval`, so the longest of them; 0 when nothing
    /// is pushed (a scraped agent). The fleet rules' "heartbeat missing"
    /// threshold is three of these (`docs/fleet.md`).
    pub fn heartbeat_interval(&self) -> f64 {
        let c = self.config.borrow();
        let rw = c.remote_write.as_ref().map(|r| r.flush_interval);
        let otlp = c.otlp.as_ref().map(|o| o.flush_interval);
        let made = c
            .upstream
            .as_ref()
            .map(|u| u.flush_interval)
            .or(rw)
            .or(otlp);
        made.max(rw).max(otlp).map_or(0.0, |d| d.as_secs_f64())
    }

    /// The destinations the configuration names.
    pub fn dests(&self) -> Vec<Dest> {
        let c = self.config.borrow();
        let mut d = Vec::new();
        if c.upstream.is_some() {
            d.push(Dest::Upstream);
        }
        if c.remote_write.is_some() {
            d.push(Dest::RemoteWrite);
        }
        if c.otlp.is_some() {
            d.push(Dest::Otlp);
        }
        d
    }

    /// Creates the outbox (on the first need of either loop), or tells it
    /// which destinations the configuration names now.
    pub fn ensure_uplink(&self) {
        let dests = self.dests();
        let mut uplink = self.uplink.borrow_mut();
        match uplink.as_mut() {
            Some(u) => u.outbox.set_dests(&dests),
            None if dests.is_empty() => {}
            None => {
                let c = self.config.borrow();
                let batch = c.upstream.as_ref().map_or(500, |u| u.batch_max_records);
                let mut u = Uplink::new(&c.agent.state_dir, batch, &c.spool, &dests);
                u.outbox.sync_wake = Some(self.spool_sync.clone());
                *uplink = Some(u);
            }
        }
    }

    /// Stores a finished run, unless the check was removed or redefined
    /// while the run was in flight.
    pub fn record(&self, spec: &Rc<Check>, outcome: Outcome) {
        self.lateness.observe(outcome.late);
        let mut checks = self.checks.borrow_mut();
        if let Some(c) = checks.iter_mut().find(|c| Rc::ptr_eq(&c.spec, spec)) {
            c.running = false;
            let (before, flapping) = (c.health.status, c.health.flapping);
            let mut uplink = self.uplink.borrow_mut();
            let now_ms = unix_millis(outcome.at);
            Rc::make_mut(&mut c.health).record(outcome, spec.fall, spec.rise);
            if let (Some(u), Some(o)) = (uplink.as_mut(), c.health.last.as_ref()) {
                u.outbox.push(record::result(
                    spec,
                    o,
                    (c.health.status, c.health.flapping),
                    now_ms,
                ));
            }
            let changed = before != c.health.status || flapping != c.health.flapping;
            if let (Some(u), Some(after)) = (uplink.as_mut(), c.health.status) {
                if before != Some(after) {
                    let from = before.map_or("pending", |b| b.as_str());
                    if let Some(o) = c.health.last.as_ref() {
                        let body = record::check_transition(
                            &spec.name,
                            from,
                            o,
                            after.as_str(),
                            unix_millis(o.at),
                        );
                        u.outbox.push(body);
                    }
                }
            }
            drop(uplink);
            // State changes are what an operator reads in the journal; every
            // single result is at debug level (scheduler).
            if let Some(after) = c.health.status.filter(|a| before != Some(*a)) {
                let from = before.map_or("pending", |b| b.as_str());
                let cause = c
                    .health
                    .last
                    .as_ref()
                    .and_then(|o| Some(format!("{}: {}", o.reason?.code(), o.message)))
                    .unwrap_or_default();
                // A first result that is ok is not news; a first failure is.
                if before.is_some() || after != crate::outcome::Status::Ok {
                    self.history.borrow_mut().push(Transition {
                        at_ms: unix_millis(c.health.since),
                        check: Some(spec.name.clone()),
                        from: from.into(),
                        to: after.as_str().into(),
                        why: cause.clone(),
                    });
                }
                let why = if cause.is_empty() {
                    cause
                } else {
                    format!(" ({cause})")
                };
                let level = if after == crate::outcome::Status::Ok {
                    log::Level::Info
                } else {
                    log::Level::Warn
                };
                let reason = c.health.last.as_ref().and_then(|o| o.reason);
                log::log!(
                    if self.log_changes.get() {
                        level
                    } else {
                        log::Level::Trace
                    },
                    check = spec.name.as_str(),
                    from = from,
                    to = after.as_str(),
                    reason = reason.map_or("", |r| r.code());
                    "check {}: {from} -> {}{why}",
                    spec.name,
                    after.as_str()
                );
            }
            if c.health.flapping != flapping {
                let what = if c.health.flapping {
                    "started"
                } else {
                    "stopped"
                };
                log::log!(
                    if self.log_changes.get() {
                        log::Level::Warn
                    } else {
                        log::Level::Trace
                    },
                    "check {}: {what} flapping ({:.0}% state changes)",
                    spec.name,
                    c.health.flap_percent
                );
                let (from, to) = if c.health.flapping {
                    ("steady", "flapping")
                } else {
                    ("flapping", "steady")
                };
                self.history.borrow_mut().push(Transition {
                    at_ms: unix_millis(SystemTime::now()),
                    check: Some(spec.name.clone()),
                    from: from.into(),
                    to: to.into(),
                    why: format!("{:.0}% state changes", c.health.flap_percent),
                });
            }
            drop(checks);
            if changed {
                self.observe_status();
            }
            self.notify_ready();
        }
    }

    /// `READY=1` to systemd once `/ready` would answer 200. Counting the
    /// pending checks is O(checks), so it is done only until then.
    pub fn notify_ready(&self) {
        if self.systemd.enabled() && !self.systemd.is_ready() && self.ready() {
            self.systemd.ready();
            self.notify_status();
        }
    }

    /// `STATUS=` to systemd, if the line changed: `online · 12 checks ·
    /// backlog 0`, with `(3 pending)` after the count until every check has
    /// run once.
    pub fn notify_status(&self) {
        if !self.systemd.enabled() {
            return;
        }
        let (status, _) = self.agent_status();
        let (pending, total) = self.pending();
        let backlog = self
            .uplink
            .borrow()
            .as_ref()
            .map_or(0, |u| u.outbox.backlog_records());
        let pending = if pending > 0 {
            format!(" ({pending} pending)")
        } else {
            String::new()
        };
        self.systemd.status(&format!(
            "{} · {}{pending} · backlog {backlog}",
            status.as_str(),
            crate::format::text::count(total as u64, "check")
        ));
    }

    /// Whether the agent has lost the durability it promises: the state
    /// directory (its lock at start, the sequence lease, the history file)
    /// or the spool cannot be written. The agent goes on (probing, sending
    /// what it can) and says so; its severity is at least `unhealthy`.
    pub fn durability_lost(&self) -> Option<DurabilityLost> {
        self.durability_lost_of(self.uplink.borrow().as_ref())
    }

    /// [`AgentState::durability_lost`] with the uplink already borrowed.
    pub fn durability_lost_of(&self, u: Option<&Uplink>) -> Option<DurabilityLost> {
        let lost = |reason, message| Some(DurabilityLost { reason, message });
        let dir = || self.config.borrow().agent.state_dir.display().to_string();
        if let Some(why) = self.state_error.borrow().as_ref() {
            return lost("state_unwritable", why.clone());
        }
        if self.history.borrow().failing() || u.is_some_and(|u| u.outbox.seq.failing()) {
            return lost(
                "state_unwritable",
                format!("cannot write the state directory {}", dir()),
            );
        }
        lost("spool_unavailable", u?.outbox.disk_error.clone()?)
    }

    /// The agent's status: the checks' verdict, overridden by the upstream
    /// link (maintenance first, then needs_recovery, version_unsupported,
    /// offline).
    pub fn agent_status(&self) -> (AgentStatus, Severity) {
        let disabled = self.disabled.get();
        let checks = self.checks.borrow();
        let (status, mut severity) =
            overall(checks.iter().map(|c| (c.spec.role, &*c.health)), disabled);
        if disabled {
            return (status, severity);
        }
        if self.durability_lost().is_some() {
            severity = severity.max(Severity::Unhealthy);
        }
        let uplink = self.uplink.borrow();
        // Only the control plane's link decides offline and the like; a
        // remote-write receiver is a store, not the control plane.
        let upstream = self.config.borrow().upstream.is_some();
        let Some(u) = uplink.as_ref().filter(|_| upstream) else {
            return (status, severity);
        };
        let offline_after = self
            .config
            .borrow()
            .upstream
            .as_ref()
            .map_or(Duration::MAX, |up| up.offline_after);
        match u.state {
            LinkState::NoIdentity | LinkState::CredentialsRejected => {
                (AgentStatus::NeedsRecovery, Severity::Critical)
            }
            LinkState::VersionUnsupported => (AgentStatus::VersionUnsupported, Severity::Critical),
            _ if u.offline(offline_after, Instant::now()) => {
                (AgentStatus::Offline, Severity::Critical)
            }
            // Refused uploads: the control plane hears nothing of use.
            LinkState::Rejected => (status, severity.max(Severity::Unhealthy)),
            _ => (status, severity),
        }
    }

    /// Notices a change of the agent's status: logs it and, with an
    /// upstream, queues a transition record and asks for an upload now.
    pub fn observe_status(&self) {
        let now = self.agent_status();
        self.notify_status();
        let label =
            |(s, sev): (AgentStatus, Severity)| format!("{} ({})", s.as_str(), sev.as_str());
        let at = SystemTime::now();
        let Some(before) = self.last_status.replace(Some(now)) else {
            // The first status after a start: history only.
            self.status_since.set(at);
            let why = self.status_reason(now.0);
            self.history.borrow_mut().push(Transition {
                at_ms: unix_millis(at),
                check: None,
                from: "started".into(),
                to: label(now),
                why,
            });
            return;
        };
        if before == now {
            return;
        }
        let why = self.status_reason(now.0);
        self.status_since.set(at);
        self.history.borrow_mut().push(Transition {
            at_ms: unix_millis(at),
            check: None,
            from: label(before),
            to: label(now),
            why: why.clone(),
        });
        if self.config.borrow().agent.on_change.is_some() {
            self.on_change.push(before, now, &why);
        }
        log::log!(
            if self.log_changes.get() {
                log::Level::Warn
            } else {
                log::Level::Trace
            },
            status = now.0.as_str(),
            severity = now.1.as_str();
            "agent: {} -> {} ({}){}",
            before.0.as_str(),
            now.0.as_str(),
            now.1.as_str(),
            if why.is_empty() {
                String::new()
            } else {
                format!(": {why}")
            }
        );
        if let Some(u) = self.uplink.borrow_mut().as_mut() {
            let body = record::agent_transition(
                before.0.as_str(),
                now.0.as_str(),
                now.1.as_str(),
                &why,
                unix_millis(SystemTime::now()),
            );
            u.outbox.push(body);
            u.urgent.set(true);
        }
        self.deliver.notify();
    }

    /// One line on why the agent has this status.
    fn status_reason(&self, status: AgentStatus) -> String {
        let uplink = self.uplink.borrow();
        let link_error = uplink.as_ref().and_then(|u| match &u.identity {
            Err(why) => Some(why.clone()),
            Ok(_) => u.last_error.as_ref().map(|e| e.0.clone()),
        });
        if status != AgentStatus::Disabled {
            let ended = self.maintenance_ended.borrow_mut().take();
            if let Some(ended) = ended {
                drop(uplink);
                let rest = self.status_reason(status);
                return if rest.is_empty() {
                    ended
                } else {
                    format!("{ended}; {rest}")
                };
            }
        }
        match status {
            AgentStatus::Disabled => match self.maintenance.borrow().as_ref() {
                Some(f) => format!("maintenance: {}", f.describe()),
                None => "maintenance".into(),
            },
            AgentStatus::NeedsRecovery | AgentStatus::VersionUnsupported => {
                link_error.unwrap_or_default()
            }
            AgentStatus::Offline if uplink.as_ref().is_some_and(|u| u.failing_since.is_some()) => {
                format!(
                    "the upstream has not answered: {}",
                    link_error.unwrap_or_default()
                )
            }
            _ => {
                let checks = self.checks.borrow();
                let failing: Vec<&str> = checks
                    .iter()
                    .filter(|c| c.health.status.is_some_and(|s| s.is_failing()))
                    .map(|c| c.spec.name.as_str())
                    .collect();
                let mut why = Vec::new();
                if !failing.is_empty() {
                    why.push(format!("failing: {}", failing.join(", ")));
                }
                if let Some(d) = self.durability_lost() {
                    why.push(format!("{}: {}", d.reason, d.message));
                }
                why.join("; ")
            }
        }
    }

    /// (checks without a completed first run, all checks).
    pub fn pending(&self) -> (usize, usize) {
        let checks = self.checks.borrow();
        let pending = checks.iter().filter(|c| c.health.status.is_none()).count();
        (pending, checks.len())
    }

    /// Ready once every check has completed its first run.
    pub fn ready(&self) -> bool {
        self.pending().0 == 0
    }
}

/// Offsets are rounded down to a grid: checks that fall in the same slot
/// start together, so 100 checks at 1 s wake the process 4 times a second
/// instead of 100, and checks with a 30 s interval are still spread over 120
/// slots. Every wake-up has a fixed cost (two threads woken, caches refilled;
/// about 350 µs on the 2-core VM of `benches/compare`): measured there, a
/// 100 ms grid cost ~74 µs per probe with 100 checks, 250 ms ~53 µs.
pub const SPREAD_GRID: Duration = Duration::from_millis(250);

/// At most this many checks share a slot: a slot's probes start one after
/// the other on the one thread (~50 µs each), so the last of a group of
/// 2,500 (10,000 checks at 1 s on a 250 ms grid) started 125 ms late. With
/// 100 a slot the last starts within a few milliseconds, and the wake-up
/// cost is still shared by 100 probes (docs/benchmarks.md, scale).
pub const SLOT_CHECKS: u32 = 100;

/// The grid for `n` checks spread over `spread`: [`SPREAD_GRID`], finer when
/// more than [`SLOT_CHECKS`] would share a slot, and never under 1 ms.
pub fn spread_grid(n: usize, spread: Duration) -> Duration {
    let fine = spread * SLOT_CHECKS / (n.max(1) as u32);
    fine.clamp(Duration::from_millis(1), SPREAD_GRID)
}

/// Builds the schedule for `config`, carrying over unchanged checks from `old`.
/// Check i of n first runs at t0 + min(interval, agent interval)·i/n
/// (rounded down to [`spread_grid`]), spreading checks over their interval
/// instead of bursting together, and every check has run once within one
/// agent interval plus its timeout.
/// A kept check's configuration becomes the one it already had (equal, and
/// the same `Rc`), so it is held once.
fn schedule(config: &mut Config, mut old: Vec<CheckState>, t0: Instant) -> Vec<CheckState> {
    let n = config.checks.len().max(1) as u32;
    // Spread over the agent interval at most, so that readiness (and
    // systemd's READY=1) never waits for an hourly check's slot.
    let agent_interval = config.agent.interval;
    let spread = |spec: &Check| spec.interval.min(agent_interval);
    let shortest = config.checks.iter().map(|c| spread(c)).min();
    let grid = spread_grid(n as usize, shortest.unwrap_or(SPREAD_GRID)).as_nanos();
    config
        .checks
        .iter_mut()
        .enumerate()
        .map(|(i, spec)| {
            let offset = spread(spec) * i as u32 / n;
            let next = t0 + Duration::from_nanos((offset.as_nanos() / grid * grid) as u64);
            match old.iter().position(|c| *c.spec == **spec) {
                Some(pos) => {
                    let mut c = old.swap_remove(pos);
                    c.next = next;
                    *spec = c.spec.clone();
                    c
                }
                None => CheckState {
                    spec: spec.clone(),
                    health: Rc::new(CheckHealth::new(SystemTime::now())),
                    running: false,
                    next,
                },
            }
        })
        .collect()
}

/// PRETTY_NAME from /etc/os-release (or NAME, or "unknown").
pub fn os_release() -> String {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let field = |k: &str| {
        text.lines().find_map(|l| {
            let v = l.strip_prefix(k)?.strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        })
    };
    field("PRETTY_NAME")
        .or_else(|| field("NAME"))
        .unwrap_or_else(|| "unknown".into())
}

/// How long `/health` tolerates the scheduler not turning.
pub fn stall_limit(config: &Config) -> Duration {
    config.agent.interval * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_finer_when_more_than_a_slot_of_checks_share_it() {
        let s = Duration::from_secs(1);
        assert_eq!(spread_grid(100, s), SPREAD_GRID);
        assert_eq!(spread_grid(400, s), SPREAD_GRID);
        assert_eq!(spread_grid(1000, s), Duration::from_millis(100));
        assert_eq!(spread_grid(10_000, s), Duration::from_millis(10));
        assert_eq!(spread_grid(1_000_000, s), Duration::from_millis(1));
        assert_eq!(spread_grid(0, s), SPREAD_GRID);
        // 10,000 checks at 30 s: 120 slots of 250 ms hold 83 each.
        assert_eq!(spread_grid(10_000, Duration::from_secs(30)), SPREAD_GRID);
    }
}
