//! `http`: GET or HEAD a URL like `curl -v .../healthz`, judge the status
//! (default any 2xx; 401 and 403 are `credentials_rejected`), optionally look
//! for `body_contains` in the first 64 KiB, and follow redirects only when asked.
//! `https://` adds a verified TLS handshake (phase `tls`) under the same
//! exchange; certificate failures get their own reason codes, and a redirect
//! from https to plain http is refused.

use futures_lite::{AsyncRead, AsyncWrite};

use crate::config::{HttpSpec, MAX_REDIRECTS};
use crate::net::connect::connect;
use crate::net::connect::Context;
use crate::net::http1::{exchange, HttpError, Limits, Request, MAX_HEAD};
use crate::net::tls::Verify;
use crate::net::url::{Scheme, Url};
use crate::outcome::{io_reason, Phase, Reason, Report, Trace};
use crate::probe::tls;

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
        let step = if url.scheme == Scheme::Https {
            let verify = if s.tls.insecure_skip_verify {
                Verify::Record
            } else {
                Verify::Enforce
            };
            let client = match tls::client(&s.tls, verify, &[b"http/1.1"]) {
                Ok(c) => c,
                Err(r) => return *r,
            };
            // `server_name` is for the configured host, not a redirect's.
            let name = if url.host == s.url.host {
                tls::server_name(&s.tls, &url.host)
            } else {
                url.host.tls_name()
            };
            trace.enter(Phase::Tls);
            let handshake = client.connect(&name, stream).await;
            let cert = client
                .seen()
                .and_then(|seen| tls::cert_detail(&seen, &s.tls));
            let mut tls_stream = match handshake {
                Ok(t) => t,
                Err(e) => {
                    return Report::crit(e.reason, format!("{url}: {}", e.message)).with_cert(cert)
                }
            };
            match hop_once(s, &url, hop, &mut tls_stream, trace).await {
                Step::Done(mut r) => {
                    if s.tls.insecure_skip_verify {
                        let verified = cert.as_ref().and_then(|c| c.verified) == Some(true);
                        r.message.push_str(if verified {
                            " (insecure_skip_verify is set; the certificate did verify)"
                        } else {
                            " (certificate NOT verified: insecure_skip_verify)"
                        });
                    }
                    Step::Done(r.with_cert(cert))
                }
                redirect => redirect,
            }
        } else {
            hop_once(s, &url, hop, &mut stream, trace).await
        };
        match step {
            Step::Done(r) => return r,
            Step::Redirect(next) => {
                if url.scheme == Scheme::Https && next.scheme == Scheme::Http {
                    return Report::crit(
                        Reason::RedirectRefused,
                        format!("{url}: redirect to {next} refused: it leaves TLS"),
                    );
                }
                url = next;
            }
        }
    }
    Report::crit(
        Reason::TooManyRedirects,
        format!("{url}: too many redirects"),
    )
}

enum Step {
    Done(Report),
    Redirect(Url),
}

/// One request and its judgement, over plain TCP or TLS.
async fn hop_once<S>(s: &HttpSpec, url: &Url, hop: usize, stream: &mut S, trace: &Trace) -> Step
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let done = Step::Done;
    let host = url.host_header();
    let req = Request {
        method: s.method.as_str(),
        path: &url.path,
        host: &host,
        headers: &s.headers,
        body: &[],
    };
    let limits = Limits {
        head: MAX_HEAD,
        body: MAX_BODY,
    };
    let resp = match exchange(stream, &req, trace, limits).await {
        Ok(r) => r,
        Err(HttpError::Io(e)) => return done(Report::crit(io_reason(&e), format!("{url}: {e}"))),
        Err(HttpError::Protocol(m)) => {
            return done(Report::crit(Reason::HttpProtocol, format!("{url}: {m}")))
        }
        Err(HttpError::HeadTooLarge(m)) => {
            return done(Report::crit(
                Reason::HttpHeadTooLarge,
                format!("{url}: {m}"),
            ))
        }
    };
    let code = resp.status;
    match judge(s, url, hop, &resp) {
        Step::Done(mut r) => {
            r.detail.http_status = Some(code);
            Step::Done(r)
        }
        redirect => redirect,
    }
}

/// The verdict on one response (or the redirect to follow).
fn judge(s: &HttpSpec, url: &Url, hop: usize, resp: &crate::net::http1::Response) -> Step {
    let done = Step::Done;
    let status_line = format!("HTTP {} {}", resp.status, resp.reason);
    let expected = s
        .expect_status
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&resp.status));
    if !expected && (300..400).contains(&resp.status) {
        if let Some(loc) = resp.header("location") {
            if !s.follow_redirects {
                return done(Report::crit(
                    Reason::HttpStatus,
                    format!("{url}: {status_line}, redirect to {loc} (follow_redirects is off)"),
                ));
            }
            if hop == MAX_REDIRECTS {
                return done(Report::crit(
                    Reason::TooManyRedirects,
                    format!("{url}: more than {MAX_REDIRECTS} redirects"),
                ));
            }
            return match url.join(loc) {
                Ok(next) => Step::Redirect(next),
                Err(e) => done(Report::crit(
                    Reason::RedirectRefused,
                    format!("{url}: cannot follow redirect: {e}"),
                )),
            };
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
        return done(Report::crit(
            reason,
            format!("{url}: {status_line} (expected {want}){hint}"),
        ));
    }
    if let Some(needle) = &s.body_contains {
        if !contains(&resp.body, needle.as_bytes()) {
            let scope = if resp.truncated {
                " (first 64 KiB)"
            } else {
                ""
            };
            return done(Report::crit(
                Reason::BodyMismatch,
                format!("{url}: {status_line}, body{scope} does not contain \"{needle}\""),
            ));
        }
    }
    done(Report::ok(format!("{url}: {status_line}")))
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
