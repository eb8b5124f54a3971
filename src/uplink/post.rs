//! One HTTP POST to a report destination (the control plane's upload, a
//! remote-write receiver), or a GET of the control plane's checks: the same resolver, connect and TLS code as the
//! probes, the whole exchange raced against one deadline. Messages built
//! here name the URL and what failed, never a header value (the
//! credentials travel in headers).

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};

use crate::config::CaFile;
use crate::net::connect::{connect, Context};
use crate::net::http1::{exchange, Limits, Request, Response};
use crate::net::resolve::Resolver;
use crate::net::tls::{Client, Verify};
use crate::net::url::{Scheme, Url};
use crate::os::alarm::until;
use crate::outcome::Trace;

pub const MAX_RESPONSE_HEAD: usize = crate::net::http1::MAX_HEAD;
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Where a POST goes.
pub struct Destination<'a> {
    pub url: &'a Url,
    /// Path and query on the wire.
    pub path: &'a str,
    pub ca_file: Option<&'a CaFile>,
    pub timeout: Duration,
}

/// The `Authorization` header for a receiver's credentials, if any.
pub fn authorization(auth: Option<&crate::config::RemoteAuth>) -> Option<(String, String)> {
    let value = match auth? {
        crate::config::RemoteAuth::Bearer(t) => format!("Bearer {}", t.expose()),
        crate::config::RemoteAuth::Basic { user, password } => {
            let pair = format!("{user}:{}", password.expose());
            format!("Basic {}", crate::format::base64::encode(pair.as_bytes()))
        }
    };
    Some(("Authorization".into(), value))
}

/// A receiver's answer for a log line and `/status`: `HTTP 400 Bad
/// Request: <what it said>`, what it said clipped to 300 characters.
pub fn answer_line(resp: &Response, said: &str) -> String {
    let said = crate::format::text::clip(said, 300);
    if said.is_empty() {
        format!("HTTP {} {}", resp.status, resp.reason)
    } else {
        format!("HTTP {} {}: {said}", resp.status, resp.reason)
    }
}

/// Why there is no answer: a sentence for the log and `/status`, and
/// whether a connection to the receiver was made at all (a receiver that
/// cannot be reached can be watched with [`reachable`] instead of full
/// requests).
#[derive(Debug)]
pub struct NoAnswer {
    pub why: String,
    pub connected: bool,
}

/// Posts `body`; never takes longer than `to.timeout`.
pub async fn post(
    to: &Destination<'_>,
    resolver: &Resolver,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, NoAnswer> {
    request(to, resolver, ("POST", MAX_RESPONSE_BODY), headers, body).await
}

/// `GET`s what the destination serves (the control plane's checks), a
/// body of at most `max_body` bytes; never longer than `to.timeout`.
pub async fn get(
    to: &Destination<'_>,
    resolver: &Resolver,
    headers: &[(String, String)],
    max_body: usize,
) -> Result<Response, NoAnswer> {
    request(to, resolver, ("GET", max_body), headers, &[]).await
}

async fn request(
    to: &Destination<'_>,
    resolver: &Resolver,
    method: (&str, usize),
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Response, NoAnswer> {
    let deadline = Instant::now() + to.timeout;
    let connected = Cell::new(false);
    // Boxed: the connect, TLS and HTTP state is tens of KiB, held only
    // while a request is out, not all the time in each loop's future.
    let r = until(
        deadline,
        Box::pin(attempt(
            to, resolver, method, headers, body, deadline, &connected,
        )),
    )
    .await;
    r.unwrap_or_else(|| {
        Err(format!(
            "no answer within {} (timeout)",
            crate::config::duration::format(to.timeout)
        ))
    })
    .map_err(|why| NoAnswer {
        why,
        connected: connected.get(),
    })
}

/// Resolves the URL's host and opens a TCP connection to it (nothing is
/// sent): can the receiver be reached now? At most `timeout`.
pub async fn reachable(url: &Url, resolver: &Resolver, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let ctx = Context { resolver, deadline };
    let trace = Trace::new(Instant::now());
    let family = crate::net::resolve::Family::Any;
    let attempt = connect(&url.host, url.port, family, &ctx, &trace);
    matches!(until(deadline, attempt).await, Some(Ok(_)))
}

async fn attempt(
    to: &Destination<'_>,
    resolver: &Resolver,
    (method, max_body): (&str, usize),
    headers: &[(String, String)],
    body: &[u8],
    deadline: Instant,
    connected: &Cell<bool>,
) -> Result<Response, String> {
    let trace = Trace::new(Instant::now());
    let ctx = Context { resolver, deadline };
    let url = to.url;
    let conn = connect(
        &url.host,
        url.port,
        crate::net::resolve::Family::Any,
        &ctx,
        &trace,
    )
    .await
    .map_err(|r| r.message)?;
    connected.set(true);
    let stream = conn.into_async().map_err(|e| format!("{url}: {e}"))?;
    let req = Request {
        method,
        path: to.path,
        host: &url.host_header(),
        headers,
        body,
    };
    if url.scheme == Scheme::Https {
        let extra = to.ca_file.map_or(&[][..], |c| &c.certs[..]);
        let client = Client::new(extra, Verify::Enforce, &[b"http/1.1"])?;
        let mut tls = client
            .connect(&url.host.tls_name(), stream)
            .await
            .map_err(|e| format!("{} ({})", e.message, e.reason.code()))?;
        send(url, &req, &mut tls, &trace, max_body).await
    } else {
        let mut stream = stream;
        send(url, &req, &mut stream, &trace, max_body).await
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    url: &Url,
    req: &Request<'_>,
    stream: &mut S,
    trace: &Trace,
    max_body: usize,
) -> Result<Response, String> {
    let limits = Limits {
        head: MAX_RESPONSE_HEAD,
        body: max_body,
    };
    exchange(stream, req, trace, limits)
        .await
        .map_err(|e| format!("{url}: {e}"))
}
