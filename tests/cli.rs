//! The command line: usage errors exit 2 (3 for `check` and `status`, whose
//! exit codes are severities), `check` exits like a Nagios plugin.

mod common;

use std::process::{Command, Output};

use common::*;

fn tether(args: &[&str]) -> Output {
    common::tether_command().args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_or_3_for_status_and_say_what_is_wrong() {
    for (args, needle) in [
        (&[][..], "missing command"),
        (&["frobnicate"][..], "unknown command `frobnicate`"),
        (
            &["validate", "--json"][..],
            "--json is not an option of `validate`",
        ),
        (&["run", "extra"][..], "unexpected argument `extra`"),
        (&["config"][..], "`config` takes one subcommand: default"),
        (&["help", "frob"][..], "no command `frob`"),
    ] {
        let o = tether(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // `status` answers in severities (2 is critical): its usage errors are
    // unknown, 3. The bad option is named, not the command after it.
    for (args, needle) in [
        (&["--bogus", "status"][..], "unknown option --bogus"),
        (&["status", "--bogus=1"][..], "unknown option --bogus=1"),
        (&["status", "extra"][..], "unexpected argument `extra`"),
    ] {
        let o = tether(args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let v = tether(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!(
            "tether {} ({}, commit {})\n",
            env!("CARGO_PKG_VERSION"),
            test_target(),
            env!("TETHER_COMMIT")
        )
    );
    assert_ne!(
        env!("TETHER_COMMIT"),
        "unknown",
        "built from a git checkout"
    );
    assert_eq!(tether(&["version"]).stdout, v.stdout);
    assert!(String::from_utf8_lossy(&tether(&["help"]).stdout)
        .contains("check [--check NAME] [--json | --table]"));
    // Each command's --help is its own, wherever the flag stands.
    for (args, first) in [
        (&["check", "--help"][..], "usage: tether [-c FILE] check"),
        (
            &["-c", "x.toml", "status", "-h"][..],
            "usage: tether [-c FILE] status",
        ),
        (&["--help", "doctor"][..], "usage: tether [-c FILE] doctor"),
        (
            &["disable", "--help"][..],
            "usage: tether [-c FILE] disable [--reason TEXT] [--for DURATION]",
        ),
        (&["--help"][..], "tether: a connector health agent"),
        (&["help", "check"][..], "usage: tether [-c FILE] check"),
        (&["help", "enroll"][..], "usage: tether [-c FILE] enroll"),
    ] {
        let o = tether(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.starts_with(first), "{args:?}: {out}");
    }
}

#[test]
fn the_built_in_configuration_passes_as_a_plugin_on_a_healthy_host() {
    // It once checked the agent's own endpoint, so the first command a
    // newcomer tried, with no agent running, said CRITICAL.
    let dir = temp_dir("cli-default");
    let p = dir.join("default.toml");
    std::fs::write(&p, tether::config::DEFAULT_TOML).unwrap();
    let o = tether(&["check", "-c", &p.to_string_lossy()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("connect_refused"), "{out}");
    // Every check passes but the host's own, which says how this machine
    // is right now (a CI runner has been seen with 3% of its disk free:
    // critical): the exit code is the host check's.
    let o = tether(&["check", "--json", "-c", &p.to_string_lossy()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut host = None;
    for c in v["checks"].as_array().unwrap() {
        if c["kind"] == "system" {
            host = Some(c["status"].as_str().unwrap().to_string());
            let reason = c["reason"].as_str().unwrap_or("");
            assert!(
                ["", "cpu_overloaded", "memory_low", "disk_low"].contains(&reason),
                "{c}"
            );
        } else {
            assert_eq!(c["status"], "ok", "{c}");
        }
    }
    let want = match host.as_deref() {
        Some("ok") => 0,
        Some("warn") => 1,
        Some("crit") => 2,
        other => panic!("no host check, or {other:?}: {v}"),
    };
    assert_eq!(o.status.code(), Some(want), "{v}");
}

#[test]
fn check_passes_a_wrapped_plugins_perfdata_through() {
    let (_d, cfg) = write_config(
        "plugin-perf",
        "[[check]]\nname = \"disk\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"echo 'DISK OK - free space: / 30%|/=100B;200;300;0;400 inodes=5%;;;0;100'\"]\n",
    );
    let o = tether(&["check", "-c", &cfg]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    let (text, perf) = out.trim_end().split_once(" | ").unwrap();
    assert!(
        text.starts_with("disk OK: DISK OK - free space: / 30%"),
        "{out}"
    );
    assert!(perf.contains(" /=100B;200;300;0;400"), "{perf}");
    assert!(perf.contains(" inodes=5%;;;0;100"), "{perf}");
}

#[test]
fn check_as_a_plugin_that_cannot_run_is_unknown_with_one_line() {
    let dir = temp_dir("cli-plugin-unknown");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[agent]\nbogus = 1\n").unwrap();
    let bad = bad.to_string_lossy().into_owned();
    let (_d, good) = write_config(
        "plugin-unknown",
        "[[check]]\nname = \"a\"\nkind = \"file\"\npath = \"/\"\n",
    );
    for (args, needle) in [
        (vec!["check", "-c", bad.as_str()], "invalid configuration"),
        (
            vec!["check", "-c", good.as_str(), "--check", "nope"],
            "no check named \"nope\"",
        ),
        (vec!["check", "--check"], "--check"),
        (vec!["check", "--frob"], "unknown option --frob"),
    ] {
        let o = tether(&args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(out.lines().count(), 1, "{args:?}: {out}");
        // Said once: Nagios shows stdout; stderr stays quiet.
        assert_eq!(stderr(&o), "", "{args:?}");
        assert!(
            out.starts_with("TETHER UNKNOWN: ") && out.contains(needle),
            "{args:?}: {out}"
        );
    }
}

#[test]
fn unreadable_configurations_are_refused_at_once_with_their_place() {
    let dir = temp_dir("cli-odd-files");
    let fifo = dir.join("fifo.toml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let bad = dir.join("latin1.toml");
    std::fs::write(&bad, b"[agent]\nname = \"caf\xe9\"\n").unwrap();
    let fifo = fifo.to_string_lossy().into_owned();
    let bad = bad.to_string_lossy().into_owned();
    for (path, want) in [
        // A FIFO once blocked `validate` forever, /dev/zero filled memory.
        (
            fifo.as_str(),
            format!("{fifo}: cannot read: not a regular file"),
        ),
        (
            "/dev/zero",
            "/dev/zero: cannot read: not a regular file".into(),
        ),
        (
            bad.as_str(),
            format!("{bad}:2:12: not UTF-8 text (byte 0xe9)"),
        ),
    ] {
        let start = std::time::Instant::now();
        let o = tether(&["validate", "-c", path]);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{path}"
        );
        assert_eq!(o.status.code(), Some(2), "{path}");
        assert_eq!(stderr(&o).trim_end(), want);
    }
}

#[test]
fn every_option_with_a_value_takes_it_joined_too() {
    let (_d, cfg) = write_config(
        "cli-joined",
        "[[check]]\nname = \"a\"\nkind = \"file\"\npath = \"/\"\n",
    );
    let joined_eq = format!("--config={cfg}");
    let joined_short = format!("-c{cfg}");
    for args in [
        vec!["validate", "--config", cfg.as_str()],
        vec!["validate", joined_eq.as_str()],
        vec![joined_short.as_str(), "validate"],
    ] {
        let o = tether(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.starts_with(&format!("{cfg}: ok, 1 check")),
            "{args:?}: {out}"
        );
    }
    let o = tether(&["check", &joined_eq, "--check=a"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // A value is a value, whatever it looks like.
    let o = tether(&["-c", &cfg, "check", "--check", "-cx"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("no check named \"-cx\""), "{out}");
}

#[test]
fn check_logs_state_changes_only_with_v() {
    let closed = closed_port();
    let (_d, cfg) = write_config(
        "cli-quiet",
        &format!("[[check]]\nname = \"down\"\nkind = \"tcp\"\ntarget = \"{closed}\"\nfall = 1\n"),
    );
    let o = tether(&["check", "-c", &cfg]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "");
    let o = tether(&["check", "-c", &cfg, "-v"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("down"), "{}", stderr(&o));
}

#[test]
fn status_with_a_broken_file_is_unknown_and_still_asks_the_agent() {
    let agent = Agent::start("cli-status-broken", "");
    let dir = temp_dir("cli-status-broken-file");
    // Readable listen, an invalid key: the agent there is asked.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        format!("[agent]\nlisten = \"{}\"\nbogus = 1\n", agent.addr),
    )
    .unwrap();
    let o = tether(&["status", "-c", &bad.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.contains("unknown key `bogus`"), "{err}");
    assert!(
        err.contains(&format!(
            "asking the agent at {} (its [agent] listen)",
            agent.addr
        )),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("tether "), "{out}");
    // Not TOML at all: the default address, said.
    std::fs::write(&bad, "[agent\n").unwrap();
    let o = tether(&["status", "-c", &bad.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.contains("invalid TOML"), "{err}");
    assert!(
        err.contains("(the default listen: the file's is unreadable)"),
        "{err}"
    );
}

#[test]
fn a_listen_address_in_use_names_the_key() {
    let (_held, addr) = open_port();
    let dir = temp_dir("cli-listen");
    let p = dir.join("t.toml");
    std::fs::write(
        &p,
        format!(
            "[agent]\nstate_dir = \"{}\"\nlisten = \"{addr}\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    let o = tether(&["run", "-c", &p.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    let want = format!(
        "cannot listen on {addr} ([agent] listen in {}:3): address in use — another tether, or set listen",
        p.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}

fn write_config(tag: &str, body: &str) -> (std::path::PathBuf, String) {
    let dir = temp_dir(tag);
    let p = dir.join("t.toml");
    std::fs::write(&p, with_agent_defaults(body, &dir)).unwrap();
    let s = p.to_string_lossy().into_owned();
    (dir, s)
}

#[test]
fn check_exits_like_a_nagios_plugin() {
    let (_l, open) = open_port();
    let closed = closed_port();
    let (http, _rx) = http_server(vec![("/warn", reply(200, "x"))]);
    let body = format!(
        "[[check]]\nname = \"up\"\nkind = \"tcp\"\ntarget = \"{open}\"\n\n[[check]]\nname = \"down\"\nkind = \"tcp\"\ntarget = \"{closed}\"\n\n[[check]]\nname = \"web\"\nkind = \"http\"\nurl = \"http://{http}/warn\"\n"
    );
    let (dir, cfg) = write_config("nagios", &body);
    let all = tether(&["check", "-c", &cfg]);
    assert_eq!(
        all.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&all.stdout)
    );
    // Plugin output: `SERVICE STATUS: text | perfdata`, then a line a check.
    let out = String::from_utf8_lossy(&all.stdout);
    let first = out.lines().next().unwrap();
    let (text, perf) = first.split_once(" | ").expect("perfdata after ` | `");
    assert!(
        text.starts_with("TETHER CRITICAL: ") && text.contains("1 critical (down), 2 ok"),
        "{out}"
    );
    for label in ["up_time=", "down_time=", "web_time=", "web_first_byte="] {
        assert!(
            perf.split(' ')
                .any(|p| p.starts_with(label) && p.contains("s;;;0")),
            "{label} in {perf}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("down: CRITICAL connect_refused: ")),
        "{out}"
    );
    let one = tether(&["check", "-c", &cfg, "--check", "down"]);
    assert_eq!(one.status.code(), Some(2));
    let line = String::from_utf8_lossy(&one.stdout);
    assert!(
        line.starts_with("down CRITICAL: connect_refused: "),
        "{line}"
    );
    assert!(line.contains(" | time="), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");

    let all = tether(&["check", "-c", &cfg, "--table"]);
    assert_eq!(all.status.code(), Some(2));
    let table = String::from_utf8_lossy(&all.stdout);
    assert!(table.contains("degraded (critical)"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("down ") && l.contains("connect_refused")),
        "{table}"
    );

    let one = tether(&["check", "-c", &cfg, "--check", "up", "--json"]);
    assert_eq!(one.status.code(), Some(0));
    let json = String::from_utf8_lossy(&one.stdout);
    assert!(json.starts_with("{\"agent\":"), "{json}");
    assert_eq!(check_field(&json, "up", "status").as_deref(), Some("ok"));
    assert!(
        check_field(&json, "down", "status").is_none(),
        "only the named check runs"
    );

    // Maintenance: nothing is alarmed.
    assert_eq!(
        tether(&["disable", "-c", &cfg, "--reason", "patching"])
            .status
            .code(),
        Some(0)
    );
    let flag = std::fs::read_to_string(dir.join("state/disabled")).unwrap();
    assert!(flag.contains("reason=patching"), "{flag}");
    let disabled = tether(&["check", "-c", &cfg, "--table"]);
    assert_eq!(disabled.status.code(), Some(0));
    let table = String::from_utf8_lossy(&disabled.stdout);
    assert!(table.contains("disabled (healthy)"), "{table}");
    assert!(
        table.contains("maintenance: \"patching\" by uid "),
        "{table}"
    );
    let plugin = tether(&["check", "-c", &cfg]);
    assert_eq!(plugin.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&plugin.stdout).starts_with("TETHER OK: maintenance \"patching\"")
    );
    assert_eq!(tether(&["enable", "-c", &cfg]).status.code(), Some(0));
    assert!(!dir.join("state/disabled").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn status_without_an_agent_says_so() {
    let closed = closed_port();
    let dir = temp_dir("nostatus");
    let p = dir.join("t.toml");
    std::fs::write(&p, format!("[agent]\nlisten = \"{closed}\"\n")).unwrap();
    let o = tether(&["status", "-c", &p.to_string_lossy()]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "no agent: 3, like check and doctor"
    );
    assert!(
        stderr(&o).contains(&format!("no agent answering on {closed}")),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn validate_warns_of_paths_that_are_not_there_yet_with_their_lines() {
    let dir = temp_dir("cli-missing");
    let p = dir.join("t.toml");
    let body = format!(
        "[[check]]\nname = \"snap\"\nkind = \"file\"\npath = \"{d}/none\"\n\n[[check]]\nname = \"cert\"\nkind = \"cert_file\"\npath = \"{d}/cert.pem\"\n\n[[check]]\nname = \"spool\"\nkind = \"writable\"\npath = \"{d}/t.toml\"\n\n[[check]]\nname = \"plugin\"\nkind = \"exec\"\ncommand = [\"{d}/check_nothing\"]\n\n[[check]]\nname = \"here\"\nkind = \"file\"\npath = \"{d}/t.toml\"\n",
        d = dir.display()
    );
    std::fs::write(&p, with_agent_defaults(&body, &dir)).unwrap();
    let o = tether(&["validate", "-c", &p.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out, format!("{}: ok, 5 checks, 4 warnings\n", p.display()));
    let err = stderr(&o);
    let text = std::fs::read_to_string(&p).unwrap();
    let line_of = |name: &str| {
        let at = text.find(&format!("name = \"{name}\"")).unwrap();
        text[..at].lines().count() // the [[check]] line, just above
    };
    for (name, what) in [
        ("snap", "file"),
        ("cert", "certificate file"),
        ("spool", "directory"),
        ("plugin", "program"),
    ] {
        let want = format!(
            "{}:{}: warning: check \"{name}\": the {what} ",
            p.display(),
            line_of(name)
        );
        assert!(err.contains(&want), "{want} in {err}");
    }
    assert!(err.contains("not a directory"), "{err}");
    assert!(!err.contains("\"here\""), "{err}");
    assert_eq!(err.lines().count(), 4, "{err}");
}
