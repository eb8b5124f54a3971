//! The state directory with the real binary: one agent per directory (a
//! second is refused and the first untouched, a SIGKILLed agent's lock is
//! gone at once, read-only commands run beside the agent), and an agent
//! that cannot write its state or its spool says so everywhere instead of
//! looking healthy.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::upstream::{field, token_file, Fake};
use common::{tether_cli, wait_for, Agent};

/// One TCP check against a listener kept open for the test's life, and
/// remote-write to a closed port, so the spool is used.
fn spooling_config(extra: &str) -> String {
    let (listener, open) = common::open_port();
    std::mem::forget(listener);
    format!(
        r#"[agent]
interval = "1s"
timeout = "500ms"
{extra}

[remote_write]
url = "http://{}/api/v1/write"
allow_plaintext = true
flush_interval = "1s"

[[check]]
name = "open"
kind = "tcp"
target = "{open}"
"#,
        common::closed_port()
    )
}

/// A directory whose `blocker` is a file: no directory can be made under
/// it, which stops a write even for root (permissions would not).
fn blocked(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = common::temp_dir(tag);
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    (dir, blocker)
}

/// `tether run` on `config` as written (no state_dir added), outside systemd.
fn start_exactly(dir: std::path::PathBuf, config: &str) -> Agent {
    let path = dir.join("custom.toml");
    std::fs::write(&path, config).unwrap();
    Agent::start_with(dir, "", |_| {
        let mut cmd = common::tether_command();
        cmd.env_remove("INVOCATION_ID")
            .args(["run", "-c"])
            .arg(&path);
        cmd
    })
}

fn spool_files(state: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state.join("spool")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// `tether run` on `config`, waited for; (exit code, stderr).
fn run_to_exit(config: &std::path::Path) -> (Option<i32>, String) {
    let mut child = common::tether_command()
        .args(["run", "-c"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_for("the second agent to exit", Duration::from_secs(10), || {
        child.try_wait().unwrap()
    });
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn a_second_agent_on_the_same_state_directory_is_refused_and_the_first_untouched() {
    let mut first = Agent::start("lock-two", &spooling_config(""));
    let state = first.dir.join("state");
    wait_for("records spooled", Duration::from_secs(10), || {
        (spool_files(&state).iter().any(|f| f.ends_with(".seg"))).then_some(())
    });
    let sequence = std::fs::read(state.join("sequence")).unwrap();
    let identity = std::fs::read(state.join("identity")).unwrap();
    let segments = spool_files(&state);
    let (code, err) = run_to_exit(&first.config);
    assert_eq!(code, Some(1), "{err}");
    let want = format!(
        "another tether (pid {}) holds {}; one agent per state directory",
        first.pid(),
        state.display()
    );
    assert!(err.contains(&want), "want {want:?} in {err}");
    assert!(!err.contains("cannot listen"), "{err}");
    // The first runs on, its files as they were: no clean=1, no segment
    // of the second's, the same identity.
    assert_eq!(std::fs::read(state.join("sequence")).unwrap(), sequence);
    assert_eq!(std::fs::read(state.join("identity")).unwrap(), identity);
    let after = spool_files(&state);
    assert!(
        after
            .iter()
            .all(|f| segments.contains(f) || f > segments.last().unwrap()),
        "{segments:?} then {after:?}"
    );
    assert_eq!(first.get("/health").0, 200);
    // Read-only commands run beside it and ask it.
    let cli = first.cli_config();
    for args in [
        &["validate"][..],
        &["status"],
        &["doctor"],
        &["bundle", "-o", "-"],
    ] {
        let out = tether_cli(&cli, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("holds"), "{args:?}: {err}");
        assert!(
            out.status.code().is_some_and(|c| c < 3),
            "{args:?}: {out:?}"
        );
    }
    let out = tether_cli(&cli, &["check"]);
    assert!(out.status.code().is_some_and(|c| c < 3), "{out:?}");
    // enroll would replace the identity under the running agent: refused,
    // saying how to do it safely.
    let out = tether_cli(&cli, &["enroll"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("(pid {})", first.pid())), "{err}");
    assert!(err.contains("systemctl stop tether"), "{err}");
    assert_eq!(std::fs::read(state.join("identity")).unwrap(), identity);
    assert!(first.stop("TERM").success());
}

#[test]
fn the_lock_of_a_killed_agent_is_gone_at_once() {
    let first = Agent::start("lock-kill", &spooling_config(""));
    let pid = first.pid();
    let dir = first.into_dir(); // SIGKILL
    let mut second = Agent::start_in(dir, &spooling_config(""));
    assert_ne!(second.pid(), pid);
    assert_eq!(second.get("/health").0, 200);
    let lock = std::fs::read_to_string(second.dir.join("state/lock")).unwrap();
    assert_eq!(lock.trim(), second.pid().to_string());
    assert!(second.stop("TERM").success());
}

#[test]
fn state_is_private_the_directory_0700_and_every_file_0600() {
    let dir = common::temp_dir("lock-modes");
    let state = dir.join("state");
    let fake = Fake::start("127.0.0.1:0");
    let upstream = format!(
        "\n[upstream]\nurl = \"http://{}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\nflush_interval = \"500ms\"\n",
        fake.addr,
        token_file("t0ken").display()
    );
    let mut a = Agent::start_in(dir, &(spooling_config("") + &upstream));
    wait_for("the spool cursor", Duration::from_secs(10), || {
        state.join("spool/acked").exists().then_some(())
    });
    let out = tether_cli(&a.config, &["disable", "--reason", "test"]);
    assert!(out.status.success(), "{out:?}");
    assert!(a.stop("TERM").success());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("spool")), 0o700);
    let mut seen = 0;
    for d in [state.clone(), state.join("spool")] {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                seen += 1;
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
    }
    assert!(
        seen >= 7,
        "identity, sequence, history, lock, disabled, acked, a segment"
    );
}

#[test]
fn an_unwritable_state_directory_is_unhealthy_and_says_the_fix() {
    let (dir, blocker) = blocked("lock-unwritable");
    let config = spooling_config(&format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = \"{}\"",
        blocker.join("state").display()
    ));
    let mut a = start_exactly(dir, &config);
    let _ = a.wait_log("state_unwritable", Duration::from_secs(5));
    wait_for("the first result", Duration::from_secs(10), || {
        let (_, s) = a.get("/status");
        (field(&s, "severity") == "unhealthy").then_some(())
    });
    let (_, s) = a.get("/status");
    assert!(
        s.contains(r#""durability_lost":{"reason":"state_unwritable","message":"cannot write "#),
        "{s}"
    );
    let (_, m) = a.get("/metrics");
    assert!(
        m.contains("tether_agent_durability_lost{reason=\"state_unwritable\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("tether_agent_durability_lost{reason=\"spool_unavailable\"} 0"),
        "{m}"
    );
    let out = tether_cli(&a.cli_config(), &["status"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.contains("durability lost (state_unwritable)"),
        "{table}"
    );
    assert!(a.stop("TERM").success());
}

#[test]
fn the_start_up_message_names_the_fix_not_enroll() {
    let (dir, blocker) = blocked("lock-message");
    let fake = Fake::start("127.0.0.1:0");
    let config = format!(
        "[agent]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n\n[upstream]\nurl = \"http://{}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\n",
        blocker.join("state").display(),
        fake.addr,
        token_file("t0ken").display()
    );
    let mut a = start_exactly(dir, &config);
    let line = a.wait_log("state_unwritable", Duration::from_secs(5));
    assert!(line.contains("install -d -m 0700 -o"), "{line}");
    assert!(
        line.contains(&blocker.join("state").display().to_string()),
        "{line}"
    );
    let mut rest = String::new();
    while let Ok(l) = a.log.recv_timeout(Duration::from_millis(300)) {
        rest.push_str(&l);
        rest.push('\n');
    }
    assert!(!rest.contains("enroll"), "{rest}");
    assert!(!rest.contains("kept in the spool"), "{rest}");
    assert!(a.stop("TERM").success());
}

#[test]
fn a_spool_that_cannot_be_written_is_in_the_heartbeat() {
    let (dir, blocker) = blocked("lock-spool");
    let fake = Fake::start("127.0.0.1:0");
    let body = format!(
        "[agent]\ninterval = \"1s\"\n\n[upstream]\nurl = \"http://{}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\nflush_interval = \"500ms\"\n\n[spool]\ndir = \"{}\"\n",
        fake.addr,
        token_file("t0ken").display(),
        blocker.join("spool").display()
    );
    let a = Agent::start_in(dir, &body);
    let hb = wait_for("a heartbeat", Duration::from_secs(10), || {
        let r = fake
            .requests
            .recv_timeout(Duration::from_millis(200))
            .ok()?;
        r.lines
            .iter()
            .find(|l| l.contains(r#""type":"heartbeat""#))
            .cloned()
    });
    assert!(
        hb.contains(r#""durability_lost":"spool_unavailable""#),
        "{hb}"
    );
    let (_, s) = a.get("/status");
    assert_eq!(field(&s, "severity"), "unhealthy", "{s}");
    assert!(s.contains(r#""reason":"spool_unavailable""#), "{s}");
}
