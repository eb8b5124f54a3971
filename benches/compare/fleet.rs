//! The fleet: N real agents (10 TCP checks each at 5 s against loopback
//! listeners here) pushing with `[remote_write]` into one VictoriaMetrics
//! single-node on loopback, directly or through `vmagent` (its own disk
//! buffer); the store is stopped for 60 s and restored.
//!
//! Ground truth is outside the agents: the listeners count every probe they
//! accept. At the end the agents are stopped (SIGTERM: the ring goes to the
//! spool) and started again without checks, so they drain what they hold;
//! then every accepted probe must be one `tether_check_up` sample in the
//! store. Lost = accepted probes minus stored samples (a probe cut by the
//! SIGTERM, accepted but never finished, counts as lost: at most one per
//! check, and none was seen).
//!
//! Also here: the encoding cost of one result (series from the stored
//! record, protobuf, snappy), in this process, and the RSS of one agent
//! with 100 checks and both destinations.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::request;
use crate::sys::{self, Cpu};
use crate::targets::Targets;

/// The store's outage: `FLEET_OUTAGE` seconds, default 60.
pub fn outage() -> Duration {
    Duration::from_secs(crate::env_number("FLEET_OUTAGE", 60))
}
const WARM: Duration = Duration::from_secs(30);
const CHECKS: usize = 10;

/// One scenario's figures.
pub struct Figures {
    pub agents: usize,
    /// Rows the store inserted per second while everything ran.
    pub ingest_per_s: f64,
    /// From the store's restart until every agent (and vmagent) had sent
    /// its backlog.
    pub restore_s: f64,
    pub accepted: u64,
    pub stored: u64,
    /// Samples the store holds twice (same series, same timestamp).
    pub duplicates: u64,
    /// The agents' CPU (all of them), µs per sample they sent.
    pub agent_cpu_us_per_sample: f64,
    /// The agents' summed RSS at the end of the outage, KiB.
    pub agents_rss_kib: u64,
    pub samples_sent: u64,
    /// vmagent's CPU per sample relayed, and its RSS at the end of the
    /// outage (KiB).
    pub vmagent_cpu_us_per_sample: Option<f64>,
    pub vmagent_rss_kib: Option<u64>,
    /// Direct only: remote-write requests, and TCP probes, each agent sent
    /// per 5 s against the stopped store.
    pub outage_requests_per_5s: Option<f64>,
    pub outage_probes_per_5s: Option<f64>,
    /// The store's own cost in the steady window: CPU µs per row it
    /// inserted, and its peak RSS (KiB) and data on disk (bytes per row)
    /// at the end.
    pub store_cpu_us_per_row: f64,
    pub store_hwm_kib: u64,
    pub store_disk_bytes_per_row: f64,
    pub store_rows: u64,
    pub store_series: u64,
}

struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn term(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET over HTTP/1.0 (the Go servers answer without chunks and close).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string(),
    ))
}

fn metric(body: &str, name: &str) -> f64 {
    crate::http::metric_sum(body, name)
}

/// Spawns `cmd` quietly and waits until `/health` on `addr` answers 200.
fn start_go(mut cmd: Command, addr: SocketAddr, what: &str) -> Proc {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} (apt-get install victoria-metrics): {e}"));
    sys::wait_for(Duration::from_secs(30), Duration::from_millis(100), || {
        (get(addr, "/health")?.0 == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("{what} did not start"));
    Proc { child }
}

fn start_store(dir: &Path, addr: SocketAddr) -> Proc {
    let mut c = Command::new("victoria-metrics");
    c.arg(format!("-httpListenAddr={addr}"))
        .arg(format!("-storageDataPath={}", dir.join("vm").display()))
        .arg("-retentionPeriod=100y")
        .arg("-search.latencyOffset=0s");
    start_go(c, addr, "victoria-metrics")
}

fn start_vmagent(dir: &Path, addr: SocketAddr, store: SocketAddr) -> Proc {
    let mut c = Command::new("vmagent");
    c.arg(format!("-httpListenAddr={addr}"))
        .arg(format!("-remoteWrite.url=http://{store}/api/v1/write"))
        .arg(format!(
            "-remoteWrite.tmpDataPath={}",
            dir.join("vmagent").display()
        ));
    start_go(c, addr, "vmagent")
}

fn agent_config(
    dir: &Path,
    listen: SocketAddr,
    write_url: &str,
    targets: Option<&Targets>,
) -> String {
    let mut c = format!(
        "[agent]\nname = \"{}\"\nlisten = \"{listen}\"\nlog_level = \"warn\"\nstate_dir = \"{}\"\n\n\
         [remote_write]\nurl = \"{write_url}\"\nallow_plaintext = true\nlabels = {{ group = \"bench\" }}\n",
        dir.file_name().unwrap().to_string_lossy(),
        dir.join("state").display()
    );
    if let Some(t) = targets {
        for (i, a) in t.addrs.iter().enumerate() {
            c.push_str(&format!(
                "\n[[check]]\nname = \"c{i}\"\nkind = \"tcp\"\ntarget = \"{a}\"\ninterval = \"5s\"\ntimeout = \"1s\"\n"
            ));
        }
    }
    c
}

fn start_agent(bin: &Path, dir: &Path, config: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("tether.toml");
    std::fs::write(&path, config).unwrap();
    // `TETHER_WRAP="heaptrack -o /tmp/ht"` (or valgrind, perf record)
    // runs each agent under that tool: where the RSS figures come from.
    let mut cmd = match std::env::var("TETHER_WRAP") {
        Ok(w) => {
            let mut parts = w.split_whitespace();
            let mut c = Command::new(parts.next().unwrap());
            c.args(parts).arg(bin);
            c
        }
        Err(_) => Command::new(bin),
    };
    let child = cmd
        .args(["run", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Proc { child }
}

/// Every agent has sent everything older than two flush intervals (and it
/// answers): its backlog is what came since.
fn drained(listens: &[SocketAddr]) -> bool {
    listens.iter().all(|a| {
        get(*a, "/metrics").is_some_and(|(_, m)| {
            metric(&m, "tether_remote_write_oldest_unsent_age_seconds ") < 10.0
                && metric(&m, "tether_remote_write_backlog_records ") < 50.0
        })
    })
}

pub fn run(bin: &Path, work: &Path, agents: usize, via_vmagent: bool) -> Figures {
    let dir = work.join(format!(
        "fleet-{agents}-{}",
        if via_vmagent { "vmagent" } else { "direct" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let targets = Targets::tcp(CHECKS);
    let store_addr = sys::free_port();
    let mut store = start_store(&dir, store_addr);
    let relay_addr = sys::free_port();
    let mut relay = via_vmagent.then(|| start_vmagent(&dir, relay_addr, store_addr));
    let write_url = if via_vmagent {
        format!("http://{relay_addr}/api/v1/write")
    } else {
        format!("http://{store_addr}/api/v1/write")
    };
    let dirs: Vec<PathBuf> = (0..agents)
        .map(|i| dir.join(format!("agent{i:03}")))
        .collect();
    let listens: Vec<SocketAddr> = (0..agents).map(|_| sys::free_port()).collect();
    let mut procs: Vec<Proc> = dirs
        .iter()
        .zip(&listens)
        .map(|(d, l)| start_agent(bin, d, &agent_config(d, *l, &write_url, Some(&targets))))
        .collect();
    let cpu0: Vec<Cpu> = procs.iter().map(|p| Cpu::of(p.pid())).collect();
    let relay_cpu0 = relay.as_ref().map(|r| Cpu::of(r.pid()));
    let rows = |addr: SocketAddr| {
        get(addr, "/metrics").map_or(0.0, |(_, m)| metric(&m, "vm_rows_inserted_total{"))
    };
    // Steady state: the store's insert rate, and its CPU per row.
    std::thread::sleep(Duration::from_secs(10));
    let (r0, t0, c0) = (rows(store_addr), Instant::now(), Cpu::of(store.pid()));
    std::thread::sleep(WARM);
    let r1 = rows(store_addr);
    let ingest_per_s = (r1 - r0) / t0.elapsed().as_secs_f64();
    let store_cpu_us_per_row =
        (Cpu::of(store.pid()).sched_ns - c0.sched_ns) as f64 / 1e3 / (r1 - r0).max(1.0);
    // The outage: what the agents send a store that is not there.
    let counts = |name: &str| -> f64 {
        listens
            .iter()
            .filter_map(|a| get(*a, "/metrics"))
            .map(|(_, m)| metric(&m, name))
            .sum()
    };
    store.term();
    let (q0, p0) = (
        counts("tether_remote_write_requests_total "),
        counts("tether_remote_write_probes_total "),
    );
    std::thread::sleep(outage());
    let per_5s = |d: f64| d / agents as f64 / (outage().as_secs_f64() / 5.0);
    let outage_requests_per_5s =
        (!via_vmagent).then(|| per_5s(counts("tether_remote_write_requests_total ") - q0));
    let outage_probes_per_5s =
        (!via_vmagent).then(|| per_5s(counts("tether_remote_write_probes_total ") - p0));
    let agents_rss_kib: u64 = procs
        .iter()
        .map(|p| sys::status_field(p.pid(), "VmRSS"))
        .sum();
    let vmagent_rss_kib = relay.as_ref().map(|r| sys::status_field(r.pid(), "VmRSS"));
    let restored = Instant::now();
    let accepted_then = targets.served();
    store = start_store(&dir, store_addr);
    // Complete: a sample in the store for every probe accepted before the
    // restore.
    sys::wait_for(Duration::from_secs(600), Duration::from_millis(500), || {
        stored_samples(store_addr).filter(|n| *n >= accepted_then)
    });
    let restore_s = restored.elapsed().as_secs_f64();
    let sent: u64 = listens
        .iter()
        .map(|a| {
            get(*a, "/metrics").map_or(0.0, |(_, m)| {
                metric(&m, "tether_remote_write_samples_sent_total ")
            }) as u64
        })
        .sum();
    let cpu_ns: u64 = procs
        .iter()
        .zip(&cpu0)
        .map(|(p, c)| Cpu::of(p.pid()).sched_ns - c.sched_ns)
        .sum();
    let relay_cpu_ns = relay
        .as_ref()
        .zip(relay_cpu0)
        .map(|(r, c)| Cpu::of(r.pid()).sched_ns - c.sched_ns);
    // Stop the probes, then let every agent send what it still holds.
    for p in procs.iter_mut() {
        p.term();
    }
    let accepted = targets.served();
    procs = dirs
        .iter()
        .zip(&listens)
        .map(|(d, l)| start_agent(bin, d, &agent_config(d, *l, &write_url, None)))
        .collect();
    sys::wait_for(Duration::from_secs(300), Duration::from_millis(500), || {
        drained(&listens).then_some(())
    });
    // What the store holds, once it has caught up with its last inserts.
    let stored = sys::wait_for(Duration::from_secs(30), Duration::from_secs(1), || {
        stored_samples(store_addr).filter(|n| *n >= accepted)
    })
    .or_else(|| stored_samples(store_addr))
    .unwrap_or(0);
    for p in procs.iter_mut() {
        p.term();
    }
    if let Some(r) = relay.as_mut() {
        r.term();
    }
    let duplicates = duplicates(store_addr);
    let store_rows = rows_total(store_addr);
    let store_series = query_number(store_addr, "count%28%7B__name__%3D~%22tether_.*%22%7D%29")
        .unwrap_or(0.0) as u64;
    let store_hwm_kib = sys::status_field(store.pid(), "VmHWM");
    store.term();
    let store_disk = du(&dir.join("vm"));
    let _ = std::fs::remove_dir_all(&dir);
    Figures {
        agents,
        ingest_per_s,
        restore_s,
        accepted,
        stored,
        duplicates,
        agent_cpu_us_per_sample: cpu_ns as f64 / 1e3 / sent.max(1) as f64,
        agents_rss_kib,
        samples_sent: sent,
        vmagent_cpu_us_per_sample: relay_cpu_ns.map(|ns| ns as f64 / 1e3 / sent.max(1) as f64),
        vmagent_rss_kib,
        outage_requests_per_5s,
        outage_probes_per_5s,
        store_cpu_us_per_row,
        store_hwm_kib,
        store_disk_bytes_per_row: store_disk as f64 / store_rows.max(1) as f64,
        store_rows,
        store_series,
    }
}

/// `tether_check_up` samples the store holds more than once: its export,
/// one JSON line per series, timestamps counted per series.
fn duplicates(store: SocketAddr) -> u64 {
    let Some((_, body)) = get(store, "/api/v1/export?match%5B%5D=tether_check_up") else {
        return 0;
    };
    body.lines()
        .filter_map(|l| {
            let ts = l.split("\"timestamps\":[").nth(1)?.split(']').next()?;
            let mut v: Vec<&str> = ts.split(',').collect();
            let n = v.len();
            v.sort_unstable();
            v.dedup();
            Some((n - v.len()) as u64)
        })
        .sum()
}

/// Every row the store holds: the count of samples over the last day of
/// every series.
fn rows_total(store: SocketAddr) -> u64 {
    let q = "sum%28count_over_time%28%7B__name__%3D~%22.%2B%22%7D%5B1d%5D%29%29";
    query_number(store, q).unwrap_or(0.0) as u64
}

/// The one value an instant query (URL-encoded) answers.
fn query_number(store: SocketAddr, q: &str) -> Option<f64> {
    let (_, body) = get(store, &format!("/api/v1/query?query={q}"))?;
    body.split("\"value\":[")
        .nth(1)?
        .split('"')
        .nth(1)?
        .parse()
        .ok()
}

/// Bytes of every file under `dir`.
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// `sum(count_over_time(tether_check_up[1d]))` in the store.
fn stored_samples(store: SocketAddr) -> Option<u64> {
    let q = "sum%28count_over_time%28tether_check_up%5B1d%5D%29%29";
    query_number(store, q).map(|v| v as u64)
}

/// The agent's statuses and severities, as the encoders are given them.
const STATUSES: [&str; 6] = [
    "online",
    "degraded",
    "offline",
    "needs_recovery",
    "version_unsupported",
    "disabled",
];
const SEVERITIES: [&str; 3] = ["healthy", "unhealthy", "critical"];

/// 250 stored result records of 100 TCP checks, as the agent spools them.
fn result_bodies() -> Vec<String> {
    (0..250)
        .map(|i| {
            format!(
                "\"time\":\"2026-12-01T10:00:{:02}.{:03}Z\",\"type\":\"result\",\"check\":\"resource-db-{}\",\"kind\":\"tcp\",\"role\":\"resource\",\"status\":\"ok\",\"health\":\"ok\",\"flapping\":false,\"reason\":null,\"message\":\"connected to 10.20.30.40:5432 in 0.4ms\",\"duration_ms\":0.412,\"peer\":\"10.20.30.40:5432\"}}",
                i % 60,
                i % 1000,
                i % 100
            )
        })
        .collect()
}

/// CPU per result of the remote-write encoding, in this process: the
/// series a stored result record stands for, protobuf and snappy, in
/// batches of 250 records (2,000 samples) as the agent sends them. µs:
/// (all, of which reading the record, the protobuf, snappy).
pub fn encode_us_per_result() -> [f64; 4] {
    use tether::uplink::remote_write::series::{Batch, Context};
    use tether::uplink::remote_write::wire;
    let bodies = result_bodies();
    let labels = vec![
        ("group".to_string(), "eu-west".to_string()),
        ("site".into(), "fra1".into()),
    ];
    let ctx = Context {
        agent: "edge-1",
        agent_id: "00112233445566778899aabbccddeeff",
        labels: &labels,
        agent_statuses: &STATUSES,
        severities: &SEVERITIES,
    };
    let rounds = 200;
    let start = Cpu::this_thread_ns();
    let mut bytes = 0;
    for r in 0..rounds {
        let mut b = Batch::default();
        for (i, body) in bodies.iter().enumerate() {
            b.add(body, 1_796_000_000_000 + (r * 250 + i) as u64, &ctx);
        }
        bytes += wire::body(b.series()).len();
    }
    let ns = Cpu::this_thread_ns() - start;
    assert!(bytes > 0);
    let parts = {
        let t = Cpu::this_thread_ns();
        for _ in 0..rounds {
            for body in &bodies {
                std::hint::black_box(tether::format::json_fields::fields(body));
            }
        }
        let parse = Cpu::this_thread_ns() - t;
        let mut b = Batch::default();
        for (i, body) in bodies.iter().enumerate() {
            b.add(body, i as u64, &ctx);
        }
        let t = Cpu::this_thread_ns();
        for _ in 0..rounds {
            std::hint::black_box(wire::write_request(b.series()));
        }
        let pb = Cpu::this_thread_ns() - t;
        let raw = wire::write_request(b.series());
        let t = Cpu::this_thread_ns();
        for _ in 0..rounds {
            std::hint::black_box(snap::raw::Encoder::new().compress_vec(&raw).unwrap());
        }
        let sn = Cpu::this_thread_ns() - t;
        let n = (rounds * 250) as f64 * 1e3;
        [parse as f64 / n, pb as f64 / n, sn as f64 / n]
    };
    [
        ns as f64 / 1e3 / (rounds * 250) as f64,
        parts[0],
        parts[1],
        parts[2],
    ]
}

/// CPU per result of the OTLP encoding, in this process, on the same
/// records and batches as [`encode_us_per_result`]: the points a stored
/// result stands for, the `ExportMetricsServiceRequest` and gzip. µs:
/// (all, of which reading the record into points, the protobuf, gzip).
pub fn otlp_encode_us_per_result() -> [f64; 4] {
    use tether::uplink::otlp::points::{Batch, Context};
    let bodies = result_bodies();
    let ctx = Context {
        agent_statuses: &STATUSES,
        severities: &SEVERITIES,
    };
    let resource: Vec<(String, String)> = [
        ("service.name", "tether"),
        ("service.version", "0.1.0"),
        ("service.instance.id", "00112233445566778899aabbccddeeff"),
        ("tether.agent", "edge-1"),
        ("host.name", "edge-1.example.com"),
        ("host.arch", "amd64"),
        ("os.type", "linux"),
        ("os.description", "Debian GNU/Linux 12 (bookworm)"),
        ("group", "eu-west"),
        ("site", "fra1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let rounds = 200;
    let batch = |r: usize| {
        let mut b = Batch::default();
        for (i, body) in bodies.iter().enumerate() {
            b.add(body, 1_796_000_000_000 + (r * 250 + i) as u64, &ctx);
        }
        b
    };
    let start = Cpu::this_thread_ns();
    let mut bytes = 0;
    for r in 0..rounds {
        let m = batch(r).into_metrics();
        let body = tether::agent::otlp::request_body(&resource, &m);
        bytes += tether::format::gzip::compress(&body).len();
    }
    let ns = Cpu::this_thread_ns() - start;
    assert!(bytes > 0);
    let t = Cpu::this_thread_ns();
    for r in 0..rounds {
        std::hint::black_box(batch(r));
    }
    let points = Cpu::this_thread_ns() - t;
    let m = batch(0).into_metrics();
    let t = Cpu::this_thread_ns();
    for _ in 0..rounds {
        std::hint::black_box(tether::agent::otlp::request_body(&resource, &m));
    }
    let pb = Cpu::this_thread_ns() - t;
    let raw = tether::agent::otlp::request_body(&resource, &m);
    let t = Cpu::this_thread_ns();
    for _ in 0..rounds {
        std::hint::black_box(tether::format::gzip::compress(&raw));
    }
    let gz = Cpu::this_thread_ns() - t;
    let n = (rounds * 250) as f64 * 1e3;
    [
        ns as f64 / n,
        points as f64 / n,
        pb as f64 / n,
        gz as f64 / n,
    ]
}

/// The OTLP request for the 250 results of [`otlp_encode_us_per_result`]:
/// its size raw and gzip-compressed, and the remote-write request's
/// (snappy) for the same records.
pub fn body_sizes() -> (usize, usize, usize) {
    let bodies = result_bodies();
    let mut b = tether::uplink::otlp::points::Batch::default();
    let ctx = tether::uplink::otlp::points::Context {
        agent_statuses: &STATUSES,
        severities: &SEVERITIES,
    };
    for (i, body) in bodies.iter().enumerate() {
        b.add(body, 1_796_000_000_000 + i as u64, &ctx);
    }
    let resource = vec![("service.name".to_string(), "tether".to_string())];
    let raw = tether::agent::otlp::request_body(&resource, &b.into_metrics());
    let gz = tether::format::gzip::compress(&raw).len();
    let labels: Vec<(String, String)> = Vec::new();
    let rctx = tether::uplink::remote_write::series::Context {
        agent: "edge-1",
        agent_id: "00112233445566778899aabbccddeeff",
        labels: &labels,
        agent_statuses: &STATUSES,
        severities: &SEVERITIES,
    };
    let mut rb = tether::uplink::remote_write::series::Batch::default();
    for (i, body) in bodies.iter().enumerate() {
        rb.add(body, 1_796_000_000_000 + i as u64, &rctx);
    }
    let rw = tether::uplink::remote_write::wire::body(rb.series()).len();
    (raw.len(), gz, rw)
}

/// A receiver that answers 200 to every request (the upstream side of the
/// two-destination RSS figure).
fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = Vec::new();
                while request::read_request(&mut s, &mut buf).is_some() {
                    if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A receiver that answers 200 to every request until stopped (then
/// connections are refused), and can start again on the same address: the
/// OTLP side of the RSS figure (an empty 200 is a full success in OTLP).
struct Switch {
    addr: SocketAddr,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Switch {
    fn start(addr: SocketAddr) -> Switch {
        use std::sync::atomic::Ordering;
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let l = TcpListener::bind(addr).unwrap();
        let d = down.clone();
        let accept = std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    return;
                }
                let d = d.clone();
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = Vec::new();
                    while request::read_request(&mut s, &mut buf).is_some() {
                        if d.load(Ordering::SeqCst)
                            || s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                                .is_err()
                        {
                            break;
                        }
                    }
                });
            }
        });
        Switch {
            addr,
            down,
            accept: Some(accept),
        }
    }

    fn stop(&mut self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// One agent with 100 TCP checks at 1 s, `[upstream]` (a loopback sink),
/// `[remote_write]` (VictoriaMetrics) and `[otlp]` (a [`Switch`]): its RSS
/// (KiB) after 30 s, then its peak (VmHWM) through an outage of
/// [`outage`] of both receivers and the drain
/// after it.
pub struct Rss {
    pub steady_kib: u64,
    /// VmHWM at the end of the outage, and after the drain.
    pub outage_peak_kib: u64,
    pub peak_kib: u64,
}

pub fn rss_three_destinations(bin: &Path, work: &Path) -> Rss {
    let dir = work.join("fleet-rss");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let targets = Targets::tcp(100);
    let store_addr = sys::free_port();
    let mut store = start_store(&dir, store_addr);
    let up = sink();
    let otlp_addr = sys::free_port();
    let mut otlp = Switch::start(otlp_addr);
    let token = dir.join("token");
    std::fs::write(&token, "bench-token\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let listen = sys::free_port();
    let mut c = format!(
        "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\nlisten = \"{listen}\"\nlog_level = \"warn\"\nstate_dir = \"{}\"\n\n\
         [upstream]\nurl = \"http://{up}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\n\n\
         [remote_write]\nurl = \"http://{store_addr}/api/v1/write\"\nallow_plaintext = true\n\n\
         [otlp]\nurl = \"http://{otlp_addr}/v1/metrics\"\nallow_plaintext = true\n",
        dir.join("state").display(),
        token.display()
    );
    for (i, a) in targets.addrs.iter().enumerate() {
        c.push_str(&format!(
            "\n[[check]]\nname = \"c{i}\"\nkind = \"tcp\"\ntarget = \"{a}\"\n"
        ));
    }
    let mut p = start_agent(bin, &dir.join("agent"), &c);
    std::thread::sleep(Duration::from_secs(30));
    let steady_kib = sys::status_field(p.pid(), "VmRSS");
    let sent = get(listen, "/metrics").map_or(0.0, |(_, m)| {
        metric(&m, "tether_remote_write_samples_sent_total ")
    });
    assert!(sent > 0.0, "the agent sent no samples");
    let points =
        get(listen, "/metrics").map_or(0.0, |(_, m)| metric(&m, "tether_otlp_points_sent_total "));
    assert!(points > 0.0, "the agent sent no OTLP points");
    store.term();
    otlp.stop();
    std::thread::sleep(outage());
    let outage_peak_kib = sys::status_field(p.pid(), "VmHWM");
    store = start_store(&dir, store_addr);
    otlp = Switch::start(otlp_addr);
    sys::wait_for(Duration::from_secs(300), Duration::from_millis(500), || {
        drained(&[listen]).then_some(())
    });
    sys::wait_for(Duration::from_secs(300), Duration::from_millis(500), || {
        get(listen, "/metrics")
            .is_some_and(|(_, m)| {
                metric(&m, "tether_otlp_oldest_unsent_age_seconds ") < 10.0
                    && metric(&m, "tether_otlp_backlog_records ") < 50.0
            })
            .then_some(())
    });
    let peak_kib = sys::status_field(p.pid(), "VmHWM");
    p.term();
    store.term();
    otlp.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Rss {
        steady_kib,
        outage_peak_kib,
        peak_kib,
    }
}
