//! One HTTP/1.1 exchange over any byte stream (plain TCP or TLS: the
//! function is generic over `AsyncRead + AsyncWrite`). Writes the request
//! with `Connection: close`, parses the head with httparse, and reads a
//! body framed by Content-Length, chunked encoding or EOF, keeping at most
//! `max_body` bytes. Nothing the server sends can make it panic, grow
//! without bound or hold the thread: a head is capped at [`MAX_HEAD`] bytes
//! and [`MAX_HEADERS`] fields (curl takes 100 KiB heads; real servers send
//! 20 KiB cookies and dozens of headers), at most [`MAX_INTERIM`] 1xx
//! responses may precede the real one, and the loop yields after each.

use std::io;

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::outcome::{Phase, Trace};

pub const MAX_HEAD: usize = 64 * 1024;
pub const MAX_HEADERS: usize = 500;
pub const MAX_INTERIM: usize = 16;

pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    pub host: &'a str,
    pub headers: &'a [(String, String)],
    /// Sent with a Content-Length when not empty.
    pub body: &'a [u8],
}

/// How much of a response is read at most.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Status line and headers; more fails the exchange.
    pub head: usize,
    /// Body bytes kept; more is cut (`truncated`).
    pub body: usize,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than `max_body` and was cut there.
    pub truncated: bool,
}

impl Response {
    /// The body's first line, at most 200 characters: what a server said,
    /// for a message. A body that is not text (a protobuf, compressed
    /// bytes: not UTF-8, or control characters in the line) is named by
    /// its size: its bytes would say nothing to an operator.
    pub fn body_line(&self) -> String {
        let end = (self.body.iter())
            .position(|b| *b == b'\n')
            .unwrap_or(self.body.len());
        // Enough to show 200 characters and see that there were more.
        let head = &self.body[..end.min(1024)];
        let text = match std::str::from_utf8(head) {
            Ok(t) => t,
            // Cut inside a character (at 1024 bytes, or by the body limit).
            Err(e) if e.error_len().is_none() => {
                std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => return self.not_text(),
        };
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return self.not_text();
        }
        crate::format::text::clip(text, 200)
    }

    fn not_text(&self) -> String {
        let n = self.body.len();
        let more = if self.truncated { " or more" } else { "" };
        format!("a body of {n} bytes{more} that is not text")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub enum HttpError {
    Io(io::Error),
    /// The peer's bytes are not HTTP/1.x.
    Protocol(String),
    /// The response head is over a bound ([`MAX_HEAD`], [`MAX_HEADERS`]).
    HeadTooLarge(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Io(e) => write!(f, "{e}"),
            HttpError::Protocol(m) | HttpError::HeadTooLarge(m) => f.write_str(m),
        }
    }
}

type Head = (u16, String, Vec<(String, String)>, usize);

/// Parses a complete head at the start of `buf`: `None` while partial.
/// Most heads fit 64 fields on the stack; more are parsed again with room
/// for [`MAX_HEADERS`].
fn parse_head(buf: &[u8]) -> Result<Option<Head>, HttpError> {
    let mut few = [httparse::EMPTY_HEADER; 64];
    match parse_head_in(buf, &mut few) {
        Err(HttpError::HeadTooLarge(_)) => {
            parse_head_in(buf, &mut vec![httparse::EMPTY_HEADER; MAX_HEADERS])
        }
        other => other,
    }
}

fn parse_head_in<'b>(
    buf: &'b [u8],
    fields: &mut [httparse::Header<'b>],
) -> Result<Option<Head>, HttpError> {
    let mut resp = httparse::Response::new(fields);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((
            resp.code.unwrap_or(0),
            crate::format::text::clip(resp.reason.unwrap_or(""), 100),
            resp.headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            n,
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadTooLarge(format!(
            "response head with more than {MAX_HEADERS} header fields"
        ))),
        Err(e) => Err(HttpError::Protocol(format!("invalid response head: {e}"))),
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

/// A byte stream with a read buffer.
struct Conn<'s, S> {
    s: &'s mut S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: AsyncRead + Unpin> Conn<'_, S> {
    /// Reads more bytes; `false` at EOF.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 4096];
        let n = self.s.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// A CRLF-terminated line of at most 1 KiB, without its terminator.
    async fn line(&mut self) -> Result<String, HttpError> {
        loop {
            if let Some(i) = self.available().iter().position(|b| *b == b'\n') {
                let line = String::from_utf8_lossy(&self.available()[..i])
                    .trim_end_matches('\r')
                    .to_string();
                self.pos += i + 1;
                return Ok(line);
            }
            if self.available().len() > 1024 {
                return Err(HttpError::Protocol(
                    "chunk size line longer than 1 KiB".into(),
                ));
            }
            if !self.fill().await? {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
        }
    }

    /// Appends up to `n` bytes to `out`; returns how many were available before EOF.
    async fn take(&mut self, n: usize, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut got = 0;
        while got < n {
            if self.available().is_empty() && !self.fill().await? {
                break;
            }
            let k = self.available().len().min(n - got);
            out.extend_from_slice(&self.available()[..k]);
            self.pos += k;
            got += k;
        }
        Ok(got)
    }
}

pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    req: &Request<'_>,
    trace: &Trace,
    limits: Limits,
) -> Result<Response, HttpError> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tether/{}\r\nAccept: */*\r\nConnection: close\r\n",
        req.method,
        req.path,
        req.host,
        env!("CARGO_PKG_VERSION")
    );
    for (k, v) in req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !req.body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(req.body).await?;
    stream.flush().await?;
    trace.enter(Phase::FirstByte);

    let mut conn = Conn {
        s: stream,
        buf: Vec::with_capacity(4096),
        pos: 0,
    };
    let mut first = true;
    let mut interim = 0;
    loop {
        let (status, reason, headers, head_len) = loop {
            if let Some(head) = parse_head(conn.available())? {
                break head;
            }
            if conn.available().len() >= limits.head {
                return Err(HttpError::HeadTooLarge(format!(
                    "response head larger than {} KiB",
                    limits.head / 1024
                )));
            }
            if !conn.fill().await? {
                let what = if conn.available().is_empty() {
                    "without replying"
                } else {
                    "in the middle of the response head"
                };
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("server closed the connection {what}"),
                )
                .into());
            }
            if first {
                first = false;
                trace.enter(Phase::Transfer);
            }
        };
        conn.pos += head_len;
        if (100..200).contains(&status) && status != 101 {
            // 100 Continue and friends precede the real response; a server
            // that sends them without end gets an error, not the thread.
            interim += 1;
            if interim > MAX_INTERIM {
                return Err(HttpError::Protocol(format!(
                    "more than {MAX_INTERIM} interim (1xx) responses before the real one"
                )));
            }
            futures_lite::future::yield_now().await;
            continue;
        }
        let mut resp = Response {
            status,
            reason,
            headers,
            body: Vec::new(),
            truncated: false,
        };
        read_body(&mut conn, &mut resp, req.method == "HEAD", limits.body).await?;
        return Ok(resp);
    }
}

async fn read_body<S: AsyncRead + Unpin>(
    conn: &mut Conn<'_, S>,
    resp: &mut Response,
    head: bool,
    max: usize,
) -> Result<(), HttpError> {
    if head || resp.status == 204 || resp.status == 304 {
        return Ok(());
    }
    let chunked = resp
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let line = conn.line().await?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| HttpError::Protocol(format!("bad chunk size `{size_text}`")))?;
            if size == 0 {
                break;
            }
            let keep = size.min(max - body.len());
            if conn.take(keep, &mut body).await? < keep {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunk",
                )
                .into());
            }
            if body.len() == max {
                resp.truncated = true;
                break;
            }
            conn.line().await?; // the CRLF after the chunk data
        }
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| HttpError::Protocol(format!("bad Content-Length `{len}`")))?;
        let keep = len.min(max);
        if conn.take(keep, &mut body).await? < keep {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the end of the body",
            )
            .into());
        }
        resp.truncated = len > max;
    } else {
        conn.take(max, &mut body).await?;
        resp.truncated = body.len() == max && conn.fill().await.unwrap_or(false);
    }
    resp.body = body;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(body: &[u8]) -> String {
        Response {
            status: 400,
            reason: "Bad Request".into(),
            headers: Vec::new(),
            body: body.to_vec(),
            truncated: false,
        }
        .body_line()
    }

    #[test]
    fn a_body_line_is_text_or_named_by_its_size() {
        assert_eq!(said(b"too old\r\nmore"), "too old");
        assert_eq!(said(b"tab\tkept"), "tab?kept");
        assert_eq!(said(b""), "");
        assert_eq!(said("caf\u{e9}".as_bytes()), "caf\u{e9}");
        let long = "x".repeat(300);
        assert_eq!(said(long.as_bytes()), format!("{}\u{2026}", &long[..200]));
        // A protobuf Status whose length is damaged; bytes of no text.
        assert_eq!(
            said(b"\x12\xff\xff\xff\xff\x0fxxxx"),
            "a body of 10 bytes that is not text"
        );
        assert_eq!(
            said(b"\x08\x03\x12\x03bad"),
            "a body of 7 bytes that is not text"
        );
        // Cut inside a character by the body limit: the text before it.
        assert_eq!(said(&"caf\u{e9}".as_bytes()[..4]), "caf");
    }
}
