//! Checks from the control plane: a TOML document served at
//! `<upstream url>/v1/config`, validated like a local file (the same walker
//! and messages, the source named `remote <revision>`) and added to the
//! local configuration.
//!
//! What the control plane may change is limited (as OpAMP leaves the agent's
//! own settings to the agent): `[[check]]` tables, and the `[agent]`
//! `interval` and `timeout` its checks default to. Anything else (`[upstream]`,
//! `[spool]`, `[remote_write]`, `[otlp]`, `listen`, `state_dir`, `on_change`, tokens) is
//! refused with the whole document. `exec` checks run commands as the agent's
//! user: refused unless the local `[agent]` says `remote_exec = true`, and then
//! only for a program under `remote_exec_dirs`. A remote check whose name a
//! local one holds is left out: the local one runs, and the clash is reported.
//! Variables are not expanded in a remote document: the agent's environment
//! is not the control plane's to read.

use std::path::{Component, Path};

use super::walk::walk_remote;
use super::{toml_doc, Config, ConfigError, ProbeSpec};

/// The merged configuration, and the clashes (one sentence each).
pub fn merge(
    local: &Config,
    revision: &str,
    text: &str,
) -> Result<(Config, Vec<String>), ConfigError> {
    let source = format!("remote {revision}");
    let doc = toml_doc(text, &source)?;
    let (checks, at) = walk_remote(&doc, text, &source, &local.agent).map_err(ConfigError)?;
    let mut errors = Vec::new();
    let mut out = local.clone();
    let mut clashes = Vec::new();
    for (c, at) in checks.into_iter().zip(at) {
        if let ProbeSpec::Exec(e) = &c.probe {
            if let Some(why) = exec_refused(local, Path::new(&e.command[0])) {
                errors.push(format!("{at}: check \"{}\": {why}", c.name));
                continue;
            }
        }
        // The document's own names are unique (the walker refuses a name
        // twice), so a name already in `out` is a local one.
        let name = c.name.clone();
        if let Err(first) = out.add_check(c, at.clone()) {
            clashes.push(format!(
                "{at}: check \"{name}\" is defined locally ({first}): the local one runs"
            ));
        }
    }
    if errors.is_empty() {
        Ok((out, clashes))
    } else {
        Err(ConfigError(errors))
    }
}

/// Why an `exec` check from the control plane may not run `program`.
fn exec_refused(local: &Config, program: &Path) -> Option<String> {
    let a = &local.agent;
    if !a.remote_exec {
        return Some(format!(
            "exec checks from the control plane are refused: they run commands as the agent's user (allow them with remote_exec = true in [agent] of {})",
            local.source
        ));
    }
    let plain = program
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if plain && a.remote_exec_dirs.iter().any(|d| program.starts_with(d)) {
        return None;
    }
    let dirs: Vec<String> = a
        .remote_exec_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    Some(format!(
        "{} is not under remote_exec_dirs ({})",
        program.display(),
        dirs.join(", ")
    ))
}

/// A revision (an `ETag` without its quotes) the agent keeps and reports:
/// 1 to 128 printable ASCII characters, no quotes or spaces.
pub fn revision_ok(r: &str) -> bool {
    (1..=128).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(extra: &str) -> Config {
        super::super::parse(
            &format!("[agent]\nname = \"a\"\n{extra}\n\n[[check]]\nname = \"db\"\nkind = \"file\"\npath = \"/\"\n"),
            "local.toml",
        )
        .unwrap()
    }

    fn refused(local: &Config, doc: &str) -> String {
        merge(local, "r1", doc).unwrap_err().to_string()
    }

    #[test]
    fn only_checks_and_their_defaults_may_come_from_the_control_plane() {
        let l = local("");
        for (doc, said) in [
            (
                "[upstream]\nurl = \"https://x/\"\n",
                "may not set `upstream`",
            ),
            ("[spool]\nmax_bytes = 1\n", "may not set `spool`"),
            (
                "[remote_write]\nurl = \"https://x/\"\n",
                "may not set `remote_write`",
            ),
            ("[otlp]\nurl = \"https://x/\"\n", "may not set `otlp`"),
            (
                "[agent]\nlisten = \"0.0.0.0:1\"\n",
                "may not set [agent] listen",
            ),
            (
                "[agent]\nstate_dir = \"/tmp\"\n",
                "may not set [agent] state_dir",
            ),
            (
                "[agent]\non_change = [\"/bin/sh\"]\n",
                "may not set [agent] on_change",
            ),
            (
                "[agent]\nremote_exec = true\n",
                "may not set [agent] remote_exec",
            ),
            (
                "[agent]\nlabels = { a = \"b\" }\n",
                "may not set [agent] labels",
            ),
        ] {
            let e = refused(&l, doc);
            assert!(e.starts_with("remote r1:"), "{doc}: {e}");
            assert!(e.contains(said), "{doc}: {e}");
        }
    }

    #[test]
    fn exec_checks_need_remote_exec_and_a_program_under_its_dirs() {
        let exec =
            |p: &str| format!("[[check]]\nname = \"x\"\nkind = \"exec\"\ncommand = [\"{p}\"]\n");
        let e = refused(&local(""), &exec("/usr/lib/nagios/plugins/check_disk"));
        assert!(
            e.contains("exec checks from the control plane are refused"),
            "{e}"
        );
        let l = local("remote_exec = true");
        assert!(merge(&l, "r1", &exec("/usr/lib/nagios/plugins/check_disk")).is_ok());
        for p in [
            "/bin/sh",
            "/usr/lib/nagios/plugins/../../../bin/sh",
            "/usr/lib/nagios/plugins-evil/x",
        ] {
            let e = refused(&l, &exec(p));
            assert!(
                e.contains("is not under remote_exec_dirs (/usr/lib/nagios/plugins)"),
                "{p}: {e}"
            );
        }
        let l = local("remote_exec = true\nremote_exec_dirs = [\"/opt/checks\"]");
        assert!(merge(&l, "r1", &exec("/opt/checks/probe")).is_ok());
    }

    #[test]
    fn the_documents_defaults_apply_to_its_checks_and_a_local_name_wins() {
        let doc = "[agent]\ninterval = \"2m\"\ntimeout = \"7s\"\n\n[[check]]\nname = \"web\"\nkind = \"file\"\npath = \"/\"\n\n[[check]]\nname = \"db\"\nkind = \"file\"\npath = \"/tmp\"\n";
        let (c, clashes) = merge(&local(""), "r9", doc).unwrap();
        let web = c.checks.iter().find(|k| k.name == "web").unwrap();
        assert_eq!((web.interval.as_secs(), web.timeout.as_secs()), (120, 7));
        assert_eq!(c.check_at.last().unwrap(), "remote r9:5");
        // The local db runs; the remote one is named as a clash.
        assert_eq!(c.checks.iter().filter(|k| k.name == "db").count(), 1);
        assert_eq!(c.checks[0].name, "db");
        assert_eq!(clashes.len(), 1);
        assert!(
            clashes[0].starts_with("remote r9:10: check \"db\" is defined locally (local.toml:"),
            "{clashes:?}"
        );
        // Variables are not the control plane's to read.
        let (c, _) = merge(
            &local(""),
            "r9",
            "[[check]]\nname = \"v\"\nkind = \"file\"\npath = \"/${HOME}\"\n",
        )
        .unwrap();
        assert!(c.checks.iter().any(|k| k.probe.target() == "/${HOME}"));
    }
}
