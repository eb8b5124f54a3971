//! `tether doctor`: the connector runbook, run by the agent on itself. Each
//! step yields findings (level, stable code, what was seen, the fix), then a
//! verdict, worst first, and an exit code by severity (0 ok, 1 warning, 2
//! critical).
//!
//! 1. Status: the agent's status and severity, since when.
//! 2. Offline: the upstream and every `control_plane` check, step by step
//!    (DNS, TCP, TLS, `GET /healthz`, proxy variables): [`network`].
//! 3. Degraded: failing resource checks grouped by cause class.
//! 4. Intermittent: checks that flap or time out now and then, with their
//!    recent durations against their timeout.
//! 5. Version: this version against the minimum the control plane announced.
//! 6. Local: state and spool directories, identity, token, clock,
//!    certificate files: [`local`].
//!
//! With a running agent, `tether doctor` asks it (`GET /doctor`), so the
//! runbook runs with the agent's live state and history, and inside the
//! agent's own sandbox, user and environment. Without one, the command
//! runs every check once itself and reads the history file.

pub mod local;
pub mod network;

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use crate::agent::health::Sample;
use crate::agent::history::Transition;
use crate::agent::snapshot::Snapshot;
use crate::agent::state::AgentState;
use crate::config::{Role, Upstream};
use crate::format::json::Json;
use crate::os::clock::{rfc3339, rfc3339_millis};
use crate::probe::{Reason, Status};
use crate::uplink::link::{LinkState, UpstreamView};

/// How bad a finding is; the exit code is the worst one's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok = 0,
    Warning = 1,
    Critical = 2,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Status,
    Offline,
    Degraded,
    Intermittent,
    Version,
    Local,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Status,
        Step::Offline,
        Step::Degraded,
        Step::Intermittent,
        Step::Version,
        Step::Local,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Status => "status",
            Step::Offline => "offline",
            Step::Degraded => "degraded",
            Step::Intermittent => "intermittent",
            Step::Version => "version",
            Step::Local => "local",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Step::Status => "Status",
            Step::Offline => "Offline: can this host reach the control plane?",
            Step::Degraded => "Degraded: which resource hosts fail, and why?",
            Step::Intermittent => "Intermittent: what fails now and then?",
            Step::Version => "Version",
            Step::Local => "Local: storage, identity, token, clock, certificates",
        }
    }
}

/// One thing the doctor found.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub step: Step,
    pub level: Level,
    /// Stable snake_case code: a probe reason code (`connect_timeout`) or
    /// one of the doctor's own (`spool_on_tmpfs`, `clock_skew`, ...).
    pub code: &'static str,
    pub title: String,
    /// What was measured or read.
    pub evidence: String,
    /// What to do; empty when there is nothing to do.
    pub fix: String,
}

impl Finding {
    pub fn new(step: Step, level: Level, code: &'static str, title: impl Into<String>) -> Finding {
        Finding {
            step,
            level,
            code,
            title: title.into(),
            evidence: String::new(),
            fix: String::new(),
        }
    }

    pub fn ok(step: Step, title: impl Into<String>) -> Finding {
        Finding::new(step, Level::Ok, "ok", title)
    }

    pub fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence = e.into();
        self
    }

    pub fn fix(mut self, f: impl Into<String>) -> Finding {
        self.fix = f.into();
        self
    }
}

/// The whole run.
pub struct Diagnosis {
    pub agent: String,
    /// Read from a running agent (its live state), or probed by the command.
    pub live: bool,
    pub at: SystemTime,
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    pub fn verdict(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::Ok)
    }

    pub fn exit_code(&self) -> i32 {
        self.verdict() as i32
    }

    /// Problems, worst first (stable within a level: runbook order).
    fn worst_first(&self) -> Vec<&Finding> {
        // Two passes, not a sort: a sort's code is large for one list.
        [Level::Critical, Level::Warning]
            .iter()
            .flat_map(|l| self.findings.iter().filter(move |f| f.level == *l))
            .collect()
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "tether doctor {} on {} at {}: {}\n",
            env!("CARGO_PKG_VERSION"),
            self.agent,
            rfc3339(self.at),
            if self.live {
                "live state of the running agent"
            } else {
                "no agent running; every check was run once by this command"
            }
        );
        for (i, step) in Step::ALL.iter().enumerate() {
            out.push_str(&format!("\n{}. {}\n", i + 1, step.title()));
            for f in self.findings.iter().filter(|f| f.step == *step) {
                out.push_str(&format!("  [{}] {}\n", f.level.as_str(), f.title));
                for (label, text) in [("evidence", &f.evidence), ("fix", &f.fix)] {
                    for (k, line) in text.lines().enumerate() {
                        let head = if k == 0 { label } else { "" };
                        out.push_str(&format!("      {head:<9} {line}\n"));
                    }
                }
            }
        }
        let verdict = self.verdict();
        out.push_str(&format!(
            "\n7. Verdict: {} (exit {})\n",
            verdict.as_str(),
            verdict as i32
        ));
        let bad = self.worst_first();
        if bad.is_empty() {
            out.push_str("  nothing to fix\n");
        }
        for f in bad {
            out.push_str(&format!(
                "  [{}] {}: {}{}\n",
                f.level.as_str(),
                f.step.as_str(),
                f.title,
                if f.fix.is_empty() {
                    String::new()
                } else {
                    format!(" -> {}", f.fix.lines().next().unwrap_or(""))
                }
            ));
        }
        out
    }

    pub fn to_json(&self) -> String {
        let mut j = Json::new();
        let verdict = self.verdict();
        j.begin_object(None)
            .str(Some("agent"), &self.agent)
            .str(Some("version"), env!("CARGO_PKG_VERSION"))
            .str(Some("time"), &rfc3339(self.at))
            .bool(Some("live"), self.live)
            .str(Some("verdict"), verdict.as_str())
            .int(Some("exit_code"), verdict as i64);
        j.begin_array(Some("findings"));
        for f in &self.findings {
            finding_json(&mut j, f);
        }
        j.end_array().begin_array(Some("worst_first"));
        for f in self.worst_first() {
            finding_json(&mut j, f);
        }
        j.end_array().end_object();
        let mut s = j.finish();
        s.push('\n');
        s
    }
}

fn finding_json(j: &mut Json, f: &Finding) {
    j.begin_object(None)
        .str(Some("step"), f.step.as_str())
        .str(Some("level"), f.level.as_str())
        .str(Some("code"), f.code)
        .str(Some("title"), &f.title)
        .str(Some("evidence"), &f.evidence)
        .str(Some("fix"), &f.fix)
        .end_object();
}

/// Runs the runbook against `state`. `live`: `state` is the running agent's
/// (its checks have history); otherwise each check has run once.
pub async fn diagnose(state: &Rc<AgentState>, live: bool) -> Diagnosis {
    let config = state.config.borrow().clone();
    let snap = crate::agent::snapshot::Snapshot::with_history(state);
    let resolver = state.resolver.borrow().clone();
    let mut findings = status_step(&snap, live);
    let mut seen = network::Seen::default();
    if let Some(up) = &config.upstream {
        findings.extend(network::upstream(up, &resolver, &mut seen).await);
        if let Some(u) = &snap.upstream {
            findings.push(link_finding(u, up));
        }
    } else {
        findings.push(Finding::ok(
            Step::Offline,
            "no [upstream] configured: nothing is reported to a control plane",
        ));
    }
    for c in snap
        .checks
        .iter()
        .filter(|c| c.spec.role == Role::ControlPlane)
    {
        findings.extend(network::control_plane_check(c, &resolver).await);
    }
    findings.push(network::proxy_variables(
        seen.connect_failed,
        config.upstream.as_ref(),
    ));
    findings.extend(degraded_step(&snap));
    findings.extend(intermittent_step(&snap, live));
    findings.push(version_step(
        snap.upstream.as_ref(),
        seen.min_version.as_deref(),
    ));
    findings.extend(local::step(&config, seen.server_date, SystemTime::now()));
    Diagnosis {
        agent: config.agent.name.clone(),
        live,
        at: SystemTime::now(),
        findings,
    }
}

fn status_step(snap: &Snapshot, live: bool) -> Vec<Finding> {
    let level = match snap.severity {
        crate::agent::health::Severity::Healthy => Level::Ok,
        crate::agent::health::Severity::Unhealthy => Level::Warning,
        crate::agent::health::Severity::Critical => Level::Critical,
    };
    let mut out = Vec::new();
    let history = snap.history.as_ref();
    if live {
        let changes = history.map_or(0, |h| h.iter().filter(|t| t.check.is_none()).count());
        out.push(
            Finding::new(
                Step::Status,
                level,
                snap.status.as_str(),
                format!(
                    "{} ({}) since {}",
                    snap.status.as_str(),
                    snap.severity.as_str(),
                    rfc3339(snap.since)
                ),
            )
            .evidence(format!(
                "{} checks; {changes} agent status changes recorded (tether status --history)",
                snap.checks.len()
            )),
        );
    } else {
        out.push(
            Finding::new(
                Step::Status,
                Level::Warning,
                "agent_not_running",
                "no agent answers on the local endpoint",
            )
            .evidence(last_recorded(history))
            .fix("start it: systemctl start tether (and read journalctl -u tether), or tether run"),
        );
        out.push(
            Finding::new(
                Step::Status,
                level,
                snap.status.as_str(),
                format!(
                    "this run's checks say {} ({})",
                    snap.status.as_str(),
                    snap.severity.as_str()
                ),
            )
            .evidence(format!("{} checks, each run once", snap.checks.len())),
        );
    }
    if snap.disabled {
        out.push(
            Finding::new(
                Step::Status,
                Level::Warning,
                "maintenance",
                "maintenance mode: probes run, nothing is alarmed",
            )
            .fix("tether enable, when the maintenance is over"),
        );
    }
    out
}

/// The agent's last recorded status, from the history file.
fn last_recorded(history: Option<&VecDeque<Transition>>) -> String {
    match history.and_then(|h| h.iter().rev().find(|t| t.check.is_none())) {
        Some(t) => format!(
            "the history file last recorded the agent {} at {} ({})",
            t.to,
            rfc3339_millis(t.at_ms),
            if t.why.is_empty() { "-" } else { &t.why }
        ),
        None => "no status recorded in the state directory's history".into(),
    }
}

/// The running agent's own uploads.
fn link_finding(u: &UpstreamView, up: &Upstream) -> Finding {
    let last = u
        .last_success
        .map_or("never".into(), |t| format!("last success {}", rfc3339(t)));
    let evidence = format!(
        "{last}; {} consecutive failures; backlog {} records ({} on disk){}",
        u.consecutive_failures,
        u.backlog_records,
        u.spool_records,
        u.last_error
            .as_ref()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    );
    let f = |level, code, title: &str| {
        Finding::new(Step::Offline, level, code, title).evidence(evidence.clone())
    };
    match u.state {
        LinkState::Up => Finding::ok(Step::Offline, "uploads are acknowledged").evidence(evidence),
        LinkState::Connecting => f(Level::Ok, "ok", "no upload answered yet since the start"),
        LinkState::Failing => f(
            Level::Critical,
            "upload_failing",
            "uploads to the control plane fail",
        )
        .fix("fix the first failing step above; the backlog is spooled and sent when the upstream answers"),
        LinkState::CredentialsRejected => f(
            Level::Critical,
            "credentials_rejected",
            "the control plane rejects this agent's token (HTTP 401/403)",
        )
        .fix(format!(
            "install a valid token ({}) with `tether enroll --token-file FILE`, then systemctl reload tether",
            up.token.source
        )),
        LinkState::VersionUnsupported => f(
            Level::Critical,
            "version_unsupported",
            "the control plane no longer accepts this version (HTTP 409)",
        )
        .fix("upgrade tether (see Version below)"),
        LinkState::Rejected => f(
            Level::Critical,
            "upload_rejected",
            "the control plane refuses what this agent sends (HTTP 4xx)",
        )
        .fix("read the server's answer in the last error; refused records are in the spool's dead-letter.ndjson, and their numbers were reported as rejected gaps. Fix the receiver or the agent version, then systemctl reload tether"),
        LinkState::NoIdentity => f(
            Level::Critical,
            "no_identity",
            "the agent has no usable identity: nothing is sent",
        )
        .fix("tether enroll (as the agent's user), then systemctl reload tether"),
    }
}

/// The cause classes of step 3, each with its fix.
fn cause_class(r: Option<Reason>) -> (&'static str, &'static str, &'static str) {
    use Reason as R;
    match r {
        Some(R::DnsNxdomain | R::DnsNoData | R::DnsTimeout | R::DnsServfail | R::DnsRefused | R::DnsError | R::DnsMismatch) => (
            "name_not_resolved",
            "the name does not resolve",
            "check the name in the configuration, the nameservers in /etc/resolv.conf, and that the record exists in the DNS this host asks (split DNS, a VPN's zone)",
        ),
        Some(R::ConnectRefused) => (
            "port_refused",
            "the port refuses connections",
            "the host answers but nothing listens on that port: start the service, or correct the port",
        ),
        Some(R::ConnectTimeout | R::HostUnreachable | R::NetworkUnreachable | R::ConnectError) => (
            "unreachable",
            "the host is unreachable or the port filtered",
            "a firewall or security group drops the traffic, or the host is down: allow TCP to that port from this host, and check the route to it",
        ),
        Some(R::TlsHandshake | R::TlsUntrusted | R::TlsExpired | R::TlsNotYetValid | R::TlsHostnameMismatch | R::CertExpiring) => (
            "tls",
            "TLS or certificate problems",
            "renew or replace the server's certificate; for a private CA set ca_file; check this host's clock for not-yet-valid certificates",
        ),
        Some(R::CredentialsRejected) => (
            "credentials_rejected",
            "credentials rejected",
            "the credentials the connector presents were refused: update the account, password or token the check sends",
        ),
        Some(R::HttpStatus | R::BodyMismatch | R::HttpProtocol | R::HttpHeadTooLarge | R::TooManyRedirects | R::RedirectRefused) => (
            "http_status",
            "unexpected HTTP answers",
            "the service answers, but not as expected: check the URL and the service's own health",
        ),
        Some(R::Timeout | R::TlsTimeout | R::InFlightLimit | R::ConnectionReset | R::ConnectionClosed) => (
            "too_slow",
            "too slow or cut off",
            "the target answers too slowly or drops the connection: look at its load and the path to it; see Intermittent for the measured durations",
        ),
        _ => (
            "check_failing",
            "other failures",
            "see each check's message",
        ),
    }
}

fn degraded_step(snap: &Snapshot) -> Vec<Finding> {
    let mut groups: Vec<(&'static str, Finding)> = Vec::new();
    for c in snap.checks.iter().filter(|c| c.spec.role == Role::Resource) {
        let Some(status) = c.health.status.filter(|s| *s != Status::Ok) else {
            continue;
        };
        let last = c.health.last.as_ref();
        let reason = last.and_then(|o| o.reason);
        let (code, title, fix) = cause_class(reason);
        let level = if status.is_failing() {
            Level::Critical
        } else {
            Level::Warning
        };
        let line = format!(
            "{} ({} {}): {}: {}",
            c.spec.name,
            c.spec.probe.kind(),
            c.spec.probe.target(),
            reason.map_or(status.as_str(), |r| r.code()),
            last.map_or("", |o| o.message.as_str())
        );
        match groups.iter_mut().find(|(k, _)| *k == code) {
            Some((_, f)) => {
                f.level = f.level.max(level);
                f.evidence.push('\n');
                f.evidence.push_str(&line);
            }
            None => groups.push((
                code,
                Finding::new(Step::Degraded, level, code, title)
                    .evidence(line)
                    .fix(fix),
            )),
        }
    }
    if groups.is_empty() {
        let n = snap
            .checks
            .iter()
            .filter(|c| c.spec.role == Role::Resource)
            .count();
        return vec![Finding::ok(
            Step::Degraded,
            format!("no resource check is failing ({n} resource checks)"),
        )];
    }
    groups
        .into_iter()
        .map(|(_, mut f)| {
            let n = f.evidence.lines().count();
            f.title = format!(
                "{n} resource check{}: {}",
                if n == 1 { "" } else { "s" },
                f.title
            );
            f
        })
        .collect()
}

/// Median, 95th percentile and maximum of durations in microseconds.
pub fn stats(mut us: Vec<u64>) -> Option<(Duration, Duration, Duration)> {
    if us.is_empty() {
        return None;
    }
    us.sort_unstable();
    let at = |q: f64| Duration::from_micros(us[((us.len() - 1) as f64 * q).round() as usize]);
    Some((at(0.5), at(0.95), at(1.0)))
}

fn is_timeout(s: &Sample) -> bool {
    matches!(
        s.reason,
        Some(Reason::Timeout | Reason::ConnectTimeout | Reason::TlsTimeout | Reason::DnsTimeout)
    )
}

/// A round suggestion at least `d`: 1, 2 or 5 times a power of ten ms.
pub fn round_up(d: Duration) -> Duration {
    let ms = d.as_millis().max(1) as u64;
    let mut p = 1;
    loop {
        for m in [1, 2, 5] {
            if m * p >= ms {
                return Duration::from_millis(m * p);
            }
        }
        p *= 10;
    }
}

/// Alternating results followed by this many successes are the past: told,
/// not alarmed.
const RECENT_CLEAN: usize = 10;

fn intermittent_step(snap: &Snapshot, live: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in &snap.checks {
        let h = &c.health;
        let samples = &h.recent;
        let failed = samples.iter().filter(|s| s.status != Status::Ok).count();
        let timeouts = samples.iter().filter(|s| is_timeout(s)).count();
        let is_ok = |s: &Sample| s.status == Status::Ok;
        // Intermittent means alternating: ok, failing, ok, failing. One run
        // of failures between successes is an outage, not flapping.
        let changes = samples
            .iter()
            .zip(samples.iter().skip(1))
            .filter(|(a, b)| is_ok(a) != is_ok(b))
            .count();
        let clean_tail = samples.iter().rev().take_while(|s| is_ok(s)).count();
        if failed == 0 {
            continue;
        }
        if !h.flapping && changes < 3 {
            // An outage: ongoing ones are the Degraded and Offline steps';
            // one that is over is told as the past, and alarms nothing.
            if clean_tail > 0 {
                let why = samples
                    .iter()
                    .rev()
                    .find_map(|s| s.reason)
                    .map_or(String::new(), |r| format!(" ({})", r.code()));
                out.push(Finding::new(
                    Step::Intermittent,
                    Level::Ok,
                    "past_outage",
                    format!(
                        "{} was failing{why} for {failed} runs in a row, and has succeeded for the last {clean_tail}: an outage that is over, not intermittent",
                        c.spec.name
                    ),
                ));
            }
            continue;
        }
        if !h.flapping && clean_tail >= RECENT_CLEAN {
            out.push(Finding::new(
                Step::Intermittent,
                Level::Ok,
                "past_intermittent",
                format!(
                    "{} failed now and then earlier ({failed} of the last {} runs), but none of the last {clean_tail}",
                    c.spec.name,
                    samples.len()
                ),
            ));
            continue;
        }
        let micros = |s: &Sample| u64::from(s.micros);
        let all = stats(samples.iter().map(micros).collect());
        let ok = stats(
            samples
                .iter()
                .filter(|s| s.status == Status::Ok)
                .map(micros)
                .collect(),
        );
        let fmt = |d: Duration| crate::config::duration::format_ms(d);
        let timeout = c.spec.timeout;
        let mut evidence = format!(
            "{failed} of the last {} runs failed ({timeouts} timed out){}",
            samples.len(),
            if h.flapping {
                format!("; flapping, {:.0}% state changes", h.flap_percent)
            } else {
                String::new()
            }
        );
        if let Some((med, p95, max)) = all {
            evidence.push_str(&format!(
                "\ndurations: median {}, p95 {}, max {}; timeout {}",
                fmt(med),
                fmt(p95),
                fmt(max),
                fmt(timeout)
            ));
        }
        let (code, fix) = match ok {
            Some((_, ok_p95, ok_max)) if timeouts > 0 && ok_max * 2 >= timeout => {
                let suggest = round_up((ok_max * 2).max(ok_p95 * 3)).max(timeout + Duration::from_millis(1));
                (
                    "timeout_too_short",
                    format!(
                        "runs that succeed take up to {} of the {} timeout: the timeout is the cause; set timeout = \"{}\" for this check (or find why the target is slow)",
                        fmt(ok_max),
                        fmt(timeout),
                        crate::config::duration::format(round_up(suggest))
                    ),
                )
            }
            _ if timeouts > 0 => (
                "intermittent_timeouts",
                "successful runs are fast, yet some time out: packets are lost now and then, or the target stalls; look at the path (mtr) and the target's load".to_string(),
            ),
            _ => (
                "intermittent_failures",
                crate::agent::health::FLAP_HINT.to_string(),
            ),
        };
        out.push(
            Finding::new(
                Step::Intermittent,
                Level::Warning,
                code,
                format!(
                    "{} ({} {}) fails now and then",
                    c.spec.name,
                    c.spec.probe.kind(),
                    c.spec.probe.target()
                ),
            )
            .evidence(evidence)
            .fix(fix),
        );
    }
    if out.is_empty() {
        out.push(Finding::ok(
            Step::Intermittent,
            if live {
                "no check flaps or fails now and then in its recent results"
            } else {
                "no history to judge: run the doctor while the agent runs"
            },
        ));
    }
    out
}

/// Numeric comparison of dotted versions (`0.10.1` > `0.9`); pre-release
/// suffixes after `-` are ignored.
pub fn version_below(have: &str, min: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split('-')
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (mut a, mut b) = (parts(have), parts(min));
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    a < b
}

fn version_step(u: Option<&UpstreamView>, announced: Option<&str>) -> Finding {
    let have = env!("CARGO_PKG_VERSION");
    let min = u.and_then(|u| u.min_version.as_deref()).or(announced);
    let refused = u.is_some_and(|u| u.state == LinkState::VersionUnsupported);
    match min {
        Some(m) if refused || version_below(have, m) => Finding::new(
            Step::Version,
            Level::Critical,
            "version_unsupported",
            format!("tether {have} is below the minimum {m} the control plane announced"),
        )
        .fix(format!("upgrade tether to {m} or later")),
        None if refused => Finding::new(
            Step::Version,
            Level::Critical,
            "version_unsupported",
            format!("the control plane refuses tether {have} (HTTP 409) without naming a minimum"),
        )
        .fix("upgrade tether to the version the control plane's documentation names"),
        Some(m) => Finding::ok(
            Step::Version,
            format!("tether {have}; the control plane's minimum is {m}"),
        ),
        None => Finding::ok(
            Step::Version,
            format!("tether {have}; the control plane has not announced a minimum"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_below("0.1.0", "0.2"));
        assert!(version_below("0.9.9", "0.10.0"));
        assert!(!version_below("1.0.0", "1.0"));
        assert!(!version_below("2.0.0-rc1", "1.9"));
    }

    #[test]
    fn suggestions_are_round() {
        assert_eq!(round_up(Duration::from_millis(730)), Duration::from_secs(1));
        assert_eq!(round_up(Duration::from_millis(1)), Duration::from_millis(1));
        assert_eq!(
            round_up(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            round_up(Duration::from_millis(2001)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn stats_are_order_statistics() {
        let d: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        let (med, p95, max) = stats(d).unwrap();
        assert_eq!(
            (med.as_millis(), p95.as_millis(), max.as_millis()),
            (51, 95, 100)
        );
    }
}
