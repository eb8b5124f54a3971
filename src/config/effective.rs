//! The configuration as the agent runs it once the main file, its drop-ins,
//! the defaults, the variables and the control plane's checks are merged,
//! each check with where it came from: `tether config effective [--json]`,
//! and (hashed) what the agent reports it runs.

use super::duration::format as dur;
use super::Config;
use crate::format::json::Json;
use crate::format::text;

/// TOML-like text to read (not to load: `target` stands for each kind's
/// own keys).
pub fn to_text(c: &Config) -> String {
    let a = &c.agent;
    let mut out = format!(
        "# effective configuration of {}: {}\n# (to read, not to load: `target` stands for each kind's own keys)\n[agent]\nname = {}\ninterval = \"{}\"\ntimeout = \"{}\"\nfall = {}\nrise = {}\nlisten = \"{}\"\nstate_dir = {}\n",
        c.source,
        text::count(c.checks.len() as u64, "check"),
        q(&a.name),
        dur(a.interval),
        dur(a.timeout),
        a.fall,
        a.rise,
        a.listen,
        q(&a.state_dir.display().to_string()),
    );
    out += &labels_line(&a.labels);
    if let Some(u) = &c.upstream {
        out += &format!("\n[upstream]\nurl = {}\n", q(&u.url.to_string()));
    }
    if let Some(r) = &c.remote_write {
        out += &format!("\n[remote_write]\nurl = {}\n", q(&r.url.to_string()));
        out += &labels_line(&r.labels);
    }
    if let Some(o) = &c.otlp {
        out += &format!("\n[otlp]\nurl = {}\n", q(&o.url.to_string()));
        if !o.resource.is_empty() {
            out += &labels_line(&o.resource).replacen("labels", "resource", 1);
        }
    }
    for (k, at) in c.checks.iter().zip(&c.check_at) {
        out += &format!(
            "\n# from {at}\n[[check]]\nname = {}\nkind = \"{}\"\nrole = \"{}\"\ntarget = {}\ninterval = \"{}\"\ntimeout = \"{}\"\nfall = {}\nrise = {}\n",
            q(&k.name),
            k.probe.kind(),
            k.role.as_str(),
            q(&k.probe.target()),
            dur(k.interval),
            dur(k.timeout),
            k.fall,
            k.rise,
        );
        out += &labels_line(&k.labels);
    }
    out
}

/// A TOML basic string (JSON's escapes are TOML's; DEL too).
fn q(s: &str) -> String {
    let mut out = String::new();
    crate::format::json::escape_into(&mut out, s);
    out.replace('\u{7f}', "\\u007f")
}

fn labels_line(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let l: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let bare = k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if bare {
                format!("{k} = {}", q(v))
            } else {
                format!("{} = {}", q(k), q(v))
            }
        })
        .collect();
    format!("labels = {{ {} }}\n", l.join(", "))
}

/// The same as one JSON object.
pub fn to_json(c: &Config) -> String {
    let a = &c.agent;
    let mut j = Json::new();
    j.begin_object(None)
        .str(Some("source"), &c.source)
        .begin_object(Some("agent"))
        .str(Some("name"), &a.name)
        .str(Some("interval"), &dur(a.interval))
        .str(Some("timeout"), &dur(a.timeout))
        .uint(Some("fall"), u64::from(a.fall))
        .uint(Some("rise"), u64::from(a.rise))
        .str(Some("listen"), &a.listen.to_string())
        .str(Some("state_dir"), &a.state_dir.display().to_string());
    j.string_map(Some("labels"), &a.labels).end_object();
    j.opt_str(
        Some("upstream"),
        c.upstream.as_ref().map(|u| u.url.to_string()).as_deref(),
    )
    .opt_str(
        Some("remote_write"),
        c.remote_write
            .as_ref()
            .map(|r| r.url.to_string())
            .as_deref(),
    )
    .opt_str(
        Some("otlp"),
        c.otlp.as_ref().map(|o| o.url.to_string()).as_deref(),
    )
    .begin_array(Some("checks"));
    for (k, at) in c.checks.iter().zip(&c.check_at) {
        j.begin_object(None)
            .str(Some("name"), &k.name)
            .str(Some("kind"), k.probe.kind())
            .str(Some("role"), k.role.as_str())
            .str(Some("target"), &k.probe.target())
            .str(Some("interval"), &dur(k.interval))
            .str(Some("timeout"), &dur(k.timeout))
            .uint(Some("fall"), u64::from(k.fall))
            .uint(Some("rise"), u64::from(k.rise))
            .string_map(Some("labels"), &k.labels)
            .str(Some("from"), at)
            .end_object();
    }
    j.end_array().end_object();
    let mut s = j.finish();
    s.push('\n');
    s
}

/// A short hash of the effective configuration (FNV-1a 64 of its JSON, in
/// hex): equal hashes, the same checks with the same settings.
pub fn hash(c: &Config) -> String {
    format!("{:016x}", text::fnv1a64(to_json(c).as_bytes()))
}
