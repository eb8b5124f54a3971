//! `tls`: handshake with host:port (SNI = the host, or `server_name`) and
//! report the leaf certificate: notAfter, days left, subject, issuer, names,
//! and whether chain, dates and name verified. The handshake completes
//! whatever the verdict (nothing is sent over it), so an expired or
//! untrusted certificate still shows its dates. warn below `warn_days`, crit
//! below `crit_days` or when verification fails (unless
//! `insecure_skip_verify`, which the status then says).

use std::time::SystemTime;

use crate::config::{Expiry, TlsOptions, TlsSpec};
use crate::net::connect::connect;
use crate::net::connect::Context;
use crate::net::tls::{describe_verdict, Client, Seen, Verify};
use crate::os::clock::{rfc3339_unix, unix_secs};
use crate::outcome::CertInfo;
use crate::outcome::{io_reason, CertDetail, Phase, Reason, Report, Status, Trace};

pub async fn probe(s: &TlsSpec, ctx: &Context<'_>, trace: &Trace) -> Report {
    let conn = match connect(&s.target.host, s.target.port, s.family, ctx, trace).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let stream = match conn.into_async() {
        Ok(st) => st,
        Err(e) => return Report::crit(io_reason(&e), format!("{}: {e}", s.target)),
    };
    let name = server_name(&s.tls, &s.target.host);
    let client = match client(&s.tls, Verify::Record, &[]) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    trace.enter(Phase::Tls);
    let handshake = client.connect(&name, stream).await;
    let seen = client.seen();
    match (handshake, seen) {
        (Ok(_), Some(seen)) => judge_handshake(&seen, &s.tls, &name, &s.expiry),
        (Err(e), seen) => {
            let cert = seen.and_then(|seen| cert_detail(&seen, &s.tls));
            Report::crit(e.reason, e.message).with_cert(cert)
        }
        (Ok(_), None) => Report::crit(
            Reason::TlsHandshake,
            format!("TLS handshake with {name} completed without a certificate"),
        ),
    }
}

/// The name to ask for: `server_name`, else the host.
pub fn server_name(tls: &TlsOptions, host: &crate::net::target::Host) -> String {
    tls.server_name.clone().unwrap_or_else(|| host.tls_name())
}

/// A TLS client for a check's options, or the report of why there is none.
pub fn client(tls: &TlsOptions, verify: Verify, alpn: &[&[u8]]) -> Result<Client, Box<Report>> {
    let extra = tls.ca_file.as_ref().map_or(&[][..], |c| &c.certs[..]);
    Client::new(extra, verify, alpn).map_err(|e| Box::new(Report::crit(Reason::TlsHandshake, e)))
}

/// The certificate facts of a handshake, if the leaf could be read.
pub fn cert_detail(seen: &Seen, tls: &TlsOptions) -> Option<CertDetail> {
    Some(CertDetail {
        info: seen.leaf.clone().ok()?,
        verified: Some(seen.verdict.is_ok()),
        verify_skipped: tls.insecure_skip_verify,
    })
}

/// The status of a completed handshake: the verdict (unless skipped), then
/// the expiry thresholds, worst first.
fn judge_handshake(seen: &Seen, tls: &TlsOptions, name: &str, expiry: &Expiry) -> Report {
    let detail = cert_detail(seen, tls);
    let info = match &seen.leaf {
        Ok(i) => i,
        Err(e) => {
            return Report::crit(
                Reason::TlsHandshake,
                format!("the certificate of {name} cannot be read: {e}"),
            )
        }
    };
    let mut report = judge_expiry(info, expiry, SystemTime::now());
    match (&seen.verdict, tls.insecure_skip_verify) {
        (Err(v), false) => {
            report = Report::crit(
                seen.reason().unwrap_or(Reason::TlsUntrusted),
                format!(
                    "{}; {}",
                    describe_verdict(v, &seen.leaf, name),
                    report.message
                ),
            );
        }
        (Err(v), true) => {
            report.message = format!(
                "{}; NOT VERIFIED (insecure_skip_verify): {}",
                report.message,
                describe_verdict(v, &seen.leaf, name)
            );
        }
        (Ok(()), true) => {
            report.message = format!(
                "{}; verified, but insecure_skip_verify is set",
                report.message
            );
        }
        (Ok(()), false) => report.message = format!("{}; verified", report.message),
    }
    report.with_cert(detail)
}

/// warn below `warn_days`, crit below `crit_days` (or expired, or not yet
/// valid). The message always carries the dates and names.
pub fn judge_expiry(info: &CertInfo, expiry: &Expiry, now: SystemTime) -> Report {
    let now = unix_secs(now);
    let left = info.not_after - now;
    let days = crate::net::x509::whole_days(left);
    let facts = format!(
        "{} issued by {}, expires {} ({})",
        info.subject,
        info.issuer,
        rfc3339_unix(info.not_after),
        if left < 0 {
            format!("{} days ago", -days)
        } else {
            format!("{days} days left")
        }
    );
    let day = |d: u32| i64::from(d) * 86_400;
    if info.not_before > now {
        return Report::crit(
            Reason::TlsNotYetValid,
            format!(
                "not valid before {}: {facts}",
                rfc3339_unix(info.not_before)
            ),
        );
    }
    if left < 0 {
        Report::crit(Reason::TlsExpired, format!("expired: {facts}"))
    } else if left < day(expiry.crit_days) {
        Report::crit(
            Reason::CertExpiring,
            format!("fewer than {} days left: {facts}", expiry.crit_days),
        )
    } else if left < day(expiry.warn_days) {
        Report::new(
            Status::Warn,
            Some(Reason::CertExpiring),
            format!("fewer than {} days left: {facts}", expiry.warn_days),
        )
    } else {
        Report::ok(facts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn info(not_before: i64, not_after: i64) -> CertInfo {
        CertInfo {
            not_before,
            not_after,
            subject: "CN=a".into(),
            issuer: "CN=ca".into(),
            names: vec![],
        }
    }

    #[test]
    fn expiry_thresholds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000 * 86_400);
        let e = Expiry {
            warn_days: 10,
            crit_days: 2,
        };
        let at = |days_left: f64| {
            let r = judge_expiry(
                &info(0, 1_000 * 86_400 + (days_left * 86_400.0) as i64),
                &e,
                now,
            );
            (r.status, r.reason)
        };
        assert_eq!(at(30.0), (Status::Ok, None));
        assert_eq!(at(10.0), (Status::Ok, None));
        assert_eq!(at(9.9), (Status::Warn, Some(Reason::CertExpiring)));
        assert_eq!(at(1.9), (Status::Crit, Some(Reason::CertExpiring)));
        assert_eq!(at(-0.1), (Status::Crit, Some(Reason::TlsExpired)));
        let r = judge_expiry(&info(0, 997 * 86_400), &e, now);
        assert!(
            r.message.contains("1972-09-24T00:00:00Z (3 days ago)"),
            "{}",
            r.message
        );
        // Whole days elapsed, the same in every place: 2 days and 13 s ago
        // was once "3 days ago" here and "2 days ago" in the handshake's
        // message.
        let r = judge_expiry(&info(0, 1_000 * 86_400 - 2 * 86_400 - 13), &e, now);
        assert!(r.message.contains("(2 days ago)"), "{}", r.message);
        let r = judge_expiry(&info(0, 1_000 * 86_400 + 9 * 86_400 + 80_000), &e, now);
        assert!(r.message.contains("(9 days left)"), "{}", r.message);
        assert_eq!(crate::net::x509::whole_days(-2 * 86_400 - 13), -2);
        let future = judge_expiry(&info(1_001 * 86_400, 2_000 * 86_400), &e, now);
        assert_eq!(future.reason, Some(Reason::TlsNotYetValid));
    }
}
