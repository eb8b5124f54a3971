//! The `[[check]]` tables: the keys every check has, then one reader per
//! kind.

use super::walk::{absolute_path, header_ok, Scope, Value, Walker};
use super::*;

const CHECK_KEYS: &[&str] = &[
    "name", "kind", "role", "interval", "timeout", "fall", "rise", "labels",
];
const TCP_KEYS: &[&str] = &["target", "family", "send", "expect"];
const HTTP_KEYS: &[&str] = &[
    "url",
    "method",
    "expect_status",
    "body_contains",
    "headers",
    "follow_redirects",
    "family",
    "ca_file",
    "insecure_skip_verify",
    "server_name",
];
const TLS_KEYS: &[&str] = &[
    "target",
    "family",
    "ca_file",
    "insecure_skip_verify",
    "server_name",
    "warn_days",
    "crit_days",
];
const CERT_FILE_KEYS: &[&str] = &["path", "warn_days", "crit_days"];
const EXEC_KEYS: &[&str] = &["command", "env"];
const FILE_KEYS: &[&str] = &["path", "warn_age", "crit_age", "min_size"];
const WRITABLE_KEYS: &[&str] = &["path"];
const SYSTEM_KEYS: &[&str] = &[
    "window",
    "warn_percent",
    "crit_percent",
    "memory_warn_percent",
    "memory_crit_percent",
    "disk_path",
    "disk_warn_percent",
    "disk_crit_percent",
];
const DNS_KEYS: &[&str] = &["query", "record", "server", "expect_addresses"];
const KINDS: &[&str] = &[
    "tcp",
    "http",
    "dns",
    "tls",
    "cert_file",
    "exec",
    "file",
    "writable",
    "system",
];

impl Walker<'_> {
    pub(super) fn check(
        &mut self,
        t: &DeTable,
        span: Range<usize>,
        index: usize,
        agent: &Agent,
    ) -> Option<Check> {
        let mut s = Scope {
            table: t,
            what: format!("check #{index}"),
        };
        let name = match self.string(&s, "name") {
            Some((n, nspan)) => {
                if valid_check_name(n) {
                    s.what = format!("check \"{n}\"");
                    Some(n.to_string())
                } else {
                    let msg = format!(
                        "{}: `name` \"{n}\" must be 1 to 64 characters from A-Z a-z 0-9 and - _ . : / @",
                        s.what
                    );
                    self.error(nspan, msg);
                    None
                }
            }
            None => {
                if s.get("name").is_none() {
                    self.error(
                        span.clone(),
                        format!("{}: missing required key `name`", s.what),
                    );
                }
                None
            }
        };
        let kind = match s.get("kind") {
            None => {
                let msg = format!(
                    "{}: missing required key `kind` (one of {})",
                    s.what,
                    KINDS.join(", ")
                );
                self.error(span.clone(), msg);
                None
            }
            Some(_) => self.choice(&s, "kind", KINDS),
        };
        let kind_keys: &[&str] = match kind.as_deref() {
            Some("tcp") => TCP_KEYS,
            Some("http") => HTTP_KEYS,
            Some("dns") => DNS_KEYS,
            Some("tls") => TLS_KEYS,
            Some("cert_file") => CERT_FILE_KEYS,
            Some("exec") => EXEC_KEYS,
            Some("file") => FILE_KEYS,
            Some("writable") => WRITABLE_KEYS,
            Some("system") => SYSTEM_KEYS,
            _ => &[],
        };
        if kind.is_some() {
            self.unknown_keys(&s, &[CHECK_KEYS, kind_keys]);
        }
        let role = self
            .choice(&s, "role", &["control_plane", "resource"])
            .map(|r| match r.as_str() {
                "control_plane" => Role::ControlPlane,
                _ => Role::Resource,
            });
        let interval = self.duration(
            &s,
            "interval",
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        let timeout = self.duration(
            &s,
            "timeout",
            Duration::from_millis(10),
            Duration::from_secs(3_600),
        );
        let fall = self.integer(&s, "fall", 1, 100);
        let rise = self.integer(&s, "rise", 1, 100);
        let labels = self.labels(&s);
        let probe = match kind.as_deref() {
            Some("tcp") => self.tcp(&s, &span).map(ProbeSpec::Tcp),
            Some("http") => self.http(&s, &span).map(|h| ProbeSpec::Http(Box::new(h))),
            Some("dns") => self.dns(&s, &span).map(ProbeSpec::Dns),
            Some("tls") => self.tls(&s, &span).map(|t| ProbeSpec::Tls(Box::new(t))),
            Some("cert_file") => self.cert_file(&s, &span).map(ProbeSpec::CertFile),
            Some("exec") => self.exec(&s, &span).map(ProbeSpec::Exec),
            Some("file") => self.file(&s, &span).map(ProbeSpec::File),
            Some("writable") => self.writable(&s, &span).map(ProbeSpec::Writable),
            Some("system") => Some(ProbeSpec::System(self.system(&s))),
            _ => None,
        };
        let interval_v = interval.unwrap_or(agent.interval);
        let timeout_v = timeout.unwrap_or(agent.timeout);
        if timeout_v >= interval_v {
            let at = s
                .get("timeout")
                .or(s.get("interval"))
                .map_or(span.clone(), |v| v.span());
            let from = |given: bool| if given { "" } else { " (from [agent])" };
            let msg = format!(
                "{}: timeout {}{} must be shorter than interval {}{}",
                s.what,
                duration::format(timeout_v),
                from(s.get("timeout").is_some()),
                duration::format(interval_v),
                from(s.get("interval").is_some())
            );
            self.error(at, msg);
            return None;
        }
        Some(Check {
            name: name?,
            role: role.unwrap_or(Role::Resource),
            interval: interval_v,
            timeout: timeout_v,
            fall: fall.map_or(agent.fall, |f| f as u32),
            rise: rise.map_or(agent.rise, |r| r as u32),
            labels,
            probe: probe?,
        })
    }

    pub(super) fn family(&mut self, s: &Scope, key: &str, choices: [&str; 3]) -> Family {
        match self.choice(s, key, &choices) {
            Some(f) if f == choices[1] => Family::Ipv4,
            Some(f) if f == choices[2] => Family::Ipv6,
            _ => Family::Any,
        }
    }

    pub(super) fn tcp(&mut self, s: &Scope, span: &Range<usize>) -> Option<TcpSpec> {
        let target = self.parsed(s, "target", HostPort::parse);
        let target = self.required(s, span, "target", target);
        let family = self.family(s, "family", ["any", "ipv4", "ipv6"]);
        let send = self.string(s, "send").map(|(v, _)| v.as_bytes().to_vec());
        let expect = self.string(s, "expect").map(|(v, _)| v.as_bytes().to_vec());
        Some(TcpSpec {
            target: target?,
            family,
            send,
            expect,
        })
    }

    pub(super) fn http(&mut self, s: &Scope, span: &Range<usize>) -> Option<HttpSpec> {
        let url = self.parsed(s, "url", Url::parse);
        let url = self.required(s, span, "url", url);
        let method = match self.choice(s, "method", &["GET", "HEAD"]).as_deref() {
            Some("HEAD") => Method::Head,
            _ => Method::Get,
        };
        let mut expect_status = Vec::new();
        if let Some(list) = self.array(s, "expect_status") {
            let is_not = "is not a status 100-599 like 200 or a class like \"2xx\"";
            expect_status = self
                .entries(s, "expect_status", list, is_not, status_range)
                .unwrap_or_default();
            if list.is_empty() {
                self.error(
                    s.get("expect_status").map_or(span.clone(), |v| v.span()),
                    format!("{}: `expect_status` must not be empty", s.what),
                );
            }
        }
        if expect_status.is_empty() {
            expect_status.push((200, 299));
        }
        let body_contains = self.string(s, "body_contains").map(|(b, _)| b.to_string());
        let headers = self.string_table(
            s,
            "headers",
            "a table like { Authorization = \"Bearer ...\" }",
            (
                "header",
                "must be a token name with a string value without line breaks",
            ),
            header_ok,
        );
        let follow_redirects = self.boolean(s, "follow_redirects").unwrap_or(false);
        let family = self.family(s, "family", ["any", "ipv4", "ipv6"]);
        let tls = self.tls_options(s);
        Some(HttpSpec {
            url: url?,
            method,
            expect_status,
            body_contains,
            headers,
            follow_redirects,
            family,
            tls,
        })
    }

    /// `ca_file`: read and parsed now, so a bad one is a configuration error.
    pub(super) fn ca_file(&mut self, s: &Scope) -> Option<CaFile> {
        self.parsed(s, "ca_file", |p| {
            let path = absolute_path(p)?;
            let certs = crate::net::x509::read_pem_file(&path).map_err(|e| format!("{p}: {e}"))?;
            Ok(CaFile { path, certs })
        })
    }

    pub(super) fn tls_options(&mut self, s: &Scope) -> TlsOptions {
        let ca_file = self.ca_file(s);
        let server_name = self.parsed(s, "server_name", |n| {
            if is_dns_name(n) || n.parse::<IpAddr>().is_ok() {
                Ok(n.to_ascii_lowercase())
            } else {
                Err(format!("`{n}` is not a DNS name or an IP address"))
            }
        });
        TlsOptions {
            ca_file,
            insecure_skip_verify: self.boolean(s, "insecure_skip_verify").unwrap_or(false),
            server_name,
        }
    }

    pub(super) fn expiry(&mut self, s: &Scope) -> Expiry {
        let warn_days = self
            .integer(s, "warn_days", 0, 3650)
            .map_or(10, |d| d as u32);
        let crit_days = self
            .integer(s, "crit_days", 0, 3650)
            .map_or(0, |d| d as u32);
        if crit_days > warn_days {
            let at = s.get("crit_days").or(s.get("warn_days")).map(|v| v.span());
            if let Some(at) = at {
                let msg = format!(
                    "{}: `crit_days` ({crit_days}) must not be more than `warn_days` ({warn_days})",
                    s.what
                );
                self.error(at, msg);
            }
        }
        Expiry {
            warn_days,
            crit_days,
        }
    }

    pub(super) fn tls(&mut self, s: &Scope, span: &Range<usize>) -> Option<TlsSpec> {
        let target = self.parsed(s, "target", HostPort::parse);
        let target = self.required(s, span, "target", target);
        let family = self.family(s, "family", ["any", "ipv4", "ipv6"]);
        let tls = self.tls_options(s);
        let expiry = self.expiry(s);
        Some(TlsSpec {
            target: target?,
            family,
            tls,
            expiry,
        })
    }

    /// An argv array at `key`: strings, not empty, an absolute program path.
    pub(super) fn command(&mut self, s: &Scope, key: &str, list: &[Value]) -> Option<Vec<String>> {
        let command = self.entries(s, key, list, "is not a string", |v| {
            v.as_str().filter(|a| !a.contains('\0')).map(str::to_string)
        })?;
        let at = s.get(key).map_or(0..0, |v| v.span());
        match command.first() {
            None => {
                let msg = format!(
                    "{}: `{key}` must not be empty: [\"/path/to/program\", \"arg\", ...]",
                    s.what
                );
                self.error(at, msg);
                None
            }
            Some(p) if !p.starts_with('/') => {
                let msg = format!(
                    "{}: `{key}` must start with an absolute path (no shell, no PATH search), found \"{p}\"",
                    s.what
                );
                self.error(at, msg);
                None
            }
            Some(_) => Some(command),
        }
    }

    pub(super) fn exec(&mut self, s: &Scope, span: &Range<usize>) -> Option<ExecSpec> {
        let list = self.array(s, "command");
        let list = self.required(s, span, "command", list)?;
        let command = self.command(s, "command", list)?;
        let mut env = exec_env();
        let extra = self.string_table(
            s,
            "env",
            "a table like { NAME = \"value\" }",
            ("env", "must be a name without `=` with a string value"),
            |name, val| {
                !name.is_empty()
                    && !name.contains(['=', '\0'])
                    && name.bytes().all(|b| b.is_ascii_graphic())
                    && !val.contains('\0')
            },
        );
        for (name, val) in extra {
            env.retain(|(n, _)| *n != name);
            env.push((name, val));
        }
        Some(ExecSpec { command, env })
    }

    pub(super) fn file(&mut self, s: &Scope, span: &Range<usize>) -> Option<FileSpec> {
        let path = self.parsed(s, "path", absolute_path);
        let path = self.required(s, span, "path", path);
        let max = Duration::from_secs(3650 * 86_400);
        let warn_age = self.duration(s, "warn_age", Duration::from_secs(1), max);
        let crit_age = self.duration(s, "crit_age", Duration::from_secs(1), max);
        if let (Some(w), Some(c)) = (warn_age, crit_age) {
            if c < w {
                let at = s.get("crit_age").map_or(span.clone(), |v| v.span());
                let msg = format!(
                    "{}: `crit_age` {} must not be shorter than `warn_age` {}",
                    s.what,
                    duration::format(c),
                    duration::format(w)
                );
                self.error(at, msg);
            }
        }
        let min_size = self.integer(s, "min_size", 0, i64::MAX).map(|n| n as u64);
        Some(FileSpec {
            path: path?,
            warn_age,
            crit_age,
            min_size,
        })
    }

    pub(super) fn writable(&mut self, s: &Scope, span: &Range<usize>) -> Option<WritableSpec> {
        let path = self.parsed(s, "path", absolute_path);
        let path = self.required(s, span, "path", path);
        Some(WritableSpec { path: path? })
    }

    pub(super) fn percent(&mut self, s: &Scope, key: &str) -> Option<f64> {
        let v = s.get(key)?;
        let n = match v.get_ref() {
            DeValue::Integer(i) => Some(*i as f64),
            DeValue::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(p) if (0.0..=100.0).contains(&p) => Some(p),
            _ => {
                let msg = format!(
                    "{}: `{key}` must be a percentage from 0 to 100, found {}",
                    s.what,
                    self.snippet(&v.span())
                );
                self.error(v.span(), msg);
                None
            }
        }
    }

    pub(super) fn system(&mut self, s: &Scope) -> SystemSpec {
        let window = self
            .duration(
                s,
                "window",
                Duration::from_secs(10),
                Duration::from_secs(86_400),
            )
            .unwrap_or(Duration::from_secs(300));
        let disk_path = self
            .parsed(s, "disk_path", absolute_path)
            .unwrap_or_else(|| PathBuf::from("/"));
        SystemSpec {
            window,
            warn_percent: self.percent(s, "warn_percent").unwrap_or(70.0),
            crit_percent: self.percent(s, "crit_percent"),
            memory_warn_percent: self.percent(s, "memory_warn_percent").unwrap_or(10.0),
            memory_crit_percent: self.percent(s, "memory_crit_percent").unwrap_or(5.0),
            disk_path,
            disk_warn_percent: self.percent(s, "disk_warn_percent").unwrap_or(10.0),
            disk_crit_percent: self.percent(s, "disk_crit_percent").unwrap_or(5.0),
        }
    }

    pub(super) fn cert_file(&mut self, s: &Scope, span: &Range<usize>) -> Option<CertFileSpec> {
        let path = self.parsed(s, "path", absolute_path);
        let path = self.required(s, span, "path", path);
        let expiry = self.expiry(s);
        Some(CertFileSpec {
            path: path?,
            expiry,
        })
    }

    pub(super) fn dns(&mut self, s: &Scope, span: &Range<usize>) -> Option<DnsSpec> {
        let query = self.parsed(s, "query", |q| {
            if is_dns_name(q) {
                Ok(q.to_ascii_lowercase())
            } else {
                Err(format!("`{q}` is not a valid DNS name"))
            }
        });
        let query = self.required(s, span, "query", query);
        let family = self.family(s, "record", ["both", "A", "AAAA"]);
        let server = self.parsed(s, "server", |v| {
            v.parse::<SocketAddr>()
                .or_else(|_| v.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .map_err(|_| format!("`{v}` is not an IP address with an optional port"))
        });
        let mut expect_addresses = Vec::new();
        if let Some(list) = self.array(s, "expect_addresses") {
            expect_addresses = self
                .entries(s, "expect_addresses", list, "is not an IP address", |v| {
                    v.as_str().and_then(|a| a.parse::<IpAddr>().ok())
                })
                .unwrap_or_default();
        }
        Some(DnsSpec {
            query: query?,
            family,
            server,
            expect_addresses,
        })
    }
}

pub(super) fn status_range(v: &DeValue) -> Option<(u16, u16)> {
    match v {
        DeValue::Integer(i) => {
            let n = u16::try_from(*i).ok().filter(|n| (100..=599).contains(n))?;
            Some((n, n))
        }
        DeValue::String(s) => {
            let b = s.as_bytes();
            if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) && b[1..].eq_ignore_ascii_case(b"xx") {
                let base = u16::from(b[0] - b'0') * 100;
                Some((base, base + 99))
            } else {
                None
            }
        }
        _ => None,
    }
}

pub(super) fn valid_check_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b))
}
