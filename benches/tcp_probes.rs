//! Footprint of the agent doing its main job, measured on the real binary.
//!
//! 100 TCP checks at a 1 s interval against 100 loopback listeners (accepted
//! and closed by a helper thread in this process), run for BENCH_SECONDS
//! (default 20). Reports the agent process's CPU time (all threads' on-CPU
//! time from /proc/PID/task/*/schedstat) divided by the probes it
//! completed (the sum of tether_check_runs_total), its peak RSS (VmHWM) and its thread count.
//! Goals: CPU per probe <= 60 us, peak RSS <= 3 MiB, threads <= 2.
//!
//! Run: cargo bench --bench tcp_probes
//! The musl build: cargo build --release --target x86_64-unknown-linux-musl &&
//!   TETHER_BIN=target/x86_64-unknown-linux-musl/release/tether cargo bench --bench tcp_probes

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
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
    let bin =
        std::env::var("TETHER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tether").to_string());
    println!("binary: {bin}");
    let mut child = Command::new(&bin)
        .args(["run", "-c"])
        .arg(&path)
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // With log_level = warn there is no start line; find the port in /proc.
    let addr = wait_listen_addr(pid);
    let start_cpu = cpu_seconds(pid);
    let start_runs = total_runs(addr);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds)); // the measurement window
    let cpu = cpu_seconds(pid) - start_cpu;
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
