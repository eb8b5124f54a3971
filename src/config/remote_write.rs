//! The `[remote_write]` section: where samples are pushed, how the request
//! authenticates, and the labels added to every series.

use super::walk::{header_ok, Scope, Walker};
use super::*;

pub(super) const REMOTE_WRITE_KEYS: &[&str] = &[
    "url",
    "allow_plaintext",
    "bearer_token_file",
    "basic_auth_user",
    "basic_auth_password_file",
    "ca_file",
    "headers",
    "timeout",
    "flush_interval",
    "batch_max_samples",
    "labels",
];

/// Headers the protocol or the connection sets: a config may not override
/// them (a wrong `Content-Encoding` would make every request garbage).
const PROTOCOL_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "user-agent",
    "x-prometheus-remote-write-version",
    "authorization",
];

/// Label names tether's own series use: `[remote_write] labels` may not
/// replace them.
pub const RESERVED_LABELS: &[&str] = &[
    "agent",
    "check",
    "kind",
    "role",
    "status",
    "severity",
    "version",
    "os_release",
    "agent_id",
];

/// Prometheus's label-name rule, and not one of the `__` names it reserves.
pub fn label_name_ok(name: &str) -> bool {
    let mut b = name.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && !name.starts_with("__")
}

impl Walker<'_> {
    pub(super) fn remote_write(&mut self, s: &Scope, span: Range<usize>) -> Option<RemoteWrite> {
        self.unknown_keys(s, &[REMOTE_WRITE_KEYS]);
        let allow_plaintext = self.boolean(s, "allow_plaintext").unwrap_or(false);
        let url = self.destination_url(s, allow_plaintext, "credentials and samples");
        let url = self.required(s, &span, "url", url);
        let auth = self.remote_auth(s);
        let ca_file = self.ca_file(s);
        let headers = self.request_headers(s, "X-Scope-OrgID = \"connectors\"", PROTOCOL_HEADERS);
        let (timeout, flush_interval) = self.link_timings(s);
        let batch_max_samples = self.integer(s, "batch_max_samples", 1, 100_000);
        let labels = self.labels(s);
        Some(RemoteWrite {
            url: url?,
            allow_plaintext,
            auth: auth?,
            ca_file,
            headers,
            timeout: timeout.unwrap_or(Duration::from_secs(10)),
            flush_interval: flush_interval.unwrap_or(Duration::from_secs(5)),
            batch_max_samples: batch_max_samples.unwrap_or(2000) as usize,
            labels,
        })
    }

    /// A receiver's `headers` table (`example`, as a TOML inline table's
    /// contents): token names, values without line breaks, none of
    /// `protocol` (lowercase), which the request sets itself.
    pub(super) fn request_headers(
        &mut self,
        s: &Scope,
        example: &str,
        protocol: &[&str],
    ) -> Vec<(String, String)> {
        self.string_table(
            s,
            "headers",
            &format!("a table like {{ {example} }}"),
            (
                "header",
                "must be a token name with a string value without line breaks, and not one the protocol sets (Content-Type, Content-Encoding, Authorization, …)",
            ),
            |name, val| header_ok(name, val) && !protocol.contains(&name.to_ascii_lowercase().as_str()),
        )
    }

    /// `labels = { site = "fra1" }`, sorted: `[agent]`'s, attached to
    /// everything the agent sends, and `[remote_write]`'s, added to series.
    pub(super) fn labels(&mut self, s: &Scope) -> Vec<(String, String)> {
        let mut labels = self.string_table(
            s,
            "labels",
            "a table like { site = \"fra1\", group = \"eu-west\" }",
            (
                "label",
                "must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __, not one tether sets: agent, check, kind, role, status, …) with a non-empty string value",
            ),
            |name, val| label_name_ok(name) && !RESERVED_LABELS.contains(&name) && !val.is_empty(),
        );
        labels.sort();
        labels
    }

    /// `bearer_token_file`, or `basic_auth_user` with
    /// `basic_auth_password_file`, or neither; `None` after an error.
    pub(super) fn remote_auth(&mut self, s: &Scope) -> Option<Option<RemoteAuth>> {
        let bearer = s.get("bearer_token_file").is_some();
        let user = s.get("basic_auth_user").is_some();
        let password = s.get("basic_auth_password_file").is_some();
        let at = |k: &str| s.get(k).map(|v| v.span()).unwrap_or_default();
        if bearer && (user || password) {
            let msg = format!(
                "{}: `bearer_token_file` and basic auth cannot both be set: choose one",
                s.what
            );
            self.error(at("bearer_token_file"), msg);
            return None;
        }
        if user != password {
            let (has, lacks) = if user {
                ("basic_auth_user", "basic_auth_password_file")
            } else {
                ("basic_auth_password_file", "basic_auth_user")
            };
            let msg = format!("{}: `{has}` needs `{lacks}`", s.what);
            self.error(at(has), msg);
            return None;
        }
        if bearer {
            return Some(Some(RemoteAuth::Bearer(self.parsed(
                s,
                "bearer_token_file",
                read_token_file,
            )?)));
        }
        if user {
            let name = self.parsed(s, "basic_auth_user", |u| {
                if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) {
                    Err("must be non-empty, without `:` or control characters".into())
                } else {
                    Ok(u.to_string())
                }
            });
            let password = self.parsed(s, "basic_auth_password_file", read_token_file);
            return Some(Some(RemoteAuth::Basic {
                user: name?,
                password: password?,
            }));
        }
        Some(None)
    }
}
