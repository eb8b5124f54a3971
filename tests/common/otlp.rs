//! The OTLP test receiver (`tests/otlp_receiver.py`, the official
//! `opentelemetry-proto` classes) as a child process: what it received,
//! its request log, faults on command, and an outage (stopped, then
//! started again on the same port, what it had received kept).

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The receiver, stopped on drop.
pub struct Receiver {
    child: Option<Child>,
    pub addr: SocketAddr,
    /// What earlier runs (before a [`Receiver::stop`]) received.
    kept: RefCell<Vec<Value>>,
}

fn spawn(port: u16) -> (Child, u16) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/otel-venv/bin/python");
    assert!(
        python.exists(),
        "no {} (bash .ci/run makes it: python3 -m venv target/otel-venv && target/otel-venv/bin/pip install opentelemetry-proto)",
        python.display()
    );
    let mut child = Command::new(python)
        .arg(root.join("tests/otlp_receiver.py"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .strip_prefix("port ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the receiver said {line:?}"));
    (child, port)
}

impl Receiver {
    pub fn start() -> Receiver {
        let (child, port) = spawn(0);
        Receiver {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            kept: RefCell::default(),
        }
    }

    /// `http://127.0.0.1:PORT/v1/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/v1/metrics", self.addr)
    }

    /// Stops it (connections are refused) after keeping what it received:
    /// frozen first, so no request is stored (and answered) after what is
    /// kept was read.
    pub fn stop(&mut self) {
        let (code, _) = self.request("POST", "/freeze", "text/plain", b"");
        assert_eq!(code, 200);
        let got = self.received();
        *self.kept.borrow_mut() = got;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "running");
        let (child, _) = spawn(self.addr.port());
        self.child = Some(child);
    }

    /// One request; the status and body of the answer.
    pub fn request(&self, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let status = String::from_utf8_lossy(&raw[9..12]).parse().unwrap();
        (status, raw[end..].to_vec())
    }

    fn lines(&self, path: &str) -> Vec<Value> {
        let (_, body) = self.request("GET", path, "text/plain", b"");
        String::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every point received, by this run and the ones before a stop.
    pub fn received(&self) -> Vec<Value> {
        let mut all = self.kept.borrow().clone();
        if self.child.is_some() {
            all.extend(self.lines("/received"));
        }
        all
    }

    /// This run's requests: `at` (seconds), `status`, `points`, `encoding`.
    pub fn log(&self) -> Vec<Value> {
        self.lines("/log")
    }

    pub fn malformed(&self) -> u64 {
        let (_, body) = self.request("GET", "/malformed", "text/plain", b"");
        String::from_utf8(body).unwrap().parse().unwrap()
    }

    /// The next `count` answers: `status` (with `Retry-After` and a
    /// message), or a 200 naming `rejected` points.
    pub fn fault(&self, json: &str) {
        let (code, _) = self.request("POST", "/fault", "application/json", json.as_bytes());
        assert_eq!(code, 200);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
