//! `http`: GET or HEAD a URL like `curl -v .../healthz`, judge the status
//! (default any 2xx; 401 and 403 are `credentials_rejected`), optionally look
//! for `body_contains` in the first 64 KiB, and follow redirects only when asked.

use crate::config::{HttpSpec, MAX_REDIRECTS};
use crate::http1::{exchange, HttpError, Request};
use crate::net::connect;
use crate::probe::{io_reason, Context, Reason, Report, Trace};

/// Bytes of body read at most; `body_contains` looks only here.
pub const MAX_BODY: usize = 64 * 1024;

pub async fn probe(s: &HttpSpec, ctx: &Context<'_>, trace: &Trace) -> Report {
    let mut url = s.url.clone();
    for hop in 0..=MAX_REDIRECTS {
        let conn = match connect(&url.host, url.port, s.family, ctx, trace).await {
            Ok(c) => c,
            Err(r) => return r,
        };
        let mut stream = match conn.into_async() {
            Ok(st) => st,
            Err(e) => return Report::crit(io_reason(&e), format!("{url}: {e}")),
        };
        let host = url.host_header();
        let req = Request {
            method: s.method.as_str(),
            path: &url.path,
            host: &host,
            headers: &s.headers,
        };
        let resp = match exchange(&mut stream, &req, trace, MAX_BODY).await {
            Ok(r) => r,
            Err(HttpError::Io(e)) => return Report::crit(io_reason(&e), format!("{url}: {e}")),
            Err(HttpError::Protocol(m)) => {
                return Report::crit(Reason::HttpProtocol, format!("{url}: {m}"))
            }
        };
        let status_line = format!("HTTP {} {}", resp.status, resp.reason);
        let expected = s
            .expect_status
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&resp.status));
        if !expected && (300..400).contains(&resp.status) {
            if let Some(loc) = resp.header("location") {
                if !s.follow_redirects {
                    return Report::crit(
                        Reason::HttpStatus,
                        format!(
                            "{url}: {status_line}, redirect to {loc} (follow_redirects is off)"
                        ),
                    );
                }
                if hop == MAX_REDIRECTS {
                    return Report::crit(
                        Reason::TooManyRedirects,
                        format!("{url}: more than {MAX_REDIRECTS} redirects"),
                    );
                }
                match url.join(loc) {
                    Ok(next) => {
                        url = next;
                        continue;
                    }
                    Err(e) => {
                        return Report::crit(
                            Reason::TooManyRedirects,
                            format!("{url}: cannot follow redirect: {e}"),
                        )
                    }
                }
            }
        }
        if !expected {
            let want = describe(&s.expect_status);
            let reason = if matches!(resp.status, 401 | 403) {
                Reason::CredentialsRejected
            } else {
                Reason::HttpStatus
            };
            let hint = if reason == Reason::CredentialsRejected {
                ": the credentials were rejected"
            } else {
                ""
            };
            return Report::crit(
                reason,
                format!("{url}: {status_line} (expected {want}){hint}"),
            );
        }
        if let Some(needle) = &s.body_contains {
            if !contains(&resp.body, needle.as_bytes()) {
                let scope = if resp.truncated {
                    " (first 64 KiB)"
                } else {
                    ""
                };
                return Report::crit(
                    Reason::BodyMismatch,
                    format!("{url}: {status_line}, body{scope} does not contain \"{needle}\""),
                );
            }
        }
        return Report::ok(format!("{url}: {status_line}"));
    }
    Report::crit(
        Reason::TooManyRedirects,
        format!("{url}: too many redirects"),
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn describe(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|(lo, hi)| {
            if hi - lo == 99 && lo % 100 == 0 {
                format!("{}xx", lo / 100)
            } else if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
