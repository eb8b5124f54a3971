//! Shared by the benches: a typical record and the median.

#![allow(dead_code)]

use tether::record::{Body, Rec};

/// A typical result record, ~230 bytes.
pub fn rec(seq: u64) -> Rec {
    let mut b = Body::new(1_795_290_810_000 + seq, "result");
    b.json()
        .str(Some("check"), "resource-db-primary")
        .str(Some("kind"), "tcp")
        .str(Some("role"), "resource")
        .str(Some("status"), "ok")
        .opt_str(Some("reason"), None)
        .str(Some("message"), "connected to 10.20.30.40:5432 in 0.4ms")
        .float(Some("duration_ms"), 0.412)
        .str(Some("peer"), "10.20.30.40:5432");
    b.finish(seq, None)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The `p` quantile (0..=1) of `v`, nearest rank.
pub fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// The binary to measure: `TETHER_BIN` (e.g. the static musl build), else
/// this build's.
pub fn agent_bin() -> String {
    std::env::var("TETHER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tether").to_string())
}

/// `tether run -c config`, output discarded.
pub fn spawn_agent(bin: &str, config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(bin)
        .args(["run", "-c"])
        .arg(config)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}
