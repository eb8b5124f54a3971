//! The status table as an operator reads it: a check on its way down shows
//! its count toward `fall`, the table fits a terminal, a destination's last
//! error has its time and is marked past once the destination is up.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::upstream::{token_file, Fake};
use common::{wait_for, Agent};

#[test]
fn a_check_counting_toward_fall_shows_the_count() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = format!(
        "[agent]\ninterval = \"1s\"\ntimeout = \"300ms\"\n\n[[check]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"{addr}\"\nfall = 5\n"
    );
    let a = Agent::start("table-fall", &body);
    wait_for("a first success", Duration::from_secs(10), || {
        let (_, t) = a.get("/status?format=table");
        t.lines().any(|l| l.starts_with("db ")).then_some(())?;
        (!t.contains("pending")).then_some(())
    });
    drop(listener);
    let row = wait_for("a failure counted", Duration::from_secs(10), || {
        let (_, t) = a.get("/status?format=table");
        t.lines()
            .find(|l| l.starts_with("db ") && l.contains("/5 failing)"))
            .map(str::to_string)
    });
    assert!(
        row.contains(" ok (1/5 failing)") || row.contains(" ok (2/5 failing)"),
        "{row}"
    );
    assert!(row.contains("connect_refused"), "{row}");
}

fn long_config() -> String {
    let (l, open) = common::open_port();
    std::mem::forget(l);
    format!(
        "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n[[check]]\nname = \"{}\"\nkind = \"tcp\"\ntarget = \"{}\"\n",
        "a-very-long-check-name-that-a-terminal-cannot-show-whole-0123456", open
    )
}

#[test]
fn the_table_fits_the_terminal_and_is_whole_when_piped() {
    let a = Agent::start("table-width", &long_config());
    wait_for("ready", Duration::from_secs(10), || {
        (a.get("/ready").0 == 200).then_some(())
    });
    let (_, t) = a.get("/status?format=table&width=60");
    assert!(t.lines().all(|l| l.chars().count() <= 60), "{t}");
    assert!(t.contains('…'), "{t}");
    // Piped: whole.
    let cli = a.cli_config();
    let o = common::tether_cli(&cli, &["status"]);
    let piped = String::from_utf8_lossy(&o.stdout);
    assert!(piped.contains("cannot-show-whole-0123456"), "{piped}");
    // On a terminal (a pty from script(1)) of 50 columns: cut to 50.
    let cmd = format!(
        "{} -c {} status",
        env!("CARGO_BIN_EXE_tether"),
        cli.display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("COLUMNS", "50")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = shown.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.len() > 2, "{shown}");
    assert!(lines.iter().all(|l| l.chars().count() <= 50), "{shown}");
    assert!(
        lines.iter().any(|l| l.starts_with("a-very-long")),
        "{shown}"
    );
}

#[test]
fn the_last_error_has_its_time_and_is_marked_past_once_up() {
    let fake = Fake::start("127.0.0.1:0");
    fake.set_failing(true);
    let body = format!(
        "[agent]\ninterval = \"1s\"\n\n[upstream]\nurl = \"http://{}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\nflush_interval = \"500ms\"\n",
        fake.addr,
        token_file("t0ken").display()
    );
    let a = Agent::start("table-error", &body);
    let line = wait_for("a failed upload", Duration::from_secs(15), || {
        let (_, t) = a.get("/status?format=table");
        t.lines()
            .find(|l| l.trim_start().starts_with("last error"))
            .map(str::to_string)
    });
    // `  last error 14:02:11Z (3s ago): …`
    let rest = line.trim_start().strip_prefix("last error ").unwrap();
    let (clock, rest) = rest.split_once(' ').unwrap();
    assert!(
        clock.len() == 9 && clock.ends_with('Z') && clock.as_bytes()[2] == b':',
        "{line}"
    );
    assert!(rest.starts_with('(') && rest.contains("s ago)"), "{line}");
    assert!(!line.contains("past"), "{line}");
    fake.set_failing(false);
    let line = wait_for("the upstream up again", Duration::from_secs(40), || {
        let (_, t) = a.get("/status?format=table");
        t.lines()
            .find(|l| l.contains("last error") && l.contains("past: up again since"))
            .map(str::to_string)
    });
    assert!(line.contains("503"), "{line}");
    let (_, j) = a.get("/status");
    assert!(j.contains("\"last_error_time\":\""), "{j}");
}

#[test]
fn the_agent_labels_are_shown_and_in_agent_info() {
    let a = Agent::start(
        "table-labels",
        "[agent]\nlabels = { site = \"fra1\", group = \"eu-west\" }\n",
    );
    let (_, t) = a.get("/status?format=table");
    assert!(
        t.lines().nth(1) == Some("labels: group=eu-west, site=fra1"),
        "{t}"
    );
    let (_, j) = a.get("/status");
    assert!(
        j.contains(r#""labels":{"group":"eu-west","site":"fra1"}"#),
        "{j}"
    );
    let (_, m) = a.get("/metrics");
    let info = m
        .lines()
        .find(|l| l.starts_with("tether_agent_info{"))
        .unwrap_or_else(|| panic!("{m}"));
    assert!(
        info.contains("group=\"eu-west\"") && info.contains("site=\"fra1\""),
        "{info}"
    );
    // A name Prometheus would refuse is refused here, with its line.
    let dir = common::temp_dir("table-labels-bad");
    let p = dir.join("t.toml");
    std::fs::write(&p, "[agent]\nlabels = { \"1site\" = \"x\" }\n").unwrap();
    let o = common::tether_command()
        .args(["validate", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{}:2:", p.display())) && err.contains("1site"),
        "{err}"
    );
}
