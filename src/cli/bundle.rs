//! `tether bundle`: a support file from the running agent, or from what
//! this host has when it is not running.

use super::*;
use ask::{fetch, Fetch};

/// `tether bundle`: a support file from the running agent, or from what
/// this host has when it is not running.
pub fn command(config: Config, output: Option<&std::path::Path>) -> i32 {
    use crate::diagnose::bundle::{render, Live, Local};
    let now = crate::os::clock::rfc3339(std::time::SystemTime::now());
    let short = Duration::from_secs(10);
    let live = fetch(&config, "/status?format=table&history=1", short).map(|status| {
        let doctor = fetch(
            &config,
            "/doctor?format=json",
            crate::serve::endpoint::DOCTOR_DEADLINE + Duration::from_secs(5),
        );
        let body = |r: crate::net::http1::Response| String::from_utf8_lossy(&r.body).into_owned();
        let or_why = |r: Result<crate::net::http1::Response, Fetch>| match r {
            Ok(r) => body(r),
            Err(Fetch::NotRunning(e) | Fetch::Failed(e)) => format!("not available: {e}\n"),
        };
        Live {
            status_table: body(status),
            doctor_json: or_why(doctor),
            logs: or_why(fetch(&config, "/logs?n=200", short)),
            metrics: or_why(fetch(&config, "/metrics", short)),
        }
    });
    let text = match &live {
        Ok(l) => render(&config, Some(l), None, &now),
        Err(_) => {
            let history = crate::agent::history::History::read_only(&config.agent.state_dir);
            let history_table = crate::agent::history::to_table(history.entries());
            let d = super::doctor::doctor_here(config.clone());
            let local = Local {
                history_table,
                doctor_json: d.to_json(),
            };
            render(&config, None, Some(&local), &now)
        }
    };
    let stamp: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let name: String = config
        .agent
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = output.map_or_else(
        || PathBuf::from(format!("tether-bundle-{name}-{stamp}.txt")),
        PathBuf::from,
    );
    if path.as_os_str() == "-" {
        print(&text);
        return 0;
    }
    match crate::os::files::write_private(&path, text.as_bytes()) {
        Ok(()) => {
            print(&format!(
                "support bundle written to {} ({} bytes{})\n",
                path.display(),
                text.len(),
                match &live {
                    Ok(_) => String::new(),
                    Err(Fetch::NotRunning(_)) =>
                        "; no agent was running, so it holds no live log".into(),
                    Err(Fetch::Failed(e)) =>
                        format!("; the agent could not be asked ({e}), so it holds no live log"),
                }
            ));
            0
        }
        Err(e) => {
            eprintln_safe(&format!("tether: cannot write {}: {e}", path.display()));
            1
        }
    }
}
