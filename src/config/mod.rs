//! The configuration: its model, its defaults, and its validation.
//!
//! The file is TOML, parsed by the `toml` crate into a tree that keeps the byte
//! span of every key and value; this module walks that tree by hand so that each
//! error names the file, the line and the key, and every unknown key is an error
//! (a typo must not silently fall back to a default). All errors are collected,
//! sorted by line, and reported together. `packaging/tether.toml` documents
//! every key; `src/default.toml` is the built-in configuration.

pub mod duration;
pub mod toml_lite;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_lite::{Spanned, Table as DeTable, Value as DeValue};

use crate::net::resolve::Family;
use crate::net::target::{is_dns_name, HostPort};
use crate::net::url::Url;
use crate::os::files::read_file;

/// The built-in configuration used when no `-c` is given and
/// `/etc/tether/tether.toml` does not exist.
pub const DEFAULT_TOML: &str = include_str!("default.toml");
pub const DEFAULT_PATH: &str = "/etc/tether/tether.toml";
pub const BUILTIN_SOURCE: &str = "<built-in default>";

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it came from: a path, or `<built-in default>`; used in messages.
    pub source: String,
    pub agent: Agent,
    /// Where results are reported; `None`: they stay local.
    pub upstream: Option<Upstream>,
    pub spool: SpoolConfig,
    pub checks: Vec<Check>,
}

/// `[upstream]`: the control plane's report endpoint and how to talk to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Reports go to `<url>/v1/reports`.
    pub url: Url,
    /// `http://` is refused unless this is set.
    pub allow_plaintext: bool,
    pub token: Token,
    /// Trusted in addition to the system CA bundle.
    pub ca_file: Option<CaFile>,
    /// The whole of one upload: connect, TLS, request and response.
    pub timeout: Duration,
    /// Records are batched for this long, and a heartbeat goes out this often.
    pub flush_interval: Duration,
    pub batch_max_records: usize,
    pub batch_max_bytes: usize,
    /// The agent is `offline` once uploads have failed for this long.
    pub offline_after: Duration,
}

/// The bearer token, from `token_file` or `TETHER_TOKEN`. Its `Debug` never
/// shows it, so it cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq)]
pub struct Token {
    secret: String,
    /// Where it came from, for messages: a path or `TETHER_TOKEN`.
    pub source: String,
}

impl Token {
    pub fn new(secret: String, source: String) -> Token {
        Token { secret, source }
    }

    /// For the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted>, from {})", self.source)
    }
}

/// `[spool]`: the memory ring and the disk spool.
#[derive(Clone, Debug, PartialEq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub sync: SyncPolicy,
    pub ring_records: usize,
}

/// `[agent]`: settings for the whole process.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    /// How this connector names itself in reports; defaults to the host name.
    pub name: String,
    /// Default check interval, and the scheduler's heartbeat period.
    pub interval: Duration,
    /// Default per-check deadline.
    pub timeout: Duration,
    /// The local HTTP endpoint; loopback unless an operator says otherwise.
    pub listen: SocketAddr,
    pub log_level: log::LevelFilter,
    /// Where maintenance mode (and, later, the spool) lives.
    pub state_dir: PathBuf,
    /// Cap on probes running at once, whatever the number of checks.
    pub max_in_flight: usize,
    /// Default consecutive failures before a check turns warn/crit.
    pub fall: u32,
    /// Default consecutive successes before a failing check turns ok.
    pub rise: u32,
    /// Read first by the stub resolver.
    pub hosts_file: PathBuf,
    /// Nameservers, search list, ndots, timeout and attempts.
    pub resolv_conf: PathBuf,
    /// Run on every change of the agent's status, with the old status, the
    /// new one and the reason appended as arguments (argv, no shell).
    pub on_change: Option<Vec<String>>,
    /// `on_change` is killed after this.
    pub on_change_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The connector's link to its control plane: failing means offline.
    ControlPlane,
    /// A host the connector serves: failing means degraded.
    Resource,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control_plane",
            Role::Resource => "resource",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub name: String,
    pub role: Role,
    pub interval: Duration,
    pub timeout: Duration,
    pub fall: u32,
    pub rise: u32,
    pub probe: ProbeSpec,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProbeSpec {
    Tcp(TcpSpec),
    Http(HttpSpec),
    Dns(DnsSpec),
    Tls(TlsSpec),
    CertFile(CertFileSpec),
    Exec(ExecSpec),
    File(FileSpec),
    Writable(WritableSpec),
    System(SystemSpec),
}

impl ProbeSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            ProbeSpec::Tcp(_) => "tcp",
            ProbeSpec::Http(_) => "http",
            ProbeSpec::Dns(_) => "dns",
            ProbeSpec::Tls(_) => "tls",
            ProbeSpec::CertFile(_) => "cert_file",
            ProbeSpec::Exec(_) => "exec",
            ProbeSpec::File(_) => "file",
            ProbeSpec::Writable(_) => "writable",
            ProbeSpec::System(_) => "system",
        }
    }

    /// TLS settings, for the kinds that make TLS connections.
    pub fn tls(&self) -> Option<&TlsOptions> {
        match self {
            ProbeSpec::Http(s) => Some(&s.tls),
            ProbeSpec::Tls(s) => Some(&s.tls),
            _ => None,
        }
    }

    /// The target as an operator would write it, for tables and labels,
    /// with secrets in command lines and query strings redacted.
    pub fn target(&self) -> String {
        match self {
            ProbeSpec::Tcp(s) => s.target.to_string(),
            ProbeSpec::Http(s) => s.url.to_string(),
            ProbeSpec::Dns(s) => s.query.clone(),
            ProbeSpec::Tls(s) => s.target.to_string(),
            ProbeSpec::CertFile(s) => s.path.display().to_string(),
            ProbeSpec::Exec(s) => crate::format::text::redact_argv(&s.command).join(" "),
            ProbeSpec::File(s) => s.path.display().to_string(),
            ProbeSpec::Writable(s) => s.path.display().to_string(),
            ProbeSpec::System(s) => format!("cpu, memory, {}", s.disk_path.display()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TcpSpec {
    pub target: HostPort,
    pub family: Family,
    /// Bytes written after connecting (e.g. `"PING\r\n"`).
    pub send: Option<Vec<u8>>,
    /// Required prefix of what the server sends first (e.g. `"SSH-"`).
    pub expect: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpSpec {
    pub url: Url,
    pub method: Method,
    /// Inclusive ranges of accepted statuses; default `[(200, 299)]`.
    pub expect_status: Vec<(u16, u16)>,
    pub body_contains: Option<String>,
    /// Extra request headers, in file order.
    pub headers: Vec<(String, String)>,
    /// Follow up to [`MAX_REDIRECTS`] redirects; off by default.
    pub follow_redirects: bool,
    pub family: Family,
    /// For `https://` URLs.
    pub tls: TlsOptions,
}

/// How a check makes TLS connections.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsOptions {
    /// Trusted in addition to the system CA bundle.
    pub ca_file: Option<CaFile>,
    /// Complete the handshake whatever the certificate; said in the check's
    /// status and in `/metrics`.
    pub insecure_skip_verify: bool,
    /// SNI and the name the certificate must match, when not the host.
    pub server_name: Option<String>,
}

/// A `ca_file`, read when the configuration is loaded (so `tether validate`
/// finds a bad one); a reload reads it again.
#[derive(Clone, Debug, PartialEq)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Expiry thresholds shared by `tls` and `cert_file`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expiry {
    /// warn when fewer than this many days remain (default 10).
    pub warn_days: u32,
    /// crit when fewer than this many days remain (default 0: expired).
    pub crit_days: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TlsSpec {
    pub target: HostPort,
    pub family: Family,
    pub tls: TlsOptions,
    pub expiry: Expiry,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileSpec {
    pub path: PathBuf,
    /// warn when the last modification is older than this.
    pub warn_age: Option<Duration>,
    /// crit when older than this.
    pub crit_age: Option<Duration>,
    /// crit when smaller than this many bytes.
    pub min_size: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WritableSpec {
    /// A directory the agent must be able to create, write, fsync and
    /// remove a file in.
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SystemSpec {
    /// CPU busy percent is averaged over this window (default 5m).
    pub window: Duration,
    /// warn at or above this average CPU busy percent: overloaded (default 70).
    pub warn_percent: f64,
    /// crit at or above this (default: never).
    pub crit_percent: Option<f64>,
    /// warn / crit when available memory is below this percent of the total
    /// (defaults 10 and 5).
    pub memory_warn_percent: f64,
    pub memory_crit_percent: f64,
    /// The filesystem whose free space is checked (default "/"), and its
    /// thresholds in percent free (defaults 10 and 5).
    pub disk_path: PathBuf,
    pub disk_warn_percent: f64,
    pub disk_crit_percent: f64,
}

/// The environment of an `exec` command when `env` adds nothing.
pub const EXEC_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What every child tether starts gets (`exec` checks, `on_change`):
/// `PATH` = [`EXEC_PATH`] and `LANG=C`, nothing inherited.
pub fn exec_env() -> Vec<(String, String)> {
    vec![
        ("PATH".to_string(), EXEC_PATH.to_string()),
        ("LANG".to_string(), "C".to_string()),
    ]
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExecSpec {
    /// argv; the first is an absolute path. No shell.
    pub command: Vec<String>,
    /// The whole environment: PATH and LANG=C, then `env` from the file.
    pub env: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CertFileSpec {
    pub path: PathBuf,
    pub expiry: Expiry,
}

pub const MAX_REDIRECTS: usize = 10;

/// When the spool fsyncs (`[spool] sync`); the spool module documents the
/// window of loss of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    Batch,
    Always,
    Never,
}

impl SyncPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPolicy::Batch => "batch",
            SyncPolicy::Always => "always",
            SyncPolicy::Never => "none",
        }
    }
}

/// The local endpoint's default port: not 8080, the most common port of
/// the services tether runs beside (connectors serve their own health
/// checks there), and outside the 9100-9999 range of Prometheus exporters.
pub const DEFAULT_PORT: u16 = 7341;

#[derive(Clone, Debug, PartialEq)]
pub struct DnsSpec {
    pub query: String,
    /// Which records to ask for: A, AAAA or both.
    pub family: Family,
    /// Ask this server directly instead of /etc/hosts + resolv.conf.
    pub server: Option<SocketAddr>,
    /// Each of these must be among the answers.
    pub expect_addresses: Vec<IpAddr>,
}

/// Every problem found in a configuration, each already `file:line: message`.
#[derive(Debug, PartialEq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

/// Which configuration to use given the `-c` option: the named file, else the
/// default path if it exists, else the built-in default.
pub fn resolve_and_load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    match explicit {
        Some(p) => load(p),
        None if Path::new(DEFAULT_PATH).exists() => load(Path::new(DEFAULT_PATH)),
        None => Ok(builtin()),
    }
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    let bytes = read_file(path, MAX_FILE)
        .map_err(|e| ConfigError(vec![format!("{name}: cannot read: {e}")]))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let (line, col) = line_col(&String::from_utf8_lossy(&e.as_bytes()[..at]), at);
        ConfigError(vec![format!(
            "{name}:{line}:{col}: not UTF-8 text (byte 0x{:02x})",
            e.as_bytes()[at]
        )])
    })?;
    parse(&text, &name)
}

/// The largest configuration, token or CA file read (16 MiB).
pub const MAX_FILE: u64 = 16 << 20;

pub fn builtin() -> Config {
    parse(DEFAULT_TOML, BUILTIN_SOURCE)
        .expect("the built-in default configuration is valid (unit-tested)")
}

/// Parses and validates a whole file; `source` names it in messages.
pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
    let doc = match toml_lite::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let (line, col) = line_col(text, e.at);
            let msg = e.message;
            return Err(ConfigError(vec![format!(
                "{source}:{line}:{col}: invalid TOML: {msg}"
            )]));
        }
    };
    let mut w = Walker {
        source,
        text,
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        errors: Vec::new(),
    };
    let config = w.document(&doc);
    if w.errors.is_empty() {
        Ok(config)
    } else {
        w.errors.sort_by_key(|(at, _)| *at);
        Err(ConfigError(w.errors.into_iter().map(|(_, m)| m).collect()))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
}

type Value = Spanned<DeValue>;

const TOP_KEYS: &[&str] = &["agent", "upstream", "spool", "check"];
const UPSTREAM_KEYS: &[&str] = &[
    "url",
    "allow_plaintext",
    "token_file",
    "ca_file",
    "timeout",
    "flush_interval",
    "batch_max_records",
    "batch_max_bytes",
    "offline_after",
];
const SPOOL_KEYS: &[&str] = &["dir", "max_bytes", "sync", "ring_records"];
const AGENT_KEYS: &[&str] = &[
    "name",
    "interval",
    "timeout",
    "listen",
    "log_level",
    "state_dir",
    "max_in_flight",
    "fall",
    "rise",
    "hosts_file",
    "resolv_conf",
    "on_change",
    "on_change_timeout",
];
const CHECK_KEYS: &[&str] = &[
    "name", "kind", "role", "interval", "timeout", "fall", "rise",
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

/// Walks the parsed tree, converting values and collecting errors.
struct Walker<'s> {
    source: &'s str,
    text: &'s str,
    /// Where each line starts: a line number is a binary search, so
    /// validation stays linear in the number of checks.
    line_starts: Vec<usize>,
    /// (byte offset, message) so errors come out in file order.
    errors: Vec<(usize, String)>,
}

/// Where a value sits, for messages: `[agent]` or `check "api"`.
struct Scope<'a> {
    table: &'a DeTable,
    what: String,
}

impl<'a> Scope<'a> {
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.table.get(key)
    }
}

impl Walker<'_> {
    fn line(&self, span: &Range<usize>) -> usize {
        self.line_starts.partition_point(|s| *s <= span.start)
    }

    fn error(&mut self, span: Range<usize>, msg: String) {
        let line = self.line(&span);
        self.errors
            .push((span.start, format!("{}:{line}: {msg}", self.source)));
    }

    fn unknown_keys(&mut self, scope: &Scope, known: &[&[&str]]) {
        for (k, _) in scope.table.iter() {
            if !known.iter().any(|set| set.contains(&k.get_ref().as_str())) {
                let expected: Vec<&str> = known.iter().flat_map(|s| s.iter().copied()).collect();
                self.error(
                    k.span(),
                    format!(
                        "unknown key `{}` in {} (expected one of: {})",
                        k.get_ref(),
                        scope.what,
                        expected.join(", ")
                    ),
                );
            }
        }
    }

    /// The value as written in the file, shortened, for messages.
    fn snippet(&self, span: &Range<usize>) -> String {
        let raw = self.text.get(span.clone()).unwrap_or("").trim();
        let cut: String = raw.chars().take(40).collect();
        if cut.len() < raw.len() {
            format!("{cut}...")
        } else {
            cut
        }
    }

    fn wrong_type(&mut self, scope: &Scope, key: &str, v: &Value, expected: &str) {
        let found = v.get_ref().type_str();
        let snippet = self.snippet(&v.span());
        let msg = format!(
            "{}: `{key}` must be {expected}, found {found} {snippet}",
            scope.what
        );
        self.error(v.span(), msg);
    }

    fn string<'a>(&mut self, scope: &Scope<'a>, key: &str) -> Option<(&'a str, Range<usize>)> {
        let v = scope.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.as_str(), v.span())),
            _ => {
                self.wrong_type(scope, key, v, "a string");
                None
            }
        }
    }

    fn boolean(&mut self, scope: &Scope, key: &str) -> Option<bool> {
        let v = scope.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(scope, key, v, "true or false");
                None
            }
        }
    }

    fn integer(&mut self, scope: &Scope, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = scope.get(key)?;
        let DeValue::Integer(i) = v.get_ref() else {
            self.wrong_type(scope, key, v, "an integer");
            return None;
        };
        match *i {
            n if (min..=max).contains(&n) => Some(n),
            n => {
                let msg = format!(
                    "{}: `{key}` must be between {min} and {max}, found {n}",
                    scope.what
                );
                self.error(v.span(), msg);
                None
            }
        }
    }

    fn duration(
        &mut self,
        scope: &Scope,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let v = scope.get(key)?;
        let DeValue::String(s) = v.get_ref() else {
            self.wrong_type(scope, key, v, "a duration string like \"30s\"");
            return None;
        };
        match duration::parse(s) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(d) => {
                let msg = format!(
                    "{}: `{key}` must be between {} and {}, found {}",
                    scope.what,
                    duration::format(min),
                    duration::format(max),
                    duration::format(d)
                );
                self.error(v.span(), msg);
                None
            }
            Err(e) => {
                self.error(v.span(), format!("{}: `{key}`: {e}", scope.what));
                None
            }
        }
    }

    /// A string restricted to `choices`.
    fn choice(&mut self, scope: &Scope, key: &str, choices: &[&str]) -> Option<String> {
        let (s, span) = self.string(scope, key)?;
        if choices.contains(&s) {
            Some(s.to_string())
        } else {
            let msg = format!(
                "{}: `{key}` must be one of {}, found \"{s}\"",
                scope.what,
                choices.join(", ")
            );
            self.error(span, msg);
            None
        }
    }

    /// A string parsed by `f`; its error is reported at the value.
    fn parsed<T>(
        &mut self,
        scope: &Scope,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (s, span) = self.string(scope, key)?;
        match f(s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(span, format!("{}: `{key}`: {e}", scope.what));
                None
            }
        }
    }

    fn array<'a>(&mut self, scope: &Scope<'a>, key: &str) -> Option<&'a [Value]> {
        let v = scope.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(scope, key, v, "an array");
                None
            }
        }
    }

    /// Each entry of an array through `parse`; every entry it refuses is an
    /// error at that entry (`` `key` entry X is_not ``). `None` if any was.
    fn entries<T>(
        &mut self,
        s: &Scope,
        key: &str,
        list: &[Value],
        is_not: &str,
        parse: impl Fn(&DeValue) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        for v in list {
            match parse(v.get_ref()) {
                Some(t) => out.push(t),
                None => {
                    let msg = format!(
                        "{}: `{key}` entry {} {is_not}",
                        s.what,
                        self.snippet(&v.span())
                    );
                    self.error(v.span(), msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A table of `name = "value"` strings (`headers`, `env`), in file order.
    /// A pair that `valid` refuses, or a value that is not a string, is an
    /// error at its key: `` {item} `name` {must} ``.
    fn string_table(
        &mut self,
        s: &Scope,
        key: &str,
        example: &str,
        (item, must): (&str, &str),
        valid: impl Fn(&str, &str) -> bool,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(v) = s.get(key) else {
            return out;
        };
        let DeValue::Table(t) = v.get_ref() else {
            self.wrong_type(s, key, v, example);
            return out;
        };
        for (k, tv) in t.iter() {
            let name = k.get_ref();
            match tv.get_ref().as_str() {
                Some(val) if valid(name, val) => out.push((name.to_string(), val.to_string())),
                _ => self.error(k.span(), format!("{}: {item} `{name}` {must}", s.what)),
            }
        }
        out
    }

    fn document(&mut self, doc: &DeTable) -> Config {
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
        let spool_table = self.table(&top, "spool").unwrap_or(&empty);
        let spool = self.spool(
            &Scope {
                table: spool_table,
                what: "[spool]".into(),
            },
            &agent,
        );
        let mut checks = Vec::new();
        if let Some(list) = self.array(&top, "check") {
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
                if let Some(c) = self.check(t, v.span(), i + 1, &agent) {
                    if let Some(first) = names.get(&c.name) {
                        let first = *first;
                        self.error(
                            v.span(),
                            format!(
                                "duplicate check name \"{}\" (first defined on line {first})",
                                c.name
                            ),
                        );
                    } else {
                        names.insert(c.name.clone(), self.line(&v.span()));
                        checks.push(c);
                    }
                }
            }
        }
        Config {
            source: self.source.to_string(),
            agent,
            upstream,
            spool,
            checks,
        }
    }

    /// A `[name]` table at the top level, if present and a table.
    fn table<'a>(&mut self, top: &Scope<'a>, key: &str) -> Option<&'a DeTable> {
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
    fn size(&mut self, s: &Scope, key: &str, min: u64, max: u64) -> Option<u64> {
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

    fn upstream(&mut self, s: &Scope, span: Range<usize>) -> Option<Upstream> {
        self.unknown_keys(s, &[UPSTREAM_KEYS]);
        let allow_plaintext = self.boolean(s, "allow_plaintext").unwrap_or(false);
        let url = match self.parsed(s, "url", Url::parse) {
            Some(u) if u.scheme == crate::net::url::Scheme::Http && !allow_plaintext => {
                let at = s.get("url").map(|v| v.span()).unwrap_or_default();
                self.error(
                    at,
                    format!(
                        "{}: `url` is plain http: the token and every report would cross the network unencrypted; use https, or set allow_plaintext = true",
                        s.what
                    ),
                );
                None
            }
            Some(u) if u.path.contains('?') => {
                let at = s.get("url").map(|v| v.span()).unwrap_or_default();
                let msg = format!("{}: `url` must not have a query string", s.what);
                self.error(at, msg);
                None
            }
            Some(u) => Some(u),
            None => {
                if s.get("url").is_none() {
                    self.error(
                        span.clone(),
                        format!("{}: missing required key `url`", s.what),
                    );
                }
                None
            }
        };
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
        let batch_max_records = self.integer(s, "batch_max_records", 1, 100_000);
        let batch_max_bytes = self.size(s, "batch_max_bytes", 1024, 64 << 20);
        let offline_after = self.duration(
            s,
            "offline_after",
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        );
        Some(Upstream {
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

    fn spool(&mut self, s: &Scope, agent: &Agent) -> SpoolConfig {
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

    fn agent(&mut self, s: &Scope) -> Agent {
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
        Agent {
            name: name.unwrap_or_else(default_agent_name),
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

    fn check(
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
        let probe = match kind.as_deref() {
            Some("tcp") => self.tcp(&s, &span).map(ProbeSpec::Tcp),
            Some("http") => self.http(&s, &span).map(ProbeSpec::Http),
            Some("dns") => self.dns(&s, &span).map(ProbeSpec::Dns),
            Some("tls") => self.tls(&s, &span).map(ProbeSpec::Tls),
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
            probe: probe?,
        })
    }

    fn required<T>(
        &mut self,
        s: &Scope,
        span: &Range<usize>,
        key: &str,
        v: Option<T>,
    ) -> Option<T> {
        if s.get(key).is_none() {
            self.error(
                span.clone(),
                format!("{}: missing required key `{key}`", s.what),
            );
        }
        v
    }

    fn family(&mut self, s: &Scope, key: &str, choices: [&str; 3]) -> Family {
        match self.choice(s, key, &choices) {
            Some(f) if f == choices[1] => Family::Ipv4,
            Some(f) if f == choices[2] => Family::Ipv6,
            _ => Family::Any,
        }
    }

    fn tcp(&mut self, s: &Scope, span: &Range<usize>) -> Option<TcpSpec> {
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

    fn http(&mut self, s: &Scope, span: &Range<usize>) -> Option<HttpSpec> {
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
            |name, val| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                    && !val.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
            },
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
    fn ca_file(&mut self, s: &Scope) -> Option<CaFile> {
        self.parsed(s, "ca_file", |p| {
            let path = absolute_path(p)?;
            let certs = crate::net::x509::read_pem_file(&path).map_err(|e| format!("{p}: {e}"))?;
            Ok(CaFile { path, certs })
        })
    }

    fn tls_options(&mut self, s: &Scope) -> TlsOptions {
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

    fn expiry(&mut self, s: &Scope) -> Expiry {
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

    fn tls(&mut self, s: &Scope, span: &Range<usize>) -> Option<TlsSpec> {
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
    fn command(&mut self, s: &Scope, key: &str, list: &[Value]) -> Option<Vec<String>> {
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

    fn exec(&mut self, s: &Scope, span: &Range<usize>) -> Option<ExecSpec> {
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

    fn file(&mut self, s: &Scope, span: &Range<usize>) -> Option<FileSpec> {
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

    fn writable(&mut self, s: &Scope, span: &Range<usize>) -> Option<WritableSpec> {
        let path = self.parsed(s, "path", absolute_path);
        let path = self.required(s, span, "path", path);
        Some(WritableSpec { path: path? })
    }

    fn percent(&mut self, s: &Scope, key: &str) -> Option<f64> {
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

    fn system(&mut self, s: &Scope) -> SystemSpec {
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

    fn cert_file(&mut self, s: &Scope, span: &Range<usize>) -> Option<CertFileSpec> {
        let path = self.parsed(s, "path", absolute_path);
        let path = self.required(s, span, "path", path);
        let expiry = self.expiry(s);
        Some(CertFileSpec {
            path: path?,
            expiry,
        })
    }

    fn dns(&mut self, s: &Scope, span: &Range<usize>) -> Option<DnsSpec> {
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

fn status_range(v: &DeValue) -> Option<(u16, u16)> {
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

fn absolute_path(p: &str) -> Result<PathBuf, String> {
    if p.starts_with('/') {
        Ok(PathBuf::from(p))
    } else {
        Err(format!("`{p}` must be an absolute path"))
    }
}

/// "64MiB", "512KiB", "1GiB", "1000" (bytes).
pub fn parse_size(t: &str) -> Option<u64> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

pub fn format_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

/// A token must fit in an HTTP header: printable ASCII, no spaces.
fn check_token(t: &str) -> Result<String, String> {
    let t = t.trim();
    if t.is_empty() {
        return Err("is empty".into());
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces (it goes in an HTTP header)".into());
    }
    Ok(t.to_string())
}

/// Reads `token_file`, refusing one that group or others could read.
pub fn read_token_file(p: &str) -> Result<Token, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = absolute_path(p)?;
    let meta = std::fs::metadata(&path).map_err(|e| format!("{p}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{p} is readable or writable by group or others (mode {mode:04o}); run `chmod 600 {p}`"
        ));
    }
    let text = read_file(&path, MAX_FILE).map_err(|e| format!("{p}: {e}"))?;
    let text = String::from_utf8_lossy(&text);
    let secret = check_token(&text).map_err(|e| format!("{p}: the token {e}"))?;
    Ok(Token::new(secret, p.to_string()))
}

fn valid_check_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b))
}

fn default_agent_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| "tether".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_default_is_valid() {
        let c = parse(DEFAULT_TOML, BUILTIN_SOURCE).unwrap();
        assert!(!c.checks.is_empty());
        assert!(c.agent.listen.ip().is_loopback());
    }

    #[test]
    fn defaults_fill_an_empty_file() {
        let c = parse("", "x").unwrap();
        assert_eq!(c.agent.interval, Duration::from_secs(30));
        assert_eq!(c.agent.timeout, Duration::from_secs(5));
        assert_eq!(c.agent.listen.to_string(), "127.0.0.1:7341");
        assert_eq!(c.agent.state_dir, PathBuf::from("/var/lib/tether"));
        assert_eq!((c.agent.fall, c.agent.rise), (3, 2));
        assert!(c.checks.is_empty());
    }

    #[test]
    fn check_inherits_and_overrides() {
        let c = parse(
            "[agent]\ninterval = \"10s\"\nfall = 4\n[[check]]\nname = \"a\"\nkind = \"tcp\"\ntarget = \"[::1]:22\"\nexpect = \"SSH-\"\nrise = 5\nrole = \"control_plane\"\n",
            "x",
        )
        .unwrap();
        let a = &c.checks[0];
        assert_eq!(
            (a.interval, a.timeout, a.fall, a.rise, a.role),
            (
                Duration::from_secs(10),
                Duration::from_secs(5),
                4,
                5,
                Role::ControlPlane
            )
        );
        assert!(matches!(&a.probe, ProbeSpec::Tcp(t) if t.expect.as_deref() == Some(&b"SSH-"[..])));
    }

    #[test]
    fn http_status_classes_and_headers() {
        let c = parse(
            "[[check]]\nname = \"h\"\nkind = \"http\"\nurl = \"http://127.0.0.1:1/x\"\nexpect_status = [\"2xx\", 301]\nheaders = { Authorization = \"Bearer t\" }\n",
            "x",
        )
        .unwrap();
        let ProbeSpec::Http(h) = &c.checks[0].probe else {
            panic!()
        };
        assert_eq!(h.expect_status, vec![(200, 299), (301, 301)]);
        assert_eq!(
            h.headers,
            vec![("Authorization".to_string(), "Bearer t".to_string())]
        );
    }

    #[test]
    fn reports_every_error_in_file_order() {
        let e = parse("[agent]\nfall = 0\nbogus = 1\n", "f.toml").unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert!(e.0[0].starts_with("f.toml:2: "), "{}", e.0[0]);
        assert!(e.0[1].starts_with("f.toml:3: "), "{}", e.0[1]);
    }
}
