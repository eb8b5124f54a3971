//! Loopback fakes and helpers shared by the integration tests. Every fake
//! binds 127.0.0.1 (or ::1) on an ephemeral port; nothing else is a target.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub mod browser;
pub mod debian_root;
pub mod otlp;
pub mod pki;
pub mod proxy;
pub mod request;
pub mod rw;
pub mod shipped;
pub mod store;
pub mod upstream;

/// Polls `cond` until it holds (`true`) or `limit` passes (`false`).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `cond` until it holds or `limit` passes; panics with `what` on timeout.
pub fn wait_for<T>(what: &str, limit: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {limit:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// [`wait_for`] that gives `None` at the limit, for a caller that says
/// more than "timed out" when it fails.
pub fn wait_for_opt<T>(limit: Duration, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One check from a `[[check]]` body (name "t", interval 10 s).
pub fn check(body: &str) -> tether::config::Check {
    let text = format!("[[check]]\nname = \"t\"\ninterval = \"10s\"\n{body}\n");
    tether::config::parse(&text, "test")
        .unwrap_or_else(|e| panic!("{e}"))
        .checks
        .remove(0)
        .as_ref()
        .clone()
}

/// A resolver that knows only `hosts` (an /etc/hosts text) and no nameserver.
pub fn hosts_resolver(hosts: &str) -> tether::net::resolve::Resolver {
    let conf = tether::net::resolve::conf::ResolvConf {
        nameservers: vec![],
        search: vec![],
        ndots: 1,
        timeout: Duration::from_millis(200),
        attempts: 1,
    };
    tether::net::resolve::Resolver::fixed(tether::net::resolve::hosts::Hosts::parse(hosts), conf)
}

/// Runs `c` once through the scheduler's `run_check`, deadline included.
pub fn run(
    c: &tether::config::Check,
    r: &tether::net::resolve::Resolver,
) -> tether::outcome::Outcome {
    // Filesystem checks run their calls in helpers: the agent's binary,
    // not this test's.
    tether::os::fs_helper::set_program(env!("CARGO_BIN_EXE_tether").into());
    async_io::block_on(tether::agent::scheduler::run_check(
        c,
        r,
        &tether::agent::limit::Limit::new(8),
        Instant::now(),
    ))
}

pub fn assert_reason(o: &tether::outcome::Outcome, reason: tether::outcome::Reason) {
    assert_eq!(o.reason, Some(reason), "{o:?}");
    assert_eq!(o.status, tether::outcome::Status::Crit, "{o:?}");
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "tether-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port with a listener that never accepts: connects complete in the kernel.
pub fn open_port() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A port nothing listens on (bound, then closed).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A listener whose accept queue is full: further SYNs are dropped, so a
/// connect hangs until its deadline, like a black-holed host.
pub struct FullBacklog {
    pub addr: SocketAddr,
    pub listener: socket2::Socket,
    _fillers: Vec<socket2::Socket>,
}

impl FullBacklog {
    /// Makes room in the accept queue: the next SYN is answered.
    pub fn accept_one(&self) {
        self.listener.accept().unwrap();
    }
}

/// Whether some socket is in SYN_SENT towards `addr` (an IPv4 loopback address).
pub fn syn_sent_to(addr: SocketAddr) -> bool {
    let port = format!(":{:04X}", addr.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[2].ends_with(&port) && f[3] == "02"
        })
}

pub fn full_backlog() -> FullBacklog {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    l.listen(0).unwrap();
    let addr: SocketAddr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    // Fill the queue until a connect no longer completes within 200 ms.
    for _ in 0..16 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        match s.connect_timeout(&addr.into(), Duration::from_millis(200)) {
            Ok(()) => fillers.push(s),
            Err(_) => {
                return FullBacklog {
                    addr,
                    listener: l,
                    _fillers: fillers,
                }
            }
        }
    }
    panic!("could not fill the accept queue of {addr}");
}

/// Accepts, sends `banner` at once (like an SSH or SMTP server), and closes.
pub fn banner_server(banner: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let _ = s.write_all(banner);
        }
    });
    a
}

/// Accepts connections and never answers (holds them open until dropped).
pub fn silent_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    a
}

/// What the fake HTTP server sends for each request.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    pub chunked: bool,
}

pub fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.as_bytes().to_vec(),
        delay: Duration::ZERO,
        chunked: false,
    }
}

/// An HTTP/1.1 server on loopback answering by path; unknown paths get 404.
/// Requests' heads are sent on the returned channel.
pub fn http_server(routes: Vec<(&str, Reply)>) -> (SocketAddr, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    let routes: Vec<(String, Reply)> = routes
        .into_iter()
        .map(|(p, r)| (p.to_string(), r))
        .collect();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let routes = routes.clone();
            let tx = tx.clone();
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match s.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let _ = tx.send(head.clone());
                let r = routes
                    .iter()
                    .find(|(p, _)| *p == path)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| reply(404, "nope"));
                thread::sleep(r.delay);
                let mut out = format!("HTTP/1.1 {} X\r\n", r.status);
                for (k, v) in &r.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                let mut bytes;
                if r.chunked {
                    out.push_str("Transfer-Encoding: chunked\r\n\r\n");
                    bytes = out.into_bytes();
                    for c in r.body.chunks(7) {
                        bytes.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        bytes.extend_from_slice(c);
                        bytes.extend_from_slice(b"\r\n");
                    }
                    bytes.extend_from_slice(b"0\r\n\r\n");
                } else {
                    out.push_str(&format!("Content-Length: {}\r\n\r\n", r.body.len()));
                    bytes = out.into_bytes();
                    if !head.starts_with("HEAD") {
                        bytes.extend_from_slice(&r.body);
                    }
                }
                let _ = s.write_all(&bytes);
            });
        }
    });
    (a, rx)
}

/// How the fake nameserver answers.
#[derive(Clone, Copy, PartialEq)]
pub enum Dns {
    /// A and AAAA answers from the given lists.
    Answer,
    NxDomain,
    ServFail,
    /// Never answers.
    Silence,
    /// Answers over UDP with TC set and no records; the full answer over TCP.
    Truncated,
    /// Answers names ending in this suffix; NXDOMAIN for any other.
    Only(&'static str),
}

/// A fake DNS server on one loopback port (UDP and TCP). Answers `a`/`aaaa`
/// for any name. Returns its address and a counter of TCP queries served.
pub fn dns_server(
    mode: Dns,
    a: Vec<[u8; 4]>,
    aaaa: Vec<[u8; 16]>,
) -> (SocketAddr, std::sync::Arc<AtomicU64>) {
    // One port number for both protocols: take a free TCP port, then the same
    // UDP port; another test may hold either, so retry with a new pair.
    let (udp, tcp, addr) = (0..100)
        .find_map(|_| {
            let tcp = TcpListener::bind("127.0.0.1:0").ok()?;
            let addr = tcp.local_addr().ok()?;
            let udp = UdpSocket::bind(addr).ok()?;
            Some((udp, tcp, addr))
        })
        .expect("no port free for both UDP and TCP");
    let tcp_count = std::sync::Arc::new(AtomicU64::new(0));
    let (a2, aaaa2) = (a.clone(), aaaa.clone());
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            if mode == Dns::Silence {
                continue;
            }
            let udp_mode = if mode == Dns::Truncated {
                Dns::Truncated
            } else {
                mode
            };
            if let Some(r) = dns_answer(&buf[..n], udp_mode, &a, &aaaa) {
                let _ = udp.send_to(&r, peer);
            }
        }
    });
    let count = tcp_count.clone();
    thread::spawn(move || {
        for mut s in tcp.incoming().flatten() {
            count.fetch_add(1, Ordering::Relaxed);
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if s.read_exact(&mut q).is_err() {
                continue;
            }
            if let Some(r) = dns_answer(&q, Dns::Answer, &a2, &aaaa2) {
                let mut out = (r.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&r);
                let _ = s.write_all(&out);
            }
        }
    });
    (addr, tcp_count)
}

fn dns_answer(q: &[u8], mode: Dns, a: &[[u8; 4]], aaaa: &[[u8; 16]]) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // End of the question: name, then type and class.
    let mut i = 12;
    while i < q.len() && q[i] != 0 {
        i += 1 + q[i] as usize;
    }
    let qend = i + 5;
    if qend > q.len() {
        return None;
    }
    let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
    let mut qname = String::new();
    let mut j = 12;
    while j < i {
        let l = q[j] as usize;
        qname.push_str(&String::from_utf8_lossy(
            &q[j + 1..(j + 1 + l).min(q.len())],
        ));
        qname.push('.');
        j += 1 + l;
    }
    let mode = match mode {
        Dns::Only(suffix) if qname.trim_end_matches('.').ends_with(suffix) => Dns::Answer,
        Dns::Only(_) => Dns::NxDomain,
        m => m,
    };
    let mut r = q[..qend].to_vec();
    r[2] = 0x81; // QR, RD
    r[3] = 0x80; // RA
    r[6] = 0;
    r[7] = 0;
    match mode {
        Dns::NxDomain => r[3] |= 3,
        Dns::ServFail => r[3] |= 2,
        Dns::Truncated => r[2] |= 0x02,
        Dns::Answer => {
            let mut count = 0u8;
            let mut add = |rtype: u16, data: &[u8]| {
                r.extend_from_slice(&[0xC0, 12]);
                r.extend_from_slice(&rtype.to_be_bytes());
                r.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
                r.extend_from_slice(&(data.len() as u16).to_be_bytes());
                r.extend_from_slice(data);
                count += 1;
            };
            if qtype == 1 {
                a.iter().for_each(|x| add(1, x));
            } else if qtype == 28 {
                aaaa.iter().for_each(|x| add(28, x));
            }
            r[7] = count;
        }
        Dns::Silence | Dns::Only(_) => return None,
    }
    Some(r)
}

/// A running `tether run` child process with its endpoint address.
pub struct Agent {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub log: mpsc::Receiver<String>,
}

impl Agent {
    /// Writes `config` (with `listen = "127.0.0.1:0"` and a private state
    /// dir added to `[agent]`) and starts the binary on it.
    pub fn start(tag: &str, config_body: &str) -> Agent {
        Agent::start_in(temp_dir(tag), config_body)
    }

    /// [`Agent::start`] in an existing directory (a restart keeps its state).
    pub fn start_in(dir: PathBuf, config_body: &str) -> Agent {
        Agent::start_with(dir, config_body, |config| {
            let mut cmd = tether_command();
            cmd.args(["run", "-c"]).arg(config);
            cmd
        })
    }

    /// [`Agent::start_in`] with the command made by `command` from the
    /// config path (extra environment, a wrapper).
    pub fn start_with(
        dir: PathBuf,
        config_body: &str,
        command: impl FnOnce(&std::path::Path) -> Command,
    ) -> Agent {
        let config = dir.join("tether.toml");
        std::fs::write(&config, with_agent_defaults(config_body, &dir)).unwrap();
        let mut child = command(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = wait_for("the agent's start line", Duration::from_secs(10), || {
            let line = rx.recv_timeout(Duration::from_millis(100)).ok()?;
            let a = line.split("local endpoint on ").nth(1)?;
            // The end of a text line, or of a JSON line's message.
            a.split('"').next()?.trim().parse::<SocketAddr>().ok()
        });
        Agent {
            child,
            addr,
            dir,
            config,
            log: rx,
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {sig} failed");
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> String {
        wait_for(&format!("log line containing {needle:?}"), limit, || {
            self.log
                .recv_timeout(Duration::from_millis(50))
                .ok()
                .filter(|l| l.contains(needle))
        })
    }

    /// Sends `sig` and waits (bounded) for the exit.
    pub fn stop(&mut self, sig: &str) -> std::process::ExitStatus {
        self.signal(sig);
        wait_for("the agent to exit", Duration::from_secs(10), || {
            self.child.try_wait().unwrap()
        })
    }

    /// Ends this handle but keeps its directory (for a restart).
    pub fn into_dir(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.dir)
    }

    /// A copy of the configuration with the real `listen` address, so a
    /// command (`tether status`, `doctor`, `bundle`) finds this agent.
    pub fn cli_config(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let p = self.dir.join("cli.toml");
        let listen = format!("listen = \"{}\"", self.addr);
        std::fs::write(&p, text.replace("listen = \"127.0.0.1:0\"", &listen)).unwrap();
        p
    }

    pub fn threads(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The agent's children: (pid, state letter from /proc/PID/stat).
pub fn children(pid: u32) -> Vec<(u32, char)> {
    let list =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    list.split_whitespace()
        .filter_map(|c| {
            let stat = std::fs::read_to_string(format!("/proc/{c}/stat")).ok()?;
            let state = stat.rsplit_once(") ")?.1.chars().next()?;
            Some((c.parse().ok()?, state))
        })
        .collect()
}

/// The binary under test: this build's, or `TETHER_TEST_BIN` run through
/// `TETHER_TEST_RUNNER` when set (an ARM build under `qemu-aarch64-static`:
/// docs/operations.md, "Every target").
pub fn tether_command() -> Command {
    let bin =
        std::env::var_os("TETHER_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_tether").into());
    match std::env::var_os("TETHER_TEST_RUNNER").filter(|r| !r.is_empty()) {
        Some(runner) => {
            let mut c = Command::new(runner);
            c.arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// The target triple of the binary under test: `TETHER_TEST_TARGET` with a
/// foreign `TETHER_TEST_BIN`, else the one the tests were built for.
pub fn test_target() -> String {
    std::env::var("TETHER_TEST_TARGET").unwrap_or_else(|_| env!("TETHER_TARGET").to_string())
}

/// `promtool check metrics` on an exposition: the test fails with what
/// promtool said.
pub fn promtool_check_metrics(metrics: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed: .ci/run installs it");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tether -c CONFIG ARGS...`, waited for.
pub fn tether_cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    tether_command()
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// The host's name: the agent's default `name`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Puts `listen` and `state_dir` into the `[agent]` table (adding one if needed).
pub fn with_agent_defaults(body: &str, dir: &std::path::Path) -> String {
    let extra = format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n",
        dir.join("state").display()
    );
    if body.contains("[agent]") {
        body.replacen("[agent]\n", &format!("[agent]\n{extra}"), 1)
    } else {
        format!("[agent]\n{extra}\n{body}")
    }
}

/// A blocking GET with a 5 s bound; returns status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let raw = http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    parse_response(&raw)
}

pub fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

pub fn parse_response(raw: &str) -> (u16, String) {
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("\r\ntransfer-encoding: chunked");
    let body = if chunked {
        dechunk(body).unwrap_or_else(|| panic!("a chunked body cut short or malformed:\n{raw}"))
    } else {
        body.to_string()
    };
    (status, body)
}

/// A chunked body's content; `None` if it lacks its final empty chunk.
pub fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let n = usize::from_str_radix(size.trim(), 16).ok()?;
        if n == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..n)?);
        body = rest.get(n..)?.strip_prefix("\r\n")?;
    }
}

/// Extracts `"key":"value"` for the check named `check` from /status JSON
/// (enough for assertions without a JSON parser).
pub fn check_field(status_json: &str, check: &str, key: &str) -> Option<String> {
    let start = status_json.find(&format!("\"name\":\"{check}\""))?;
    let rest = &status_json[start..];
    let end = rest[1..].find("{\"name\":").map_or(rest.len(), |e| e + 1);
    let obj = &rest[..end];
    let at = obj.find(&format!("\"{key}\":"))? + key.len() + 3;
    let v = &obj[at..];
    Some(if let Some(s) = v.strip_prefix('"') {
        s[..s.find('"')?].to_string()
    } else {
        v[..v.find([',', '}'])?].to_string()
    })
}
