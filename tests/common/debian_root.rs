//! A minimal Debian root for the package tests: built once with debootstrap
//! (minbase, with systemd and the packages' dependencies) under
//! `target/debian-root`, and copied afresh for each test that installs into
//! one, so no test sees what another (or an earlier run) left there.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Written into the pristine root once debootstrap has finished.
const DONE: &str = ".tether-pristine";

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// A fresh copy of the pristine root at `target/NAME`.
pub fn fresh(name: &str) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let pristine = target().join("debian-root");
    {
        let _one = BUILD.lock().unwrap_or_else(|e| e.into_inner());
        if !pristine.join(DONE).exists() {
            let _ = std::fs::remove_dir_all(&pristine);
            let (suite, mirror) = host_suite_and_mirror();
            let out = Command::new("debootstrap")
                .args([
                    "--variant=minbase",
                    "--include=systemd,systemd-sysv,ca-certificates,procps",
                    &suite,
                ])
                .arg(&pristine)
                .arg(&mirror)
                .output()
                .expect("debootstrap (bash .ci/run installs it)");
            assert!(
                out.status.success(),
                "debootstrap failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(pristine.join(DONE), "").unwrap();
        }
    }
    let copy = target().join(name);
    let _ = std::fs::remove_dir_all(&copy);
    let out = Command::new("cp")
        .arg("-a")
        .arg(&pristine)
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp -a {pristine:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
