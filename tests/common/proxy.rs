//! A fault proxy for remote-write: every request the agent sends is read
//! whole, decoded (snappy block, protobuf `WriteRequest`, by a decoder of
//! its own here, not tether's), logged with its time and what it was
//! answered, and then forwarded to a real store or answered by the rule in
//! force (a status of its own, or 413 past a size).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy does with the next requests.
#[derive(Clone, Debug)]
pub enum Rule {
    /// Sent on to the store; its answer goes back.
    Forward,
    /// Answered here: a status and headers, with `body`.
    Answer(u16, Vec<(&'static str, String)>, &'static str),
    /// 413 for a request of more than this many samples; the rest forwarded.
    TooLarge(usize),
}

/// One series as decoded: its labels (with `__name__`) and samples
/// (Unix ms, value).
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, f64)>,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub series: Vec<Decoded>,
    /// The status it was answered with (0: no answer from the store).
    pub status: u16,
}

impl Seen {
    pub fn samples(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

pub struct Proxy {
    pub addr: SocketAddr,
    rule: Arc<Mutex<Rule>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// Listens on a free loopback port; forwards to `store`, if any (with
    /// none, `Forward` answers 503).
    pub fn start(store: Option<SocketAddr>) -> Proxy {
        Proxy::listen(store, None)
    }

    /// The same behind TLS with `config` (an `https` store).
    pub fn start_tls(store: Option<SocketAddr>, config: Arc<rustls::ServerConfig>) -> Proxy {
        Proxy::listen(store, Some(config))
    }

    /// [`Proxy::start`] on this address (a receiver that comes back where
    /// it was).
    pub fn start_on(addr: SocketAddr, store: Option<SocketAddr>) -> Proxy {
        Proxy::bind(TcpListener::bind(addr).unwrap(), store, None)
    }

    fn listen(store: Option<SocketAddr>, tls: Option<Arc<rustls::ServerConfig>>) -> Proxy {
        Proxy::bind(TcpListener::bind("127.0.0.1:0").unwrap(), store, tls)
    }

    fn bind(
        listener: TcpListener,
        store: Option<SocketAddr>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Proxy {
        let addr = listener.local_addr().unwrap();
        let rule = Arc::new(Mutex::new(Rule::Forward));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (r, s) = (rule.clone(), seen.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (r, s, tls) = (r.clone(), s.clone(), tls.clone());
                conn.set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                thread::spawn(move || match tls {
                    None => serve(conn, store, &r, &s),
                    Some(c) => {
                        let tls = rustls::ServerConnection::new(c).unwrap();
                        serve(rustls::StreamOwned::new(tls, conn), store, &r, &s);
                    }
                });
            }
        });
        Proxy { addr, rule, seen }
    }

    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    pub fn set(&self, rule: Rule) {
        *self.rule.lock().unwrap() = rule;
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests that arrived at or after `from`.
    pub fn count_since(&self, from: Instant) -> usize {
        self.seen().iter().filter(|s| s.at >= from).count()
    }
}

fn serve(
    mut conn: impl Read + Write,
    store: Option<SocketAddr>,
    rule: &Mutex<Rule>,
    seen: &Mutex<Vec<Seen>>,
) {
    let mut buf = Vec::new();
    while let Some((head, body)) = super::request::read_request(&mut conn, &mut buf) {
        let at = Instant::now();
        let series = decode_body(&body).unwrap_or_default();
        let samples: usize = series.iter().map(|s| s.samples.len()).sum();
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or("/api/v1/write")
            .to_string();
        let act = rule.lock().unwrap().clone();
        let answer = match act {
            Rule::Answer(code, headers, text) => Some(response(code, &headers, text)),
            Rule::TooLarge(max) if samples > max => Some(response(413, &[], "request too large")),
            Rule::Forward | Rule::TooLarge(_) => store.and_then(|s| forward(s, &path, &body)),
        };
        let answer = answer.unwrap_or_else(|| response(503, &[], "no store"));
        let status = std::str::from_utf8(&answer)
            .ok()
            .and_then(|t| t.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        seen.lock().unwrap().push(Seen { at, series, status });
        if conn.write_all(&answer).is_err() {
            return;
        }
    }
}

fn response(code: u16, headers: &[(&str, String)], body: &str) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

/// The store's whole answer to the same request, on a connection of its
/// own (closed after it, so the answer is read to its end).
fn forward(store: SocketAddr, path: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&store, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {store}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    // The agent's connection stays open: the store's `Connection: close`
    // is not passed on.
    let text = String::from_utf8_lossy(&out).replace("Connection: close\r\n", "");
    Some(text.into_bytes())
}

/// A remote-write body: snappy block format, then `WriteRequest`.
pub fn decode_body(body: &[u8]) -> Option<Vec<Decoded>> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).ok()?;
    let mut out = Vec::new();
    for (tag, ts) in fields(&raw)? {
        if tag != (1, 2) {
            continue;
        }
        let mut d = Decoded {
            labels: BTreeMap::new(),
            samples: Vec::new(),
        };
        for (tag, v) in fields(ts)? {
            match tag {
                (1, 2) => {
                    let (mut k, mut val) = (String::new(), String::new());
                    for (t, x) in fields(v)? {
                        match t {
                            (1, 2) => k = String::from_utf8(x.to_vec()).ok()?,
                            (2, 2) => val = String::from_utf8(x.to_vec()).ok()?,
                            _ => {}
                        }
                    }
                    d.labels.insert(k, val);
                }
                (2, 2) => {
                    let (mut value, mut t) = (0.0, 0i64);
                    for (tag, x) in fields(v)? {
                        match tag {
                            (1, 1) => value = f64::from_le_bytes(x.try_into().ok()?),
                            (2, 0) => t = varint(x)?.0 as i64,
                            _ => {}
                        }
                    }
                    d.samples.push((t, value));
                }
                _ => {}
            }
        }
        out.push(d);
    }
    Some(out)
}

/// One field: (field number, wire type), and its bytes (a varint field's
/// are the varint itself).
type Field<'a> = ((u64, u64), &'a [u8]);

/// The fields of one message.
fn fields(mut b: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (key, n) = varint(b)?;
        b = &b[n..];
        let (num, wire) = (key >> 3, key & 7);
        let len = match wire {
            0 => varint(b)?.1,
            1 => 8,
            2 => {
                let (len, n) = varint(b)?;
                b = &b[n..];
                len as usize
            }
            5 => 4,
            _ => return None,
        };
        if b.len() < len {
            return None;
        }
        out.push(((num, wire), &b[..len]));
        b = &b[len..];
    }
    Some(out)
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}
