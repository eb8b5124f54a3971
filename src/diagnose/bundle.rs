//! `tether bundle`: one plain-text file for a support ticket, in sections:
//! the agent (name, id, version, OS release, kernel, uptimes), its status
//! since when and its health history, `tether doctor --json`, the
//! configuration with every secret redacted, the last 200 log lines, and
//! the spool and upstream figures. With a running agent the live parts come
//! from its local endpoint; without one, from the state directory and a
//! doctor run of the command's own.
//!
//! Redaction ([`redact_config`]) works on the configuration's text, so the
//! comments stay: every value of `headers` and `env` tables, any value of a
//! key named like a secret (`token`, `secret`, `password`, `credential`,
//! `api_key`; not `*_file`), the user and password of any URL, the values
//! of secret-looking query parameters (`?api_key=`, `token=`), and any
//! `command` argument that names a password, secret, token or auth, or
//! follows one that does. Last, the upstream token itself is replaced
//! wherever it appears in the whole bundle.

use std::fmt::Write;
use std::ops::Range;
use std::path::Path;

use crate::config::toml_lite::{self, Spanned, Table, Value};
use crate::config::Config;

pub const REDACTED: &str = "[redacted]";

/// The parts that came from a running agent; `None` when it is not running.
pub struct Live {
    pub status_table: String,
    pub doctor_json: String,
    pub logs: String,
    pub metrics: String,
}

/// Everything else, read by the command.
pub struct Local {
    pub history_table: String,
    pub doctor_json: String,
}

pub fn render(config: &Config, live: Option<&Live>, local: Option<&Local>, now: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# tether support bundle\ncreated {now} by tether {}\n",
        env!("CARGO_PKG_VERSION")
    );
    section(&mut out, "agent", &agent_facts(config, live.is_some()));
    match (live, local) {
        (Some(l), _) => {
            section(&mut out, "status and health history", &l.status_table);
            section(&mut out, "tether doctor --json", &l.doctor_json);
        }
        (None, Some(l)) => {
            section(
                &mut out,
                "status and health history",
                &format!(
                    "no agent answers on {}: this is the history file of {}\n\n{}",
                    config.agent.listen,
                    config.agent.state_dir.display(),
                    l.history_table
                ),
            );
            section(&mut out, "tether doctor --json", &l.doctor_json);
        }
        (None, None) => {}
    }
    section(
        &mut out,
        "configuration (secrets redacted)",
        &configuration(config),
    );
    section(
        &mut out,
        "last 200 log lines",
        &live.map_or_else(
            || {
                "the agent is not running; its log is in the journal: journalctl -u tether -n 200\n"
                    .to_string()
            },
            |l| l.logs.clone(),
        ),
    );
    let mut figures = spool_listing(&config.spool.dir);
    if let Some(l) = live {
        figures.push('\n');
        for line in l.metrics.lines().filter(|m| {
            !m.starts_with('#')
                && [
                    "tether_upstream",
                    "tether_remote_write",
                    "tether_otlp",
                    "tether_spool",
                    "process_",
                ]
                .iter()
                .any(|p| m.starts_with(p))
        }) {
            figures.push_str(line);
            figures.push('\n');
        }
    }
    section(&mut out, "spool and upstream", &figures);
    // The secrets themselves, wherever they might have come to stand.
    let rw = secret(config.remote_write.as_ref().and_then(|r| r.auth.as_ref()));
    let otlp = secret(config.otlp.as_ref().and_then(|o| o.auth.as_ref()));
    let secrets = config
        .upstream
        .as_ref()
        .map(|u| &u.token)
        .into_iter()
        .chain(rw)
        .chain(otlp);
    for t in secrets.map(|t| t.expose()).filter(|t| t.len() >= 4) {
        out = out.replace(t, "[redacted token]");
    }
    out
}

/// The secret of a receiver's credentials, if any.
fn secret(a: Option<&crate::config::RemoteAuth>) -> Option<&crate::config::Token> {
    match a? {
        crate::config::RemoteAuth::Bearer(t) => Some(t),
        crate::config::RemoteAuth::Basic { password, .. } => Some(password),
    }
}

fn section(out: &mut String, title: &str, body: &str) {
    let _ = write!(out, "== {title} ==\n{body}");
    if !body.ends_with('\n') {
        out.push('\n');
    }
    out.push('\n');
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable ({e})"))
}

fn agent_facts(config: &Config, running: bool) -> String {
    let id = match crate::uplink::identity::read(&config.agent.state_dir) {
        Ok(Some(i)) => i.id,
        Ok(None) => "none yet".into(),
        Err(e) => format!("unusable: {e}"),
    };
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .map_or("unknown".into(), |s| {
            crate::config::duration::format_coarse(std::time::Duration::from_secs_f64(s))
        });
    format!(
        "name: {}\nid: {id}\nversion: {}\nos release: {}\nkernel: {} {}\nhost uptime: {uptime}\nconfiguration: {}\nstate directory: {}\nlocal endpoint: {} ({})\n",
        config.agent.name,
        env!("CARGO_PKG_VERSION"),
        crate::agent::state::os_release(),
        read_trim("/proc/sys/kernel/ostype"),
        read_trim("/proc/sys/kernel/osrelease"),
        config.source,
        config.agent.state_dir.display(),
        config.agent.listen,
        if running {
            "the agent answers"
        } else {
            "no agent answers"
        }
    )
}

fn configuration(config: &Config) -> String {
    if config.source == crate::config::BUILTIN_SOURCE {
        return format!(
            "the built-in default configuration:\n\n{}",
            crate::config::DEFAULT_TOML
        );
    }
    match std::fs::read_to_string(&config.source) {
        Ok(text) => format!("{}:\n\n{}", config.source, redact_config(&text)),
        Err(e) => format!("{}: cannot be read again: {e}\n", config.source),
    }
}

/// The spool directory's files, sizes and acknowledgement mark.
fn spool_listing(dir: &Path) -> String {
    let mut out = format!("spool directory {}:\n", dir.display());
    let Ok(rd) = std::fs::read_dir(dir) else {
        out.push_str("  cannot be listed\n");
        return out;
    };
    let mut files: Vec<(String, u64)> = rd
        .flatten()
        .map(|e| {
            let size = e.metadata().map_or(0, |m| m.len());
            (e.file_name().to_string_lossy().into_owned(), size)
        })
        .collect();
    files.sort_unstable();
    let total: u64 = files.iter().map(|f| f.1).sum();
    for (name, size) in &files {
        let _ = writeln!(out, "  {name:<32} {size:>12} bytes");
    }
    let _ = writeln!(out, "  {} files, {total} bytes", files.len());
    if let Ok(acked) = std::fs::read_to_string(dir.join("acked")) {
        let _ = writeln!(out, "  acked: {}", acked.trim().replace('\n', " "));
    }
    out
}

/// The configuration text with every secret value replaced (module doc).
pub fn redact_config(text: &str) -> String {
    let Ok(root) = toml_lite::parse(text) else {
        return "(the file no longer parses; not shown, it may hold secrets)\n".into();
    };
    let mut cuts: Vec<(Range<usize>, String)> = Vec::new();
    walk(&root, text, &mut cuts);
    cuts.sort_unstable_by_key(|c| c.0.start);
    let mut out = text.to_string();
    let mut last = usize::MAX;
    for (r, with) in cuts.into_iter().rev() {
        if r.end <= last && r.end <= out.len() {
            out.replace_range(r.clone(), &with);
            last = r.start;
        }
    }
    out
}

fn secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    !k.ends_with("_file")
        && [
            "token",
            "secret",
            "password",
            "passwd",
            "credential",
            "api_key",
            "apikey",
        ]
        .iter()
        .any(|s| k.contains(s))
}

use crate::format::text::secret_word;

fn quoted(s: &str) -> String {
    let mut out = String::new();
    crate::format::json::escape_into(&mut out, s);
    out
}

fn walk(t: &Table, text: &str, cuts: &mut Vec<(Range<usize>, String)>) {
    for (k, v) in t.iter() {
        let key = k.get_ref().as_str();
        match key {
            "headers" | "env" => redact_all(v, cuts),
            "command" => {
                if let Value::Array(args) = v.get_ref() {
                    let mut after_secret = false;
                    for a in args {
                        let s = a.get_ref().as_str().unwrap_or("");
                        let secret = secret_word(s);
                        let flag = s.starts_with('-');
                        if after_secret || (secret && !flag) {
                            cuts.push((a.span(), quoted(REDACTED)));
                        } else if let (true, Some((name, _))) = (secret, s.split_once('=')) {
                            cuts.push((a.span(), quoted(&format!("{name}={REDACTED}"))));
                        }
                        after_secret = secret && flag && !s.contains('=');
                    }
                }
            }
            _ if secret_key(key) => redact_all(v, cuts),
            _ => scan(v, text, cuts),
        }
    }
}

/// Every string under `v`.
fn redact_all(v: &Spanned<Value>, cuts: &mut Vec<(Range<usize>, String)>) {
    match v.get_ref() {
        Value::String(_) => cuts.push((v.span(), quoted(REDACTED))),
        Value::Array(items) => items.iter().for_each(|i| redact_all(i, cuts)),
        Value::Table(t) => t.iter().for_each(|(_, i)| redact_all(i, cuts)),
        _ => {}
    }
}

/// URLs with a user or password, anywhere; tables recursively.
fn scan(v: &Spanned<Value>, text: &str, cuts: &mut Vec<(Range<usize>, String)>) {
    match v.get_ref() {
        Value::String(s) => {
            let red = crate::format::text::redact_query(
                &crate::diagnose::doctor::network::redact_userinfo(s),
            );
            if s.contains("://") && red != *s {
                cuts.push((v.span(), quoted(&red)));
            }
        }
        Value::Array(items) => items.iter().for_each(|i| scan(i, text, cuts)),
        Value::Table(t) => walk(t, text, cuts),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_comments_kept() {
        let text = r#"# keep this comment
[upstream]
url = "https://cp.example.com/"
token_file = "/etc/tether/token"

[[check]]
name = "api"
kind = "http"
url = "https://bob:hunter2@api.example.com/x"
headers = { Authorization = "Bearer abc.def", "X-Trace" = "1" }

[[check]]
name = "plugin"
kind = "exec"
command = ["/usr/lib/nagios/plugins/check_x", "--password", "p4ss", "-H", "host", "--token=t0k"]
env = { DB_PASSWORD = "s3cret" }
api_key = "k3y"
"#;
        let out = redact_config(text);
        for secret in ["hunter2", "abc.def", "p4ss", "t0k", "s3cret", "k3y"] {
            assert!(!out.contains(secret), "{secret} in:\n{out}");
        }
        for kept in [
            "# keep this comment",
            "/etc/tether/token",
            "https://[redacted]@api.example.com/x",
            "\"-H\", \"host\"",
            "\"--password\", \"[redacted]\"",
            "\"--token=[redacted]\"",
            "cp.example.com",
        ] {
            assert!(out.contains(kept), "{kept} missing in:\n{out}");
        }
        assert!(toml_lite::parse(&out).is_ok(), "{out}");
    }
}
