//! `cert_file`: the expiry thresholds of a `tls` check, for a PEM
//! certificate on disk (a connector's own client certificate, an uploaded
//! custom certificate). With several certificates in the file (a chain),
//! the one that expires first is judged. The file is read with one small blocking read (local configuration-like
//! storage, like the config file itself).

use std::time::SystemTime;

use crate::config::CertFileSpec;
use crate::outcome::{path_error, CertDetail, Reason, Report};
use crate::probe::tls::judge_expiry;

pub fn probe(s: &CertFileSpec) -> Report {
    let path = s.path.display();
    let pem = match std::fs::read(&s.path) {
        Ok(p) => p,
        Err(e) => return path_error(&s.path, &e),
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
