//! The `[agent]`, `[upstream]` and `[spool]` sections and the document
//! around them.

use super::walk::{absolute_path, format_size, parse_size, Dropin, Scope, Walker};
use super::*;

pub(super) const TOP_KEYS: &[&str] = &[
    "agent",
    "upstream",
    "remote_write",
    "otlp",
    "spool",
    "check",
];
pub(super) const UPSTREAM_KEYS: &[&str] = &[
    "url",
    "allow_plaintext",
    "token_file",
    "ca_file",
    "timeout",
    "flush_interval",
    "batch_max_records",
    "batch_max_bytes",
    "offline_after",
    "remote_config",
    "config_poll",
];
pub(super) const SPOOL_KEYS: &[&str] = &["dir", "max_bytes", "sync", "ring_records"];
pub(super) const AGENT_KEYS: &[&str] = &[
    "name",
    "interval",
    "timeout",
    "listen",
    "log_level",
    "log_format",
    "state_dir",
    "max_in_flight",
    "fall",
    "rise",
    "hosts_file",
    "resolv_conf",
    "on_change",
    "on_change_timeout",
    "labels",
    "remote_exec",
    "remote_exec_dirs",
];

impl Walker<'_> {
    pub(super) fn document(&mut self, doc: &DeTable) -> Config {
        let top = Scope {
            table: doc,
            what: "the top level".into(),
        };
        self.unknown_keys(&top, &[TOP_KEYS]);
        let empty = DeTable::default();
        let agent_table = self.table(&top, "agent").unwrap_or(&empty);
        let agent = self.agent(&Scope {
            table: agent_table,
            what: "[agent]".into(),
        });
        let upstream = self.table(&top, "upstream").and_then(|t| {
            self.upstream(
                &Scope {
                    table: t,
                    what: "[upstream]".into(),
                },
                top.get("upstream").map(|v| v.span()).unwrap_or_default(),
            )
        });
        let remote_write = self.table(&top, "remote_write").and_then(|t| {
            self.remote_write(
                &Scope {
                    table: t,
                    what: "[remote_write]".into(),
                },
                top.get("remote_write")
                    .map(|v| v.span())
                    .unwrap_or_default(),
            )
        });
        let otlp = self.table(&top, "otlp").and_then(|t| {
            self.otlp(
                &Scope {
                    table: t,
                    what: "[otlp]".into(),
                },
                top.get("otlp").map(|v| v.span()).unwrap_or_default(),
            )
        });
        let spool_table = self.table(&top, "spool").unwrap_or(&empty);
        let spool = self.spool(
            &Scope {
                table: spool_table,
                what: "[spool]".into(),
            },
            &agent,
        );
        let (checks, check_at) = self.checks(&top, &agent);
        Config {
            source: self.source.to_string(),
            agent,
            upstream,
            remote_write,
            otlp,
            spool,
            checks: checks.into_iter().map(std::rc::Rc::new).collect(),
            check_at,
        }
    }

    /// The `[[check]]` tables of a document, and where each was written
    /// (`file:line`); a name used twice is an error naming the first.
    pub(super) fn checks(&mut self, top: &Scope, agent: &Agent) -> (Vec<Check>, Vec<String>) {
        let mut checks = Vec::new();
        let mut at = Vec::new();
        let Some(list) = self.array(top, "check") else {
            return (checks, at);
        };
        let mut names: std::collections::BTreeMap<String, usize> =
            std::collections::BTreeMap::new();
        for (i, v) in list.iter().enumerate() {
            let DeValue::Table(t) = v.get_ref() else {
                self.error(
                    v.span(),
                    format!("check #{} must be a table ([[check]])", i + 1),
                );
                continue;
            };
            let Some(c) = self.check(t, v.span(), i + 1, agent) else {
                continue;
            };
            let line = self.line(&v.span());
            if let Some(first) = names.get(&c.name) {
                let msg = format!(
                    "duplicate check name \"{}\" (first defined on line {first})",
                    c.name
                );
                self.error(v.span(), msg);
            } else {
                names.insert(c.name.clone(), line);
                at.push(format!("{}:{line}", self.source));
                checks.push(c);
            }
        }
        (checks, at)
    }

    /// A drop-in (`conf.d/*.toml`): `[[check]]` tables only.
    pub(super) fn dropin(&mut self, doc: &DeTable, agent: &Agent) -> Dropin {
        let top = Scope {
            table: doc,
            what: "a drop-in".into(),
        };
        let mut labels = Vec::new();
        for (k, v) in doc.iter() {
            match (k.get_ref().as_str(), v.get_ref()) {
                ("check", _) => {}
                // `[agent] labels` and nothing else of [agent]: a site's or
                // a group's labels may come from a file of their own.
                ("agent", DeValue::Table(t)) if t.iter().all(|(k, _)| k.get_ref() == "labels") => {
                    let s = Scope {
                        table: t,
                        what: "[agent]".into(),
                    };
                    let line = self.line(&v.span());
                    labels = self
                        .labels(&s)
                        .into_iter()
                        .map(|(k, v)| (k, v, format!("{}:{line}", self.source)))
                        .collect();
                }
                (other, _) => {
                    let msg = format!(
                        "`{other}`: a drop-in may hold [[check]] tables and [agent] labels only; the rest of [agent], [upstream], [remote_write], [otlp] and [spool] belong in the main file"
                    );
                    self.error(k.span(), msg);
                }
            }
        }
        let (checks, at) = self.checks(&top, agent);
        Dropin { checks, at, labels }
    }

    /// A remote document: `[[check]]` tables, and `[agent]` `interval` and
    /// `timeout` (the defaults of its checks); anything else is refused.
    pub(super) fn remote(&mut self, doc: &DeTable, local: &Agent) -> (Vec<Check>, Vec<String>) {
        let top = Scope {
            table: doc,
            what: "the remote configuration".into(),
        };
        let mut agent = local.clone();
        for (k, v) in doc.iter() {
            match (k.get_ref().as_str(), v.get_ref()) {
                ("check", _) => {}
                ("agent", DeValue::Table(t)) => {
                    let s = Scope {
                        table: t,
                        what: "[agent]".into(),
                    };
                    for (key, _) in t.iter() {
                        if !["interval", "timeout"].contains(&key.get_ref().as_str()) {
                            let msg = format!(
                                "a remote configuration may not set [agent] {}: only interval and timeout (the local file keeps the agent's own settings)",
                                key.get_ref()
                            );
                            self.error(key.span(), msg);
                        }
                    }
                    let max = Duration::from_secs(86_400);
                    if let Some(i) = self.duration(&s, "interval", Duration::from_secs(1), max) {
                        agent.interval = i;
                    }
                    let t = self.duration(
                        &s,
                        "timeout",
                        Duration::from_millis(10),
                        Duration::from_secs(3_600),
                    );
                    if let Some(t) = t {
                        agent.timeout = t;
                    }
                }
                (other, _) => {
                    let msg = format!(
                        "a remote configuration may not set `{other}`: only [[check]] tables and [agent] interval and timeout"
                    );
                    self.error(k.span(), msg);
                }
            }
        }
        self.checks(&top, &agent)
    }

    /// A `[name]` table at the top level, if present and a table.
    pub(super) fn table<'a>(&mut self, top: &Scope<'a>, key: &str) -> Option<&'a DeTable> {
        let v = top.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(top, key, v, &format!("a table ([{key}])"));
                None
            }
        }
    }

    /// A byte count: an integer, or a string like "64MiB" / "512KiB".
    pub(super) fn size(&mut self, s: &Scope, key: &str, min: u64, max: u64) -> Option<u64> {
        let v = s.get(key)?;
        let n = match v.get_ref() {
            DeValue::Integer(i) => u64::try_from(*i).ok(),
            DeValue::String(t) => parse_size(t),
            _ => {
                self.wrong_type(s, key, v, "a size like \"64MiB\" or a number of bytes");
                return None;
            }
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                let msg = format!(
                    "{}: `{key}` must be a size between {} and {} (like \"64MiB\"), found {}",
                    s.what,
                    format_size(min),
                    format_size(max),
                    self.snippet(&v.span())
                );
                self.error(v.span(), msg);
                None
            }
        }
    }

    pub(super) fn upstream(&mut self, s: &Scope, span: Range<usize>) -> Option<Upstream> {
        self.unknown_keys(s, &[UPSTREAM_KEYS]);
        let allow_plaintext = self.boolean(s, "allow_plaintext").unwrap_or(false);
        let crosses = "the token and every report";
        let url = match self.destination_url(s, allow_plaintext, crosses) {
            Some(u) if u.path.contains('?') => {
                let at = s.get("url").map(|v| v.span()).unwrap_or_default();
                let msg = format!("{}: `url` must not have a query string", s.what);
                self.error(at, msg);
                None
            }
            u => u,
        };
        let url = self.required(s, &span, "url", url);
        let token = match self.parsed(s, "token_file", read_token_file) {
            Some(t) => Some(t),
            None if s.get("token_file").is_some() => None,
            None => match std::env::var("TETHER_TOKEN") {
                Ok(t) => match check_token(&t) {
                    Ok(t) => Some(Token::new(t, "TETHER_TOKEN".into())),
                    Err(e) => {
                        self.error(span.clone(), format!("{}: TETHER_TOKEN {e}", s.what));
                        None
                    }
                },
                Err(_) => {
                    self.error(
                        span.clone(),
                        format!(
                            "{}: no token: set `token_file` (mode 0600) or the TETHER_TOKEN environment variable",
                            s.what
                        ),
                    );
                    None
                }
            },
        };
        let ca_file = self.ca_file(s);
        let (timeout, flush_interval) = self.link_timings(s);
        let batch_max_records = self.integer(s, "batch_max_records", 1, 100_000);
        let batch_max_bytes = self.size(s, "batch_max_bytes", 1024, 64 << 20);
        let offline_after = self.duration(
            s,
            "offline_after",
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        let remote_config = self.boolean(s, "remote_config").unwrap_or(false);
        let config_poll = self.duration(
            s,
            "config_poll",
            Duration::from_secs(10),
            Duration::from_secs(86_400),
        );
        Some(Upstream {
            remote_config,
            config_poll: config_poll.unwrap_or(Duration::from_secs(60)),
            url: url?,
            allow_plaintext,
            token: token?,
            ca_file,
            timeout: timeout.unwrap_or(Duration::from_secs(10)),
            flush_interval: flush_interval.unwrap_or(Duration::from_secs(10)),
            batch_max_records: batch_max_records.unwrap_or(500) as usize,
            batch_max_bytes: batch_max_bytes.unwrap_or(1 << 20) as usize,
            offline_after: offline_after.unwrap_or(Duration::from_secs(30)),
        })
    }

    /// A destination's `url`, refused if it is plain http without
    /// `allow_plaintext` (`crosses`: what would then cross unencrypted).
    pub(super) fn destination_url(
        &mut self,
        s: &Scope,
        allow_plaintext: bool,
        crosses: &str,
    ) -> Option<Url> {
        let u = self.parsed(s, "url", Url::parse)?;
        if u.scheme == crate::net::url::Scheme::Http && !allow_plaintext {
            let at = s.get("url").map(|v| v.span()).unwrap_or_default();
            let msg = format!(
                "{}: `url` is plain http: {crosses} would cross the network unencrypted; use https, or set allow_plaintext = true",
                s.what
            );
            self.error(at, msg);
            return None;
        }
        Some(u)
    }

    /// `timeout` (one whole request, 100 ms–5 min) and `flush_interval`
    /// (100 ms–1 h) of a destination, `[upstream]`, `[remote_write]` or
    /// `[otlp]`.
    pub(super) fn link_timings(&mut self, s: &Scope) -> (Option<Duration>, Option<Duration>) {
        let timeout = self.duration(
            s,
            "timeout",
            Duration::from_millis(100),
            Duration::from_secs(300),
        );
        let flush_interval = self.duration(
            s,
            "flush_interval",
            Duration::from_millis(100),
            Duration::from_secs(3_600),
        );
        (timeout, flush_interval)
    }

    pub(super) fn spool(&mut self, s: &Scope, agent: &Agent) -> SpoolConfig {
        self.unknown_keys(s, &[SPOOL_KEYS]);
        let dir = self.parsed(s, "dir", absolute_path);
        let max_bytes = self.size(s, "max_bytes", 64 << 10, 1 << 40);
        let sync = self.choice(s, "sync", &["batch", "always", "none"]);
        let ring_records = self.integer(s, "ring_records", 16, 10_000_000);
        SpoolConfig {
            dir: dir.unwrap_or_else(|| agent.state_dir.join("spool")),
            max_bytes: max_bytes.unwrap_or(64 << 20),
            sync: match sync.as_deref() {
                Some("always") => SyncPolicy::Always,
                Some("none") => SyncPolicy::Never,
                _ => SyncPolicy::Batch,
            },
            ring_records: ring_records.unwrap_or(10_000) as usize,
        }
    }

    pub(super) fn agent(&mut self, s: &Scope) -> Agent {
        self.unknown_keys(s, &[AGENT_KEYS]);
        let name = self.parsed(s, "name", |n| {
            if n.is_empty() || n.len() > 64 || n.chars().any(char::is_control) {
                Err("must be 1 to 64 printable characters".into())
            } else {
                Ok(n.to_string())
            }
        });
        let interval = self.duration(
            s,
            "interval",
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        let timeout = self.duration(
            s,
            "timeout",
            Duration::from_millis(10),
            Duration::from_secs(3_600),
        );
        let listen = self.parsed(s, "listen", |l| {
            l.parse::<SocketAddr>().map_err(|_| {
                format!("`{l}` is not an address:port like 127.0.0.1:8080 or [::1]:8080")
            })
        });
        let log_level = self.choice(
            s,
            "log_level",
            &["off", "error", "warn", "info", "debug", "trace"],
        );
        let log_json = self
            .choice(s, "log_format", &["text", "json"])
            .is_some_and(|f| f == "json");
        let state_dir = self.parsed(s, "state_dir", absolute_path);
        let max_in_flight = self.integer(s, "max_in_flight", 1, 4096);
        let fall = self.integer(s, "fall", 1, 100);
        let rise = self.integer(s, "rise", 1, 100);
        let hosts_file = self.parsed(s, "hosts_file", absolute_path);
        let resolv_conf = self.parsed(s, "resolv_conf", absolute_path);
        let on_change = self
            .array(s, "on_change")
            .and_then(|list| self.command(s, "on_change", list));
        let on_change_timeout = self.duration(
            s,
            "on_change_timeout",
            Duration::from_millis(100),
            Duration::from_secs(600),
        );
        let listen_line = s.get("listen").map(|v| self.line(&v.span()));
        let labels = self.labels(s);
        let remote_exec = self.boolean(s, "remote_exec").unwrap_or(false);
        let remote_exec_dirs = self.array(s, "remote_exec_dirs").and_then(|list| {
            self.entries(
                s,
                "remote_exec_dirs",
                list,
                "is not an absolute path",
                |v| absolute_path(v.as_str()?).ok(),
            )
        });
        Agent {
            name: name.unwrap_or_else(default_agent_name),
            listen_line,
            labels,
            log_json,
            remote_exec,
            remote_exec_dirs: remote_exec_dirs
                .unwrap_or_else(|| vec![PathBuf::from("/usr/lib/nagios/plugins")]),
            interval: interval.unwrap_or(Duration::from_secs(30)),
            timeout: timeout.unwrap_or(Duration::from_secs(5)),
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))),
            log_level: log_level
                .and_then(|l| l.parse().ok())
                .unwrap_or(log::LevelFilter::Info),
            state_dir: state_dir.unwrap_or_else(|| PathBuf::from("/var/lib/tether")),
            max_in_flight: max_in_flight.unwrap_or(64) as usize,
            fall: fall.unwrap_or(3) as u32,
            rise: rise.unwrap_or(2) as u32,
            hosts_file: hosts_file.unwrap_or_else(|| PathBuf::from("/etc/hosts")),
            resolv_conf: resolv_conf.unwrap_or_else(|| PathBuf::from("/etc/resolv.conf")),
            on_change,
            on_change_timeout: on_change_timeout.unwrap_or(Duration::from_secs(10)),
        }
    }
}

fn default_agent_name() -> String {
    host_name()
}
