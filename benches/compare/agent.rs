//! tether as the bench runs it: the real binary (`TETHER_BIN`, else the
//! static musl release build, built first), a generated configuration, its
//! endpoint on a known loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::http;
use crate::sys;

pub const MUSL: &str = "target/x86_64-unknown-linux-musl/release/tether";

/// The binary to measure: `TETHER_BIN`, else the shipped static build
/// (`cargo build --release --target x86_64-unknown-linux-musl`, run here).
pub fn binary() -> PathBuf {
    if let Ok(b) = std::env::var("TETHER_BIN") {
        return PathBuf::from(b);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-linux-musl",
        ])
        .current_dir(root)
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "cargo build --release --target x86_64-unknown-linux-musl failed (rustup target add x86_64-unknown-linux-musl; apt-get install musl-tools), or set TETHER_BIN"
    );
    root.join(MUSL)
}

/// `checks` of one kind at 1 s: `(key, value)` per check, e.g.
/// `("target", "127.0.0.1:4000")` or `("url", "http://…")`.
pub fn checks(kind: &str, key: &str, values: impl Iterator<Item = String>) -> String {
    let mut out = String::new();
    for (i, v) in values.enumerate() {
        out.push_str(&format!(
            "\n[[check]]\nname = \"c{i}\"\nkind = \"{kind}\"\n{key} = \"{v}\"\n"
        ));
    }
    out
}

pub struct Agent {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
    /// Just before the exec.
    pub spawned: Instant,
    dir: PathBuf,
}

impl Agent {
    /// Starts `bin run` with `checks` at a 1 s interval under `dir`; with
    /// `cpu`, pinned to that CPU (`taskset`, both threads).
    pub fn start(bin: &Path, dir: &Path, checks: &str, cpu: Option<usize>) -> Agent {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let addr = sys::free_port();
        let config = format!(
            "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\nlisten = \"{addr}\"\nlog_level = \"warn\"\nstate_dir = \"{}\"\n{checks}",
            dir.join("state").display()
        );
        let path = dir.join("tether.toml");
        std::fs::write(&path, config).unwrap();
        let mut cmd = match cpu {
            Some(c) => {
                let mut t = Command::new("taskset");
                t.args(["-c", &c.to_string()]).arg(bin);
                t
            }
            None => Command::new(bin),
        };
        let spawned = Instant::now();
        let child = cmd
            .args(["run", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        Agent {
            child,
            addr,
            pid,
            spawned,
            dir: dir.to_path_buf(),
        }
    }

    /// `/metrics`, or an empty string.
    pub fn metrics(&self) -> String {
        http::get(self.addr, "/metrics").map_or(String::new(), |r| r.1)
    }

    /// Completed probes: the sum of `tether_check_runs_total`.
    pub fn runs(&self) -> u64 {
        http::metric_sum(&self.metrics(), "tether_check_runs_total{") as u64
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
