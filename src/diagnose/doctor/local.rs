//! The doctor's Local step: what on this host can break the agent. The
//! state and spool directories exist, are writable and are on persistent
//! storage (tmpfs or ramfs is lost at reboot), with free space; the
//! identity is present and valid; the token file is private; the clock
//! agrees with the upstream's `Date` within [`MAX_SKEW`]; no configured
//! certificate file expires within [`super::network::CERT_WARN_DAYS`] days.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::network::CERT_WARN_DAYS;
use super::{Finding, Level, Step};
use crate::config::{Config, ProbeSpec};
use crate::outcome::Status;

/// Clock skew against the upstream beyond this is a finding.
pub const MAX_SKEW: Duration = Duration::from_secs(60);
const TMPFS_MAGIC: u64 = 0x0102_1994;
const RAMFS_MAGIC: u64 = 0x8584_58f6;

pub fn step(
    config: &Config,
    server_date: Option<(SystemTime, SystemTime)>,
    now: SystemTime,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let state = &config.agent.state_dir;
    // Without a destination the state directory holds only the history and
    // the maintenance flag: a broken one is a warning, not an outage.
    let spooling = config.sends();
    let broken = if spooling {
        Level::Critical
    } else {
        Level::Warning
    };
    out.extend(directory("state directory", state, 0, broken));
    let spool = &config.spool.dir;
    if spooling && spool != state {
        out.extend(directory(
            "spool directory",
            spool,
            config.spool.max_bytes,
            broken,
        ));
    }
    if config.upstream.is_some() {
        out.push(identity(state));
        if let Some(f) = token(config) {
            out.push(f);
        }
    }
    out.push(clock(server_date));
    out.extend(certificate_files(config, now));
    out
}

fn warn(code: &'static str, title: String) -> Finding {
    Finding::new(Step::Local, Level::Warning, code, title)
}

fn crit(code: &'static str, title: String) -> Finding {
    Finding::new(Step::Local, Level::Critical, code, title)
}

/// Exists and writable (a file created, written, fsynced, removed), on
/// persistent storage, with free space for `need` bytes.
fn directory(what: &str, dir: &Path, need: u64, broken: Level) -> Vec<Finding> {
    let shown = dir.display();
    let r = crate::probe::writable::probe_here(dir);
    if r.status != Status::Ok {
        return vec![Finding::new(
            Step::Local,
            broken,
            "dir_not_writable",
            format!("the {what} {shown} is not usable"),
        )
        .evidence(r.message)
        .fix("create it, owned by the agent's user, mode 0700 (the package's unit does: StateDirectory=tether); it must be writable by the agent")];
    }
    let mut out = Vec::new();
    let fs = rustix::fs::statfs(dir);
    let vfs = rustix::fs::statvfs(dir);
    match fs.map(|s| s.f_type as u64) {
        Ok(TMPFS_MAGIC) | Ok(RAMFS_MAGIC) => out.push(
            warn(
                "not_persistent",
                format!("the {what} {shown} is on tmpfs/ramfs: it is lost at reboot"),
            )
            .evidence("filesystem type tmpfs or ramfs (statfs)")
            .fix(format!(
                "put the {what} on persistent storage (a disk-backed /var/lib), or records spooled during an outage and the agent's identity vanish with a reboot"
            )),
        ),
        _ => {}
    }
    if let Ok(v) = vfs {
        let free = v.f_bavail * v.f_frsize;
        let total = v.f_blocks * v.f_frsize;
        let evidence = format!("{} free of {}", human(free), human(total));
        if free < need || (total > 0 && free * 20 < total) {
            out.push(
                warn(
                    "low_disk",
                    format!("little free space for the {what} {shown}"),
                )
                .evidence(format!(
                    "{evidence}{}",
                    if need > 0 {
                        format!("; the spool may grow to {}", human(need))
                    } else {
                        String::new()
                    }
                ))
                .fix("free space on that filesystem, or lower [spool] max_bytes"),
            );
        } else if out.is_empty() {
            out.push(
                Finding::ok(
                    Step::Local,
                    format!("the {what} {shown} is writable and persistent"),
                )
                .evidence(evidence),
            );
        }
    }
    out
}

/// `1.5 GiB`, `320.0 MiB`.
fn human(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return format!("{v:.1} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

fn identity(state: &Path) -> Finding {
    match crate::uplink::identity::read(state) {
        Ok(Some(i)) => Finding::ok(Step::Local, format!("agent identity {}", i.id)),
        Ok(None) => warn(
            "no_identity",
            "no agent identity yet".into(),
        )
        .evidence(format!("{} does not exist", crate::uplink::identity::path(state).display()))
        .fix("the agent creates one at its first start; `tether enroll` (as the agent's user) makes one now"),
        Err(why) => crit("identity_damaged", "the agent identity is unusable".into())
            .evidence(why)
            .fix("systemctl stop tether; tether enroll (as the agent's user) creates a new one; systemctl start tether. The control plane then sees a new agent"),
    }
}

fn token(config: &Config) -> Option<Finding> {
    let up = config.upstream.as_ref()?;
    let src = &up.token.source;
    if !src.starts_with('/') {
        return Some(Finding::ok(
            Step::Local,
            format!("the token comes from {src}"),
        ));
    }
    let path = PathBuf::from(src);
    let Ok(m) = std::fs::metadata(&path) else {
        return Some(
            crit(
                "token_missing",
                format!("the token file {src} cannot be read"),
            )
            .fix("install it with `tether enroll --token-file FILE`"),
        );
    };
    let mode = m.mode() & 0o7777;
    let evidence = format!("mode {mode:04o}, owner uid {}, gid {}", m.uid(), m.gid());
    Some(if mode & 0o077 != 0 {
        warn(
            "token_permissions",
            format!("the token file {src} is readable by others"),
        )
        .evidence(evidence)
        .fix(format!("chmod 600 {src}"))
    } else {
        Finding::ok(Step::Local, format!("the token file {src} is private")).evidence(evidence)
    })
}

/// Our clock against the upstream's `Date` (1 s resolution, so a skew
/// under 2 s is noise).
fn clock(server_date: Option<(SystemTime, SystemTime)>) -> Finding {
    let Some((server, ours)) = server_date else {
        return Finding::ok(
            Step::Local,
            "clock not compared: no Date header from the upstream",
        );
    };
    let (skew, ahead) = match ours.duration_since(server) {
        Ok(d) => (d, true),
        Err(e) => (e.duration(), false),
    };
    let evidence = format!(
        "this host {} the upstream's Date by {}",
        if ahead { "is ahead of" } else { "is behind" },
        crate::config::duration::format_coarse(skew)
    );
    if skew > MAX_SKEW {
        warn("clock_skew", format!("the clock is {}s off", skew.as_secs()))
            .evidence(evidence)
            .fix("enable time sync (chrony or systemd-timesyncd); certificates and report times depend on the clock")
    } else {
        Finding::ok(Step::Local, "the clock agrees with the upstream's").evidence(evidence)
    }
}

/// Every certificate file the configuration names: CA files and
/// `cert_file` checks.
fn certificate_files(config: &Config, now: SystemTime) -> Vec<Finding> {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(ca) = config.upstream.as_ref().and_then(|u| u.ca_file.as_ref()) {
        paths.push(ca.path.clone());
    }
    for c in &config.checks {
        if let Some(ca) = c.probe.tls().and_then(|t| t.ca_file.as_ref()) {
            paths.push(ca.path.clone());
        }
        if let ProbeSpec::CertFile(s) = &c.probe {
            paths.push(s.path.clone());
        }
    }
    let mut unique: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    let paths = unique;
    let now = crate::os::clock::unix_secs(now);
    let mut out = Vec::new();
    for p in &paths {
        let shown = p.display();
        let certs = match crate::net::x509::read_pem_file(p) {
            Ok(c) => c,
            Err(e) => {
                out.push(
                    warn("cert_file_unreadable", format!("{shown} cannot be read")).evidence(e),
                );
                continue;
            }
        };
        let soonest = certs
            .iter()
            .filter_map(|c| crate::net::x509::parse(c).ok())
            .min_by_key(|i| i.not_after);
        let Some(i) = soonest else { continue };
        let days = crate::net::x509::whole_days(i.not_after - now);
        let evidence = format!(
            "{} ({}): soonest {} expires {}",
            shown,
            crate::format::text::count(certs.len() as u64, "certificate"),
            i.subject,
            crate::os::clock::rfc3339_unix(i.not_after)
        );
        out.push(if i.not_after <= now {
            crit(
                "cert_expired",
                format!("a certificate in {shown} has expired"),
            )
            .evidence(evidence)
            .fix("replace the certificate file")
        } else if days < CERT_WARN_DAYS {
            warn(
                "cert_expiring",
                format!("a certificate in {shown} expires in {days} days"),
            )
            .evidence(evidence)
            .fix("renew it before it expires")
        } else {
            Finding::ok(Step::Local, format!("{shown}: {days} days left")).evidence(evidence)
        });
    }
    out
}
