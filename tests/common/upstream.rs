//! A fake control plane on loopback that can be scripted per request.

use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the fake does with one request.
#[derive(Clone, Debug)]
pub enum Act {
    /// 200, acknowledged.
    Ack,
    /// A status with headers and a body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Read the request, then say nothing until the client goes away.
    Hang,
    /// Half a response head, then a reset (SO_LINGER 0).
    Reset,
    /// Bytes that are not HTTP.
    Garbage,
    /// A response head over 64 KiB.
    HugeHeaders,
    /// A 200 whose body trickles in for `secs`.
    SlowBody(u64),
}

/// One request as received, and what the fake answered.
#[derive(Clone, Debug)]
pub struct Req {
    pub head: String,
    pub lines: Vec<String>,
    pub act: String,
    /// When the whole request had been read.
    pub at: Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn acked(&self) -> bool {
        self.act == "Ack"
    }

    /// (seq, type) of each record.
    pub fn records(&self) -> Vec<(u64, String)> {
        self.lines
            .iter()
            .map(|l| (field(l, "seq").parse().unwrap(), field(l, "type")))
            .collect()
    }
}

/// A token file (mode 0600) holding `token`, in a fresh directory.
pub fn token_file(token: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = super::temp_dir("token").join("token");
    std::fs::write(&p, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// An `[upstream]` table for `url` (plaintext on loopback) with a fresh
/// token file holding `token`: a 1 s timeout, uploads every 500 ms.
pub fn section(url: &str, token: &str) -> String {
    format!(
        "[upstream]\nurl = \"{url}\"\nallow_plaintext = true\ntoken_file = \"{}\"\ntimeout = \"1s\"\nflush_interval = \"500ms\"\n",
        token_file(token).display()
    )
}

/// A field of the `upstream` object in the agent's /status.
pub fn upstream_field(a: &super::Agent, key: &str) -> String {
    let (code, s) = a.get("/status");
    assert_eq!(code, 200, "{s}");
    let up = &s[s.find("\"upstream\":{").expect("an upstream object")..];
    field(up, key)
}

/// `"key":value` (string or number) from one JSON line.
pub fn field(line: &str, key: &str) -> String {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len()
        + 3;
    let v = &line[at..];
    if let Some(s) = v.strip_prefix('"') {
        s[..s.find('"').unwrap()].to_string()
    } else {
        v[..v.find([',', '}']).unwrap()].to_string()
    }
}

/// A `gap` record as received.
#[derive(Debug)]
pub struct GapRec {
    pub reason: String,
    pub first: u64,
    pub last: u64,
    pub count: u64,
}

impl GapRec {
    pub fn parse(line: &str) -> Option<GapRec> {
        if field(line, "type") != "gap" {
            return None;
        }
        let n = |k| field(line, k).parse::<u64>().unwrap();
        Some(GapRec {
            reason: field(line, "reason"),
            first: n("first_seq"),
            last: n("last_seq"),
            count: n("count"),
        })
    }

    pub fn contains(&self, seq: u64) -> bool {
        (self.first..=self.last).contains(&seq)
    }
}

/// Sequence numbers in acknowledged uploads, and their gap records.
pub fn delivered_and_gaps(reqs: &[Req]) -> (BTreeSet<u64>, Vec<GapRec>) {
    let mut seqs = BTreeSet::new();
    let mut gaps = Vec::new();
    for r in reqs.iter().filter(|r| r.acked()) {
        for l in &r.lines {
            seqs.insert(field(l, "seq").parse().unwrap());
            gaps.extend(GapRec::parse(l));
        }
    }
    (seqs, gaps)
}

pub struct Fake {
    pub addr: SocketAddr,
    pub requests: mpsc::Receiver<Req>,
    script: Arc<Mutex<VecDeque<Act>>>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// With an empty script: answer 503 (no Retry-After) instead of 200.
    failing: AtomicBool,
    /// Connections being served.
    open: AtomicUsize,
    /// With an empty script: this answer, before `failing` is looked at.
    default: Mutex<Option<Act>>,
}

impl Fake {
    /// Listens on `addr` (127.0.0.1:0 for any port); answers `Ack` unless
    /// the script says otherwise.
    pub fn start(addr: &str) -> Fake {
        Fake::listen(addr, None)
    }

    /// The same behind TLS with `config`.
    pub fn start_tls(addr: &str, config: Arc<rustls::ServerConfig>) -> Fake {
        Fake::listen(addr, Some(config))
    }

    fn listen(addr: &str, tls: Option<Arc<rustls::ServerConfig>>) -> Fake {
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Arc<Mutex<VecDeque<Act>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let s = script.clone();
        let shared: Arc<Shared> = Arc::default();
        let sh = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (tx, s, sh, tls) = (tx.clone(), s.clone(), sh.clone(), tls.clone());
                sh.open.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    match tls {
                        None => serve(stream, &s, &sh, &tx),
                        Some(c) => {
                            let conn = rustls::ServerConnection::new(c).unwrap();
                            serve(rustls::StreamOwned::new(conn, stream), &s, &sh, &tx);
                        }
                    }
                    sh.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Fake {
            addr,
            requests: rx,
            script,
            shared,
        }
    }

    /// Unscripted requests get 503 (`true`) or 200 (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Unscripted requests get `act` (`None`: back to `set_failing`'s).
    pub fn set_default(&self, act: Option<Act>) {
        *self.shared.default.lock().unwrap() = act;
    }

    /// Connections still being served (for a fence after the client died).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The next requests get these answers, in order.
    pub fn script(&self, acts: impl IntoIterator<Item = Act>) {
        self.script.lock().unwrap().extend(acts);
    }

    /// The next request, waiting at most `limit`.
    pub fn next(&self, limit: Duration) -> Req {
        self.requests
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("no upload within {limit:?}"))
    }
}

/// A connection, plain or TLS.
trait Conn: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

fn serve(mut s: impl Conn, script: &Mutex<VecDeque<Act>>, sh: &Shared, tx: &mpsc::Sender<Req>) {
    let mut buf = Vec::new();
    let Some((head, body)) = super::request::read_request(&mut s, &mut buf) else {
        return;
    };
    let body = String::from_utf8_lossy(&body).to_string();
    let at = Instant::now();
    let act = script.lock().unwrap().pop_front().unwrap_or_else(|| {
        if let Some(a) = sh.default.lock().unwrap().clone() {
            a
        } else if sh.failing.load(Ordering::SeqCst) {
            Act::Status(503, vec![], String::new())
        } else {
            Act::Ack
        }
    });
    let label = match &act {
        Act::Status(code, ..) => format!("Status {code}"),
        other => format!("{other:?}"),
    };
    let _ = tx.send(Req {
        head,
        lines: body.lines().map(String::from).collect(),
        act: label,
        at,
    });
    let _ = match act {
        Act::Ack => s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        Act::Status(code, headers, body) => {
            let mut r = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\n", body.len());
            for (k, v) in headers {
                r.push_str(&format!("{k}: {v}\r\n"));
            }
            r.push_str("\r\n");
            r.push_str(&body);
            s.write_all(r.as_bytes())
        }
        Act::Hang => {
            let _ = s.read(&mut [0u8; 1024]);
            Ok(())
        }
        Act::Reset => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
            let sock = socket2::SockRef::from(s.tcp());
            let _ = sock.set_linger(Some(Duration::ZERO));
            Ok(())
        }
        Act::Garbage => s.write_all(b"\x16\x03\x01 this is not http\r\n\r\n"),
        Act::HugeHeaders => {
            let mut r = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..1200 {
                r.push_str(&format!("X-Filler-{i}: {}\r\n", "y".repeat(60)));
            }
            r.push_str("Content-Length: 0\r\n\r\n");
            s.write_all(r.as_bytes())
        }
        Act::SlowBody(secs) => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
            for _ in 0..secs * 10 {
                thread::sleep(Duration::from_millis(100));
                if s.write_all(b".").is_err() {
                    break;
                }
            }
            Ok(())
        }
    };
}
