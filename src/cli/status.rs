//! `tether status`: the running agent's status table, with the exit code of
//! its severity.

use super::*;
use ask::{fetch, Fetch};

pub fn command(config: &Config, json: bool, history: bool) -> i32 {
    let path = match (json, history) {
        (true, false) => "/status",
        (true, true) => "/status?history=1",
        (false, false) => "/status?format=table",
        (false, true) => "/status?format=table&history=1",
    };
    match fetch(config, path, Duration::from_secs(5)) {
        Ok(r) => {
            print(&String::from_utf8_lossy(&r.body));
            // Like `check` and `doctor`: 0 healthy, 1 unhealthy, 2 critical.
            match r.header("tether-severity").map(str::trim) {
                Some("healthy") => 0,
                Some("unhealthy") => 1,
                Some("critical") => 2,
                _ => 3,
            }
        }
        Err(Fetch::NotRunning(e)) => {
            eprintln_safe(&format!(
                "tether: {e}; is `tether run` running with this configuration?"
            ));
            3
        }
        Err(Fetch::Failed(e)) => {
            eprintln_safe(&format!("tether: {e}"));
            3
        }
    }
}
