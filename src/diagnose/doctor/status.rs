//! Step 1, the status: the agent's status and severity and since when,
//! what the history file last recorded, and the agent's own uploads.

use super::*;

pub(super) fn status_step(snap: &Snapshot, live: bool) -> Vec<Finding> {
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
                "{}; {} recorded (tether status --history)",
                crate::format::text::count(snap.checks.len() as u64, "check"),
                crate::format::text::count(changes as u64, "agent status change")
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
            .evidence(format!(
                "{}, each run once",
                crate::format::text::count(snap.checks.len() as u64, "check")
            )),
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
pub(super) fn last_recorded(history: Option<&VecDeque<Transition>>) -> String {
    match history.and_then(|h| h.iter().rev().find(|t| t.check.is_none())) {
        Some(t) => format!(
            "the history file last recorded the agent {} at {}{}",
            t.to,
            rfc3339_millis(t.at_ms),
            if t.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.why)
            }
        ),
        None => "no status recorded in the state directory's history".into(),
    }
}

/// The running agent's own uploads.
pub(super) fn link_finding(u: &UpstreamView, up: &Upstream) -> Finding {
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
            "write a valid token into {} (mode 0600, the agent's user), then systemctl reload tether",
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
        .fix("systemctl stop tether; tether enroll (as the agent's user); systemctl start tether"),
        LinkState::NotFound => f(
            Level::Critical,
            "upload_not_found",
            "nothing at the upstream URL takes reports (HTTP 404)",
        )
        .fix("check [upstream] url, then systemctl reload tether; the records are kept meanwhile"),
    }
}

/// The running agent's remote-write link, as a backup console says it:
/// "Credentials no longer valid, please update".
pub(super) fn remote_write_finding(r: &RemoteView) -> Finding {
    let evidence = receiver_evidence(r, "samples");
    let f = |level, code, title: &str| {
        Finding::new(Step::Offline, level, code, title).evidence(evidence.clone())
    };
    match r.state {
        LinkState::CredentialsRejected => f(
            Level::Critical,
            "remote_write_credentials_rejected",
            "the remote-write receiver rejects the credentials (HTTP 401/403): no longer valid, please update",
        )
        .fix("install valid credentials ([remote_write] bearer_token_file or basic_auth_password_file), then systemctl reload tether; the samples are kept and sent then"),
        LinkState::NotFound => f(
            Level::Critical,
            "remote_write_not_found",
            "nothing at the remote-write URL takes requests (HTTP 404)",
        )
        .fix("check [remote_write] url (Prometheus: /api/v1/write with --web.enable-remote-write-receiver; VictoriaMetrics: /api/v1/write), then systemctl reload tether; the samples are kept meanwhile"),
        LinkState::Failing => f(
            Level::Warning,
            "remote_write_failing",
            "the remote-write receiver does not take requests now",
        )
        .fix("the samples are spooled and sent when it answers; look at the receiver (the last error says what it answered)"),
        LinkState::Rejected => f(
            Level::Warning,
            "remote_write_rejected",
            "the remote-write receiver refused samples of the last batch for good",
        )
        .fix(format!("the refused samples are in the spool directory's {}, counted by reason in tether_remote_write_samples_rejected_total", crate::agent::remote_write::DEAD_LETTER)),
        _ => Finding::ok(Step::Offline, "the remote-write receiver stores what it is sent").evidence(evidence),
    }
}

/// The running agent's OTLP link, said the same way.
pub(super) fn otlp_finding(r: &RemoteView) -> Finding {
    let evidence = receiver_evidence(r, "points");
    let f = |level, code, title: &str| {
        Finding::new(Step::Offline, level, code, title).evidence(evidence.clone())
    };
    match r.state {
        LinkState::CredentialsRejected => f(
            Level::Critical,
            "otlp_credentials_rejected",
            "the OTLP receiver rejects the credentials (HTTP 401/403): no longer valid, please update",
        )
        .fix("install valid credentials ([otlp] bearer_token_file, basic_auth_password_file or the API key in headers), then systemctl reload tether; the points are kept and sent then"),
        LinkState::NotFound => f(
            Level::Critical,
            "otlp_not_found",
            "nothing at the OTLP URL takes metrics (HTTP 404)",
        )
        .fix("check [otlp] url (an OpenTelemetry Collector's OTLP/HTTP receiver: http(s)://host:4318/v1/metrics), then systemctl reload tether; the points are kept meanwhile"),
        LinkState::Failing => f(
            Level::Warning,
            "otlp_failing",
            "the OTLP receiver does not take requests now",
        )
        .fix("the points are spooled and sent when it answers; look at the receiver (the last error says what it answered)"),
        LinkState::Rejected => f(
            Level::Warning,
            "otlp_rejected",
            "the OTLP receiver refused points of the last batch for good",
        )
        .fix(format!("points refused with the request are in the spool directory's {}; all are counted by reason in tether_otlp_points_rejected_total (partial_success: the receiver kept the rest of the request; its message is in the log)", crate::agent::otlp::DEAD_LETTER)),
        _ => Finding::ok(Step::Offline, "the OTLP receiver stores what it is sent").evidence(evidence),
    }
}

/// What a receiver's finding shows: its URL, last success, failures,
/// backlog, refusals (of `what`: samples or points) and last error.
fn receiver_evidence(r: &RemoteView, what: &str) -> String {
    let last = r
        .last_success
        .map_or("never".into(), |t| format!("last success {}", rfc3339(t)));
    format!(
        "{} {last}; {} consecutive failures; backlog {} records ({} on disk); {} {what} refused{}",
        r.url,
        r.consecutive_failures,
        r.backlog_records,
        r.spool_records,
        r.samples_rejected.iter().map(|(_, n)| n).sum::<u64>(),
        r.last_error
            .as_ref()
            .map(|(e, at)| format!("; last error at {}: {e}", rfc3339(*at)))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_recorded_status_says_nothing_where_it_has_no_reason() {
        let t = |why: &str| Transition {
            at_ms: 0,
            check: None,
            from: "started".into(),
            to: "online (healthy)".into(),
            why: why.into(),
        };
        let h: VecDeque<Transition> = [t("")].into();
        let said = last_recorded(Some(&h));
        assert!(
            said.ends_with("online (healthy) at 1970-01-01T00:00:00.000Z"),
            "{said}"
        );
        let h: VecDeque<Transition> = [t("failing: db")].into();
        assert!(last_recorded(Some(&h)).ends_with(" (failing: db)"));
    }
}
