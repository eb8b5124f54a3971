//! `tether doctor`: the connector runbook, run by the agent on itself. Each
//! step yields findings (level, stable code, what was seen, the fix), then a
//! verdict, worst first, and an exit code by severity (0 ok, 1 warning, 2
//! critical).
//!
//! 1. Status: the agent's status and severity, since when: `status.rs`.
//! 2. Offline: the upstream and every `control_plane` check, step by step
//!    (DNS, TCP, TLS, `GET /healthz`, proxy variables): [`network`].
//! 3. Degraded: failing resource checks grouped by cause class:
//!    `degraded.rs`.
//! 4. Intermittent: checks that flap or time out now and then, with their
//!    recent durations against their timeout: `intermittent.rs`.
//! 5. Version: this version against the minimum the control plane
//!    announced: `version.rs`.
//! 6. Local: state and spool directories, identity, token, clock,
//!    certificate files: [`local`].
//!
//! This file holds the findings, the verdict and [`diagnose`], which runs
//! the steps in order.
//!
//! With a running agent, `tether doctor` asks it (`GET /doctor`), so the
//! runbook runs with the agent's live state and history, and inside the
//! agent's own sandbox, user and environment. Without one, the command
//! runs every check once itself and reads the history file.

mod degraded;
mod intermittent;
pub mod local;
pub mod network;
mod status;
mod version;

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
use crate::outcome::{Reason, Status};
use crate::uplink::link::{LinkState, RemoteView, UpstreamView};

use degraded::degraded_step;
use intermittent::intermittent_step;
use status::{link_finding, otlp_finding, remote_write_finding, status_step};
use version::version_step;

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
    let snap = crate::agent::snapshot::Snapshot::for_doctor(state);
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
    if let Some(r) = snap.remote_write.as_ref().filter(|_| live) {
        findings.push(remote_write_finding(r));
    }
    if let Some(r) = snap.otlp.as_ref().filter(|_| live) {
        findings.push(otlp_finding(r));
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
