//! `system`: is the connector host itself healthy? CPU busy percent averaged
//! over `window` (default 5 minutes; warn at `warn_percent`, default 70: the
//! connector is overloaded), memory available against the total, and free
//! space on `disk_path`. When the CPU part warns, the agent carries an
//! `overloaded` flag beside its status. Reads /proc/stat and /proc/meminfo
//! on the agent's thread (procfs answers from memory); the statvfs(2) of
//! `disk_path`, which may be a network mount, runs in a filesystem helper
//! ([`crate::os::fs_helper`]).

use std::path::Path;
use std::time::Instant;

use crate::config::SystemSpec;
use crate::os::cpu;
use crate::os::fs_helper::{Answer, Job};
use crate::outcome::{Reason, Report, Status, SystemDetail, Trace};

pub async fn probe(s: &SystemSpec, trace: &Trace) -> Report {
    let disk = match super::fs(&Job::Statvfs(s.disk_path.clone()), trace).await {
        Ok(Answer::Vfs {
            blocks,
            frsize,
            bavail,
        }) => Ok((blocks.saturating_mul(frsize), bavail.saturating_mul(frsize))),
        Ok(Answer::Failed { errno, .. }) => Err(format!(
            "statvfs {}: {}",
            s.disk_path.display(),
            std::io::Error::from_raw_os_error(errno)
        )),
        Ok(_) => return super::out_of_format(),
        Err(r) => return r,
    };
    probe_at(s, Path::new("/proc"), Instant::now(), disk)
}

/// [`probe`] against another /proc (tests use a fake one), with the
/// disk's (total, free) bytes or why there are none.
pub fn probe_at(
    s: &SystemSpec,
    proc_root: &Path,
    now: Instant,
    disk: Result<(u64, u64), String>,
) -> Report {
    let read = |name: &str| {
        let p = proc_root.join(name);
        std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
    };
    let unknown = |m: String| Report::new(Status::Unknown, Some(Reason::FileError), m);
    let times = match read("stat").map(|t| cpu::parse_stat(&t)) {
        Ok(Some(t)) => t,
        Ok(None) => return unknown(format!("{}/stat: no cpu line", proc_root.display())),
        Err(e) => return unknown(e),
    };
    let (mem_total, mem_available) = match read("meminfo").map(|t| meminfo(&t)) {
        Ok(Some(m)) => m,
        Ok(None) => {
            return unknown(format!(
                "{}/meminfo: no MemTotal/MemAvailable",
                proc_root.display()
            ))
        }
        Err(e) => return unknown(e),
    };
    let (disk_total, disk_free) = match disk {
        Ok(d) => d,
        Err(e) => return unknown(e),
    };
    let avg = cpu::sample(proc_root, now, times, s.window);
    let over = |p: f64, limit: Option<f64>| limit.is_some_and(|l| p >= l);
    let cpu_status = if over(avg.percent, s.crit_percent) {
        Status::Crit
    } else if avg.percent >= s.warn_percent {
        Status::Warn
    } else {
        Status::Ok
    };
    let mem_pct = pct(mem_available, mem_total);
    let disk_pct = pct(disk_free, disk_total);
    let below = |p: f64, warn: f64, crit: f64| {
        if p < crit {
            Status::Crit
        } else if p < warn {
            Status::Warn
        } else {
            Status::Ok
        }
    };
    let mem_status = below(mem_pct, s.memory_warn_percent, s.memory_crit_percent);
    let disk_status = below(disk_pct, s.disk_warn_percent, s.disk_crit_percent);
    // The threshold that was crossed, for the message.
    let limit = |st: Status, warn: f64, crit: f64| match st {
        Status::Crit => format!("critical below {crit}%"),
        _ => format!("warn below {warn}%"),
    };
    let span = match avg.span {
        Some(d) => format!("over {}", crate::config::duration::format_coarse(d)),
        None => "since boot".to_string(),
    };
    let parts = [
        (
            cpu_status,
            Reason::CpuOverloaded,
            format!("cpu {:.1}% busy {span}", avg.percent),
            match (cpu_status, s.crit_percent) {
                (Status::Crit, Some(c)) => format!("critical at {c}%"),
                _ => format!("warn at {}%", s.warn_percent),
            },
        ),
        (
            mem_status,
            Reason::MemoryLow,
            format!(
                "memory {mem_pct:.0}% available ({} of {})",
                bytes(mem_available),
                bytes(mem_total)
            ),
            limit(mem_status, s.memory_warn_percent, s.memory_crit_percent),
        ),
        (
            disk_status,
            Reason::DiskLow,
            format!(
                "{} {disk_pct:.0}% free ({} of {})",
                s.disk_path.display(),
                bytes(disk_free),
                bytes(disk_total)
            ),
            limit(disk_status, s.disk_warn_percent, s.disk_crit_percent),
        ),
    ];
    let worst = parts
        .iter()
        .max_by_key(|p| p.0.badness())
        .map(|p| (p.0, p.1));
    let message = parts
        .iter()
        .map(|(st, _, text, limit)| {
            if *st == Status::Ok {
                text.clone()
            } else {
                format!("{} {text} ({limit})", st.as_str().to_uppercase())
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut r = match worst {
        Some((Status::Ok, _)) | None => Report::ok(message),
        Some((st, reason)) => Report::new(st, Some(reason), message),
    };
    r.detail.system = Some(Box::new(SystemDetail {
        cpu_percent: avg.percent,
        cpu_window_seconds: avg.span.map(|d| d.as_secs_f64()),
        overloaded: cpu_status != Status::Ok,
        memory_available_bytes: mem_available,
        memory_total_bytes: mem_total,
        disk_free_bytes: disk_free,
        disk_total_bytes: disk_total,
    }));
    r
}

/// (MemTotal, MemAvailable) in bytes.
fn meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    };
    Some((field("MemTotal")?, field("MemAvailable")?))
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `1.5 GiB`, `512 MiB`.
fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}
