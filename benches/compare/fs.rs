//! Filesystem checks in helper processes: what a `file` probe costs with
//! the long-lived helpers the agent keeps, what it would cost with a child
//! started for every call (the alternative), the helpers' memory, and the
//! probes' lateness with a hung filesystem check among 1,000 TCP checks.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tether::os::fs_helper::wire::{frame, Answer, Job};
use tether::os::fs_helper::HELPER_ARG;

use crate::agent::{self, Agent};
use crate::scale;
use crate::sys::{self, Cpu};
use crate::targets::Targets;

pub struct Cost {
    /// On-CPU µs per probe: the agent's part, the helpers' part.
    pub agent_us: f64,
    pub helpers_us: f64,
    /// Helpers alive at the end and their RSS each (KiB).
    pub helpers: usize,
    pub helper_rss_kib: u64,
    pub agent_hwm_kib: u64,
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// `n` `file` checks at 1 s on fresh files, for `seconds`.
pub fn helper_cost(bin: &Path, dir: &Path, n: usize, seconds: u64) -> Cost {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let paths = (0..n).map(|i| {
        let p = files.join(format!("f{i}"));
        std::fs::write(&p, "x").unwrap();
        p.display().to_string()
    });
    let checks = agent::checks("file", "path", paths);
    let a = Agent::start(bin, &dir.join("agent"), &checks, None);
    sys::wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        crate::http::get(a.addr, "/ready").filter(|r| r.0 == 200)
    });
    std::thread::sleep(Duration::from_secs(2));
    let r0 = a.runs();
    let helpers = children(a.pid);
    let h0: Vec<Cpu> = helpers.iter().map(|h| Cpu::of(*h)).collect();
    let c0 = Cpu::of(a.pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let c1 = Cpu::of(a.pid);
    let h1: Vec<Cpu> = helpers.iter().map(|h| Cpu::of(*h)).collect();
    let r1 = a.runs();
    let probes = r1.saturating_sub(r0);
    let helper_ns: u64 = h0
        .iter()
        .zip(&h1)
        .map(|(a, b)| b.sched_ns.saturating_sub(a.sched_ns))
        .sum();
    let now = children(a.pid);
    Cost {
        agent_us: c0.per(&c1, probes).0,
        helpers_us: helper_ns as f64 / 1e3 / probes.max(1) as f64,
        helpers: now.len(),
        helper_rss_kib: now.first().map_or(0, |h| sys::status_field(*h, "VmRSS")),
        agent_hwm_kib: sys::status_field(a.pid, "VmHWM"),
    }
}

/// The alternative: a child started for every call (spawn, one `stat`
/// job, exit), `calls` times. On-CPU µs per call, parent and child.
pub fn child_per_call(bin: &Path, calls: u32) -> f64 {
    // cutime+cstime of this process (the reaped children's CPU), in µs;
    // clock ticks, so many calls are timed together.
    let children_cpu_us = || {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let f: Vec<f64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .map(|v| v.parse().unwrap_or(0.0))
                    .collect()
            })
            .unwrap_or_default();
        (f.get(13).unwrap_or(&0.0) + f.get(14).unwrap_or(&0.0)) * 1e6
            / sys::clock_ticks_per_second() as f64
    };
    let job = frame(&Job::Stat(bin.to_path_buf()).encode());
    let children0 = children_cpu_us();
    let self0 = Cpu::this_thread_ns();
    for _ in 0..calls {
        let mut c = Command::new(bin)
            .arg(HELPER_ARG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.as_mut().unwrap().write_all(&job).unwrap();
        let mut out = c.stdout.take().unwrap();
        loop {
            let mut len = [0u8; 4];
            out.read_exact(&mut len).unwrap();
            let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
            out.read_exact(&mut buf).unwrap();
            if !matches!(Answer::decode(&buf), Some(Answer::Step(_))) {
                break;
            }
        }
        drop(c.stdin.take());
        c.wait().unwrap();
    }
    let parent_us = (Cpu::this_thread_ns() - self0) as f64 / 1e3;
    let children_us = children_cpu_us() - children0;
    (parent_us + children_us) / f64::from(calls)
}

/// Start lateness (p99 bucket upper bound in s, mean in ms) of 1,000 TCP
/// checks at 1 s, with or without a `cert_file` check on a FIFO nobody
/// writes (its open(2) hangs until its deadline, every 2 s).
pub fn lateness(bin: &Path, dir: &Path, targets: &Targets, hung: bool, seconds: u64) -> (f64, f64) {
    let addrs = targets.addrs.iter().map(|a| a.to_string());
    let mut checks = agent::checks("tcp", "target", addrs);
    if hung {
        std::fs::create_dir_all(dir).unwrap();
        let fifo = dir.join("hung.pem");
        let _ = std::fs::remove_file(&fifo);
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        checks.push_str(&format!(
            "\n[[check]]\nname = \"hung\"\nkind = \"cert_file\"\npath = \"{}\"\ninterval = \"2s\"\ntimeout = \"1s\"\n",
            fifo.display()
        ));
    }
    let a = Agent::start(bin, &dir.join("agent"), &checks, Some(0));
    sys::wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        crate::http::get(a.addr, "/status")
            .filter(|r| r.0 == 200 && !r.1.contains("\"status\":\"pending\""))
    });
    std::thread::sleep(Duration::from_secs(2));
    let m0 = a.metrics();
    std::thread::sleep(Duration::from_secs(seconds));
    let m1 = a.metrics();
    if hung {
        assert!(
            m1.contains("tether_fs_helpers_killed_total "),
            "no helper family in /metrics"
        );
    }
    scale::lateness(&m0, &m1)
}

/// How long one spool-sized fsync holds a thread on this machine's disk:
/// `n` times a 4 KiB append and fdatasync(2) in `dir`, as the spool does
/// per flush. (p50, p99, max) in ms.
pub fn fsync_distribution(dir: &Path, n: usize) -> (f64, f64, f64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("segment"))
        .unwrap();
    let block = vec![7u8; 4096];
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            f.write_all(&block).unwrap();
            let t = std::time::Instant::now();
            f.sync_data().unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    (
        crate::stats::quantile(&mut ms, 0.5),
        crate::stats::quantile(&mut ms, 0.99),
        crate::stats::quantile(&mut ms, 1.0),
    )
}

/// An agent with 100 TCP checks and its upstream down for `seconds`, so
/// every flush goes to the spool: its own fsync figures from `/metrics`
/// (count, mean ms, max ms).
pub fn agent_fsyncs(bin: &Path, dir: &Path, targets: &Targets, seconds: u64) -> (f64, f64, f64) {
    use std::os::unix::fs::PermissionsExt;
    let down = sys::free_port();
    std::fs::create_dir_all(dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "bench\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let addrs = targets.addrs.iter().take(100).map(|a| a.to_string());
    let checks = format!(
        "\n[upstream]\nurl = \"http://{down}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\n{}",
        token.display(),
        agent::checks("tcp", "target", addrs)
    );
    let a = Agent::start(bin, &dir.join("agent"), &checks, None);
    std::thread::sleep(Duration::from_secs(seconds));
    let m = a.metrics();
    let get = |name: &str| crate::http::metric_sum(&m, name);
    let count = get("tether_spool_fsyncs_total");
    let mean_ms = get("tether_spool_fsync_seconds_total") / count.max(1.0) * 1e3;
    (count, mean_ms, get("tether_spool_fsync_max_seconds") * 1e3)
}
