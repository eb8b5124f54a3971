//! Who sends the OTLP points: the resource's attributes, after
//! OpenTelemetry's semantic conventions (`service.*`, `host.*`, `os.*`),
//! then the agent's labels and the `[otlp] resource` table.

pub use crate::config::RESERVED_ATTRIBUTES as RESERVED;

/// What the resource is made of.
pub struct Identity<'a> {
    /// The agent's name (`[agent] name`).
    pub agent: &'a str,
    /// The agent id, once there is one (`service.instance.id`).
    pub agent_id: &'a str,
    pub host_name: &'a str,
    /// PRETTY_NAME of /etc/os-release (`os.description`).
    pub os_release: &'a str,
    /// `[agent] labels`.
    pub labels: &'a [(String, String)],
    /// `[otlp] resource`: wins over a label of the same key.
    pub extra: &'a [(String, String)],
}

/// `host.arch` for the target tether was built for, as the semantic
/// conventions spell it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm32",
        "x86" => "x86",
        other => other,
    }
}

/// The resource's attributes, in order; an empty value is left out (an id
/// not made yet, an unknown OS).
pub fn attributes(id: &Identity) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        ("service.name", "tether"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("service.instance.id", id.agent_id),
        ("tether.agent", id.agent),
        ("host.name", id.host_name),
        ("host.arch", host_arch()),
        ("os.type", "linux"),
        ("os.description", id.os_release),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in id.labels.iter().chain(id.extra) {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        match out.iter_mut().find(|(o, _)| o == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out.retain(|(_, v)| !v.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_conventions_then_labels_then_the_resource_table() {
        let labels = pairs(&[("site", "fra1"), ("deployment.environment", "dev")]);
        let extra = pairs(&[
            ("deployment.environment", "prod"),
            ("service.name", "not-tether"),
            ("host.name", "renamed"),
        ]);
        let got = attributes(&Identity {
            agent: "edge-1",
            agent_id: "",
            host_name: "edge-1.example",
            os_release: "Debian GNU/Linux 12 (bookworm)",
            labels: &labels,
            extra: &extra,
        });
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "service.version",
                "tether.agent",
                "host.name",
                "host.arch",
                "os.type",
                "os.description",
                "site",
                "deployment.environment"
            ],
            "no instance id before there is one"
        );
        let get = |k: &str| got.iter().find(|(o, _)| o == k).unwrap().1.as_str();
        assert_eq!(get("service.name"), "tether", "reserved");
        assert_eq!(get("deployment.environment"), "prod", "the table wins");
        assert_eq!(get("host.name"), "renamed", "not reserved");
        assert_eq!(get("host.arch"), host_arch());
        assert_eq!(get("service.version"), env!("CARGO_PKG_VERSION"));
    }
}
