//! The command line: usage errors exit 2, `check` exits like a Nagios plugin.

mod common;

use std::process::{Command, Output};

use common::*;

fn tether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    for (args, needle) in [
        (&[][..], "missing command"),
        (&["frobnicate"][..], "unknown command `frobnicate`"),
        (
            &["validate", "--json"][..],
            "--json is not an option of `validate`",
        ),
        (&["run", "extra"][..], "unexpected argument `extra`"),
        (&["config"][..], "`config` takes one subcommand: default"),
        (&["check", "--check"][..], "--check"),
    ] {
        let o = tether(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    let v = tether(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        format!("tether {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(String::from_utf8_lossy(&tether(&["help"]).stdout)
        .contains("check [--check NAME] [--json]"));
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

    let missing = tether(&["check", "-c", &cfg, "--check", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("no check named \"nope\""));

    // Maintenance: nothing is alarmed.
    assert_eq!(
        tether(&["disable", "-c", &cfg, "--reason", "patching"])
            .status
            .code(),
        Some(0)
    );
    let flag = std::fs::read_to_string(dir.join("state/disabled")).unwrap();
    assert!(flag.contains("reason=patching"), "{flag}");
    let disabled = tether(&["check", "-c", &cfg]);
    assert_eq!(disabled.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&disabled.stdout).contains("disabled (healthy)"));
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
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("no agent answering on {closed}")),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(dir);
}
