//! Startup: from exec to the endpoint answering `/health`, and to `/ready`
//! (every check has completed its first run) with 100 TCP checks at 1 s.
//! The first round is spread over the interval by design (docs/operations.md, "Local
//! endpoint", `/ready`), so `/ready` includes most of one interval.

use std::path::Path;
use std::time::Duration;

use crate::agent::{self, Agent};
use crate::http;
use crate::sys;
use crate::targets::Targets;

pub struct Figures {
    pub health_ms: f64,
    pub ready_ms: f64,
}

pub fn run(bin: &Path, dir: &Path, targets: &Targets) -> Figures {
    let addrs = targets.addrs.iter().take(100).map(|a| a.to_string());
    let checks = agent::checks("tcp", "target", addrs);
    let a = Agent::start(bin, dir, &checks, None);
    let t = a.spawned;
    let up = |path: &'static str| {
        sys::wait_for(Duration::from_secs(30), Duration::from_millis(1), || {
            http::get(a.addr, path).filter(|r| r.0 == 200)
        })
        .map(|_| t.elapsed().as_secs_f64() * 1e3)
        .unwrap_or(f64::NAN)
    };
    let health_ms = up("/health");
    let ready_ms = up("/ready");
    Figures {
        health_ms,
        ready_ms,
    }
}
