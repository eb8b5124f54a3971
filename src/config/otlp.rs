//! The `[otlp]` section: the OpenTelemetry OTLP/HTTP receiver the same
//! figures are pushed to, how the request authenticates, and what the
//! resource adds.

use super::walk::{Scope, Walker};
use super::*;

pub(super) const OTLP_KEYS: &[&str] = &[
    "url",
    "allow_plaintext",
    "bearer_token_file",
    "basic_auth_user",
    "basic_auth_password_file",
    "ca_file",
    "headers",
    "timeout",
    "flush_interval",
    "batch_max_points",
    "compression",
    "resource",
];

/// Headers the protocol or the connection sets.
const PROTOCOL_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "user-agent",
    "authorization",
];

/// The resource attributes no label or `[otlp] resource` entry may
/// replace: they say which program, which version and which instance sent
/// the points.
pub const RESERVED_ATTRIBUTES: [&str; 3] =
    ["service.name", "service.version", "service.instance.id"];

/// An attribute key: printable ASCII without spaces or quotes, at most
/// 255 bytes (the semantic conventions' keys are lowercase words joined
/// by dots), and not one tether sets for itself.
fn attribute_key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 255
        && k.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        && !RESERVED_ATTRIBUTES.contains(&k)
}

impl Walker<'_> {
    pub(super) fn otlp(&mut self, s: &Scope, span: Range<usize>) -> Option<Otlp> {
        self.unknown_keys(s, &[OTLP_KEYS]);
        let allow_plaintext = self.boolean(s, "allow_plaintext").unwrap_or(false);
        let url = self.destination_url(s, allow_plaintext, "credentials and metrics");
        let url = self.required(s, &span, "url", url);
        let auth = self.remote_auth(s);
        let ca_file = self.ca_file(s);
        let headers = self.request_headers(s, "x-honeycomb-team = \"…\"", PROTOCOL_HEADERS);
        let (timeout, flush_interval) = self.link_timings(s);
        let batch_max_points = self.integer(s, "batch_max_points", 1, 100_000);
        let compression = self.choice(s, "compression", &["gzip", "none"]);
        let mut resource = self.string_table(
            s,
            "resource",
            "a table like { \"deployment.environment\" = \"prod\" }",
            (
                "attribute",
                "must be a key of printable ASCII without spaces or quotes (at most 255 bytes), not service.name, service.version or service.instance.id (tether sets them), with a string value",
            ),
            |name, _| attribute_key_ok(name),
        );
        resource.sort();
        Some(Otlp {
            url: url?,
            allow_plaintext,
            auth: auth?,
            ca_file,
            headers,
            timeout: timeout.unwrap_or(Duration::from_secs(10)),
            flush_interval: flush_interval.unwrap_or(Duration::from_secs(5)),
            batch_max_points: batch_max_points.unwrap_or(2000) as usize,
            gzip: compression.as_deref() != Some("none"),
            resource,
        })
    }
}
