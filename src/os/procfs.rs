//! The process's own figures for `/metrics`, read from /proc (Linux only,
//! which is where tether runs). Missing files read as zeros, never a panic.

use std::fs;

#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessFigures {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub max_resident_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
    pub start_time_seconds: f64,
}

/// Linux reports /proc times in USER_HZ, which is 100 on every architecture.
const USER_HZ: f64 = 100.0;

pub fn read_self() -> ProcessFigures {
    let mut f = ProcessFigures::default();
    if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name, starting at field 3.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        f.cpu_seconds = (num(11) + num(12)) / USER_HZ;
        f.threads = num(17) as u64;
        let boot = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("btime ")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
            })
            .unwrap_or(0.0);
        f.start_time_seconds = boot + num(19) / USER_HZ;
    }
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        f.resident_bytes = status_kb(&status, "VmRSS:") * 1024;
        f.max_resident_bytes = status_kb(&status, "VmHWM:") * 1024;
    }
    f.open_fds = fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    f
}

/// A `Key:   123 kB` line of /proc/*/status.
pub fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_figures() {
        let f = super::read_self();
        assert!(f.threads >= 1 && f.resident_bytes > 0 && f.max_resident_bytes >= f.resident_bytes);
        assert!(f.open_fds >= 3 && f.start_time_seconds > 1.0e9);
    }
}
