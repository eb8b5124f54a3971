//! `tether disable` and `tether enable`: the maintenance flag, written where
//! the running agent reads it every turn.

use super::{eprintln_safe, print, usage_error};
use crate::agent::maintenance as flag;
use crate::config::Config;

pub(super) fn switch(c: &Config, r: std::io::Result<()>, done: &str) -> i32 {
    match r {
        Ok(()) => {
            print(&format!(
                "tether {done} ({})\n",
                flag::flag_path(&c.agent.state_dir).display()
            ));
            0
        }
        Err(e) => {
            eprintln_safe(&format!(
                "tether: cannot change {}: {e} (run as root or as the agent's user)",
                flag::flag_path(&c.agent.state_dir).display()
            ));
            1
        }
    }
}

/// `tether disable [--reason TEXT] [--for DURATION]`.
pub fn disable(c: &Config, reason: Option<&str>, for_: Option<&str>) -> i32 {
    let reason = reason.unwrap_or("no reason given");
    let for_ = match for_.map(crate::config::duration::parse) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => return usage_error(&format!("--for: {e}")),
    };
    let r = flag::disable(&c.agent.state_dir, reason, for_);
    let done = match &r {
        Ok(f) => format!(
            "disabled: probes keep running, nothing is alarmed; {}",
            f.describe()
        ),
        Err(_) => String::new(),
    };
    switch(c, r.map(|_| ()), &done)
}

/// `tether enable`.
pub fn enable(c: &Config) -> i32 {
    switch(c, flag::enable(&c.agent.state_dir), "enabled")
}
