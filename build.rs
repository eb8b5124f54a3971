//! What `tether --version` says beside the version: the target triple this
//! binary was built for, and the commit it was built from (`TETHER_COMMIT`
//! when set, as a release build from a source archive would; otherwise
//! `git rev-parse`; otherwise `unknown`).

use std::path::Path;
use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=TETHER_TARGET={target}");
    let commit = std::env::var("TETHER_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && !id.is_empty()).then_some(id)
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=TETHER_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=TETHER_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    // A new commit moves a ref; only paths that exist are watched (a
    // missing one would run this again at every build).
    for p in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
