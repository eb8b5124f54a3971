//! Scale: the most TCP targets tether probes each second on one core with
//! the p99 of lateness (probe start minus its slot, from the agent's own
//! `tether_check_start_lateness_seconds` histogram) under 100 ms.
//!
//! tether is pinned to CPU 0 (`taskset`, both its threads); the bench's
//! listeners run on the other CPUs. N checks at 1 s over 1,000 listeners;
//! N grows until a step misses: p99 over 100 ms, or fewer than 99% of the
//! N probes a second reach the listeners.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::agent::{self, Agent};
use crate::sys::{self, Cpu};
use crate::targets::Targets;

pub const STEPS: [usize; 10] = [
    1_000, 2_500, 5_000, 10_000, 12_500, 15_000, 17_500, 20_000, 25_000, 30_000,
];
pub const LATE_P99: f64 = 0.1;

#[derive(Clone, Debug)]
pub struct Step {
    pub checks: usize,
    pub per_second: f64,
    /// Upper bound of the histogram bucket holding the p99, seconds.
    pub p99_le: f64,
    pub mean_ms: f64,
    /// tether's CPU use over the window, in cores.
    pub cores: f64,
    /// How long one `/metrics` of this many checks took to answer.
    pub scrape_ms: f64,
}

impl Step {
    pub fn passed(&self) -> bool {
        self.p99_le <= LATE_P99 && self.per_second >= 0.99 * self.checks as f64
    }
}

/// (le, cumulative count) pairs and the sum, from `/metrics`.
fn histogram(metrics: &str) -> (Vec<(f64, u64)>, f64) {
    let mut buckets = Vec::new();
    let mut sum = 0.0;
    for l in metrics.lines() {
        if let Some(rest) = l.strip_prefix("tether_check_start_lateness_seconds_bucket{le=\"") {
            let (le, n) = rest.split_once("\"} ").unwrap_or(("", ""));
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            buckets.push((le, n.parse::<f64>().unwrap_or(0.0) as u64));
        } else if let Some(v) = l.strip_prefix("tether_check_start_lateness_seconds_sum ") {
            sum = v.parse().unwrap_or(0.0);
        }
    }
    (buckets, sum)
}

pub fn step(bin: &Path, dir: &Path, targets: &Targets, checks: usize, seconds: u64) -> Step {
    let addrs = (0..checks).map(|i| targets.addrs[i % targets.addrs.len()].to_string());
    let a = Agent::start(bin, dir, &agent::checks("tcp", "target", addrs), Some(0));
    // Up, and every check through its first run (the first round is spread
    // over one interval).
    sys::wait_for(Duration::from_secs(30), Duration::from_millis(50), || {
        crate::http::get(a.addr, "/ready").filter(|r| r.0 == 200)
    });
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let m0 = a.metrics();
    let scrape_ms = t.elapsed().as_secs_f64() * 1e3;
    let (c0, s0, t0) = (Cpu::of(a.pid), targets.served(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (c1, s1, elapsed) = (Cpu::of(a.pid), targets.served(), t0.elapsed().as_secs_f64());
    let m1 = a.metrics();
    let (p99_le, mean_ms) = lateness(&m0, &m1);
    Step {
        checks,
        per_second: (s1 - s0) as f64 / elapsed,
        p99_le,
        mean_ms,
        cores: (c1.sched_ns - c0.sched_ns) as f64 / 1e9 / elapsed,
        scrape_ms,
    }
}

/// Start lateness between two scrapes: the upper bound of the bucket
/// holding the p99 (seconds) and the mean (ms; NaN without probes, as when
/// the second scrape got no answer from a saturated agent).
pub fn lateness(m0: &str, m1: &str) -> (f64, f64) {
    let ((h0, sum0), (h1, sum1)) = (histogram(m0), histogram(m1));
    let diff: Vec<(f64, u64)> = h1
        .iter()
        .zip(&h0)
        .map(|((le, b), (_, a))| (*le, b.saturating_sub(*a)))
        .collect();
    let total = diff.last().map_or(0, |d| d.1);
    let p99_le = diff
        .iter()
        .find(|(_, n)| *n as f64 >= 0.99 * total as f64 && total > 0)
        .map_or(f64::INFINITY, |d| d.0);
    let mean_ms = if total == 0 {
        f64::NAN
    } else {
        (sum1 - sum0) / total as f64 * 1e3
    };
    (p99_le, mean_ms)
}

/// Pins every thread of this process to `cpus` (a taskset list).
pub fn pin_self(cpus: &str) {
    let _ = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status();
}
