//! The command line (pico-args). Every usage error names the problem and
//! exits 2 (3 for `check` and `status`, whose exit codes are severities);
//! `check` exits like a Nagios plugin (0 ok, 1 warning, 2 critical,
//! 3 unknown) so tether can serve as a plugin for Nagios, Icinga or Zabbix.
//!
//! This file parses the arguments and dispatches; each command is a file:
//! `run` (the daemon), `check`, `status`, `doctor`, `bundle`, `enroll`,
//! `maintenance` (disable and enable), with `ask` for the commands that
//! ask the running agent. The top of the crate: it may import everything.

mod ask;
mod bundle;
mod check;
mod doctor;
mod enroll;
mod maintenance;
pub mod run;
mod status;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use async_io::Async;

use crate::agent::scheduler::run_all_once;
use crate::agent::state::AgentState;
use crate::config::{self, Config};
use crate::format::text;
use crate::net::http1::{exchange, Limits, Request, MAX_HEAD};
use crate::os::alarm::until;
use crate::os::logger;
use crate::outcome::Trace;

pub const USAGE: &str = "\
tether: a connector health agent

usage: tether [-c FILE] [-d DIR] COMMAND [OPTIONS]

commands:
  run                        run the agent (the daemon)
  check [--check NAME] [--json | --table] [-v]
                             run every check (or one) once as a Nagios plugin:
                             exit 0 ok / 1 warning / 2 critical / 3 unknown;
                             -v also logs to stderr
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
  config effective [--json]  print the configuration as merged (file,
                             drop-ins, defaults, variables), each check with
                             the file and line it came from
  enroll [--token-file F]    create a new agent identity on purpose (the old
                             one is replaced); with --token-file, install F as
                             the configured [upstream] token_file
  disable [--reason TEXT] [--for DURATION]
                             maintenance: keep probing, alarm nothing (with
                             --for, for that long: 2h, 30m)
  enable                     end maintenance
  help [COMMAND]             this text, or one command's
  --version                  print the version, the target and the commit

`tether help COMMAND` or `tether COMMAND --help` describes one command.

options:
  -c, --config FILE          (also --config=FILE, -cFILE) configuration
                             file; without it tether uses
                             /etc/tether/tether.toml if it exists, otherwise
                             the built-in default (tether config default)
  -d, --conf-dir DIR         drop-ins: every *.toml in DIR, in name order,
                             after FILE ([[check]] tables and [agent]
                             labels); default conf.d beside FILE
";

/// One command's own `--help`.
fn command_help(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "run" => "usage: tether [-c FILE] run\n\nRuns the agent: probes every check on its interval, serves the local\nendpoint (/health /ready /status /metrics /logs /doctor), reports to\n[upstream] if configured. SIGHUP reloads the configuration, SIGTERM stops.\n\nExit: 0 after SIGTERM or SIGINT, 1 when it cannot start (its listen\naddress in use, its state directory held by another agent), 2 for an\ninvalid configuration.\n",
        "check" => "usage: tether [-c FILE] check [--check NAME] [--json | --table] [-v]\n\nRuns every check (or the one named) once and prints Nagios plugin output:\na first line `SERVICE STATUS: text | perfdata` (durations and phases in\nseconds, a wrapped plugin's own values), then one line per check.\n--json prints the status as JSON, --table as a table; -v logs the\nagent's lines (state changes) to stderr as well.\n\nExit: 0 ok, 1 warning, 2 critical, 3 unknown (also when the configuration\nis invalid or the check does not exist, with one line saying why).\n",
        "status" => "usage: tether [-c FILE] status [--json] [--history]\n\nAsks the running agent (at the configuration's listen address) for its\nstatus, after checking that the agent answering is the one the\nconfiguration names. --history adds the health history.\n\nExit: 0 healthy, 1 unhealthy, 2 critical, 3 no agent (or another one, or\na usage error).\n",
        "doctor" => "usage: tether [-c FILE] doctor [--json]\n\nRuns the connector runbook: status, can this host reach the control plane,\nwhich resource hosts fail and why, what fails now and then, version,\nlocal storage, identity, token, clock, certificates. Asks the running\nagent if there is one, else runs every check once itself.\n\nExit: 0 ok, 1 warning, 2 critical, 3 the running agent could not be asked.\n",
        "bundle" => "usage: tether [-c FILE] bundle [-o FILE]\n\nWrites a support bundle: status, history, doctor findings, the redacted\nconfiguration, the last 200 log lines, spool and upstream figures.\nDefault ./tether-bundle-NAME-TIME.txt (mode 0600); -o - for stdout.\n\nExit: 0 written, 1 when it cannot be written, 2 for a usage or\nconfiguration error.\n",
        "validate" => "usage: tether [-c FILE] validate\n\nChecks the configuration and prints every error with file, line and key.\nExit: 0 valid, 2 invalid.\n",
        "config" => "usage: tether config default\n       tether [-c FILE] [-d DIR] config effective [--json]\n\nPrints the built-in default configuration, or the configuration as the\nagent runs it: the file and its drop-ins merged, defaults and variables\nresolved, each check with the file and line it came from.\n\nExit: 0 printed, 2 for a usage or configuration error.\n",
        "enroll" => "usage: tether [-c FILE] enroll [--token-file F]\n\nWrites a new agent identity on purpose (the old one is replaced); with\n--token-file, installs F as the configured [upstream] token_file.\nThe agent must be stopped (it holds the state directory); start it after.\n\nExit: 0 written, 1 when the agent holds the state directory or the\nidentity or token cannot be written, 2 for a usage or configuration error.\n",
        "disable" => "usage: tether [-c FILE] disable [--reason TEXT] [--for DURATION]\n\nMaintenance: probes keep running, nothing is alarmed. With --for (2h,\n30m) it ends by itself. The reason and who set it are recorded.\n\nExit: 0 set, 1 when the flag cannot be written, 2 for a usage or\nconfiguration error.\n",
        "enable" => "usage: tether [-c FILE] enable\n\nEnds maintenance.\n\nExit: 0 ended, 1 when the flag cannot be removed, 2 for a usage or\nconfiguration error.\n",
        "help" => USAGE,
        _ => return None,
    })
}

/// The options that take a value.
const TAKE_VALUE: &[&str] = &[
    "-c",
    "--config",
    "-d",
    "--conf-dir",
    "--check",
    "-o",
    "--output",
    "--reason",
    "--token-file",
    "--for",
];

/// `--config=FILE` and `-cFILE` as `--config FILE` and `-c FILE`, for every
/// option that takes a value (a value itself is left alone, whatever it
/// looks like).
fn split_values(args: Vec<OsString>) -> Vec<OsString> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out: Vec<OsString> = Vec::with_capacity(args.len() + 2);
    let mut value_next = false;
    for a in args {
        let b = a.as_bytes();
        let takes = |k: &[u8]| TAKE_VALUE.iter().any(|t| t.as_bytes() == k);
        let at = if value_next {
            None
        } else if b.starts_with(b"--") {
            b.iter()
                .position(|&c| c == b'=')
                .filter(|&i| takes(&b[..i]))
        } else {
            (b.len() > 2 && b[0] == b'-' && takes(&b[..2])).then_some(2)
        };
        value_next = !value_next && takes(b);
        match at {
            Some(i) => {
                let skip = usize::from(b[i] == b'=');
                out.push(OsString::from_vec(b[..i].to_vec()));
                out.push(OsString::from_vec(b[i + skip..].to_vec()));
            }
            None => out.push(a),
        }
    }
    out
}

/// The command word among the arguments (the first free one, skipping the
/// values of options that take one), to shape `--help` and exit codes
/// before the options are parsed.
fn command_of(args: &[OsString]) -> Option<String> {
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

pub(super) struct Opts {
    config: Option<PathBuf>,
    /// `-d DIR`: the drop-in directory instead of `conf.d` beside the file.
    dropins: Option<PathBuf>,
    check: Option<String>,
    /// `check -v`: the agent's log lines on stderr too.
    verbose: bool,
    json: bool,
    table: bool,
    history: bool,
    output: Option<PathBuf>,
    reason: Option<String>,
    for_: Option<String>,
    token_file: Option<PathBuf>,
}

pub(super) fn usage_error(msg: &str) -> i32 {
    eprintln_safe(&format!("tether: {msg}\nRun `tether help` for usage."));
    2
}

/// `check` is a Nagios plugin: what stops it is UNKNOWN (3), said once, in
/// one line on stdout (what Nagios shows).
pub(super) fn plugin_error(msg: &str) -> i32 {
    print(&format!("TETHER UNKNOWN: {}\n", msg.replace('\n', "; ")));
    3
}

/// Writes to stderr, ignoring a closed stream (never panics).
pub(super) fn eprintln_safe(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

pub(super) fn print(msg: &str) {
    use std::io::Write;
    let _ = std::io::stdout().write_all(msg.as_bytes());
}

/// `tether --version`: the version, the target triple and the commit the
/// binary was built from (see `build.rs`).
pub fn version_line() -> String {
    format!(
        "tether {} ({}, commit {})\n",
        env!("CARGO_PKG_VERSION"),
        env!("TETHER_TARGET"),
        env!("TETHER_COMMIT")
    )
}

/// Entry point for the binary: arguments without the program name; returns the exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    if args.len() == 1 && args[0] == crate::os::fs_helper::HELPER_ARG {
        return crate::os::fs_helper::serve::serve();
    }
    let args = split_values(args);
    let command = command_of(&args);
    let plugin = command.as_deref() == Some("check");
    let mut a = pico_args::Arguments::from_vec(args);
    if a.contains("--version") || a.contains("-V") {
        print(&version_line());
        return 0;
    }
    if a.contains(["-h", "--help"]) {
        print(command.as_deref().and_then(command_help).unwrap_or(USAGE));
        return 0;
    }
    // `check` and `status` answer in severities, where 2 is critical: a
    // usage error there is unknown (3).
    let usage_error = |msg: &str| {
        if plugin {
            plugin_error(msg)
        } else if command.as_deref() == Some("status") {
            usage_error(msg);
            3
        } else {
            usage_error(msg)
        }
    };
    let opts = (|| -> Result<Opts, pico_args::Error> {
        Ok(Opts {
            config: a
                .opt_value_from_os_str(["-c", "--config"], |s| Ok::<_, String>(PathBuf::from(s)))?,
            dropins: a.opt_value_from_os_str(["-d", "--conf-dir"], |s| {
                Ok::<_, String>(PathBuf::from(s))
            })?,
            check: a.opt_value_from_str("--check")?,
            verbose: a.contains(["-v", "--verbose"]),
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
    if let Some(bad) = rest.iter().find(|r| r.len() > 1 && r.starts_with('-')) {
        return usage_error(&format!("unknown option {bad}"));
    }
    let Some((cmd, rest)) = rest.split_first() else {
        return usage_error("missing command");
    };
    let allowed: &[&str] = match cmd.as_str() {
        "check" => &["check", "verbose", "json", "table"],
        "status" => &["json", "history"],
        "doctor" => &["json"],
        "config" => &["json"],
        "bundle" => &["output"],
        "disable" => &["reason", "for"],
        "enroll" => &["token-file"],
        _ => &[],
    };
    for (flag, given) in [
        ("check", opts.check.is_some()),
        ("verbose", opts.verbose),
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
        ("config", ["effective"]) => with_config(&opts, |mut c| {
            // With the control plane's checks the agent keeps (and runs).
            let remote = c.upstream.as_ref().is_some_and(|u| u.remote_config);
            let cached = crate::agent::remote_config::cached(&c.agent.state_dir);
            if let Some((rev, doc)) = cached.filter(|_| remote) {
                match config::remote::merge(&c, &rev, &doc) {
                    Ok((merged, _)) => c = merged,
                    Err(e) => eprintln_safe(&format!(
                        "the cached remote configuration {rev} does not fit: {e}"
                    )),
                }
            }
            print(&if opts.json {
                config::effective::to_json(&c)
            } else {
                config::effective::to_text(&c)
            });
            0
        }),
        ("config", _) => usage_error("`config` takes one subcommand: default or effective"),
        ("help", []) => {
            print(USAGE);
            0
        }
        ("help", [topic]) => match command_help(topic) {
            Some(h) => {
                print(h);
                0
            }
            None => usage_error(&format!("no command `{topic}`")),
        },
        ("version", []) => {
            print(&version_line());
            0
        }
        (_, [extra, ..]) => usage_error(&format!("unexpected argument `{extra}`")),
        ("run", []) => with_config(&opts, |c| run::command(c, opts.dropins.clone())),
        ("check", []) => {
            match config::resolve_and_load_with(opts.config.as_deref(), opts.dropins.as_deref()) {
                Ok(c) => check::command(c, &opts),
                Err(e) => plugin_error(&format!("invalid configuration: {e}")),
            }
        }
        ("validate", []) => with_config(&opts, |c| {
            let warnings = missing_paths(&c);
            for w in &warnings {
                eprintln_safe(w);
            }
            let mut said = format!(
                "{}: ok, {}",
                c.source,
                text::count(c.checks.len() as u64, "check")
            );
            if !warnings.is_empty() {
                said += &format!(", {}", text::count(warnings.len() as u64, "warning"));
            }
            print(&(said + "\n"));
            0
        }),
        ("status", []) => {
            match config::resolve_and_load_with(opts.config.as_deref(), opts.dropins.as_deref()) {
                Ok(c) => status::command(&c, opts.json, opts.history),
                Err(e) => {
                    status::with_broken_config(&e, opts.config.as_deref(), opts.json, opts.history)
                }
            }
        }
        ("doctor", []) => with_config(&opts, |c| doctor::command(c, opts.json)),
        ("bundle", []) => with_config(&opts, |c| bundle::command(c, opts.output.as_deref())),
        ("disable", []) => with_config(&opts, |c| {
            maintenance::disable(&c, opts.reason.as_deref(), opts.for_.as_deref())
        }),
        ("enroll", []) => with_config(&opts, |c| enroll::command(&c, opts.token_file.as_deref())),
        ("enable", []) => with_config(&opts, |c| maintenance::enable(&c)),
        (other, _) => usage_error(&format!("unknown command `{other}`")),
    }
}

pub(super) fn with_config(opts: &Opts, f: impl FnOnce(Config) -> i32) -> i32 {
    match config::resolve_and_load_with(opts.config.as_deref(), opts.dropins.as_deref()) {
        Ok(c) => f(c),
        Err(e) => {
            eprintln_safe(&e.to_string());
            2
        }
    }
}

/// What a check points at that is not there (yet): a warning each, with
/// its line, for `validate`. The check may be meant to fail until the file
/// appears, so the configuration is still valid.
fn missing_paths(c: &Config) -> Vec<String> {
    use crate::config::ProbeSpec as P;
    let mut out = Vec::new();
    for (check, at) in c.checks.iter().zip(&c.check_at) {
        let (path, what) = match &check.probe {
            P::File(f) => (f.path.as_path(), "file"),
            P::CertFile(f) => (f.path.as_path(), "certificate file"),
            P::Writable(w) => (w.path.as_path(), "directory"),
            P::Exec(e) => (std::path::Path::new(&e.command[0]), "program"),
            _ => continue,
        };
        let missing = match std::fs::metadata(path) {
            Err(e) => e.to_string(),
            Ok(m) if what == "directory" && !m.is_dir() => "not a directory".into(),
            Ok(m) if what == "program" && m.permissions().mode() & 0o111 == 0 => {
                "not executable".into()
            }
            Ok(_) => continue,
        };
        out.push(format!(
            "{at}: warning: check \"{}\": the {what} {} is not usable ({missing}); the check fails until it is",
            check.name,
            path.display()
        ));
    }
    out
}

/// The terminal's width when stdout is one (`COLUMNS`, else the window
/// size); `None` when piped: tables are then printed whole.
pub(super) fn terminal_width() -> Option<usize> {
    let out = std::io::stdout();
    if !rustix::termios::isatty(&out) {
        return None;
    }
    let columns = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok());
    columns
        .or_else(|| Some(rustix::termios::tcgetwinsize(&out).ok()?.ws_col as usize))
        .filter(|w| *w > 0)
}

/// The process's one executor, living as long as the process.
pub fn executor() -> &'static LocalExecutor<'static> {
    Box::leak(Box::new(LocalExecutor::new()))
}

/// The agent's state for one run of every check in this process (`check`,
/// the doctor without an agent): no systemd, no history file, state changes
/// not logged (the command prints them).
pub(super) fn one_shot(config: &Config) -> std::rc::Rc<AgentState> {
    let state = AgentState::new(
        config.clone(),
        crate::agent::state::resolver_for(config),
        crate::os::notify::Notifier::none(),
    );
    state.log_changes.set(false);
    state
}
