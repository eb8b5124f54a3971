//! `tether status`: the running agent's status table, with the exit code of
//! its severity.

use super::*;
use ask::{fetch, Fetch};

/// The configuration does not validate: said, and exit 3 (unknown: the
/// severity is the agent's, and this cannot tell which agent is meant),
/// after asking the agent at the `listen` the file names if that part
/// reads, else at the default, saying which.
pub fn with_broken_config(
    e: &config::ConfigError,
    path: Option<&std::path::Path>,
    json: bool,
    history: bool,
) -> i32 {
    eprintln_safe(&e.to_string());
    let path = path.unwrap_or(std::path::Path::new(config::DEFAULT_PATH));
    let (c, from_file) = config::agent_of_broken(path);
    eprintln_safe(&format!(
        "tether: the configuration is invalid; asking the agent at {} ({})",
        c.agent.listen,
        if from_file {
            "its [agent] listen"
        } else {
            "the default listen: the file's is unreadable"
        }
    ));
    command(&c, json, history);
    3
}

pub fn command(config: &Config, json: bool, history: bool) -> i32 {
    let mut path = match (json, history) {
        (true, false) => "/status",
        (true, true) => "/status?history=1",
        (false, false) => "/status?format=table",
        (false, true) => "/status?format=table&history=1",
    }
    .to_string();
    if let Some(w) = terminal_width().filter(|_| !json) {
        path.push_str(&format!("&width={w}"));
    }
    match fetch(config, &path, Duration::from_secs(5)) {
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
