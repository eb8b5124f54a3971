//! `tcp`: connect to host:port like `nc -zv`; optionally send bytes and
//! require the first bytes the server sends to start with `expect`
//! (an SSH banner `SSH-`, an SMTP greeting `220`).

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::config::TcpSpec;
use crate::net::connect::connect;
use crate::net::connect::Context;
use crate::outcome::{io_reason, Phase, Reason, Report, Trace};

pub async fn probe(s: &TcpSpec, ctx: &Context<'_>, trace: &Trace) -> Report {
    let conn = match connect(&s.target.host, s.target.port, s.family, ctx, trace).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    // The address connected to, as recorded by `connect` (no getpeername(2)).
    let peer = trace
        .peer()
        .map_or_else(|| s.target.to_string(), |a| a.to_string());
    if s.send.is_none() && s.expect.is_none() {
        return Report::ok(format!("connected to {peer}"));
    }
    let mut stream = match conn.into_async() {
        Ok(st) => st,
        Err(e) => return Report::crit(io_reason(&e), format!("{peer}: {e}")),
    };
    if let Some(send) = &s.send {
        if let Err(e) = stream.write_all(send).await {
            return Report::crit(io_reason(&e), format!("sending to {peer}: {e}"));
        }
    }
    let Some(expect) = &s.expect else {
        return Report::ok(format!("connected to {peer}"));
    };
    trace.enter(Phase::FirstByte);
    let mut got = Vec::new();
    let mut chunk = [0u8; 512];
    while got.len() < expect.len() {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) => return Report::crit(io_reason(&e), format!("reading from {peer}: {e}")),
        }
    }
    let banner = printable_line(&got);
    if got.starts_with(expect) {
        Report::ok(format!("connected to {peer}: {banner}"))
    } else {
        let want = String::from_utf8_lossy(expect);
        Report::crit(
            Reason::ExpectMismatch,
            format!("{peer} sent \"{banner}\", expected it to start with \"{want}\""),
        )
    }
}

/// The first line of `bytes`, non-printable characters replaced, at most 120 chars.
pub fn printable_line(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
    String::from_utf8_lossy(line)
        .chars()
        .filter(|c| *c != '\r')
        .map(|c| if c.is_control() { '.' } else { c })
        .take(120)
        .collect()
}
