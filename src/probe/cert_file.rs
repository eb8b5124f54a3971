//! `cert_file`: the expiry thresholds of a `tls` check, for a PEM
//! certificate on disk (a connector's own client certificate, an uploaded
//! custom certificate). With several certificates in the file (a chain),
//! the one that expires first is judged. The file (at most 1 MiB) is read
//! by a filesystem helper ([`crate::os::fs_helper`]): a FIFO or a hung mount
//! costs this check its deadline (`fs_timeout`), not the agent.

use std::time::SystemTime;

use crate::config::CertFileSpec;
use crate::os::fs_helper::{wire::READ_LIMIT, Answer, Job};
use crate::outcome::{path_error, CertDetail, Reason, Report, Trace};
use crate::probe::tls::judge_expiry;

pub async fn probe(s: &CertFileSpec, trace: &Trace) -> Report {
    let path = s.path.display();
    let job = Job::Read {
        path: s.path.clone(),
        limit: READ_LIMIT as u32,
    };
    let pem = match super::fs(&job, trace).await {
        Ok(Answer::Bytes(p)) => p,
        Ok(Answer::Failed { errno, .. }) => {
            return path_error(&s.path, &std::io::Error::from_raw_os_error(errno))
        }
        Ok(Answer::TooLarge(_)) => {
            return Report::crit(
                Reason::FileError,
                format!("{path}: larger than 1 MiB, not a certificate file"),
            )
        }
        Ok(_) => return super::out_of_format(),
        Err(r) => return r,
    };
    let certs = match crate::net::x509::load_pem_certs(&pem) {
        Ok(c) => c,
        Err(e) => return Report::crit(Reason::FileError, format!("{path}: {e}")),
    };
    let mut earliest: Option<crate::outcome::CertInfo> = None;
    for (n, der) in certs.iter().enumerate() {
        match crate::net::x509::parse(der) {
            Ok(i) if earliest.as_ref().is_none_or(|e| i.not_after < e.not_after) => {
                earliest = Some(i)
            }
            Ok(_) => {}
            Err(e) => {
                let which = n + 1;
                return Report::crit(
                    Reason::FileError,
                    format!("{path}: certificate {which}: {e}"),
                );
            }
        }
    }
    let Some(info) = earliest else {
        return Report::crit(Reason::FileError, format!("{path}: no certificate"));
    };
    let mut report = judge_expiry(&info, &s.expiry, SystemTime::now());
    report.message = format!("{path}: {}", report.message);
    report.with_cert(Some(CertDetail {
        info,
        verified: None,
        verify_skipped: false,
    }))
}
