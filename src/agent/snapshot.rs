//! What the agent knows, as one value ([`Snapshot`]) rendered three ways: the
//! JSON of `GET /status` and `tether check --json`, the table of
//! `tether status` and `tether check`, and the Nagios exit code.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::agent::health::{AgentStatus, CheckHealth, Severity, FLAP_HINT};
use crate::agent::state::AgentState;
use crate::config::Check;
use crate::format::json::Json;
use crate::format::perfdata::PerfDatum;
use crate::format::text::fit;
use crate::os::clock::{rfc3339, rfc3339_unix};
use crate::outcome::{Phase, Status};
use crate::uplink::spool::Dest;

pub struct CheckView {
    pub spec: Rc<Check>,
    /// The agent's own, shared (see [`crate::agent::state::CheckState`]).
    pub health: Rc<CheckHealth>,
}

pub struct Snapshot {
    /// `None` without `[upstream]`.
    pub upstream: Option<crate::uplink::link::UpstreamView>,
    /// `None` without `[remote_write]`.
    pub remote_write: Option<crate::uplink::link::RemoteView>,
    /// `None` without `[otlp]`.
    pub otlp: Option<crate::uplink::link::RemoteView>,
    pub agent: String,
    /// The labels every pushed series carries (`[agent] labels` and
    /// `[remote_write] labels`),
    /// sorted; `/metrics` puts them on the same families.
    pub labels: Vec<(String, String)>,
    /// The agent id, once there is one.
    pub agent_id: Option<String>,
    pub os_release: String,
    /// [`AgentState::heartbeat_interval`].
    pub heartbeat_interval: f64,
    pub status: AgentStatus,
    pub severity: Severity,
    /// When the status (or severity) last changed, or the agent started.
    pub since: SystemTime,
    pub disabled: bool,
    /// The control plane's document (revision running, without its text;
    /// the one refused; clashes) and the hash of the effective
    /// configuration.
    pub config: (crate::agent::state::RemoteState, String),
    /// The state directory or the spool cannot be written.
    pub durability_lost: Option<crate::agent::state::DurabilityLost>,
    /// The processes that make the checks' filesystem calls: running,
    /// stuck in the kernel, and their totals.
    pub fs_helpers: crate::os::fs_helper::Stats,
    /// The spool's fsyncs (with an upstream or a remote-write store).
    pub fsyncs: Option<crate::uplink::spool::FsyncStats>,
    /// Why, who and until when, while disabled.
    pub maintenance: Option<crate::agent::maintenance::Flag>,
    pub ready: bool,
    pub now: SystemTime,
    pub checks: Vec<CheckView>,
    /// The health history, when asked for (`?history=1`).
    pub history: Option<std::collections::VecDeque<crate::agent::history::Transition>>,
}

/// Yields to the executor once a slice of rendering time has passed.
pub(crate) struct Slicer {
    slice: Duration,
    since: std::time::Instant,
}

impl Slicer {
    pub(crate) fn new(slice: Duration) -> Slicer {
        Slicer {
            slice,
            since: std::time::Instant::now(),
        }
    }

    pub(crate) async fn step(&mut self) {
        if self.since.elapsed() >= self.slice {
            futures_lite::future::yield_now().await;
            self.since = std::time::Instant::now();
        }
    }
}

/// In a table cut to a terminal's width, no column is cut below this.
pub const CELL_FIT: usize = 24;

fn status_str(s: Option<Status>) -> &'static str {
    s.map_or("pending", Status::as_str)
}

impl Snapshot {
    /// What `state` shows now. The checks' health is shared with the
    /// agent, not copied.
    pub fn of(state: &AgentState) -> Snapshot {
        let (status, severity) = state.agent_status();
        let checks = state.checks.borrow();
        let disabled = state.disabled.get();
        let upstream = state.uplink.borrow().as_ref().and_then(|u| {
            let url = state.config.borrow().upstream.as_ref()?.url.to_string();
            Some(u.view(url, SystemTime::now()))
        });
        let receiver = |d: Dest, url: Option<String>| {
            let g = state.uplink.borrow();
            Some(g.as_ref()?.receiver_view(d, url?, SystemTime::now()))
        };
        let c = state.config.borrow();
        let remote_write = receiver(
            Dest::RemoteWrite,
            c.remote_write.as_ref().map(|r| r.url.to_string()),
        );
        let otlp = receiver(Dest::Otlp, c.otlp.as_ref().map(|o| o.url.to_string()));
        drop(c);
        Snapshot {
            upstream,
            remote_write,
            otlp,
            agent: state.config.borrow().agent.name.clone(),
            labels: state.config.borrow().push_labels(),
            agent_id: state
                .uplink
                .borrow()
                .as_ref()
                .and_then(|u| u.identity.as_ref().ok().cloned()),
            os_release: state.os_release.clone(),
            heartbeat_interval: state.heartbeat_interval(),
            status,
            severity,
            since: state.status_since.get(),
            disabled,
            durability_lost: state.durability_lost(),
            fs_helpers: crate::os::fs_helper::stats(),
            fsyncs: state
                .uplink
                .borrow()
                .as_ref()
                .map(|u| u.outbox.fsync_stats()),
            config: {
                let r = state.remote_config.borrow();
                let remote = crate::agent::state::RemoteState {
                    running: r.running.as_ref().map(|(v, _)| (v.clone(), String::new())),
                    rejected: r.rejected.clone(),
                    clashes: r.clashes.clone(),
                    failing: r.failing.clone(),
                };
                (remote, state.config_hash.borrow().clone())
            },
            maintenance: state.maintenance.borrow().clone().filter(|_| disabled),
            ready: state.ready(),
            now: SystemTime::now(),
            checks: checks
                .iter()
                .map(|c| CheckView {
                    spec: c.spec.clone(),
                    health: c.health.clone(),
                })
                .collect(),
            history: None,
        }
    }

    /// The snapshot with the health history.
    pub fn with_history(state: &AgentState) -> Snapshot {
        let mut s = Snapshot::of(state);
        s.history = Some(state.history.borrow().entries().clone());
        s
    }

    /// The snapshot with the health history (the recent samples are in
    /// every snapshot's shared health).
    pub fn for_doctor(state: &AgentState) -> Snapshot {
        let mut s = Snapshot::of(state);
        s.history = Some(state.history.borrow().entries().clone());
        s
    }

    /// A `system` check's CPU average is at or above its `warn_percent`:
    /// carried beside the status, so "yellow because the host is busy" is
    /// told apart from "yellow because a resource is down".
    pub fn overloaded(&self) -> bool {
        self.checks.iter().any(|c| c.health.overloaded())
    }

    pub fn to_json(&self) -> String {
        futures_lite::future::block_on(self.to_json_sliced(Duration::MAX))
    }

    /// [`Snapshot::to_json`], yielding to the executor after each `slice`
    /// of work (the endpoint: due probes go first).
    pub async fn to_json_sliced(&self, slice: Duration) -> String {
        let mut slicer = Slicer::new(slice);
        let mut j = Json::new();
        j.begin_object(None)
            .str(Some("agent"), &self.agent)
            .str(Some("version"), env!("CARGO_PKG_VERSION"))
            .str(Some("status"), self.status.as_str())
            .str(Some("severity"), self.severity.as_str())
            .str(Some("since"), &rfc3339(self.since))
            .bool(Some("disabled"), self.disabled);
        j.string_map(Some("labels"), &self.labels);
        if let Some(f) = &self.maintenance {
            j.begin_object(Some("maintenance"))
                .str(Some("reason"), &f.reason)
                .str(Some("by"), &f.by)
                .str(Some("since"), &f.since)
                .opt_str(Some("until"), f.until.map(rfc3339).as_deref())
                .end_object();
        }
        let (remote, hash) = &self.config;
        j.begin_object(Some("config"))
            .opt_str(
                Some("revision"),
                remote.running.as_ref().map(|(r, _)| r.as_str()),
            )
            .str(Some("hash"), hash)
            .opt_str(Some("error"), remote.failing.as_deref())
            .opt_str(
                Some("rejected_revision"),
                remote.rejected.as_ref().map(|(r, _)| r.as_str()),
            )
            .strings(
                Some("errors"),
                remote.rejected.as_ref().map_or(&[], |(_, e)| e),
            )
            .strings(Some("clashes"), &remote.clashes)
            .end_object();
        match &self.durability_lost {
            None => j.opt_str(Some("durability_lost"), None),
            Some(d) => j
                .begin_object(Some("durability_lost"))
                .str(Some("reason"), d.reason)
                .str(Some("message"), &d.message)
                .end_object(),
        };
        let h = &self.fs_helpers;
        j.begin_object(Some("fs_helpers"))
            .uint(Some("running"), h.running as u64)
            .uint(Some("max"), crate::os::fs_helper::MAX_HELPERS as u64)
            .begin_array(Some("stuck"));
        for (call, since) in &h.stuck {
            j.begin_object(None)
                .str(Some("call"), call)
                .str(Some("since"), &rfc3339(*since))
                .end_object();
        }
        j.end_array()
            .uint(Some("started_total"), h.started_total)
            .uint(Some("killed_total"), h.killed_total)
            .uint(Some("refused_total"), h.refused_total)
            .end_object();
        j.bool(Some("overloaded"), self.overloaded())
            .bool(Some("ready"), self.ready)
            .str(Some("time"), &rfc3339(self.now));
        match &self.upstream {
            None => {
                j.opt_str(Some("upstream"), None);
            }
            Some(u) => {
                j.begin_object(Some("upstream"))
                    .str(Some("url"), &u.url)
                    .str(Some("state"), u.state.as_str())
                    .opt_str(Some("agent_id"), u.agent_id.as_deref())
                    .opt_str(Some("last_success"), u.last_success.map(rfc3339).as_deref())
                    .uint(
                        Some("consecutive_failures"),
                        u64::from(u.consecutive_failures),
                    )
                    .opt_str(Some("last_error"), u.last_error.as_deref())
                    .opt_str(
                        Some("last_error_time"),
                        u.last_error_at.map(rfc3339).as_deref(),
                    )
                    .opt_str(Some("min_version"), u.min_version.as_deref())
                    .uint(Some("backlog_records"), u.backlog_records)
                    .uint(Some("backlog_bytes"), u.backlog_bytes)
                    .uint(Some("spool_records"), u.spool_records)
                    .opt_float(Some("oldest_unsent_age_seconds"), u.oldest_age_seconds)
                    .uint(Some("sent"), u.sent)
                    .uint(Some("dropped"), u.dropped)
                    .uint(Some("dead_lettered"), u.dead_lettered)
                    .uint(Some("dead_letters_discarded"), u.dead_letters_discarded)
                    .uint(Some("retried"), u.retried)
                    .bool(Some("spool_degraded"), u.spool_degraded.is_some())
                    .opt_str(Some("spool_error"), u.spool_degraded.as_deref())
                    .end_object();
            }
        }
        receiver_json(
            &mut j,
            "remote_write",
            "samples",
            self.remote_write.as_ref(),
        );
        receiver_json(&mut j, "otlp", "points", self.otlp.as_ref());
        j.begin_array(Some("checks"));
        for c in &self.checks {
            slicer.step().await;
            let h = &c.health;
            j.begin_object(None)
                .str(Some("name"), &c.spec.name)
                .str(Some("kind"), c.spec.probe.kind())
                .str(Some("role"), c.spec.role.as_str())
                .str(Some("target"), &c.spec.probe.target())
                .str(Some("status"), status_str(h.status))
                .str(Some("since"), &rfc3339(h.since))
                .uint(Some("consecutive_ok"), u64::from(h.consecutive_ok))
                .uint(Some("consecutive_failures"), u64::from(h.consecutive_fail))
                .bool(Some("flapping"), h.flapping)
                .float(Some("flap_percent"), (h.flap_percent * 10.0).round() / 10.0)
                .opt_str(Some("hint"), h.flapping.then_some(FLAP_HINT))
                .opt_str(Some("last_success"), h.last_success.map(rfc3339).as_deref())
                .opt_float(
                    Some("last_success_age_seconds"),
                    h.last_success_age(self.now),
                )
                .uint(Some("runs"), h.runs);
            if let Some(t) = c.spec.probe.tls() {
                j.bool(Some("insecure_skip_verify"), t.insecure_skip_verify);
            }
            match &h.last {
                None => {
                    j.opt_str(Some("last"), None);
                }
                Some(o) => {
                    j.begin_object(Some("last"))
                        .str(Some("status"), o.status.as_str())
                        .opt_str(Some("reason"), o.reason.map(|r| r.code()))
                        .str(Some("message"), &o.message)
                        .str(Some("at"), &rfc3339(o.at))
                        .float(Some("duration_seconds"), o.duration.as_secs_f64())
                        .opt_str(Some("peer"), o.peer.map(|p| p.to_string()).as_deref())
                        .begin_object(Some("phases"));
                    for p in Phase::ALL {
                        j.float(Some(p.as_str()), o.phases.get(p).as_secs_f64());
                    }
                    j.end_object();
                    if let Some(cert) = &o.detail.cert {
                        let now = crate::os::clock::unix_secs(self.now);
                        let i = &cert.info;
                        j.begin_object(Some("certificate"))
                            .str(Some("subject"), &i.subject)
                            .str(Some("issuer"), &i.issuer)
                            .str(Some("not_before"), &rfc3339_unix(i.not_before))
                            .str(Some("not_after"), &rfc3339_unix(i.not_after))
                            .int(
                                Some("days_left"),
                                crate::net::x509::whole_days(i.not_after - now),
                            )
                            .begin_array(Some("names"));
                        for n in &i.names {
                            j.str(None, n);
                        }
                        j.end_array();
                        match cert.verified {
                            Some(v) => j.bool(Some("verified"), v),
                            None => j.opt_str(Some("verified"), None),
                        };
                        j.end_object();
                    }
                    if let Some(f) = &o.detail.file {
                        j.begin_object(Some("file"))
                            .float(Some("age_seconds"), f.age_seconds.round())
                            .uint(Some("size_bytes"), f.size)
                            .end_object();
                    }
                    if let Some(s) = &o.detail.system {
                        j.begin_object(Some("system"))
                            .float(
                                Some("cpu_busy_percent"),
                                (s.cpu_percent * 10.0).round() / 10.0,
                            )
                            .opt_float(
                                Some("cpu_window_seconds"),
                                s.cpu_window_seconds.map(f64::round),
                            )
                            .bool(Some("overloaded"), s.overloaded)
                            .uint(Some("memory_available_bytes"), s.memory_available_bytes)
                            .uint(Some("memory_total_bytes"), s.memory_total_bytes)
                            .uint(Some("disk_free_bytes"), s.disk_free_bytes)
                            .uint(Some("disk_total_bytes"), s.disk_total_bytes)
                            .end_object();
                    }
                    j.end_object();
                }
            }
            j.end_object();
        }
        j.end_array();
        if let Some(h) = &self.history {
            crate::agent::history::write_json(&mut j, h);
        }
        j.end_object();
        let mut out = j.finish();
        out.push('\n');
        out
    }

    /// A fixed-width table for terminals.
    pub fn to_table(&self) -> String {
        self.to_table_fit(None)
    }

    /// `  last error 14:02:11Z (3m ago): …`, marked as past once the
    /// destination is up again.
    fn last_error_line(&self, e: &str, at: Option<SystemTime>, up: bool) -> String {
        let when = at.map_or(String::new(), |t| {
            let ago = ago(self.now.duration_since(t).unwrap_or_default().as_secs());
            format!(" {} ({ago} ago)", &rfc3339(t)[11..])
        });
        let past = if up { ", past: up again since" } else { "" };
        format!("  last error{when}{past}: {e}\n")
    }

    /// The table at most `width` characters wide (a terminal's): columns
    /// wider than [`CELL_FIT`] give way first, then every line is cut, with
    /// `…` where something was.
    pub fn to_table_fit(&self, width: Option<usize>) -> String {
        futures_lite::future::block_on(self.to_table_sliced(width, Duration::MAX))
    }

    /// [`Snapshot::to_table_fit`], yielding after each `slice` of work.
    pub async fn to_table_sliced(&self, width: Option<usize>, slice: Duration) -> String {
        let mut slicer = Slicer::new(slice);
        let mut out = format!(
            "tether {} on {}: {} ({}) since {}{}\n",
            env!("CARGO_PKG_VERSION"),
            self.agent,
            self.status.as_str(),
            self.severity.as_str(),
            rfc3339(self.since),
            if self.ready {
                ""
            } else {
                ", not ready: some checks have not run yet"
            }
        );
        if !self.labels.is_empty() {
            let l: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!("labels: {}\n", l.join(", ")));
        }
        let (remote, hash) = &self.config;
        if let Some((rev, _)) = &remote.running {
            out.push_str(&format!("config: remote revision {rev} (hash {hash})\n"));
        }
        if let Some((rev, errors)) = &remote.rejected {
            out.push_str(&format!(
                "config: remote revision {rev} refused ({}; the running configuration stays)\n",
                crate::format::text::count(errors.len() as u64, "error")
            ));
        }
        let header = [
            "CHECK", "KIND", "ROLE", "STATUS", "FOR", "LAST OK", "TOOK", "REASON", "MESSAGE",
        ];
        let mut rows: Vec<[String; 9]> = vec![header.map(String::from)];
        let mut hints = Vec::new();
        for c in &self.checks {
            slicer.step().await;
            let h = &c.health;
            let mut status = status_str(h.status).to_string();
            // On its way down: failures counted toward `fall`.
            if h.consecutive_fail > 0 && !h.status.is_some_and(Status::is_failing) {
                status.push_str(&format!(
                    " ({}/{} failing)",
                    h.consecutive_fail, c.spec.fall
                ));
            }
            if h.flapping {
                status.push_str(" flapping");
                hints.push(format!(
                    "  {}: flapping ({:.0}% state changes): {FLAP_HINT}",
                    c.spec.name, h.flap_percent
                ));
            }
            let age = |t: SystemTime| ago(self.now.duration_since(t).unwrap_or_default().as_secs());
            rows.push([
                c.spec.name.clone(),
                c.spec.probe.kind().to_string(),
                c.spec.role.as_str().to_string(),
                status,
                age(h.since),
                h.last_success.map_or("never".into(), age),
                h.last.as_ref().map_or("-".into(), |o| {
                    format!("{:.1}ms", o.duration.as_secs_f64() * 1000.0)
                }),
                h.last
                    .as_ref()
                    .and_then(|o| o.reason)
                    .map_or("-".into(), |r| r.code().to_string()),
                h.last.as_ref().map_or(String::new(), |o| o.message.clone()),
            ]);
        }
        let mut widths: Vec<usize> = (0..8)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        if width.is_some_and(|w| widths.iter().map(|c| c + 2).sum::<usize>() > w) {
            widths.iter_mut().for_each(|c| *c = (*c).min(CELL_FIT));
        }
        for r in &rows {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i < 8 {
                    let cell = fit(cell, widths[i]);
                    line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if self.disabled {
            out.push_str(&format!(
                "maintenance: {}; nothing is alarmed\n",
                self.maintenance
                    .as_ref()
                    .map_or("disabled with `tether disable`".into(), |f| f.describe())
            ));
        }
        if let Some(d) = &self.durability_lost {
            out.push_str(&format!(
                "durability lost ({}): {}; what is not yet sent is lost if the agent stops\n",
                d.reason, d.message
            ));
        }
        if let Some((call, since)) = self.fs_helpers.stuck.first() {
            out.push_str(&format!(
                "filesystem helpers stuck in the kernel: {} of {} (oldest: {call}, since {}); at {} every filesystem check fails with fs_stuck\n",
                self.fs_helpers.stuck.len(),
                crate::os::fs_helper::MAX_HELPERS,
                rfc3339(*since),
                crate::os::fs_helper::MAX_HELPERS,
            ));
        }
        if self.overloaded() {
            out.push_str("overloaded: the host's CPU is above a system check's warn_percent; slow or failing probes may be the host, not the targets\n");
        }
        for h in hints {
            out.push_str(&h);
            out.push('\n');
        }
        if let Some(u) = &self.upstream {
            let last = u.last_success.map_or("never".into(), |t| {
                ago(self.now.duration_since(t).unwrap_or_default().as_secs())
            });
            out.push_str(&format!(
                "upstream {}: {}, last success {last}, backlog {} records ({} on disk), dropped {}, dead-lettered {}\n",
                u.url, u.state.as_str(), u.backlog_records, u.spool_records, u.dropped, u.dead_lettered
            ));
            if let Some(e) = &u.last_error {
                let up = u.state == crate::uplink::link::LinkState::Up;
                out.push_str(&self.last_error_line(e, u.last_error_at, up));
            }
            if let Some(e) = &u.spool_degraded {
                out.push_str(&format!("  spool degraded: {e}\n"));
            }
        }
        let receivers = [
            ("remote_write", "samples", &self.remote_write),
            ("otlp", "points", &self.otlp),
        ];
        for (name, what, r) in receivers {
            let Some(r) = r else { continue };
            let last = r.last_success.map_or("never".into(), |t| {
                ago(self.now.duration_since(t).unwrap_or_default().as_secs())
            });
            let rejected: u64 = r.samples_rejected.iter().map(|(_, n)| n).sum();
            out.push_str(&format!(
                "{name} {}: {}, last success {last}, backlog {} records ({} on disk), {what} sent {}, retried {}, rejected {rejected}, records lost {}\n",
                r.url, r.state.as_str(), r.backlog_records, r.spool_records, r.samples_sent, r.samples_retried, r.records_lost
            ));
            if let Some((e, at)) = &r.last_error {
                let up = r.state == crate::uplink::link::LinkState::Up;
                out.push_str(&self.last_error_line(e, Some(*at), up));
            }
        }
        if let Some(h) = &self.history {
            out.push_str(&format!(
                "\nhistory ({} transitions, oldest first):\n",
                h.len()
            ));
            out.push_str(&crate::agent::history::to_table(h));
        }
        match width {
            Some(w) => out.lines().map(|l| fit(l, w) + "\n").collect(),
            None => out,
        }
    }

    /// Nagios plugin output (the plugin development guidelines): a first
    /// line `SERVICE STATUS: text | perfdata`, then one line per check.
    /// With one check the service is that check and the text its message;
    /// otherwise `TETHER` and a count by status. Perfdata: each check's
    /// duration and the phases it reached, in seconds, and a wrapped
    /// plugin's own values (prefixed with the check's name when there are
    /// several checks).
    pub fn to_nagios(&self) -> String {
        const WORDS: [&str; 4] = ["OK", "WARNING", "CRITICAL", "UNKNOWN"];
        let code = self.exit_code();
        let word = WORDS[code as usize];
        let single = self.checks.len() == 1;
        let mut perf = Vec::new();
        let mut long = Vec::new();
        let mut by_status: [Vec<&str>; 4] = Default::default();
        for c in &self.checks {
            let status = c.health.status.unwrap_or(Status::Unknown);
            by_status[status.nagios_code() as usize].push(&c.spec.name);
            let prefix = if single {
                String::new()
            } else {
                format!("{}_", c.spec.name)
            };
            let Some(o) = &c.health.last else {
                long.push(format!("{}: UNKNOWN: no result", c.spec.name));
                continue;
            };
            let secs = |d: std::time::Duration| PerfDatum {
                label: String::new(),
                value: Some(d.as_secs_f64()),
                uom: "s".into(),
                warn: None,
                crit: None,
                min: Some(0.0),
                max: None,
            };
            perf.push(crate::format::perfdata::render(
                &format!("{prefix}time"),
                &secs(o.duration),
            ));
            for (i, name) in ["resolve", "connect", "tls", "first_byte", "transfer"]
                .iter()
                .enumerate()
            {
                let d = o.phases.0[i];
                if !d.is_zero() {
                    perf.push(crate::format::perfdata::render(
                        &format!("{prefix}{name}"),
                        &secs(d),
                    ));
                }
            }
            for d in &o.detail.perf {
                perf.push(crate::format::perfdata::render(
                    &format!("{prefix}{}", d.label),
                    d,
                ));
            }
            long.push(format!(
                "{}: {}{}: {}",
                c.spec.name,
                WORDS[status.nagios_code() as usize],
                o.reason.map_or(String::new(), |r| format!(" {}", r.code())),
                o.message
            ));
        }
        let text = if self.disabled {
            format!(
                "maintenance{}: nothing is alarmed",
                self.maintenance
                    .as_ref()
                    .map_or(String::new(), |f| format!(" {}", f.describe()))
            )
        } else if let (true, Some(o)) = (
            single,
            self.checks.first().and_then(|c| c.health.last.as_ref()),
        ) {
            match o.reason {
                Some(r) => format!("{}: {}", r.code(), o.message),
                None => o.message.clone(),
            }
        } else {
            let mut parts = Vec::new();
            for (i, label) in [(2, "critical"), (3, "unknown"), (1, "warning"), (0, "ok")] {
                let names = &by_status[i];
                if names.is_empty() {
                    continue;
                }
                parts.push(if i == 0 {
                    format!("{} {label}", names.len())
                } else {
                    format!("{} {label} ({})", names.len(), names.join(", "))
                });
            }
            format!(
                "{} {} ({}): {}",
                self.agent,
                self.status.as_str(),
                self.severity.as_str(),
                if parts.is_empty() {
                    "no checks".into()
                } else {
                    parts.join(", ")
                }
            )
        };
        let service = match (single, self.checks.first()) {
            (true, Some(c)) => c.spec.name.clone(),
            _ => "TETHER".into(),
        };
        // One line: a `|` or a newline in a message would end the text.
        let text = text.replace(['|', '\n', '\r'], " ");
        let mut out = format!("{service} {word}: {text}");
        if !perf.is_empty() {
            out.push_str(" | ");
            out.push_str(&perf.join(" "));
        }
        out.push('\n');
        if !single {
            for l in long {
                out.push_str(&l.replace(['|', '\n', '\r'], " "));
                out.push('\n');
            }
        }
        out
    }

    /// Nagios plugin exit code over the checks' states: crit 2, else unknown
    /// 3, else warn 1, else 0. In maintenance nothing is alarmed: 0.
    pub fn exit_code(&self) -> i32 {
        if self.disabled {
            return 0;
        }
        self.checks
            .iter()
            .map(|c| c.health.status.unwrap_or(Status::Unknown))
            .max_by_key(|s| s.badness())
            .map_or(0, Status::nagios_code)
    }
}

/// `42s`, `5m`, `3h`, `2d`: an age for operators.
pub(crate) fn ago(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// A receiver's object in `/status` (`null` when not configured): `what`
/// names its counts (`samples` for remote-write, `points` for OTLP).
fn receiver_json(j: &mut Json, key: &str, what: &str, r: Option<&crate::uplink::link::RemoteView>) {
    let Some(r) = r else {
        j.opt_str(Some(key), None);
        return;
    };
    j.begin_object(Some(key))
        .str(Some("url"), &r.url)
        .str(Some("state"), r.state.as_str())
        .opt_str(Some("last_success"), r.last_success.map(rfc3339).as_deref())
        .uint(
            Some("consecutive_failures"),
            u64::from(r.consecutive_failures),
        )
        .opt_str(
            Some("last_error"),
            r.last_error.as_ref().map(|e| e.0.as_str()),
        )
        .opt_str(
            Some("last_error_time"),
            r.last_error.as_ref().map(|e| rfc3339(e.1)).as_deref(),
        )
        .uint(Some("backlog_records"), r.backlog_records)
        .uint(Some("spool_records"), r.spool_records)
        .opt_float(Some("oldest_unsent_age_seconds"), r.oldest_age_seconds)
        .uint(Some("requests"), r.requests)
        .uint(Some("probes"), r.probes)
        .uint(Some(&format!("{what}_sent")), r.samples_sent)
        .uint(Some(&format!("{what}_retried")), r.samples_retried)
        .begin_object(Some(&format!("{what}_rejected")));
    for (reason, n) in &r.samples_rejected {
        j.uint(Some(reason), *n);
    }
    j.end_object()
        .uint(Some("dead_letters_discarded"), r.dead_letters_discarded)
        .uint(Some("records_lost"), r.records_lost)
        .end_object();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_share_the_health_until_it_changes_and_status_renders_in_slices() {
        let config = crate::config::parse(
            "[[check]]\nname = \"a\"\nkind = \"file\"\npath = \"/\"\n",
            "t",
        )
        .unwrap();
        let state = AgentState::new(
            config,
            crate::net::resolve::Resolver::system("/etc/hosts".into(), "/etc/resolv.conf".into()),
            crate::os::notify::Notifier::none(),
        );
        let spec = state.checks.borrow()[0].spec.clone();
        let result = |status| crate::outcome::Outcome {
            status,
            reason: None,
            message: String::new(),
            duration: std::time::Duration::from_millis(1),
            phases: Default::default(),
            peer: None,
            at: SystemTime::now(),
            detail: Default::default(),
            late: std::time::Duration::ZERO,
        };
        for _ in 0..5 {
            state.record(&spec, result(Status::Ok));
        }
        let held = Snapshot::of(&state);
        assert!(Rc::ptr_eq(
            &held.checks[0].health,
            &state.checks.borrow()[0].health
        ));
        assert_eq!(
            Snapshot::for_doctor(&state).checks[0].health.recent.len(),
            5
        );
        // A result recorded while a snapshot is held copies that check's
        // health: the snapshot keeps what it saw.
        state.record(&spec, result(Status::Crit));
        assert_eq!(held.checks[0].health.runs, 5);
        assert_eq!(Snapshot::of(&state).checks[0].health.runs, 6);
        drop(held);
        // Rendered in slices: with a zero slice the render yields at the
        // first check, and the result is the same text.
        let snap = Snapshot::of(&state);
        let mut json = Box::pin(snap.to_json_sliced(Duration::ZERO));
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut json)).is_none()
        );
        assert_eq!(futures_lite::future::block_on(json), snap.to_json());
        let mut table = Box::pin(snap.to_table_sliced(Some(80), Duration::ZERO));
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut table)).is_none()
        );
        assert_eq!(
            futures_lite::future::block_on(table),
            snap.to_table_fit(Some(80))
        );
    }
}
