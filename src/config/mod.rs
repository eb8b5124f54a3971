//! The configuration: plain data that the rest of the agent reads, its
//! defaults, and its validation. May import `net` (targets, URLs, address
//! families, CA files), `os` and `format`; nothing below imports it.
//!
//! The file is TOML, read by [`toml_lite`] into a tree that keeps the byte
//! span of every key and value; the walker ([`walk`], with the sections in
//! `sections.rs` and the checks in `checks.rs`) reads that tree by hand so
//! that each error names the file, the line and the key, and every unknown
//! key is an error (a typo must not silently fall back to a default). All
//! errors are collected, sorted by line, and reported together.
//! `packaging/tether.toml` documents every key; `default.toml` beside this
//! file is the built-in configuration.

mod checks;
pub mod duration;
pub mod effective;
mod otlp;
pub use otlp::RESERVED_ATTRIBUTES;
pub mod remote;
mod remote_write;
mod sections;
pub mod toml_lite;
mod vars;
mod walk;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_lite::{Spanned, Table as DeTable, Value as DeValue};
use walk::absolute_path;

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
    /// Where samples are pushed (Prometheus remote-write); `None`: nowhere.
    pub remote_write: Option<RemoteWrite>,
    /// Where the same figures are pushed as OpenTelemetry metrics
    /// (OTLP/HTTP); `None`: nowhere.
    pub otlp: Option<Otlp>,
    pub spool: SpoolConfig,
    /// Shared with the agent's schedule: a check's configuration is held
    /// once however many views of it there are.
    pub checks: Vec<std::rc::Rc<Check>>,
    /// Where each check was written (`file:line`), in `checks` order.
    pub check_at: Vec<String>,
}

impl Config {
    /// Adds `c`, written at `at`, unless a check of that name is there:
    /// then `Err` with where that one was written.
    pub fn add_check(&mut self, c: Check, at: String) -> Result<(), String> {
        match self.checks.iter().position(|o| o.name == c.name) {
            Some(i) => Err(self.check_at[i].clone()),
            None => {
                self.checks.push(std::rc::Rc::new(c));
                self.check_at.push(at);
                Ok(())
            }
        }
    }

    /// Something is sent somewhere (`[upstream]`, `[remote_write]` or
    /// `[otlp]`): the outbox and the spool are in use.
    pub fn sends(&self) -> bool {
        self.upstream.is_some() || self.remote_write.is_some() || self.otlp.is_some()
    }

    /// The labels series carry: `[agent] labels`, then `[remote_write]
    /// labels` (which win on the same name), sorted.
    pub fn push_labels(&self) -> Vec<(String, String)> {
        let mut out = self.agent.labels.clone();
        for (k, v) in self.remote_write.iter().flat_map(|r| &r.labels) {
            match out.iter_mut().find(|(n, _)| n == k) {
                Some(kv) => kv.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
        out.sort();
        out
    }
}

/// `[upstream]`: the control plane's report endpoint and how to talk to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Poll `<url>/v1/config` for checks from the control plane.
    pub remote_config: bool,
    /// How often (with jitter).
    pub config_poll: Duration,
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

/// `[remote_write]`: a Prometheus remote-write 1.0 receiver (Prometheus,
/// VictoriaMetrics, Mimir, Thanos, Cortex) that every result is pushed to.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteWrite {
    /// The full write URL (`…/api/v1/write`); nothing is appended.
    pub url: Url,
    pub allow_plaintext: bool,
    pub auth: Option<RemoteAuth>,
    /// Trusted in addition to the system CA bundle.
    pub ca_file: Option<CaFile>,
    /// Sent with every request (a tenant header); never a protocol header.
    pub headers: Vec<(String, String)>,
    /// The whole of one request.
    pub timeout: Duration,
    /// Samples are batched for this long.
    pub flush_interval: Duration,
    pub batch_max_samples: usize,
    /// Added to every series, sorted with the series' own labels.
    pub labels: Vec<(String, String)>,
}

/// `[otlp]`: an OpenTelemetry OTLP/HTTP receiver (a Collector, Grafana
/// Alloy, any OTLP backend) that every result is pushed to as metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Otlp {
    /// The full metrics URL (`…/v1/metrics`); nothing is appended.
    pub url: Url,
    pub allow_plaintext: bool,
    pub auth: Option<RemoteAuth>,
    /// Trusted in addition to the system CA bundle.
    pub ca_file: Option<CaFile>,
    /// Sent with every request (an API key header); never a protocol header.
    pub headers: Vec<(String, String)>,
    /// The whole of one request.
    pub timeout: Duration,
    /// Points are batched for this long.
    pub flush_interval: Duration,
    pub batch_max_points: usize,
    /// Bodies are gzip-compressed (`compression = "gzip"`, the default).
    pub gzip: bool,
    /// Added to the resource's attributes, sorted.
    pub resource: Vec<(String, String)>,
}

/// How a remote-write or OTLP request proves who sends it.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteAuth {
    Bearer(Token),
    Basic { user: String, password: Token },
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
    /// The line `listen` is written on, for messages; `None`: the default.
    pub listen_line: Option<usize>,
    /// `labels`: on every record sent upstream, every series pushed, and
    /// `tether_agent_info` (sorted).
    pub labels: Vec<(String, String)>,
    pub log_level: log::LevelFilter,
    /// `log_format = "json"`: one JSON object per log line.
    pub log_json: bool,
    /// `exec` checks from the control plane are allowed (default false)...
    pub remote_exec: bool,
    /// ...when their program lies under one of these directories.
    pub remote_exec_dirs: Vec<PathBuf>,
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
    /// `labels`: added to the agent's on this check's records and series
    /// (and winning on the same name), sorted.
    pub labels: Vec<(String, String)>,
    pub probe: ProbeSpec,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProbeSpec {
    Tcp(TcpSpec),
    // The two large kinds are boxed: every check carries the enum at its
    // largest variant's size, and most are TCP (96 bytes, not 224).
    Http(Box<HttpSpec>),
    Dns(DnsSpec),
    Tls(Box<TlsSpec>),
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
/// default path if it exists, else the built-in default; with the drop-ins
/// of the file's `conf.d`.
pub fn resolve_and_load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    resolve_and_load_with(explicit, None)
}

/// [`resolve_and_load`] with the drop-in directory named (`-d DIR`);
/// `None`: `conf.d` beside the file (none for the built-in default).
pub fn resolve_and_load_with(
    explicit: Option<&Path>,
    dropins: Option<&Path>,
) -> Result<Config, ConfigError> {
    let file = explicit.or_else(|| Some(Path::new(DEFAULT_PATH)).filter(|p| p.exists()));
    let mut config = match file {
        Some(p) => load(p)?,
        None => builtin(),
    };
    let beside = file.and_then(|f| Some(f.parent()?.join(DROPIN_DIR)));
    if let Some(dir) = dropins.map(Path::to_path_buf).or(beside) {
        add_dropins(&mut config, &dir)?;
    }
    Ok(config)
}

/// The drop-in directory beside the main file.
pub const DROPIN_DIR: &str = "conf.d";

/// Adds the checks (and `[agent] labels`) of every `*.toml` file in `dir`, in name order (a
/// missing directory has none; dotfiles, an editor's, are skipped). Every error of every file is collected; a check
/// name defined twice names both places.
pub fn add_dropins(config: &mut Config, dir: &Path) -> Result<(), ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(ConfigError(vec![format!(
                "{}: cannot read: {e}",
                dir.display()
            )]))
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".toml") && !name.starts_with('.') && p.is_file()
        })
        .collect();
    files.sort_unstable();
    let mut errors = Vec::new();
    // Where each label was set, for a name set twice.
    let mut label_at: Vec<(String, String)> = config
        .agent
        .labels
        .iter()
        .map(|(k, _)| (k.clone(), config.source.clone()))
        .collect();
    for path in files {
        let name = path.display().to_string();
        let found = read_text(&path).and_then(|text| {
            let mut doc = toml_doc(&text, &name)?;
            let pre = vars::expand_all(&mut doc, &vars::from_environment);
            walk::walk_dropin(&doc, &text, &name, pre, &config.agent).map_err(ConfigError)
        });
        match found {
            Ok(d) => {
                for (k, v, at) in d.labels {
                    match label_at.iter().find(|(n, _)| *n == k) {
                        Some((_, first)) => errors.push(format!(
                            "{at}: [agent] labels: `{k}` is already set (in {first})"
                        )),
                        None => {
                            label_at.push((k.clone(), at));
                            config.agent.labels.push((k, v));
                        }
                    }
                }
                config.agent.labels.sort();
                for (c, at) in d.checks.into_iter().zip(d.at) {
                    let name = c.name.clone();
                    if let Err(first) = config.add_check(c, at.clone()) {
                        errors.push(format!(
                            "{at}: duplicate check name \"{name}\" (first defined in {first})"
                        ));
                    }
                }
            }
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(errors))
    }
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let name = path.display().to_string();
    parse(&read_text(path)?, &name)
}

/// A file's text: a regular file, at most [`MAX_FILE`], UTF-8.
fn read_text(path: &Path) -> Result<String, ConfigError> {
    let name = path.display();
    let bytes = read_file(path, MAX_FILE)
        .map_err(|e| ConfigError(vec![format!("{name}: cannot read: {e}")]))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let (line, col) = line_col(&String::from_utf8_lossy(&e.as_bytes()[..at]), at);
        ConfigError(vec![format!(
            "{name}:{line}:{col}: not UTF-8 text (byte 0x{:02x})",
            e.as_bytes()[at]
        )])
    })
}

/// What a file that does not validate still says of its agent, for
/// `tether status`, which asks the agent anyway: the built-in default with
/// `[agent]` `listen` and `name` from the file where its TOML reads and
/// they are valid; `true` when `listen` came from the file.
pub fn agent_of_broken(path: &Path) -> (Config, bool) {
    let mut c = builtin();
    let doc = read_text(path).ok().and_then(|t| toml_lite::parse(&t).ok());
    let agent = doc.as_ref().and_then(|d| match d.get("agent")?.get_ref() {
        toml_lite::Value::Table(t) => Some(t),
        _ => None,
    });
    let key = |k| agent.and_then(|t| t.get(k)?.get_ref().as_str());
    if let Some(n) = key("name") {
        c.agent.name = n.to_string();
    }
    let listen = key("listen").and_then(|l| l.parse().ok());
    if let Some(l) = listen {
        c.agent.listen = l;
    }
    (c, listen.is_some())
}

/// The largest configuration, token or CA file read (16 MiB).
pub const MAX_FILE: u64 = 16 << 20;

pub fn builtin() -> Config {
    parse(DEFAULT_TOML, BUILTIN_SOURCE)
        .expect("the built-in default configuration is valid (unit-tested)")
}

/// The host's name (the agent's default `name`, `${HOSTNAME}`), `tether`
/// when it cannot be read.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| "tether".into())
}

/// Parses and validates a whole file; `source` names it in messages.
pub fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
    let mut doc = toml_doc(text, source)?;
    let var_errors = vars::expand_all(&mut doc, &vars::from_environment);
    walk::walk(&doc, text, source, var_errors)
}

/// The TOML tree of `text`, or its syntax error with line and column.
pub(crate) fn toml_doc(text: &str, source: &str) -> Result<DeTable, ConfigError> {
    toml_lite::parse(text).map_err(|e| {
        let (line, col) = line_col(text, e.at);
        ConfigError(vec![format!(
            "{source}:{line}:{col}: invalid TOML: {}",
            e.message
        )])
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_write_labels_add_to_the_agents_and_win_on_the_same_name() {
        let c = parse(
            "[agent]\nlabels = { site = \"ams\", tier = \"prod\" }\n[remote_write]\nurl = \"https://s/w\"\nlabels = { site = \"fra1\", group = \"eu\" }\n",
            "t",
        )
        .unwrap();
        let l: Vec<String> = c
            .push_labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(l, ["group=eu", "site=fra1", "tier=prod"]);
    }

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
