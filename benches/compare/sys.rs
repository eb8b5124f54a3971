//! What /proc says about a process, and the machine the bench ran on.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

/// CPU used so far by a process, two ways.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// On-CPU nanoseconds of every live thread (`/proc/PID/task/*/schedstat`):
    /// exact, what the table uses.
    pub sched_ns: u64,
    /// utime+stime from `/proc/PID/stat`, in clock ticks (10 ms here):
    /// sampled at each tick, printed beside it as a cross-check.
    pub ticks: u64,
}

impl Cpu {
    pub fn of(pid: u32) -> Cpu {
        let mut sched_ns = 0;
        if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in d.flatten() {
                sched_ns += first_number(&t.path().join("schedstat"));
            }
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the ")" that ends comm: state is field 3, utime 14, stime 15.
        let f: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .map(|v| v.parse().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        Cpu { sched_ns, ticks }
    }

    /// This thread's on-CPU nanoseconds.
    pub fn this_thread_ns() -> u64 {
        first_number(Path::new("/proc/thread-self/schedstat"))
    }

    /// (schedstat µs, utime+stime µs) per event between `self` and `later`.
    pub fn per(&self, later: &Cpu, events: u64) -> (f64, f64) {
        let n = events.max(1) as f64;
        let tick_us = 1e6 / clock_ticks_per_second() as f64;
        (
            (later.sched_ns - self.sched_ns) as f64 / 1e3 / n,
            (later.ticks - self.ticks) as f64 * tick_us / n,
        )
    }
}

fn first_number(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `getconf CLK_TCK`, 100 on Linux.
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

/// A `kB` or count field of `/proc/PID/status`.
pub fn status_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The bytes of every file mapped into the process: its binary plus the
/// shared libraries it loaded (each counted once).
pub fn mapped_files(pid: u32) -> (u64, Vec<String>) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut paths: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/'))
        .map(String::from)
        .collect();
    paths.sort();
    paths.dedup();
    let bytes = paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    (bytes, paths)
}

/// A loopback port nobody listens on now (bound, then released).
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Polls `f` every `step` until it answers or `within` passes.
pub fn wait_for<T>(
    within: Duration,
    step: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(step);
    }
}

/// One line about the machine: CPU model, cores, memory, kernel.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {:.0} GiB, Linux {}",
        mem_kb as f64 / (1 << 20) as f64,
        kernel.trim()
    )
}

/// The version line a program prints.
pub fn version_of(cmd: &str, arg: &str) -> String {
    std::process::Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}
