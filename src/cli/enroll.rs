//! `tether enroll`: a new identity on purpose, and optionally a new token.

use super::*;

/// `tether enroll`: a new identity, on purpose; optionally a new token.
pub fn command(c: &Config, token_file: Option<&std::path::Path>) -> i32 {
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
            crate::uplink::identity::write_private(
                &tmp,
                format!("{}\n", token.expose()).as_bytes(),
            )?;
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
                "new agent identity {} in {}; reload (systemctl reload tether) or restart the agent\n",
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
