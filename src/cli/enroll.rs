//! `tether enroll`: a new identity on purpose, and optionally a new token.

use super::*;

/// `tether enroll`: a new identity, on purpose; optionally a new token.
pub fn command(c: &Config, token_file: Option<&std::path::Path>) -> i32 {
    // The identity is the running agent's: replacing it under its feet
    // would mix two identities in one spool. Held for this command's life.
    let dir = &c.agent.state_dir;
    let _lock = match crate::os::files::private_dir(dir).map(|()| crate::os::dirlock::take(dir)) {
        Ok(Err(e @ crate::os::dirlock::Refused::Held { .. })) => {
            eprintln_safe(&format!(
                "tether: {e}. Enroll with the agent stopped: systemctl stop tether; tether enroll; systemctl start tether"
            ));
            return 1;
        }
        Ok(l) => l.ok(),
        // Cannot even be made: writing the identity below says why.
        Err(_) => None,
    };
    if let Some(src) = token_file {
        let Some(up) = &c.upstream else {
            return usage_error(&format!(
                "--token-file needs an [upstream] section with token_file in {}",
                c.source
            ));
        };
        if up.token.source == "TETHER_TOKEN" {
            return usage_error("--token-file: the token comes from TETHER_TOKEN; set [upstream] token_file to install one");
        }
        let token = match config::read_token_file(&src.to_string_lossy()) {
            Ok(t) => t,
            Err(e) => return usage_error(&format!("--token-file: {e}")),
        };
        let dest = PathBuf::from(&up.token.source);
        let write = || -> std::io::Result<()> {
            let tmp = dest.with_extension("tmp");
            crate::os::files::write_private(&tmp, format!("{}\n", token.expose()).as_bytes())?;
            std::fs::rename(&tmp, &dest)
        };
        if let Err(e) = write() {
            eprintln_safe(&format!(
                "tether: cannot install the token at {}: {e}",
                dest.display()
            ));
            return 1;
        }
        print(&format!("token installed at {}\n", dest.display()));
    }
    match crate::uplink::identity::write(&c.agent.state_dir, true) {
        Ok(i) => {
            print(&format!(
                "new agent identity {} in {}; start the agent (systemctl start tether)\n",
                i.id,
                crate::uplink::identity::path(&c.agent.state_dir).display()
            ));
            0
        }
        Err(e) => {
            eprintln_safe(&format!(
                "tether: cannot write {}: {e} (run as root or as the agent's user)",
                crate::uplink::identity::path(&c.agent.state_dir).display()
            ));
            1
        }
    }
}
