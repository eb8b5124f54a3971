//! Helpers of the tests of what is shipped (the binary, the packages, the
//! release): the repository's root, commands that must succeed, cargo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// 1.75 MiB.
pub const SIZE_GOAL: u64 = 1_835_008;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// These tests install into roots and chroot: root only (CI runs as root).
pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test installs packages, chroots or boots a container: run it as root (CI does)"
    );
}

/// Runs `cmd`, which must succeed; its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (bash .ci/run installs it)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cargo running the tests, in the repository.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// The shipped x86_64 binary, built once per test run (as the README says).
pub fn static_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        run(cargo().args(["build", "--release", "--target", TARGET]));
        root().join("target").join(TARGET).join("release/tether")
    })
}

/// The SHA-256 of a file, as hex.
pub fn sha256(path: &Path) -> String {
    let out = stdout(&run(Command::new("sha256sum").arg(path)));
    out.split_whitespace().next().unwrap().to_string()
}
