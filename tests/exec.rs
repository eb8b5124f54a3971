//! `exec` checks: exit codes as a Nagios plugin, signals, timeouts that kill
//! the whole process group, perfdata, and a real plugin from Debian's
//! monitoring-plugins-basic.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tether::outcome::{Outcome, Reason, Status};

fn resolver() -> tether::net::resolve::Resolver {
    hosts_resolver("")
}

/// Writing a script excludes running one: a fork in another test thread
/// while the script is open for writing would inherit that descriptor until
/// its exec, and the script's own exec then fails with ETXTBSY ("Text file
/// busy"), which made this suite flaky under load.
static FORK_GUARD: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let _writing = FORK_GUARD.write().unwrap_or_else(|e| e.into_inner());
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn exec(argv: &[&str], extra: &str) -> Outcome {
    let _running = FORK_GUARD.read().unwrap_or_else(|e| e.into_inner());
    let list: Vec<String> = argv.iter().map(|a| format!("{a:?}")).collect();
    run(
        &check(&format!(
            "kind = \"exec\"\ncommand = [{}]\n{extra}",
            list.join(", ")
        )),
        &resolver(),
    )
}

#[test]
fn exit_codes_map_like_a_nagios_plugin() {
    let dir = temp_dir("exec-codes");
    let cases = [
        (0, Status::Ok, None),
        (1, Status::Warn, Some(Reason::ExecStatus)),
        (2, Status::Crit, Some(Reason::ExecStatus)),
        (3, Status::Unknown, Some(Reason::ExecStatus)),
        (42, Status::Unknown, Some(Reason::ExecStatus)),
    ];
    for (code, status, reason) in cases {
        let s = script(
            &dir,
            &format!("exit{code}.sh"),
            &format!("echo \"STATE {code} - said the plugin\"\nexit {code}"),
        );
        let o = exec(&[s.to_str().unwrap()], "");
        assert_eq!((o.status, o.reason), (status, reason), "{o:?}");
        assert!(
            o.message
                .starts_with(&format!("STATE {code} - said the plugin")),
            "{}",
            o.message
        );
        if code != 0 {
            assert!(
                o.message.ends_with(&format!("(exit {code})")),
                "{}",
                o.message
            );
        }
    }
}

#[test]
fn a_signal_is_unknown_and_named() {
    let dir = temp_dir("exec-signal");
    let s = script(&dir, "term.sh", "echo dying\nkill -TERM $$");
    let o = exec(&[s.to_str().unwrap()], "");
    assert_eq!(
        (o.status, o.reason),
        (Status::Unknown, Some(Reason::ExecSignal)),
        "{o:?}"
    );
    assert!(
        o.message.contains("killed by signal 15 (SIGTERM)"),
        "{}",
        o.message
    );
}

#[test]
fn arguments_environment_and_stderr() {
    let dir = temp_dir("exec-env");
    let s = script(
        &dir,
        "args.sh",
        "echo \"args=$1,$2 path=$PATH who=$WHO token=${TETHER_TOKEN:-unset} pwd=$(pwd)\"",
    );
    std::env::set_var("TETHER_TOKEN", "secret");
    let o = exec(
        &[s.to_str().unwrap(), "a b", "c"],
        "env = { WHO = \"tether\" }",
    );
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(
        o.message,
        format!(
            "args=a b,c path={} who=tether token=unset pwd=/",
            tether::config::EXEC_PATH
        )
    );
    let quiet = script(&dir, "stderr.sh", "echo 'usage: oops' >&2\nexit 3");
    let o = exec(&[quiet.to_str().unwrap()], "");
    assert_eq!(o.message, "usage: oops (exit 3)");
    let o = exec(&[dir.join("missing").to_str().unwrap()], "");
    assert_eq!(
        (o.status, o.reason),
        (Status::Unknown, Some(Reason::ExecError)),
        "{o:?}"
    );
}

fn alive(pid: u32) -> bool {
    // Gone, or a zombie waiting for its parent: either way not running.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => !matches!(
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
    }
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let dir = temp_dir("exec-timeout");
    let pids = dir.join("pids");
    let s = script(
        &dir,
        "hang.sh",
        &format!(
            "sleep 60 &\necho $! > {0}.tmp\necho $$ >> {0}.tmp\nmv {0}.tmp {0}\nsleep 60",
            pids.display()
        ),
    );
    let o = exec(&[s.to_str().unwrap()], "timeout = \"500ms\"");
    assert_eq!(
        (o.status, o.reason),
        (Status::Crit, Some(Reason::Timeout)),
        "{o:?}"
    );
    let text = wait_for("the script's pid file", Duration::from_secs(5), || {
        std::fs::read_to_string(&pids).ok()
    });
    let pids: Vec<u32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(pids.len(), 2, "{text}");
    for pid in pids {
        wait_for(
            &format!("process {pid} to be killed"),
            Duration::from_secs(5),
            || (!alive(pid)).then_some(()),
        );
    }
}

#[test]
fn perfdata_is_parsed_into_the_outcome() {
    let dir = temp_dir("exec-perf");
    let s = script(
        &dir,
        "disk.sh",
        "echo \"DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968 'in use'=44%;80;90\"",
    );
    let o = exec(&[s.to_str().unwrap()], "");
    assert_eq!(o.message, "DISK OK - free space: / 3326 MB (56%);");
    let p = &o.detail.perf;
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(
        (p[0].label.as_str(), p[0].value, p[0].uom.as_str()),
        ("/", Some(2643.0), "MB")
    );
    assert_eq!(
        (p[1].label.as_str(), p[1].warn, p[1].crit),
        ("in use", Some(80.0), Some(90.0))
    );
}

const PLUGINS: &str = "/usr/lib/nagios/plugins";

#[test]
fn real_monitoring_plugins_check_tcp_and_check_disk() {
    let check_tcp = format!("{PLUGINS}/check_tcp");
    assert!(
        Path::new(&check_tcp).exists(),
        "{check_tcp} missing: install Debian's monitoring-plugins-basic (.ci/run does)"
    );
    let (_l, open) = open_port();
    let port = open.port().to_string();
    let o = exec(&[&check_tcp, "-H", "127.0.0.1", "-p", &port], "");
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert!(o.message.starts_with("TCP OK"), "{}", o.message);
    assert!(
        o.detail
            .perf
            .iter()
            .any(|p| p.label == "time" && p.uom == "s"),
        "{o:?}"
    );
    let closed = closed_port().port().to_string();
    let o = exec(&[&check_tcp, "-H", "127.0.0.1", "-p", &closed], "");
    assert_eq!(
        (o.status, o.reason),
        (Status::Crit, Some(Reason::ExecStatus)),
        "{o:?}"
    );
    let o = exec(
        &[
            &format!("{PLUGINS}/check_disk"),
            "-w",
            "1%",
            "-c",
            "0%",
            "-p",
            "/",
        ],
        "",
    );
    assert!(matches!(o.status, Status::Ok | Status::Warn), "{o:?}");
    assert!(!o.detail.perf.is_empty(), "{o:?}");
}
