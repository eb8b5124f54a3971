//! A minimal Debian root for the package tests: built once with debootstrap
//! (minbase, with systemd and the packages' dependencies) under
//! `target/debian-root`, and copied afresh for each test that installs into
//! one, so no test sees what another (or an earlier run) left there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::shipped::{root, run};

/// Written into the pristine root once debootstrap has finished, holding
/// the package list (a root made with another list is made again).
const DONE: &str = ".tether-pristine";
/// systemd and the packages' dependencies (procps has the unit's
/// /bin/kill), and rpm to install the .rpm inside the booted root.
const INCLUDE: &str = "--include=systemd,systemd-sysv,ca-certificates,procps,rpm";

fn target() -> PathBuf {
    root().join("target")
}

/// A fresh copy of the pristine root at `target/NAME`.
pub fn fresh(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let pristine = target().join("debian-root");
    {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        let done = std::fs::read_to_string(pristine.join(DONE)).unwrap_or_default();
        if done != INCLUDE {
            let _ = std::fs::remove_dir_all(&pristine);
            let (suite, mirror) = host_suite_and_mirror();
            run(Command::new("debootstrap")
                .args(["--variant=minbase", INCLUDE, &suite])
                .arg(&pristine)
                .arg(&mirror));
            std::fs::write(pristine.join(DONE), INCLUDE).unwrap();
        }
    }
    let copy = target().join(name);
    let _ = std::fs::remove_dir_all(&copy);
    run(Command::new("cp").arg("-a").arg(&pristine).arg(&copy));
    copy
}

/// This machine's Debian suite and the mirror its apt uses.
fn host_suite_and_mirror() -> (String, String) {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let suite = os
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .unwrap_or("bookworm")
        .trim_matches('"')
        .to_string();
    let sources =
        std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    let mirror = sources
        .lines()
        .find_map(|l| l.strip_prefix("URIs:"))
        .map_or("http://deb.debian.org/debian", str::trim)
        .to_string();
    (suite, mirror)
}

/// Boots `dir` with systemd-nspawn (its own network namespace, no machine
/// registration: the host need not run systemd) with a oneshot unit that
/// runs `script` (sh) once the system is up, its output going to a report,
/// then powers off. Returns the report.
pub fn boot_with_probe(dir: &Path, script: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let report = dir.join("root/report.txt");
    let _ = std::fs::remove_file(&report);
    let probe = dir.join("root/probe.sh");
    std::fs::write(
        &probe,
        format!(
            "#!/bin/sh\nexec > /root/report.txt 2>&1\n{script}\necho \"== end\"\nsystemctl --no-block poweroff\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("etc/systemd/system/tether-probe.service"),
        "[Unit]\nAfter=multi-user.target\n\n[Service]\nType=oneshot\nExecStart=/root/probe.sh\n\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let wants = dir.join("etc/systemd/system/multi-user.target.wants/tether-probe.service");
    let _ = std::fs::remove_file(&wants);
    std::os::unix::fs::symlink("/etc/systemd/system/tether-probe.service", &wants).unwrap();
    // The default port held on the host (if nothing else holds it): the
    // container's agent must not care.
    let _hold = std::net::TcpListener::bind(("127.0.0.1", tether::config::DEFAULT_PORT));
    let boot = Command::new("timeout")
        .args([
            "300",
            "systemd-nspawn",
            "--register=no",
            "--keep-unit",
            "--private-network",
            "--quiet",
            "-b",
            "-D",
        ])
        .arg(dir)
        .output()
        .expect("systemd-nspawn (systemd-container; bash .ci/run installs it)");
    let text = std::fs::read_to_string(&report).unwrap_or_else(|_| {
        panic!(
            "no report from the container ({}):\n{}{}",
            boot.status,
            String::from_utf8_lossy(&boot.stdout),
            String::from_utf8_lossy(&boot.stderr)
        )
    });
    assert!(text.contains("== end"), "the probe did not finish:\n{text}");
    text
}

/// The part of a report after `== NAME` up to the next `== `.
pub fn section(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no {name}:\n{text}"));
    let rest = &text[start + name.len() + 4..];
    rest[..rest.find("\n== ").unwrap_or(rest.len())].to_string()
}

/// `KEY=value` from `systemctl show` output in a section.
pub fn field(section: &str, key: &str) -> String {
    section
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_default()
        .to_string()
}
