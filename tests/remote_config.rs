//! Checks from the control plane, with the real binary against a fake
//! control plane on loopback that serves `/v1/config` (with ETags and 304)
//! and takes reports: a document applied without a restart while checks
//! keep their state, a refused one (the running one stays, the refusal
//! reaches the control plane with its lines), 304, a clash with a local
//! check, the cached document at a start with the control plane silent, a
//! damaged cache, and the exec refusal.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::upstream::{field, token_file};
use common::{check_field, wait_for, Agent};

/// The control plane: serves `doc` as revision `rev` (304 when asked with
/// it), acknowledges reports, and passes every request on.
struct ControlPlane {
    addr: SocketAddr,
    doc: Arc<Mutex<(String, String)>>,
    requests: mpsc::Receiver<(String, String)>,
}

impl ControlPlane {
    fn start(rev: &str, doc: &str) -> ControlPlane {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let served = Arc::new(Mutex::new((rev.to_string(), doc.to_string())));
        let (tx, rx) = mpsc::channel();
        let d = served.clone();
        thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (d, tx) = (d.clone(), tx.clone());
                thread::spawn(move || serve(s, &d, &tx));
            }
        });
        ControlPlane {
            addr,
            doc: served,
            requests: rx,
        }
    }

    fn serve_doc(&self, rev: &str, doc: &str) {
        *self.doc.lock().unwrap() = (rev.to_string(), doc.to_string());
    }

    /// Waits for a report line containing `needle`, passing over the rest.
    fn report(&self, needle: &str) -> String {
        wait_for(
            &format!("a report with {needle}"),
            Duration::from_secs(20),
            || {
                let (head, body) = self
                    .requests
                    .recv_timeout(Duration::from_millis(200))
                    .ok()?;
                if !head.starts_with("POST") {
                    return None;
                }
                body.lines()
                    .find(|l| l.contains(needle))
                    .map(str::to_string)
            },
        )
    }

    /// Waits for a GET of the configuration; returns its head.
    fn config_get(&self) -> String {
        wait_for("a GET /v1/config", Duration::from_secs(20), || {
            let (head, _) = self
                .requests
                .recv_timeout(Duration::from_millis(200))
                .ok()?;
            head.starts_with("GET /v1/config").then_some(head)
        })
    }
}

fn serve(
    mut s: std::net::TcpStream,
    doc: &Mutex<(String, String)>,
    tx: &mpsc::Sender<(String, String)>,
) {
    let mut buf = Vec::new();
    while let Some((head, body)) = common::request::read_request(&mut s, &mut buf) {
        let body = String::from_utf8_lossy(&body).to_string();
        let reply = if head.starts_with("GET /v1/config") {
            let (rev, text) = doc.lock().unwrap().clone();
            let asked = head
                .lines()
                .find_map(|l| l.strip_prefix("If-None-Match: "))
                .map(|v| v.trim().trim_matches('"').to_string());
            if asked.as_deref() == Some(rev.as_str()) {
                format!("HTTP/1.1 304 Not Modified\r\nETag: \"{rev}\"\r\nContent-Length: 0\r\n\r\n")
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nETag: \"{rev}\"\r\nContent-Type: application/toml\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                )
            }
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        let _ = tx.send((head, body));
        if s.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn config(cp: SocketAddr, local: &str) -> String {
    let (l, open) = common::open_port();
    std::mem::forget(l);
    format!(
        "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\n{local}\n\n[upstream]\nurl = \"http://{cp}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\nflush_interval = \"500ms\"\nremote_config = true\nconfig_poll = \"10s\"\n\n[[check]]\nname = \"local\"\nkind = \"tcp\"\ntarget = \"{open}\"\n",
        token_file("t0ken").display()
    )
}

fn tcp_check(name: &str) -> String {
    let (l, open) = common::open_port();
    std::mem::forget(l);
    format!("[[check]]\nname = \"{name}\"\nkind = \"tcp\"\ntarget = \"{open}\"\n\n")
}

fn runs(a: &Agent, check: &str) -> u64 {
    check_field(&a.get("/status").1, check, "runs")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn wait_check(a: &Agent, name: &str) {
    wait_for(
        &format!("check {name} running"),
        Duration::from_secs(20),
        || (runs(a, name) > 0).then_some(()),
    );
}

#[test]
fn a_document_is_applied_without_a_restart_and_checks_keep_their_state() {
    let cp = ControlPlane::start("r1", &tcp_check("remote-a"));
    let a = Agent::start("remote-apply", &config(cp.addr, ""));
    wait_check(&a, "remote-a");
    let line = cp.report(r#""type":"config""#);
    assert_eq!(field(&line, "revision"), "r1", "{line}");
    assert_eq!(field(&line, "status"), "applied", "{line}");
    // Heartbeats, /status and /metrics say what runs.
    cp.report(r#""config_revision":"r1""#);
    let (_, s) = a.get("/status");
    assert!(s.contains(r#""config":{"revision":"r1","hash":""#), "{s}");
    let (_, m) = a.get("/metrics");
    assert!(m.contains("revision=\"r1\"} 1"), "{m}");
    // Where each check came from.
    let out = common::tether_cli(&a.cli_config(), &["status"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("config: remote revision r1"));

    // A new revision: asked with If-None-Match, applied at once after a
    // reload; the checks that did not change keep their counters.
    let before = (runs(&a, "local"), runs(&a, "remote-a"));
    let doc = cp.doc.lock().unwrap().1.clone();
    cp.serve_doc("r2", &format!("{doc}{}", tcp_check("remote-b")));
    a.signal("HUP");
    let head = cp.config_get();
    assert!(head.contains("If-None-Match: \"r1\""), "{head}");
    wait_check(&a, "remote-b");
    assert!(runs(&a, "local") >= before.0 && runs(&a, "remote-a") >= before.1);
    let line = cp.report(r#""revision":"r2""#);
    assert_eq!(field(&line, "status"), "applied", "{line}");
    // Unchanged: 304, nothing applied or reported again.
    a.signal("HUP");
    let head = cp.config_get();
    assert!(head.contains("If-None-Match: \"r2\""), "{head}");
    // Two heartbeats later (a config record is urgent: it would be in the
    // first upload after the answer), no config record came.
    let mut heartbeats = 0;
    wait_for("two heartbeats", Duration::from_secs(20), || {
        let (_, body) = cp.requests.recv_timeout(Duration::from_millis(200)).ok()?;
        assert!(!body.contains(r#""type":"config""#), "{body}");
        heartbeats += usize::from(body.contains(r#""type":"heartbeat""#));
        (heartbeats >= 2).then_some(())
    });
}

#[test]
fn a_refused_document_keeps_the_running_one_and_its_errors_go_upstream() {
    let cp = ControlPlane::start("r1", &tcp_check("remote-a"));
    let a = Agent::start("remote-refuse", &config(cp.addr, ""));
    wait_check(&a, "remote-a");
    cp.serve_doc(
        "r2",
        &format!(
            "{}[upstream]\nurl = \"https://evil.example/\"\n",
            tcp_check("remote-b")
        ),
    );
    a.signal("HUP");
    let line = cp.report(r#""status":"rejected""#);
    assert_eq!(field(&line, "revision"), "r2", "{line}");
    assert!(
        line.contains("remote r2:6: a remote configuration may not set `upstream`"),
        "{line}"
    );
    let (_, s) = a.get("/status");
    assert!(check_field(&s, "remote-a", "runs").is_some(), "{s}");
    assert!(check_field(&s, "remote-b", "runs").is_none(), "{s}");
    assert!(s.contains(r#""rejected_revision":"r2""#), "{s}");
    // An exec check without remote_exec: refused, said why.
    cp.serve_doc(
        "r3",
        "[[check]]\nname = \"x\"\nkind = \"exec\"\ncommand = [\"/bin/true\"]\n",
    );
    a.signal("HUP");
    let line = cp.report(r#""revision":"r3""#);
    assert!(
        line.contains("exec checks from the control plane are refused"),
        "{line}"
    );
}

#[test]
fn a_local_check_wins_a_clash_and_the_clash_is_reported() {
    let cp = ControlPlane::start("r1", &(tcp_check("local") + &tcp_check("other")));
    let a = Agent::start("remote-clash", &config(cp.addr, ""));
    wait_check(&a, "other");
    let line = cp.report(r#""type":"config""#);
    assert!(
        line.contains(r#"remote r1:1: check \"local\" is defined locally"#),
        "{line}"
    );
    let (_, s) = a.get("/status");
    assert!(s.contains("is defined locally"), "{s}");
}

#[test]
fn a_start_runs_the_cached_document_while_the_control_plane_is_silent() {
    let cp = ControlPlane::start("r1", &tcp_check("remote-a"));
    let a = Agent::start("remote-cache", &config(cp.addr, ""));
    wait_check(&a, "remote-a");
    let dir = a.into_dir();
    let cache = dir.join("state/remote.toml");
    assert!(std::fs::read_to_string(&cache)
        .unwrap()
        .starts_with("tether-remote-config 1\nrevision=r1\n"));
    // `config effective` shows where each check came from, remote ones too.
    let out = common::tether_cli(&dir.join("tether.toml"), &["config", "effective"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("# from remote r1:1\n[[check]]\nname = \"remote-a\""),
        "{text}"
    );
    // The control plane black-holed: accepted, never answered.
    let silent = common::silent_server();
    let b = Agent::start_in(dir.clone(), &config(silent, ""));
    wait_check(&b, "remote-a");
    let dir = b.into_dir();
    // Turned off locally: the kept document does not run.
    let off = config(silent, "").replace("remote_config = true", "remote_config = false");
    let b = Agent::start_in(dir.clone(), &off);
    wait_check(&b, "local");
    assert!(check_field(&b.get("/status").1, "remote-a", "runs").is_none());
    let dir = b.into_dir();
    // A damaged cache: said, ignored, the local checks run.
    let text = std::fs::read_to_string(&cache).unwrap();
    std::fs::write(&cache, text.replace("remote-a", "remote-z")).unwrap();
    let c = Agent::start_in(dir, &config(silent, ""));
    c.wait_log("remote.toml is damaged", Duration::from_secs(10));
    wait_check(&c, "local");
    assert!(check_field(&c.get("/status").1, "remote-z", "runs").is_none());
}
