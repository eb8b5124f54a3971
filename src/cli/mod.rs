//! The command line (pico-args). Every usage error names the problem and
//! exits 2; `check` exits like a Nagios plugin (0 ok, 1 warning, 2 critical,
//! 3 unknown) so tether can serve as a plugin for Nagios, Icinga or Zabbix.

pub mod run;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use async_io::Async;
use futures_lite::StreamExt;

use crate::agent::maintenance;
use crate::agent::scheduler::run_all_once;
use crate::agent::state::AgentState;
use crate::config::{self, Config};
use crate::net::http1::{exchange, Limits, Request, MAX_HEAD};
use crate::os::alarm::until;
use crate::os::logger;
use crate::probe::Trace;
use run::Control;

pub const USAGE: &str = "\
tether: a connector health agent

usage: tether [-c FILE] COMMAND [OPTIONS]

commands:
  run                        run the agent (the daemon)
  check [--check NAME] [--json | --table]
                             run every check (or one) once as a Nagios plugin:
                             exit 0 ok / 1 warning / 2 critical / 3 unknown
  status [--json] [--history]
                             ask the running agent for its status table (and
                             its health history); exit 0 healthy, 1 unhealthy,
                             2 critical, 3 no agent
  doctor [--json]            run the connector runbook (control plane
                             reachability, failing and intermittent checks,
                             version, local storage, identity, clock) and
                             print findings and fixes; exit 0 ok, 1 warning,
                             2 critical; asks the running agent if there is one
  bundle [-o FILE]           write a support bundle (status, history, doctor,
                             redacted configuration, last 200 log lines);
                             default ./tether-bundle-NAME-TIME.txt, - for stdout
  validate                   check the configuration file; exit 0 or 2
  config default             print the built-in default configuration
  enroll [--token-file F]    create a new agent identity on purpose (the old
                             one is replaced); with --token-file, install F as
                             the configured [upstream] token_file
  disable [--reason TEXT] [--for DURATION]
                             maintenance: keep probing, alarm nothing (with
                             --for, for that long: 2h, 30m)
  enable                     end maintenance
  help                       this text
  --version                  print the version

`tether COMMAND --help` describes one command.

options:
  -c, --config FILE          configuration file; without it tether uses
                             /etc/tether/tether.toml if it exists, otherwise
                             the built-in default (tether config default)
";

/// One command's own `--help`.
fn command_help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "run" => "usage: tether [-c FILE] run\n\nRuns the agent: probes every check on its interval, serves the local\nendpoint (/health /ready /status /metrics /logs /doctor), reports to\n[upstream] if configured. SIGHUP reloads the configuration, SIGTERM stops.\n",
        "check" => "usage: tether [-c FILE] check [--check NAME] [--json | --table]\n\nRuns every check (or the one named) once and prints Nagios plugin output:\na first line `SERVICE STATUS: text | perfdata` (durations and phases in\nseconds, a wrapped plugin's own values), then one line per check.\n--json prints the status as JSON, --table as a table.\n\nExit: 0 ok, 1 warning, 2 critical, 3 unknown (also when the configuration\nis invalid or the check does not exist, with one line saying why).\n",
        "status" => "usage: tether [-c FILE] status [--json] [--history]\n\nAsks the running agent (at the configuration's listen address) for its\nstatus, after checking that the agent answering is the one the\nconfiguration names. --history adds the health history.\n\nExit: 0 healthy, 1 unhealthy, 2 critical, 3 no agent (or another one).\n",
        "doctor" => "usage: tether [-c FILE] doctor [--json]\n\nRuns the connector runbook: status, can this host reach the control plane,\nwhich resource hosts fail and why, what fails now and then, version,\nlocal storage, identity, token, clock, certificates. Asks the running\nagent if there is one, else runs every check once itself.\n\nExit: 0 ok, 1 warning, 2 critical, 3 the running agent could not be asked.\n",
        "bundle" => "usage: tether [-c FILE] bundle [-o FILE]\n\nWrites a support bundle: status, history, doctor findings, the redacted\nconfiguration, the last 200 log lines, spool and upstream figures.\nDefault ./tether-bundle-NAME-TIME.txt (mode 0600); -o - for stdout.\n",
        "validate" => "usage: tether [-c FILE] validate\n\nChecks the configuration and prints every error with file, line and key.\nExit: 0 valid, 2 invalid.\n",
        "config" => "usage: tether config default\n\nPrints the built-in default configuration.\n",
        "enroll" => "usage: tether [-c FILE] enroll [--token-file F]\n\nWrites a new agent identity on purpose (the old one is replaced); with\n--token-file, installs F as the configured [upstream] token_file.\nThen reload or restart the agent.\n",
        "disable" => "usage: tether [-c FILE] disable [--reason TEXT] [--for DURATION]\n\nMaintenance: probes keep running, nothing is alarmed. With --for (2h,\n30m) it ends by itself. The reason and who set it are recorded.\n",
        "enable" => "usage: tether [-c FILE] enable\n\nEnds maintenance.\n",
        "help" => USAGE,
        _ => return None,
    })
}

/// The command word among the arguments (the first free one, skipping the
/// values of options that take one), to shape `--help` and exit codes
/// before the options are parsed.
fn command_of(args: &[OsString]) -> Option<String> {
    const TAKE_VALUE: &[&str] = &[
        "-c",
        "--config",
        "--check",
        "-o",
        "--output",
        "--reason",
        "--token-file",
        "--for",
    ];
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if TAKE_VALUE.contains(&a.as_ref()) {
            it.next();
        } else if !a.starts_with('-') {
            return Some(a.into_owned());
        }
    }
    None
}

struct Opts {
    config: Option<PathBuf>,
    check: Option<String>,
    json: bool,
    table: bool,
    history: bool,
    output: Option<PathBuf>,
    reason: Option<String>,
    for_: Option<String>,
    token_file: Option<PathBuf>,
}

fn usage_error(msg: &str) -> i32 {
    eprintln_safe(&format!("tether: {msg}\nRun `tether help` for usage."));
    2
}

/// `check` is a Nagios plugin: what stops it is UNKNOWN (3), said in one
/// line on stdout (what Nagios shows) and on stderr.
fn plugin_error(msg: &str) -> i32 {
    print(&format!("TETHER UNKNOWN: {}\n", msg.replace('\n', "; ")));
    eprintln_safe(&format!("tether: {msg}"));
    3
}

/// Writes to stderr, ignoring a closed stream (never panics).
fn eprintln_safe(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn print(msg: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(msg.as_bytes());
}

/// Entry point for the binary: arguments without the program name; returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let command = command_of(&args);
    let plugin = command.as_deref() == Some("check");
    let mut a = pico_args::Arguments::from_vec(args);
    if a.contains("--version") || a.contains("-V") {
        print(&format!("tether {}\n", env!("CARGO_PKG_VERSION")));
        return 0;
    }
    if a.contains(["-h", "--help"]) {
        print(command.as_deref().and_then(command_help).unwrap_or(USAGE));
        return 0;
    }
    let usage_error = |msg: &str| {
        if plugin {
            plugin_error(msg)
        } else {
            usage_error(msg)
        }
    };
    let opts = (|| -> Result<Opts, pico_args::Error> {
        Ok(Opts {
            config: a
                .opt_value_from_os_str(["-c", "--config"], |s| Ok::<_, String>(PathBuf::from(s)))?,
            check: a.opt_value_from_str("--check")?,
            json: a.contains("--json"),
            table: a.contains("--table"),
            history: a.contains("--history"),
            output: a
                .opt_value_from_os_str(["-o", "--output"], |s| Ok::<_, String>(PathBuf::from(s)))?,
            reason: a.opt_value_from_str("--reason")?,
            for_: a.opt_value_from_str("--for")?,
            token_file: a
                .opt_value_from_os_str("--token-file", |s| Ok::<_, String>(PathBuf::from(s)))?,
        })
    })();
    let opts = match opts {
        Ok(o) => o,
        Err(e) => return usage_error(&e.to_string()),
    };
    let rest: Vec<String> = a
        .finish()
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let Some((cmd, rest)) = rest.split_first() else {
        return usage_error("missing command");
    };
    let allowed: &[&str] = match cmd.as_str() {
        "check" => &["check", "json", "table"],
        "status" => &["json", "history"],
        "doctor" => &["json"],
        "bundle" => &["output"],
        "disable" => &["reason", "for"],
        "enroll" => &["token-file"],
        _ => &[],
    };
    for (flag, given) in [
        ("check", opts.check.is_some()),
        ("json", opts.json),
        ("table", opts.table),
        ("history", opts.history),
        ("output", opts.output.is_some()),
        ("reason", opts.reason.is_some()),
        ("for", opts.for_.is_some()),
        ("token-file", opts.token_file.is_some()),
    ] {
        if given && !allowed.contains(&flag) {
            return usage_error(&format!("--{flag} is not an option of `{cmd}`"));
        }
    }
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match (cmd.as_str(), rest.as_slice()) {
        ("config", ["default"]) => {
            print(config::DEFAULT_TOML);
            0
        }
        ("config", _) => usage_error("`config` takes one subcommand: default"),
        ("help", []) => {
            print(USAGE);
            0
        }
        ("version", []) => {
            print(&format!("tether {}\n", env!("CARGO_PKG_VERSION")));
            0
        }
        (_, [extra, ..]) => usage_error(&format!("unexpected argument `{extra}`")),
        ("run", []) => with_config(&opts, run),
        ("check", []) => match config::resolve_and_load(opts.config.as_deref()) {
            Ok(c) => check(c, &opts),
            Err(e) => plugin_error(&format!("invalid configuration: {e}")),
        },
        ("validate", []) => with_config(&opts, |c| {
            let n = c.checks.len();
            let s = if n == 1 { "" } else { "s" };
            print(&format!("{}: ok, {n} check{s}\n", c.source));
            0
        }),
        ("status", []) => with_config(&opts, |c| status(&c, opts.json, opts.history)),
        ("doctor", []) => with_config(&opts, |c| doctor(c, opts.json)),
        ("bundle", []) => with_config(&opts, |c| bundle(c, opts.output.as_deref())),
        ("disable", []) => with_config(&opts, |c| {
            let reason = opts
                .reason
                .clone()
                .unwrap_or_else(|| "no reason given".into());
            let for_ = match opts.for_.as_deref().map(crate::config::duration::parse) {
                None => None,
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => return usage_error(&format!("--for: {e}")),
            };
            let r = maintenance::disable(&c.agent.state_dir, &reason, for_);
            let done = match &r {
                Ok(f) => format!(
                    "disabled: probes keep running, nothing is alarmed; {}",
                    f.describe()
                ),
                Err(_) => String::new(),
            };
            switch(&c, r.map(|_| ()), &done)
        }),
        ("enroll", []) => with_config(&opts, |c| enroll(&c, opts.token_file.as_deref())),
        ("enable", []) => with_config(&opts, |c| {
            switch(&c, maintenance::enable(&c.agent.state_dir), "enabled")
        }),
        (other, _) => usage_error(&format!("unknown command `{other}`")),
    }
}

fn with_config(opts: &Opts, f: impl FnOnce(Config) -> i32) -> i32 {
    match config::resolve_and_load(opts.config.as_deref()) {
        Ok(c) => f(c),
        Err(e) => {
            eprintln_safe(&e.to_string());
            2
        }
    }
}

/// `tether enroll`: a new identity, on purpose; optionally a new token.
fn enroll(c: &Config, token_file: Option<&std::path::Path>) -> i32 {
    if let Some(src) = token_file {
        let Some(up) = &c.upstream else {
            return usage_error(&format!(
                "--token-file needs an [upstream] section with token_file in {}",
                c.source
            ));
        };
        if up.token.source == "TETHER_TOKEN" {
            return usage_error("--token-file: the token comes from TETHER_TOKEN; set [upstream] token_file to install one");
        }
        let token = match config::read_token_file(&src.to_string_lossy()) {
            Ok(t) => t,
            Err(e) => return usage_error(&format!("--token-file: {e}")),
        };
        let dest = PathBuf::from(&up.token.source);
        let write = || -> std::io::Result<()> {
            let tmp = dest.with_extension("tmp");
            crate::uplink::identity::write_private(
                &tmp,
                format!("{}\n", token.expose()).as_bytes(),
            )?;
            std::fs::rename(&tmp, &dest)
        };
        if let Err(e) = write() {
            eprintln_safe(&format!(
                "tether: cannot install the token at {}: {e}",
                dest.display()
            ));
            return 1;
        }
        print(&format!("token installed at {}\n", dest.display()));
    }
    match crate::uplink::identity::write(&c.agent.state_dir, true) {
        Ok(i) => {
            print(&format!(
                "new agent identity {} in {}; reload (systemctl reload tether) or restart the agent\n",
                i.id,
                crate::uplink::identity::path(&c.agent.state_dir).display()
            ));
            0
        }
        Err(e) => {
            eprintln_safe(&format!(
                "tether: cannot write {}: {e} (run as root or as the agent's user)",
                crate::uplink::identity::path(&c.agent.state_dir).display()
            ));
            1
        }
    }
}

fn switch(c: &Config, r: std::io::Result<()>, done: &str) -> i32 {
    match r {
        Ok(()) => {
            print(&format!(
                "tether {done} ({})\n",
                maintenance::flag_path(&c.agent.state_dir).display()
            ));
            0
        }
        Err(e) => {
            eprintln_safe(&format!(
                "tether: cannot change {}: {e} (run as root or as the agent's user)",
                maintenance::flag_path(&c.agent.state_dir).display()
            ));
            1
        }
    }
}

fn run(config: Config) -> i32 {
    logger::init(config.agent.log_level);
    let listener = match std::net::TcpListener::bind(config.agent.listen).and_then(Async::new) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", config.agent.listen);
            return 1;
        }
    };
    if !config.agent.listen.ip().is_loopback() {
        log::warn!("the local endpoint listens on {}, beyond loopback: /status and /metrics are readable from the network", config.agent.listen);
    }
    let signals = match async_signal::Signals::new([
        async_signal::Signal::Term,
        async_signal::Signal::Int,
        async_signal::Signal::Hup,
    ]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return 1;
        }
    };
    let explicit = if config.source == config::BUILTIN_SOURCE {
        None
    } else {
        Some(PathBuf::from(&config.source))
    };
    let control = signals.filter_map(move |sig| match sig {
        Ok(async_signal::Signal::Hup) => {
            log::info!("SIGHUP: reloading the configuration");
            let loaded = config::resolve_and_load(explicit.as_deref());
            Some(Control::Reload(Box::new(loaded)))
        }
        Ok(_) => Some(Control::Shutdown),
        Err(_) => None,
    });
    let ex = executor();
    // futures_lite's block_on, not async_io's: with async_io::block_on the
    // async-io thread still takes the reactor whenever this thread is busy
    // for 50 µs, then polls it with a backoff; measured, that cost 5 µs more
    // per probe than letting that thread be the reactor's only driver, which
    // wakes this one when a task is ready (benches/compare, footprint).
    futures_lite::future::block_on(ex.run(run::run(ex, config, listener, control)));
    0
}

/// The process's one executor, living as long as the process.
pub fn executor() -> &'static LocalExecutor<'static> {
    Box::leak(Box::new(LocalExecutor::new()))
}

fn check(mut config: Config, opts: &Opts) -> i32 {
    logger::init(log::LevelFilter::Warn);
    if let Some(name) = &opts.check {
        if !config.checks.iter().any(|c| &c.name == name) {
            let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
            return plugin_error(&format!(
                "no check named \"{name}\" in {} (checks: {})",
                config.source,
                names.join(", ")
            ));
        }
        config.checks.retain(|c| &c.name == name);
    }
    let state = one_shot(&config);
    let ex = executor();
    async_io::block_on(ex.run(run_all_once(ex, &state)));
    let snap = crate::agent::snapshot::Snapshot::of(&state);
    print(&if opts.json {
        snap.to_json()
    } else if opts.table {
        snap.to_table()
    } else {
        snap.to_nagios()
    });
    snap.exit_code()
}

/// Why a request to the running agent got no answer.
enum Fetch {
    /// Nothing accepts connections there: no agent is running.
    NotRunning(String),
    /// Something answered, but not usefully, or not in time.
    Failed(String),
}

/// The agent that answered is the one `config` names: its name, and its id
/// when this host has one for that configuration. Another agent (or
/// another program) holding the port is not reported as ours.
fn same_agent(
    config: &Config,
    r: &crate::net::http1::Response,
    addr: SocketAddr,
) -> Result<(), Fetch> {
    let want = crate::format::text::clip(&config.agent.name, 200);
    let Some(name) = r.header("tether-agent").map(str::trim) else {
        return Err(Fetch::Failed(format!(
            "what answers on {addr} is not a tether agent (no Tether-Agent header); is another program using the port?"
        )));
    };
    if name != want {
        return Err(Fetch::Failed(format!(
            "the agent answering on {addr} is \"{name}\", not \"{want}\" as {} names: another agent holds the port, or this is not its configuration",
            config.source
        )));
    }
    if config.upstream.is_some() {
        if let (Some(theirs), Ok(Some(ours))) = (
            r.header("tether-agent-id").map(str::trim),
            crate::uplink::identity::read(&config.agent.state_dir),
        ) {
            if theirs != ours.id {
                return Err(Fetch::Failed(format!(
                    "the agent answering on {addr} has id {theirs}, not {} (from {}): another agent holds the port",
                    ours.id,
                    crate::uplink::identity::path(&config.agent.state_dir).display()
                )));
            }
        }
    }
    Ok(())
}

/// `GET path` from the agent's local endpoint.
fn fetch(
    config: &Config,
    path: &str,
    limit: Duration,
) -> Result<crate::net::http1::Response, Fetch> {
    let mut addr = config.agent.listen;
    if addr.ip().is_unspecified() {
        let lo = if addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        };
        addr = SocketAddr::new(lo, addr.port());
    }
    let get = async {
        let mut s = Async::<TcpStream>::connect(addr)
            .await
            .map_err(|e| Fetch::NotRunning(format!("no agent answering on {addr} ({e})")))?;
        let host = addr.to_string();
        let req = Request {
            method: "GET",
            path,
            host: &host,
            headers: &[],
            body: &[],
        };
        let limits = Limits {
            head: MAX_HEAD,
            body: 4 << 20,
        };
        exchange(&mut s, &req, &Trace::new(Instant::now()), limits)
            .await
            .map_err(|e| Fetch::Failed(format!("the agent on {addr}: {e}")))
    };
    match async_io::block_on(until(Instant::now() + limit, get)) {
        Some(Ok(r)) if r.status == 200 => {
            same_agent(config, &r, addr)?;
            Ok(r)
        }
        Some(Ok(r)) => Err(Fetch::Failed(format!(
            "the agent on {addr} answered HTTP {} to {path}: {}",
            r.status,
            String::from_utf8_lossy(&r.body).trim()
        ))),
        Some(Err(e)) => Err(e),
        None => Err(Fetch::Failed(format!(
            "the agent on {addr} did not answer {path} within {}",
            crate::config::duration::format(limit)
        ))),
    }
}

fn status(config: &Config, json: bool, history: bool) -> i32 {
    let path = match (json, history) {
        (true, false) => "/status",
        (true, true) => "/status?history=1",
        (false, false) => "/status?format=table",
        (false, true) => "/status?format=table&history=1",
    };
    match fetch(config, path, Duration::from_secs(5)) {
        Ok(r) => {
            print(&String::from_utf8_lossy(&r.body));
            // Like `check` and `doctor`: 0 healthy, 1 unhealthy, 2 critical.
            match r.header("tether-severity").map(str::trim) {
                Some("healthy") => 0,
                Some("unhealthy") => 1,
                Some("critical") => 2,
                _ => 3,
            }
        }
        Err(Fetch::NotRunning(e)) => {
            eprintln_safe(&format!(
                "tether: {e}; is `tether run` running with this configuration?"
            ));
            3
        }
        Err(Fetch::Failed(e)) => {
            eprintln_safe(&format!("tether: {e}"));
            3
        }
    }
}

/// `tether doctor`: asks the running agent, or runs the runbook itself.
fn doctor(config: Config, json: bool) -> i32 {
    let path = if json {
        "/doctor?format=json"
    } else {
        "/doctor"
    };
    let limit = crate::serve::endpoint::DOCTOR_DEADLINE + Duration::from_secs(5);
    match fetch(&config, path, limit) {
        Ok(r) => {
            print(&String::from_utf8_lossy(&r.body));
            return r
                .header("tether-verdict")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(3);
        }
        Err(Fetch::Failed(e)) => {
            eprintln_safe(&format!("tether: {e}"));
            return 3;
        }
        Err(Fetch::NotRunning(_)) => {}
    }
    let d = doctor_here(config);
    print(&if json { d.to_json() } else { d.to_text() });
    d.exit_code()
}

/// The runbook in this process: every check once, the history file read.
/// The agent's state for one run of every check in this process (`check`,
/// the doctor without an agent): no systemd, no history file.
fn one_shot(config: &Config) -> std::rc::Rc<AgentState> {
    AgentState::new(
        config.clone(),
        run::resolver_for(config),
        crate::os::notify::Notifier::none(),
    )
}

fn doctor_here(config: Config) -> crate::diagnose::doctor::Diagnosis {
    logger::init(log::LevelFilter::Error);
    crate::net::tls::load_system_roots();
    let state_dir = config.agent.state_dir.clone();
    let state = one_shot(&config);
    let ex = executor();
    async_io::block_on(ex.run(async {
        run_all_once(ex, &state).await;
        // What the agent recorded, not what this run just saw.
        *state.history.borrow_mut() = crate::agent::history::History::read_only(&state_dir);
        crate::diagnose::doctor::diagnose(&state, false).await
    }))
}

/// `tether bundle`: a support file from the running agent, or from what
/// this host has when it is not running.
fn bundle(config: Config, output: Option<&std::path::Path>) -> i32 {
    use crate::diagnose::bundle::{render, Live, Local};
    let now = crate::os::clock::rfc3339(std::time::SystemTime::now());
    let short = Duration::from_secs(10);
    let live = fetch(&config, "/status?format=table&history=1", short).map(|status| {
        let doctor = fetch(
            &config,
            "/doctor?format=json",
            crate::serve::endpoint::DOCTOR_DEADLINE + Duration::from_secs(5),
        );
        let body = |r: crate::net::http1::Response| String::from_utf8_lossy(&r.body).into_owned();
        let or_why = |r: Result<crate::net::http1::Response, Fetch>| match r {
            Ok(r) => body(r),
            Err(Fetch::NotRunning(e) | Fetch::Failed(e)) => format!("not available: {e}\n"),
        };
        Live {
            status_table: body(status),
            doctor_json: or_why(doctor),
            logs: or_why(fetch(&config, "/logs?n=200", short)),
            metrics: or_why(fetch(&config, "/metrics", short)),
        }
    });
    let text = match &live {
        Ok(l) => render(&config, Some(l), None, &now),
        Err(_) => {
            let history = crate::agent::history::History::read_only(&config.agent.state_dir);
            let history_table = crate::agent::history::to_table(history.entries());
            let d = doctor_here(config.clone());
            let local = Local {
                history_table,
                doctor_json: d.to_json(),
            };
            render(&config, None, Some(&local), &now)
        }
    };
    let stamp: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let name: String = config
        .agent
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = output.map_or_else(
        || PathBuf::from(format!("tether-bundle-{name}-{stamp}.txt")),
        PathBuf::from,
    );
    if path.as_os_str() == "-" {
        print(&text);
        return 0;
    }
    match crate::uplink::identity::write_private(&path, text.as_bytes()) {
        Ok(()) => {
            print(&format!(
                "support bundle written to {} ({} bytes{})\n",
                path.display(),
                text.len(),
                match &live {
                    Ok(_) => String::new(),
                    Err(Fetch::NotRunning(_)) =>
                        "; no agent was running, so it holds no live log".into(),
                    Err(Fetch::Failed(e)) =>
                        format!("; the agent could not be asked ({e}), so it holds no live log"),
                }
            ));
            0
        }
        Err(e) => {
            eprintln_safe(&format!("tether: cannot write {}: {e}", path.display()));
            1
        }
    }
}
