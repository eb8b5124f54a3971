//! The drain (goals: 50,000 records/s, probe lateness p99 under 50 ms),
//! measured on the real binary: a spool pre-filled with 300,000 typical records is sent by the agent to a
//! loopback HTTP receiver in this process, while the agent keeps probing 1,000
//! TCP checks at 1 s against loopback listeners here.
//!
//! Each run: the receiver answers 503 (Retry-After: 1) for the first 5 s,
//! so the probes' idle timing is seen, then 200. It measures:
//! - the drain rate: backlog records acknowledged per second, from the first
//!   backlog batch to the last (goal: at least 50,000/s);
//! - probe lateness during the drain (goal: p99 under 50 ms) and while idle.
//!   Lateness is measured outside the agent, from the instants the
//!   listeners accept: each check runs on a fixed 1 s grid, so its accepts
//!   keep one phase; a probe's lateness is how far its accept falls behind
//!   that check's median phase while idle.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether::config::SyncPolicy;
use tether::uplink::spool::Spool;

use crate::request;
use crate::spool::rec;
use crate::stats::{median, quantile};

pub const RECORDS: u64 = 300_000;
pub const CHECKS: usize = 1000;
const IDLE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Receiver {
    accepting: AtomicBool,
    /// Backlog records (seq <= RECORDS) received with a 200.
    backlog: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

fn serve(mut s: TcpStream, r: &Receiver) {
    let mut buf = Vec::with_capacity(1 << 20);
    while let Some((_, body)) = request::read_request(&mut s, &mut buf) {
        let now = Instant::now();
        if !r.accepting.load(Ordering::SeqCst) {
            let _ =
                s.write_all(b"HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n");
            continue;
        }
        let backlog = body
            .split(|b| *b == b'\n')
            .filter(|l| seq_of(l).is_some_and(|s| s <= RECORDS))
            .count() as u64;
        if backlog > 0 {
            r.first.lock().unwrap().get_or_insert(now);
            *r.last.lock().unwrap() = Some(now);
            r.backlog.fetch_add(backlog, Ordering::SeqCst);
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
}

/// The `"seq":N` of one NDJSON line.
fn seq_of(line: &[u8]) -> Option<u64> {
    let at = line.windows(6).position(|w| w == b"\"seq\":")? + 6;
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

pub struct Figures {
    pub rate: f64,
    pub idle_p99_ms: f64,
    pub drain_p50_ms: f64,
    pub drain_p99_ms: f64,
    pub drain_max_ms: f64,
    pub samples: usize,
}

pub fn run(bin: &Path, dir: &Path) -> Figures {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::remove_dir_all(dir);
    let state = dir.join("state");
    // The backlog, written as the agent would have.
    let (mut spool, _) = Spool::open(&state.join("spool"), 256 << 20, SyncPolicy::Never).unwrap();
    for b in 0..RECORDS / 1000 {
        let recs: Vec<_> = (b * 1000 + 1..=b * 1000 + 1000).map(rec).collect();
        assert!(spool.append(&recs).error.is_none());
    }
    drop(spool);
    tether::uplink::identity::write(&state, false).unwrap();
    let (mut seq, _) = tether::uplink::identity::Sequence::open(&state, RECORDS, false);
    seq.close().unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "bench\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    let receiver = Arc::new(Receiver::default());
    let rl = TcpListener::bind("127.0.0.1:0").unwrap();
    let raddr = rl.local_addr().unwrap();
    let r = receiver.clone();
    std::thread::spawn(move || {
        for s in rl.incoming().flatten() {
            let r = r.clone();
            std::thread::spawn(move || serve(s, &r));
        }
    });
    let mut config = format!(
        "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\nlisten = \"127.0.0.1:0\"\nlog_level = \"warn\"\nstate_dir = \"{}\"\n\n[upstream]\nurl = \"http://{raddr}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\ntimeout = \"5s\"\n\n[spool]\nmax_bytes = \"256MiB\"\n",
        state.display(),
        token.display()
    );
    let accepts: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    for i in 0..CHECKS {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        config.push_str(&format!(
            "\n[[check]]\nname = \"c{i}\"\nkind = \"tcp\"\ntarget = \"{}\"\n",
            l.local_addr().unwrap()
        ));
        let accepts = accepts.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let at = Instant::now();
                drop(s);
                accepts.lock().unwrap().push((i, at));
            }
        });
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(bin)
        .args(["run", "-c"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(IDLE); // the idle window, the receiver answering 503
    let switch = Instant::now();
    receiver.accepting.store(true, Ordering::SeqCst);
    let deadline = switch + Duration::from_secs(120);
    while receiver.backlog.load(Ordering::SeqCst) < RECORDS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let first = receiver.first.lock().unwrap().expect("the drain started");
    let last = receiver.last.lock().unwrap().expect("the drain ended");
    let got = receiver.backlog.load(Ordering::SeqCst);
    assert!(got >= RECORDS, "only {got} of {RECORDS} records drained");
    let rate = RECORDS as f64 / last.duration_since(first).as_secs_f64();

    // Lateness from the accept instants: phase on the 1 s grid per check.
    let accepts = accepts.lock().unwrap().clone();
    let t0 = accepts.iter().map(|a| a.1).min().unwrap();
    let phase = |at: Instant| at.duration_since(t0).as_secs_f64().rem_euclid(1.0);
    let (mut idle, mut drain) = (Vec::new(), Vec::new());
    for c in 0..CHECKS {
        let mine: Vec<Instant> = accepts.iter().filter(|a| a.0 == c).map(|a| a.1).collect();
        // Phases wrapped around the first one, so none straddles 0/1 s.
        let p0 = phase(mine[0]);
        let wrapped = |at: Instant| (phase(at) - p0 + 0.5).rem_euclid(1.0) - 0.5;
        let idle_phases: Vec<f64> = mine
            .iter()
            .filter(|a| **a > t0 + Duration::from_secs(2) && **a < switch)
            .map(|a| wrapped(*a))
            .collect();
        let reference = median(idle_phases.clone());
        idle.extend(idle_phases.iter().map(|p| (p - reference) * 1000.0));
        drain.extend(
            mine.iter()
                .filter(|a| **a >= first && **a <= last)
                .map(|a| (wrapped(*a) - reference) * 1000.0),
        );
    }
    let samples = drain.len();
    if drain.is_empty() {
        drain.push(0.0);
    }
    Figures {
        rate,
        idle_p99_ms: quantile(&mut idle, 0.99),
        drain_p50_ms: quantile(&mut drain, 0.5),
        drain_p99_ms: quantile(&mut drain, 0.99),
        drain_max_ms: quantile(&mut drain, 1.0),
        samples,
    }
}
