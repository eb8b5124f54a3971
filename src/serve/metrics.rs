//! `GET /metrics`: Prometheus text exposition format 0.0.4, every name prefixed
//! `tether_`, checked by `promtool check metrics` in the tests.

use std::fmt::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_io::Async;
use futures_lite::AsyncWriteExt;

use crate::agent::health::{AgentStatus, Severity};
use crate::agent::lateness::{LatenessView, BUCKETS};
use crate::agent::snapshot::Snapshot;
use crate::format::text::label_value;
use crate::os::clock::unix_seconds;
use crate::os::procfs::ProcessFigures;
use crate::outcome::{Phase, Status};

/// Figures that are not part of a snapshot.
pub struct Extra {
    pub in_flight: usize,
    pub reloads: u64,
    pub reload_failures: u64,
    pub process: ProcessFigures,
    pub lateness: LatenessView,
    pub skipped: u64,
}

/// Rendering yields to the executor after this long.
pub const SLICE: Duration = Duration::from_millis(1);

/// Rendered text is sent on in chunks of about this size, so a scrape of
/// many checks never holds its whole exposition in memory (1,000 checks
/// make ~1 MB).
pub const CHUNK: usize = 16 * 1024;

/// A response sent with `Transfer-Encoding: chunked` as it is rendered:
/// the head goes with the first chunk; a body cut short (a deadline) lacks
/// the final empty chunk, so the scraper sees an error, never a silently
/// shorter exposition.
pub struct Chunked<'c> {
    conn: &'c mut Async<TcpStream>,
    head: Option<String>,
    /// A write failed: the rest is dropped.
    broken: bool,
}

impl<'c> Chunked<'c> {
    /// `head` ends with the blank line and says `Transfer-Encoding: chunked`.
    pub fn new(conn: &'c mut Async<TcpStream>, head: String) -> Self {
        Chunked {
            conn,
            head: Some(head),
            broken: false,
        }
    }

    /// The head has gone out: the answer can no longer be another one.
    pub fn started(&self) -> bool {
        self.head.is_none()
    }

    async fn send(&mut self, text: &str) {
        if self.broken || text.is_empty() {
            return;
        }
        let mut out = self.head.take().unwrap_or_default();
        let _ = write!(out, "{:x}\r\n", text.len());
        out.push_str(text);
        out.push_str("\r\n");
        self.broken = self.conn.write_all(out.as_bytes()).await.is_err();
    }

    /// Sends `rest` and the final chunk.
    pub async fn finish(&mut self, rest: &str) {
        self.send(rest).await;
        if !self.broken {
            let end = self.head.take().unwrap_or_default() + "0\r\n\r\n";
            let _ = self.conn.write_all(end.as_bytes()).await;
            let _ = self.conn.flush().await;
        }
    }
}

/// The text, when rendering last yielded, and where full chunks go.
struct Out<'a, 'c>(String, Instant, Option<&'a mut Chunked<'c>>);

impl Out<'_, '_> {
    /// Called once per check in each family: sends a full chunk on, and
    /// yields after each [`SLICE`].
    async fn step(&mut self) {
        if let Some(sink) = self.2.as_mut().filter(|_| self.0.len() >= CHUNK) {
            sink.send(&self.0).await;
            self.0.clear();
        }
        if self.1.elapsed() >= SLICE {
            futures_lite::future::yield_now().await;
            self.1 = Instant::now();
        }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(
            self.0,
            "# HELP tether_{name} {help}\n# TYPE tether_{name} {kind}\n"
        );
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str("tether_");
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label_value(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

/// The labels of a family that is also pushed (`docs/fleet.md`): `agent`,
/// the configured labels and its own, sorted, empty values left out:
/// exactly the pushed series' labels, so one rule file reads a scraped and
/// a pushing fleet.
fn pushed<'a>(s: &'a Snapshot, own: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut l: Vec<(&str, &str)> = Vec::with_capacity(own.len() + s.labels.len() + 1);
    l.push(("agent", &s.agent));
    // A check's own labels win over the agent's of the same name.
    l.extend(
        s.labels
            .iter()
            .filter(|(k, _)| !own.iter().any(|(o, _)| o == k))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    l.extend_from_slice(own);
    l.retain(|(_, v)| !v.is_empty());
    l.sort_unstable();
    l
}

/// A check's own labels on its pushed families: check, kind, role and its
/// configured `labels`.
fn check_labels(c: &crate::agent::snapshot::CheckView) -> Vec<(&str, &str)> {
    let mut l = vec![
        ("check", c.spec.name.as_str()),
        ("kind", c.spec.probe.kind()),
        ("role", c.spec.role.as_str()),
    ];
    l.extend(c.spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    l
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// (check, part) for each check whose last result carries that part.
fn with_detail<'a, T>(
    s: &'a Snapshot,
    part: impl Fn(&'a crate::outcome::Detail) -> Option<&'a T>,
) -> Vec<(&'a crate::agent::snapshot::CheckView, &'a T)> {
    s.checks
        .iter()
        .filter_map(|c| Some((c, part(&c.health.last.as_ref()?.detail)?)))
        .collect()
}

/// The `tether_upstream_*` and `tether_spool_*` families.
fn upstream(o: &mut Out<'_, '_>, u: &crate::uplink::link::UpstreamView) {
    o.family(
        "upstream_state",
        "gauge",
        "The upstream link's state: 1 for the current one.",
    );
    for st in crate::uplink::link::LinkState::ALL {
        o.sample(
            "upstream_state",
            &[("state", st.as_str())],
            flag(u.state == st),
        );
    }
    o.family(
        "upstream_last_success_timestamp_seconds",
        "gauge",
        "When the upstream last acknowledged a batch (0: never).",
    );
    o.sample(
        "upstream_last_success_timestamp_seconds",
        &[],
        u.last_success.map_or(0.0, unix_seconds),
    );
    let gauges: [(&str, &str, f64); 5] = [
        (
            "upstream_consecutive_failures",
            "Uploads that failed in a row.",
            f64::from(u.consecutive_failures),
        ),
        (
            "upstream_backlog_records",
            "Records not yet acknowledged, in memory and on disk.",
            u.backlog_records as f64,
        ),
        (
            "upstream_backlog_bytes",
            "Bytes of records not yet acknowledged.",
            u.backlog_bytes as f64,
        ),
        (
            "upstream_oldest_unsent_age_seconds",
            "Age of the oldest record not yet acknowledged (0: none).",
            u.oldest_age_seconds.unwrap_or(0.0),
        ),
        (
            "spool_degraded",
            "1 while the disk spool cannot be written: records are kept in memory only.",
            flag(u.spool_degraded.is_some()),
        ),
    ];
    for (name, help, v) in gauges {
        o.family(name, "gauge", help);
        o.sample(name, &[], v);
    }
    let counters: [(&str, &str, u64); 5] = [
        ("upstream_records_sent_total", "Records the upstream acknowledged.", u.sent),
        ("upstream_records_dropped_total", "Records dropped because the ring or the spool was full (each reported by a gap record).", u.dropped),
        ("upstream_records_dead_lettered_total", "Records the upstream refused for good, set aside in the dead-letter file.", u.dead_lettered),
        ("upstream_dead_letters_discarded_total", "Dead letters deleted when the dead-letter file rotated or could not take them (reported upstream as rejected gaps when refused).", u.dead_letters_discarded),
        ("upstream_records_retried_total", "Records in uploads that failed and are sent again.", u.retried),
    ];
    for (name, help, v) in counters {
        o.family(name, "counter", help);
        o.sample(name, &[], v as f64);
    }
}

/// How one receiver's families are named: the prefix (`remote_write`,
/// `otlp`), the name in help texts, what its counts count, and the
/// reasons its refusals are counted under.
struct Receiver {
    prefix: &'static str,
    name: &'static str,
    unit: &'static str,
    reasons: &'static [&'static str],
}

const REMOTE_WRITE: Receiver = Receiver {
    prefix: "remote_write",
    name: "remote-write",
    unit: "samples",
    reasons: &crate::agent::remote_write::REASONS,
};

const OTLP: Receiver = Receiver {
    prefix: "otlp",
    name: "OTLP",
    unit: "points",
    reasons: &crate::agent::otlp::REASONS,
};

/// The `tether_remote_write_*` or `tether_otlp_*` families.
fn receiver(o: &mut Out<'_, '_>, k: &Receiver, r: &crate::uplink::link::RemoteView) {
    let (p, n, unit) = (k.prefix, k.name, k.unit);
    let f = |s: &str| format!("{p}_{s}");
    o.family(
        &f("state"),
        "gauge",
        &format!("The {n} link's state: 1 for the current one."),
    );
    for st in crate::uplink::link::LinkState::REMOTE {
        o.sample(&f("state"), &[("state", st.as_str())], flag(r.state == st));
    }
    let gauges: [(String, String, f64); 5] = [
        (
            f("last_success_timestamp_seconds"),
            format!("When the {n} receiver last stored a request (0: never)."),
            r.last_success.map_or(0.0, unix_seconds),
        ),
        (
            f("last_error_timestamp_seconds"),
            format!(
                "When a {n} request last failed or was refused (0: never); /status has the error."
            ),
            r.last_error.as_ref().map_or(0.0, |e| unix_seconds(e.1)),
        ),
        (
            f("backlog_records"),
            format!("Records the {n} receiver does not have yet, in memory and on disk."),
            r.backlog_records as f64,
        ),
        (
            f("oldest_unsent_age_seconds"),
            format!("Age of the oldest record the {n} receiver does not have (0: none)."),
            r.oldest_age_seconds.unwrap_or(0.0),
        ),
        (
            f("consecutive_failures"),
            format!("{n} requests that failed in a row."),
            f64::from(r.consecutive_failures),
        ),
    ];
    for (name, help, v) in gauges {
        o.family(&name, "gauge", &help);
        o.sample(&name, &[], v);
    }
    let counters: [(String, String, u64); 6] = [
        (
            f("requests_total"),
            format!("{n} requests sent, whatever their answer."),
            r.requests,
        ),
        (
            f("probes_total"),
            format!("TCP connects made to see whether an unreached {n} receiver is back (nothing is sent on them)."),
            r.probes,
        ),
        (
            f("dead_letters_discarded_total"),
            format!("Refused {unit} deleted from the {n} dead-letter files when they rotated (each was counted as rejected when refused)."),
            r.dead_letters_discarded,
        ),
        (
            f(&format!("{unit}_sent_total")),
            format!("{} the {n} receiver stored.", capitalized(unit)),
            r.samples_sent,
        ),
        (
            f(&format!("{unit}_retried_total")),
            format!("{} in {n} requests that failed and went again.", capitalized(unit)),
            r.samples_retried,
        ),
        (
            f("records_dropped_total"),
            format!("Records dropped (ring or spool full) before the {n} receiver had them."),
            r.records_lost,
        ),
    ];
    for (name, help, v) in counters {
        o.family(&name, "counter", &help);
        o.sample(&name, &[], v as f64);
    }
    let rejected = f(&format!("{unit}_rejected_total"));
    o.family(
        &rejected,
        "counter",
        &format!("{} the {n} receiver refused for good, by reason; set aside in the dead-letter file (partial_success: rejected inside a stored request, not kept).", capitalized(unit)),
    );
    for reason in k.reasons {
        let v = r
            .samples_rejected
            .iter()
            .find(|(k, _)| k == reason)
            .map_or(0, |(_, n)| *n);
        o.sample(&rejected, &[("reason", reason)], v as f64);
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// The exposition text. It yields to the executor every millisecond:
/// 10,000 checks take ~120 ms to render on the static build, which would
/// otherwise hold every probe due meanwhile (docs/benchmarks.md, scale).
/// With a `sink`, full chunks go to it as they are made; returns the rest
/// (all of it without one, or if no chunk filled up).
pub async fn render(s: &Snapshot, x: &Extra, sink: Option<&mut Chunked<'_>>) -> String {
    let size = 4096 + s.checks.len() * 1536;
    let cap = if sink.is_some() {
        size.min(CHUNK + 4096)
    } else {
        size
    };
    let mut o = Out(String::with_capacity(cap), Instant::now(), sink);
    agent(&mut o, s);
    scheduler(&mut o, x);
    checks(&mut o, s).await;
    check_timings(&mut o, s).await;
    details(&mut o, s);
    perfdata(&mut o, s).await;
    failures(&mut o, s).await;
    process(&mut o, &x.process);
    o.0
}

/// The agent's own families: build, identity, status, severity, readiness,
/// maintenance, overload, and the upstream link.
fn agent(o: &mut Out<'_, '_>, s: &Snapshot) {
    o.family(
        "build_info",
        "gauge",
        "Always 1; the version label says which tether is running.",
    );
    o.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    o.family(
        "agent_info",
        "gauge",
        "Always 1; agent is the [agent] name, with its id, version and OS release, as pushed.",
    );
    let info = [
        ("agent_id", s.agent_id.as_deref().unwrap_or("")),
        ("os_release", s.os_release.as_str()),
        ("version", env!("CARGO_PKG_VERSION")),
    ];
    o.sample("agent_info", &pushed(s, &info), 1.0);
    o.family(
        "agent_heartbeat_interval_seconds",
        "gauge",
        "How often the agent's heartbeat series reach a store at the latest (0: nothing is pushed); the fleet rules' heartbeat threshold.",
    );
    o.sample(
        "agent_heartbeat_interval_seconds",
        &pushed(s, &[]),
        s.heartbeat_interval,
    );
    o.family(
        "agent_status",
        "gauge",
        "The agent's overall status: 1 for the current one.",
    );
    for st in AgentStatus::ALL {
        o.sample(
            "agent_status",
            &pushed(s, &[("status", st.as_str())]),
            flag(s.status == st),
        );
    }
    o.family("agent_severity", "gauge", "The overall severity (healthy green, unhealthy yellow, critical red): 1 for the current one.");
    for sv in Severity::ALL {
        o.sample(
            "agent_severity",
            &pushed(s, &[("severity", sv.as_str())]),
            flag(s.severity == sv),
        );
    }
    o.family(
        "agent_ready",
        "gauge",
        "1 once every check has completed its first run.",
    );
    o.sample("agent_ready", &[], flag(s.ready));
    o.family(
        "agent_disabled",
        "gauge",
        "1 while in maintenance mode (tether disable).",
    );
    o.sample("agent_disabled", &[], flag(s.disabled));
    o.family(
        "agent_overloaded",
        "gauge",
        "1 while a system check's CPU average is at or above its warn_percent.",
    );
    o.sample("agent_overloaded", &pushed(s, &[]), flag(s.overloaded()));
    o.family(
        "config_info",
        "gauge",
        "1, labelled with the control plane's configuration revision running (empty: none) and the hash of the effective configuration.",
    );
    let (remote, hash) = &s.config;
    let rev = remote.running.as_ref().map_or("", |(r, _)| r.as_str());
    o.sample("config_info", &[("hash", hash), ("revision", rev)], 1.0);
    o.family(
        "agent_durability_lost",
        "gauge",
        "1 while the state directory (state_unwritable) or the spool (spool_unavailable) cannot be written: what is not yet sent is lost if the agent stops.",
    );
    for reason in crate::agent::state::DURABILITY_REASONS {
        let now = s.durability_lost.as_ref().map(|d| d.reason);
        o.sample(
            "agent_durability_lost",
            &[("reason", reason)],
            flag(now == Some(reason)),
        );
    }
    fs_helpers(o, &s.fs_helpers);
    if let Some(f) = &s.fsyncs {
        o.family(
            "spool_fsyncs_total",
            "counter",
            "Syncs of the spool (per [spool] sync), made by a filesystem helper.",
        );
        o.sample("spool_fsyncs_total", &[], f.count as f64);
        o.family(
            "spool_fsync_seconds_total",
            "counter",
            "Time the spool's syncs took: records wait in memory until theirs returned.",
        );
        o.sample("spool_fsync_seconds_total", &[], f.total.as_secs_f64());
        o.family(
            "spool_fsync_max_seconds",
            "gauge",
            "The longest single sync of the spool since the agent started: how long a slow disk kept records waiting in memory.",
        );
        o.sample("spool_fsync_max_seconds", &[], f.max.as_secs_f64());
    }
    if let Some(u) = &s.upstream {
        upstream(o, u);
    }
    if let Some(r) = &s.remote_write {
        receiver(o, &REMOTE_WRITE, r);
    }
    if let Some(r) = &s.otlp {
        receiver(o, &OTLP, r);
    }
}

/// The filesystem helpers' families.
fn fs_helpers(o: &mut Out<'_, '_>, h: &crate::os::fs_helper::Stats) {
    o.family(
        "fs_helpers",
        "gauge",
        &format!(
            "Processes making the checks' filesystem calls: running (idle or working), stuck (killed at a deadline, not exited: in the kernel on a hung mount). At {} in all, filesystem checks fail with fs_stuck until one exits.",
            crate::os::fs_helper::MAX_HELPERS
        ),
    );
    o.sample("fs_helpers", &[("state", "running")], h.running as f64);
    o.sample("fs_helpers", &[("state", "stuck")], h.stuck.len() as f64);
    for (name, help, v) in [
        (
            "fs_helpers_started_total",
            "Filesystem helpers started.",
            h.started_total,
        ),
        (
            "fs_helpers_killed_total",
            "Filesystem helpers killed because a call passed its check's deadline.",
            h.killed_total,
        ),
        (
            "fs_jobs_refused_total",
            "Filesystem jobs not tried because a helper was stuck on the path, or all were (fs_stuck).",
            h.refused_total,
        ),
    ] {
        o.family(name, "counter", help);
        o.sample(name, &[], v as f64);
    }
}

/// The scheduler's families: start lateness, skipped slots, probes in
/// flight, reloads.
fn scheduler(o: &mut Out<'_, '_>, x: &Extra) {
    o.family(
        "check_start_lateness_seconds",
        "histogram",
        "How long after its slot on the schedule each probe started.",
    );
    let l = &x.lateness;
    for (le, n) in BUCKETS
        .iter()
        .map(|b| number(*b))
        .chain(["+Inf".into()])
        .zip(l.cumulative)
    {
        o.sample(
            "check_start_lateness_seconds_bucket",
            &[("le", &le)],
            n as f64,
        );
    }
    o.sample("check_start_lateness_seconds_sum", &[], l.sum_seconds);
    o.sample(
        "check_start_lateness_seconds_count",
        &[],
        l.cumulative[BUCKETS.len()] as f64,
    );
    o.family(
        "check_slots_skipped_total",
        "counter",
        "Slots on the schedule where no run started: the check's previous run was still going.",
    );
    o.sample("check_slots_skipped_total", &[], x.skipped as f64);
    o.family("probes_in_flight", "gauge", "Probes running now.");
    o.sample("probes_in_flight", &[], x.in_flight as f64);
    o.family(
        "config_reloads_total",
        "counter",
        "Configuration reloads applied (SIGHUP).",
    );
    o.sample("config_reloads_total", &[], x.reloads as f64);
    o.family(
        "config_reload_failures_total",
        "counter",
        "Reloads refused because the new file was invalid.",
    );
    o.sample(
        "config_reload_failures_total",
        &[],
        x.reload_failures as f64,
    );
}

/// Per check: its labels, last HTTP status, up, damped status, flapping and
/// failures in a row.
async fn checks(o: &mut Out<'_, '_>, s: &Snapshot) {
    o.family(
        "check_info",
        "gauge",
        "Always 1; labels describe the check.",
    );
    for c in &s.checks {
        o.step().await;
        let target = c.spec.probe.target();
        o.sample(
            "check_info",
            &[
                ("check", &c.spec.name),
                ("kind", c.spec.probe.kind()),
                ("role", c.spec.role.as_str()),
                ("target", &target),
            ],
            1.0,
        );
    }
    o.family(
        "check_http_status_code",
        "gauge",
        "An http check's last response status (after redirects), 0 when none came; like blackbox's probe_http_status_code.",
    );
    for c in &s.checks {
        o.step().await;
        if c.spec.probe.kind() == "http" {
            let code = c.health.last.as_ref().and_then(|l| l.detail.http_status);
            o.sample(
                "check_http_status_code",
                &[("check", &c.spec.name)],
                f64::from(code.unwrap_or(0)),
            );
        }
    }
    o.family(
        "check_up",
        "gauge",
        "1 if the check's last result was ok, like blackbox's probe_success.",
    );
    for c in &s.checks {
        o.step().await;
        let up = c
            .health
            .last
            .as_ref()
            .is_some_and(|l| l.status == Status::Ok);
        o.sample("check_up", &pushed(s, &check_labels(c)), flag(up));
    }
    o.family(
        "check_status",
        "gauge",
        "The check's damped state (after rise/fall): 1 for the current one.",
    );
    for c in &s.checks {
        o.step().await;
        let mut own = check_labels(c);
        own.push(("status", ""));
        for st in crate::uplink::record::CHECK_STATES {
            let cur = c.health.status.map_or("pending", Status::as_str);
            *own.last_mut().expect("pushed above") = ("status", st);
            o.sample("check_status", &pushed(s, &own), flag(cur == st));
        }
    }
    o.family(
        "check_flapping",
        "gauge",
        "1 while the check is flapping (over 50% weighted state changes, until under 25%).",
    );
    for c in &s.checks {
        o.step().await;
        o.sample(
            "check_flapping",
            &pushed(s, &check_labels(c)),
            flag(c.health.flapping),
        );
    }
    o.family(
        "check_consecutive_failures",
        "gauge",
        "Non-ok results in a row.",
    );
    for c in &s.checks {
        o.step().await;
        o.sample(
            "check_consecutive_failures",
            &[("check", &c.spec.name)],
            f64::from(c.health.consecutive_fail),
        );
    }
}

/// Per check: how long the last run and its phases took, when it last
/// succeeded, and its TLS figures.
async fn check_timings(o: &mut Out<'_, '_>, s: &Snapshot) {
    o.family(
        "check_duration_seconds",
        "gauge",
        "Duration of the last run.",
    );
    for c in &s.checks {
        o.step().await;
        if let Some(l) = &c.health.last {
            o.sample(
                "check_duration_seconds",
                &pushed(s, &check_labels(c)),
                l.duration.as_secs_f64(),
            );
        }
    }
    o.family(
        "check_phase_duration_seconds",
        "gauge",
        "Duration of each phase of the last run (0 when not reached).",
    );
    for c in &s.checks {
        o.step().await;
        if let Some(l) = &c.health.last {
            for p in Phase::ALL {
                o.sample(
                    "check_phase_duration_seconds",
                    &[("check", &c.spec.name), ("phase", p.as_str())],
                    l.phases.get(p).as_secs_f64(),
                );
            }
        }
    }
    o.family(
        "check_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last ok result.",
    );
    for c in &s.checks {
        o.step().await;
        if let Some(t) = c.health.last_success {
            o.sample(
                "check_last_success_timestamp_seconds",
                &[("check", &c.spec.name)],
                unix_seconds(t),
            );
        }
    }
    o.family(
        "check_last_success_age_seconds",
        "gauge",
        "Seconds since the last ok result.",
    );
    for c in &s.checks {
        o.step().await;
        if let Some(age) = c.health.last_success_age(s.now) {
            o.sample(
                "check_last_success_age_seconds",
                &[("check", &c.spec.name)],
                age,
            );
        }
    }
    o.family(
        "check_runs_total",
        "counter",
        "Completed runs of the check.",
    );
    for c in &s.checks {
        o.step().await;
        o.sample(
            "check_runs_total",
            &[("check", &c.spec.name)],
            c.health.runs as f64,
        );
    }
    o.family(
        "check_tls_verify_skipped",
        "gauge",
        "1 for a check with insecure_skip_verify = true: its certificates are not enforced.",
    );
    for c in &s.checks {
        o.step().await;
        if let Some(t) = c.spec.probe.tls() {
            o.sample(
                "check_tls_verify_skipped",
                &[("check", &c.spec.name)],
                flag(t.insecure_skip_verify),
            );
        }
    }
}

/// Families from what some results carry: certificates, files, the system.
fn details(o: &mut Out<'_, '_>, s: &Snapshot) {
    let certs = with_detail(s, |d| d.cert.as_deref());
    o.family(
        "check_cert_not_after_timestamp_seconds",
        "gauge",
        "notAfter of the certificate last seen (tls, https) or read (cert_file), Unix time.",
    );
    for (c, cert) in &certs {
        o.sample(
            "check_cert_not_after_timestamp_seconds",
            &pushed(s, &check_labels(c)),
            cert.info.not_after as f64,
        );
    }
    o.family(
        "check_cert_verified",
        "gauge",
        "1 if the certificate last seen verified (chain, dates, name), 0 if not.",
    );
    for (c, cert) in &certs {
        if let Some(v) = cert.verified {
            o.sample("check_cert_verified", &[("check", &c.spec.name)], flag(v));
        }
    }
    let files = with_detail(s, |d| d.file.as_deref());
    o.family(
        "check_file_age_seconds",
        "gauge",
        "Seconds since a file check's file was last modified.",
    );
    for (c, f) in &files {
        let labels = pushed(s, &check_labels(c));
        o.sample("check_file_age_seconds", &labels, f.age_seconds);
    }
    o.family(
        "check_file_size_bytes",
        "gauge",
        "Size of a file check's file.",
    );
    for (c, f) in &files {
        o.sample(
            "check_file_size_bytes",
            &[("check", &c.spec.name)],
            f.size as f64,
        );
    }
    let systems = with_detail(s, |d| d.system.as_deref());
    type SysPick = fn(&crate::outcome::SystemDetail) -> f64;
    // (family, help, also pushed: it carries the pushed labels, pick)
    let sys: [(&str, &str, bool, SysPick); 5] = [
        (
            "check_cpu_busy_percent",
            "A system check's CPU busy percent over its window.",
            true,
            |d| d.cpu_percent,
        ),
        (
            "check_memory_available_bytes",
            "MemAvailable at a system check's last run.",
            false,
            |d| d.memory_available_bytes as f64,
        ),
        (
            "check_memory_total_bytes",
            "MemTotal at a system check's last run.",
            false,
            |d| d.memory_total_bytes as f64,
        ),
        (
            "check_disk_free_bytes",
            "Bytes available to the agent on a system check's disk_path.",
            false,
            |d| d.disk_free_bytes as f64,
        ),
        (
            "check_disk_total_bytes",
            "Size of the filesystem of a system check's disk_path.",
            false,
            |d| d.disk_total_bytes as f64,
        ),
    ];
    for (name, help, is_pushed, pick) in sys {
        o.family(name, "gauge", help);
        for (c, d) in &systems {
            let labels = if is_pushed {
                pushed(s, &check_labels(c))
            } else {
                vec![("check", c.spec.name.as_str())]
            };
            o.sample(name, &labels, pick(d));
        }
    }
}

/// Performance data of exec checks, first occurrence of each label.
async fn perfdata(o: &mut Out<'_, '_>, s: &Snapshot) {
    let mut perf: Vec<(&str, &crate::format::perfdata::PerfDatum)> = Vec::new();
    for c in &s.checks {
        o.step().await;
        if let Some(l) = &c.health.last {
            for d in &l.detail.perf {
                if !perf
                    .iter()
                    .any(|(n, p)| *n == c.spec.name && p.label == d.label)
                {
                    perf.push((&c.spec.name, d));
                }
            }
        }
    }
    type Pick = fn(&crate::format::perfdata::PerfDatum) -> Option<f64>;
    let families: [(&str, &str, Pick); 5] = [
        (
            "check_perfdata",
            "Performance data of an exec check's plugin, in the plugin's unit (label uom).",
            |d| d.value,
        ),
        (
            "check_perfdata_warn",
            "The plugin's warning threshold, when a plain number.",
            |d| d.warn,
        ),
        (
            "check_perfdata_crit",
            "The plugin's critical threshold, when a plain number.",
            |d| d.crit,
        ),
        (
            "check_perfdata_min",
            "The plugin's minimum for the value.",
            |d| d.min,
        ),
        (
            "check_perfdata_max",
            "The plugin's maximum for the value.",
            |d| d.max,
        ),
    ];
    for (name, help, pick) in families {
        o.family(name, "gauge", help);
        for (check, d) in &perf {
            if let Some(v) = pick(d) {
                o.sample(
                    name,
                    &[("check", check), ("label", &d.label), ("uom", &d.uom)],
                    v,
                );
            }
        }
    }
}

/// Non-ok results by check and reason code.
async fn failures(o: &mut Out<'_, '_>, s: &Snapshot) {
    o.family(
        "check_failures_total",
        "counter",
        "Non-ok results by reason code.",
    );
    for c in &s.checks {
        o.step().await;
        for (r, n) in &c.health.failures {
            o.sample(
                "check_failures_total",
                &[("check", &c.spec.name), ("reason", r.code())],
                *n as f64,
            );
        }
    }
}

/// The process's own figures (the `process_*` names of the client libraries).
fn process(o: &mut Out<'_, '_>, p: &ProcessFigures) {
    o.family(
        "process_cpu_seconds_total",
        "counter",
        "User and system CPU time of the agent process.",
    );
    o.sample("process_cpu_seconds_total", &[], p.cpu_seconds);
    o.family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident set size.",
    );
    o.sample(
        "process_resident_memory_bytes",
        &[],
        p.resident_bytes as f64,
    );
    o.family(
        "process_max_resident_memory_bytes",
        "gauge",
        "Peak resident set size (VmHWM).",
    );
    o.sample(
        "process_max_resident_memory_bytes",
        &[],
        p.max_resident_bytes as f64,
    );
    o.family(
        "process_threads",
        "gauge",
        "OS threads of the process (at most 2 by design).",
    );
    o.sample("process_threads", &[], p.threads as f64);
    o.family("process_open_fds", "gauge", "Open file descriptors.");
    o.sample("process_open_fds", &[], p.open_fds as f64);
    o.family(
        "process_start_time_seconds",
        "gauge",
        "Unix time the process started.",
    );
    o.sample("process_start_time_seconds", &[], p.start_time_seconds);
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_label_values() {
        assert_eq!(super::label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(super::number(f64::INFINITY), "+Inf");
        assert_eq!(super::number(0.5), "0.5");
    }
}
