//! Footprint of the agent doing its main job, measured on the real binary.
//!
//! 100 TCP checks at a 1 s interval against 100 loopback listeners (accepted
//! and closed by a helper thread in this process), run for BENCH_SECONDS
//! (default 20). Reports the agent process's CPU time (all threads' on-CPU
//! time from /proc/PID/task/*/schedstat) divided by the probes it
//! completed (the sum of tether_check_runs_total), its peak RSS (VmHWM) and its thread count.
//! Goals: CPU per probe <= 60 us, peak RSS <= 3 MiB, threads <= 2.
//!
//! Then the floor, in the same run against the same listeners: blocking
//! connect(2)+close(2) from one thread of this process, started in the same
//! groups as tether's schedule (checks sharing a `SPREAD_GRID` slot start
//! together), its on-CPU time divided by its connects.
//!
//! Run: cargo bench --bench tcp_probes
//! The musl build: cargo build --release --target x86_64-unknown-linux-musl &&
//!   TETHER_BIN=target/x86_64-unknown-linux-musl/release/tether cargo bench --bench tcp_probes

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const CHECKS: usize = 100;

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = std::env::temp_dir().join(format!("tether-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = format!(
        "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\nlisten = \"127.0.0.1:0\"\nlog_level = \"warn\"\nstate_dir = \"{}\"\n",
        dir.join("state").display()
    );
    let mut listeners = Vec::new();
    for i in 0..CHECKS {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        config.push_str(&format!(
            "\n[[check]]\nname = \"c{i}\"\nkind = \"tcp\"\ntarget = \"{}\"\n",
            l.local_addr().unwrap()
        ));
        listeners.push(l);
    }
    let targets: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    // Accept and close, so no accept queue fills during the run.
    for l in listeners {
        std::thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
            }
        });
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, config).unwrap();
    // The endpoint binds an ephemeral port; the agent names it on stderr.
    // TETHER_BIN measures another build, e.g. the static musl release binary.
    let bin = common::agent_bin();
    println!("binary: {bin}");
    let mut child = common::spawn_agent(&bin, &path);
    let pid = child.id();
    // With log_level = warn there is no start line; find the port in /proc.
    let addr = wait_listen_addr(pid);
    let start_cpu = cpu_seconds(pid);
    let start_threads = thread_cpu(pid);
    let start_runs = total_runs(addr);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds)); // the measurement window
    let cpu = cpu_seconds(pid) - start_cpu;
    let end_threads = thread_cpu(pid);
    let runs = total_runs(addr) - start_runs;
    let elapsed = t0.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let threads = kb("Threads:");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let per_probe_us = cpu / runs.max(1) as f64 * 1e6;
    println!("tcp_probes: {CHECKS} checks at 1s for {elapsed:.1}s");
    println!(
        "  probes completed   {runs} ({:.1}/s)",
        runs as f64 / elapsed
    );
    println!("  agent CPU          {:.3}s", cpu);
    println!("  CPU per probe      {per_probe_us:.1} us   (goal <= 60 us)");
    println!(
        "  peak RSS (VmHWM)   {:.2} MiB   (goal <= 3 MiB)",
        kb("VmHWM:") as f64 / 1024.0
    );
    println!(
        "  RSS now (VmRSS)    {:.2} MiB",
        kb("VmRSS:") as f64 / 1024.0
    );
    println!("  threads            {threads}   (goal <= 2)");
    for (name, ns) in &end_threads {
        let before = start_threads
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, b)| *b);
        let us = (ns - before) as f64 / 1e3 / runs.max(1) as f64;
        println!("    thread {name:<14} {us:.1} us per probe");
    }
    let floor = floor_us(&targets, seconds.min(10));
    println!(
        "  floor              {floor:.1} us per connect+close (blocking, same targets, same groups)"
    );
    println!(
        "  tether - floor     {:.1} us per probe",
        per_probe_us - floor
    );
}

/// On-CPU microseconds per blocking connect+close, one thread, `targets`
/// started in the groups tether's schedule uses, once a second each.
fn floor_us(targets: &[SocketAddr], seconds: u64) -> f64 {
    let grid = tether::state::SPREAD_GRID;
    let slots = (Duration::from_secs(1).as_nanos() / grid.as_nanos()).max(1) as usize;
    let per_slot = targets.len().div_ceil(slots);
    let start = Instant::now();
    let cpu0 = thread_self_ns();
    let mut n = 0u64;
    'run: for tick in 0.. {
        let at = start + grid * tick as u32;
        if let Some(d) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        if start.elapsed() >= Duration::from_secs(seconds) {
            break 'run;
        }
        let first = (tick as usize % slots) * per_slot;
        for a in targets.iter().skip(first).take(per_slot) {
            drop(TcpStream::connect(a).unwrap());
            n += 1;
        }
    }
    (thread_self_ns() - cpu0) as f64 / 1e3 / n.max(1) as f64
}

fn thread_self_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Each thread's name (tid:comm) and on-CPU nanoseconds.
fn thread_cpu(pid: u32) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        let ns = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let tid = t.file_name().to_string_lossy().into_owned();
        out.push((format!("{tid}:{}", comm.trim()), ns));
    }
    out
}

/// On-CPU time of every thread of the process, in seconds, from
/// /proc/PID/task/*/schedstat (nanoseconds; utime+stime in /proc/PID/stat
/// only moves in 10 ms ticks, too coarse for a 20 s run).
fn cpu_seconds(pid: u32) -> f64 {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 / 1e9
}

fn total_runs(addr: SocketAddr) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines()
        .filter(|l| l.starts_with("tether_check_runs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The agent's listening TCP port, from /proc/net/tcp and its socket inodes.
fn wait_listen_addr(pid: u32) -> SocketAddr {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                    .filter_map(|l| {
                        l.to_str()?
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        for line in tcp.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // state 0A = LISTEN
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap();
                return SocketAddr::from(([127, 0, 0, 1], port));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the agent did not start listening");
}
