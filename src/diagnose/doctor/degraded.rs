//! Step 3, degraded: failing resource checks, grouped by the class of their
//! cause, each class with its fix.

use super::*;

/// The cause classes of step 3, each with its fix.
pub(super) fn cause_class(r: Option<Reason>) -> (&'static str, &'static str, &'static str) {
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

pub(super) fn degraded_step(snap: &Snapshot) -> Vec<Finding> {
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
            let n = f.evidence.lines().count() as u64;
            f.title = format!(
                "{}: {}",
                crate::format::text::count(n, "resource check"),
                f.title
            );
            f
        })
        .collect()
}
