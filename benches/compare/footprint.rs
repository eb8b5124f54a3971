//! One system probing a set of targets for a window: CPU per probe, peak
//! RSS, threads, binary size, with the probes counted on the targets.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::agent::{self, Agent};
use crate::peers::{self, Scraper};
use crate::sys::{self, Cpu};
use crate::targets::Targets;

/// Time for a system to start and settle before the window opens.
const WARMUP: Duration = Duration::from_secs(3);

#[derive(Clone, Debug, Default)]
pub struct Sample {
    /// Probes seen by the targets in the window (accepts, or HTTP requests).
    pub probes: u64,
    /// Probes the system says it did in the window, where it says.
    pub claimed: Option<u64>,
    /// On-CPU µs per probe (schedstat).
    pub cpu_us: f64,
    /// utime+stime µs per probe (10 ms ticks).
    pub ticks_us: f64,
    pub hwm_kib: u64,
    pub threads: u64,
    /// Binary plus the shared libraries it maps.
    pub binary: u64,
    pub seconds: f64,
}

impl Sample {
    pub fn per_second(&self) -> f64 {
        self.probes as f64 / self.seconds.max(1e-9)
    }
}

/// Measures process `pid` for `seconds` after the warm-up. `claimed` is
/// read outside the CPU window (an agent's own scrape costs it CPU).
fn window(
    pid: u32,
    targets: &Targets,
    seconds: u64,
    mut claimed: impl FnMut() -> Option<u64>,
) -> Sample {
    std::thread::sleep(WARMUP);
    let k0 = claimed();
    let (c0, s0, t0) = (Cpu::of(pid), targets.served(), Instant::now());
    let mut threads = sys::status_field(pid, "Threads");
    while t0.elapsed() < Duration::from_secs(seconds) {
        let left = Duration::from_secs(seconds).saturating_sub(t0.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(1)));
        threads = threads.max(sys::status_field(pid, "Threads"));
    }
    let (c1, s1, elapsed) = (Cpu::of(pid), targets.served(), t0.elapsed());
    let k1 = claimed();
    let probes = s1 - s0;
    let (cpu_us, ticks_us) = c0.per(&c1, probes);
    Sample {
        probes,
        claimed: k0.zip(k1).map(|(a, b)| b.saturating_sub(a)),
        cpu_us,
        ticks_us,
        hwm_kib: sys::status_field(pid, "VmHWM"),
        threads,
        binary: sys::mapped_files(pid).0,
        seconds: elapsed.as_secs_f64(),
    }
}

/// What the systems probe: the same target for tether and blackbox_exporter.
#[derive(Clone, Copy)]
pub enum Kind {
    /// A TCP connect.
    Tcp,
    /// GET `/healthz`, expect 200.
    Http,
}

impl Kind {
    /// How a target is named: `host:port`, or the URL.
    fn target(self, a: &SocketAddr) -> String {
        match self {
            Kind::Tcp => a.to_string(),
            Kind::Http => format!("http://{a}/healthz"),
        }
    }

    /// tether's check kind and the key that names its target.
    fn check(self) -> (&'static str, &'static str) {
        match self {
            Kind::Tcp => ("tcp", "target"),
            Kind::Http => ("http", "url"),
        }
    }

    /// blackbox_exporter's module (`peers::blackbox` defines both).
    fn module(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp_connect",
            Kind::Http => "http_2xx",
        }
    }
}

/// tether with one check of `kind` per target.
pub fn tether(bin: &Path, dir: &Path, targets: &Targets, kind: Kind, seconds: u64) -> Sample {
    let (check, key) = kind.check();
    let names = targets.addrs.iter().map(|a| kind.target(a));
    let a = Agent::start(bin, dir, &agent::checks(check, key, names), None);
    let mut s = window(a.pid, targets, seconds, || Some(a.runs()));
    s.binary = std::fs::metadata(bin).map_or(0, |m| m.len());
    s
}

pub fn monit_tcp(dir: &Path, targets: &Targets, seconds: u64) -> Sample {
    let mut child = peers::monit(dir, &targets.addrs);
    let s = window(child.id(), targets, seconds, || None);
    let _ = child.kill();
    let _ = child.wait();
    s
}

/// blackbox_exporter, scraped once a second per target with `kind`'s module.
pub fn blackbox(dir: &Path, targets: &Targets, kind: Kind, seconds: u64) -> Sample {
    let (mut child, addr) = peers::blackbox(dir);
    let names = targets.addrs.iter().map(|a| kind.target(a)).collect();
    let scraper = Scraper::start(addr, kind.module(), names);
    let s = window(child.id(), targets, seconds, || {
        Some(scraper.ok.load(std::sync::atomic::Ordering::SeqCst))
    });
    drop(scraper);
    let _ = child.kill();
    let _ = child.wait();
    s
}

/// The floor: blocking connect(2)+close(2) from one thread of the bench,
/// each target once a second, started in the groups tether's schedule uses
/// (checks sharing a `spread_grid` slot start together); its own on-CPU
/// time per connect.
pub fn floor(targets: &Targets, seconds: u64) -> Sample {
    let addrs: Vec<SocketAddr> = targets.addrs.clone();
    let grid = tether::agent::state::spread_grid(addrs.len(), Duration::from_secs(1));
    let slots = (Duration::from_secs(1).as_nanos() / grid.as_nanos()).max(1) as usize;
    let per_slot = addrs.len().div_ceil(slots);
    let (s0, cpu0, start) = (targets.served(), Cpu::this_thread_ns(), Instant::now());
    let mut n = 0u64;
    for tick in 0u32.. {
        let at = start + grid * tick;
        if let Some(d) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        if start.elapsed() >= Duration::from_secs(seconds) {
            break;
        }
        let first = (tick as usize % slots) * per_slot;
        for a in addrs.iter().skip(first).take(per_slot) {
            if TcpStream::connect(a).is_ok() {
                n += 1;
            }
        }
    }
    let cpu_us = (Cpu::this_thread_ns() - cpu0) as f64 / 1e3 / n.max(1) as f64;
    // The last accepts may still be on their way to the counter.
    let _ = sys::wait_for(Duration::from_secs(2), Duration::from_millis(5), || {
        (targets.served() - s0 >= n).then_some(())
    });
    Sample {
        probes: targets.served() - s0,
        claimed: Some(n),
        cpu_us,
        ticks_us: cpu_us,
        threads: 1,
        seconds: start.elapsed().as_secs_f64(),
        ..Sample::default()
    }
}
