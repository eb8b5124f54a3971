//! `tether doctor`: asks the running agent, or runs the runbook itself.

use super::*;
use ask::{fetch, Fetch};

/// `tether doctor`: asks the running agent, or runs the runbook itself.
pub fn command(config: Config, json: bool) -> i32 {
    let path = if json {
        "/doctor?format=json"
    } else {
        "/doctor"
    };
    let limit = crate::serve::endpoint::DOCTOR_DEADLINE + Duration::from_secs(5);
    match fetch(&config, path, limit) {
        Ok(r) => {
            print(&String::from_utf8_lossy(&r.body));
            return r
                .header("tether-verdict")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(3);
        }
        Err(Fetch::Failed(e)) => {
            eprintln_safe(&format!("tether: {e}"));
            return 3;
        }
        Err(Fetch::NotRunning(_)) => {}
    }
    let d = doctor_here(config);
    print(&if json { d.to_json() } else { d.to_text() });
    d.exit_code()
}

/// The runbook in this process: every check once, the history file read.
pub(super) fn doctor_here(config: Config) -> crate::diagnose::doctor::Diagnosis {
    logger::init(log::LevelFilter::Error);
    crate::net::tls::load_system_roots();
    let state_dir = config.agent.state_dir.clone();
    let state = one_shot(&config);
    let ex = executor();
    // Boxed, as `run` is: no large future on the main thread's stack.
    async_io::block_on(ex.run(Box::pin(async {
        run_all_once(ex, &state).await;
        // What the agent recorded, not what this run just saw.
        *state.history.borrow_mut() = crate::agent::history::History::read_only(&state_dir);
        crate::diagnose::doctor::diagnose(&state, false).await
    })))
}
