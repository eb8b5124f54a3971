//! The health history, the in-memory log, `on_change`, the transition sent
//! at once, and `tether bundle`: against a real agent on loopback.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use common::upstream::{field, token_file, Fake};
use common::{temp_dir, tether_cli, wait_for, Agent};

/// A tcp check `t` on `addr` that turns on the first change (fall = rise = 1).
fn watched(addr: SocketAddr) -> String {
    format!(
        "\n[[check]]\nname = \"t\"\nkind = \"tcp\"\ntarget = \"{addr}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfall = 1\nrise = 1\n"
    )
}

fn history(agent: &Agent) -> Vec<serde_json::Value> {
    let (code, body) = agent.get("/status?history=1");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["history"].as_array().cloned().unwrap_or_default()
}

#[test]
fn transitions_survive_a_restart_and_are_served() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = format!("[agent]\ninterval = \"1s\"\n{}", watched(addr));
    let mut agent = Agent::start("history", &body);
    wait_for("the check ok", Duration::from_secs(10), || {
        common::check_field(&agent.get("/status").1, "t", "status").filter(|s| s == "ok")
    });
    drop(listener);
    wait_for("ok -> crit in the history", Duration::from_secs(10), || {
        history(&agent)
            .iter()
            .any(|t| t["check"] == "t" && t["from"] == "ok" && t["to"] == "crit")
            .then_some(())
    });
    let h = history(&agent);
    let agent_level: Vec<String> = h
        .iter()
        .filter(|t| t["check"].is_null())
        .map(|t| format!("{} -> {}", t["from"], t["to"]))
        .collect();
    assert!(
        agent_level
            .iter()
            .any(|t| t.contains("online") && t.contains("degraded")),
        "{agent_level:?}"
    );
    // A first ok result is not news: no pending -> ok line.
    assert!(
        !h.iter().any(|t| t["from"] == "pending" && t["to"] == "ok"),
        "{h:?}"
    );
    assert!(agent.stop("TERM").success());

    let dir = agent.into_dir();
    let agent = Agent::start_in(dir, &body);
    let h = history(&agent);
    assert!(
        h.iter()
            .any(|t| t["check"] == "t" && t["from"] == "ok" && t["to"] == "crit"),
        "the first run's transition is read back after the restart: {h:?}"
    );
    let out = tether_cli(&agent.cli_config(), &["status", "--history"]);
    let text = String::from_utf8_lossy(&out.stdout);
    // Degraded (critical): `status` exits like `check`.
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("history (") && text.contains("check t: ok -> crit"),
        "{text}"
    );
    let file = std::fs::read_to_string(agent.dir.join("state/history")).unwrap();
    assert!(file.lines().all(|l| l.split('\t').count() == 5), "{file}");
}

#[test]
fn logs_are_kept_in_memory_and_served() {
    let agent = Agent::start("logs", "[agent]\ninterval = \"1s\"\n");
    let (code, body) = agent.get("/logs?n=200");
    assert_eq!(code, 200);
    assert!(body.contains("starting"), "{body}");
    let (_, one) = agent.get("/logs?n=1");
    assert_eq!(one.lines().count(), 1, "{one}");
    assert_eq!(agent.get("/logs?n=many").0, 400);
}

/// Appends its arguments and the severities to `out`; sleeps on degraded.
fn recorder(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let script = dir.join("on-change.sh");
    let out = dir.join("changes");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1|$2|$3|$4|$TETHER_OLD_SEVERITY|$TETHER_NEW_SEVERITY\" >> {}\n\
             if [ \"$3\" = degraded ]; then exec sleep 30; fi\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, out)
}

#[test]
fn on_change_runs_with_the_change_is_killed_at_its_timeout_and_never_blocks() {
    let dir = temp_dir("on-change");
    let (script, out) = recorder(&dir);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Fake::start("127.0.0.1:0");
    let token = token_file("on-change-token");
    let body = format!(
        "[agent]\ninterval = \"1s\"\non_change = [\"{}\", \"fixed\"]\non_change_timeout = \"1s\"\n\n\
         [upstream]\nurl = \"http://{}/\"\nallow_plaintext = true\ntoken_file = \"{}\"\nflush_interval = \"10m\"\n{}",
        script.display(),
        fake.addr,
        token.display(),
        watched(addr)
    );
    let agent = Agent::start_in(dir.clone(), &body);
    wait_for("the check ok", Duration::from_secs(10), || {
        common::check_field(&agent.get("/status").1, "t", "status").filter(|s| s == "ok")
    });
    // The reconnect heartbeat comes first; drain what arrived so far.
    wait_for("the first upload", Duration::from_secs(10), || {
        fake.requests.try_recv().ok()
    });
    drop(listener);
    let changed = Instant::now();
    let line = wait_for("on_change to run", Duration::from_secs(10), || {
        std::fs::read_to_string(&out).ok().filter(|s| !s.is_empty())
    });
    assert_eq!(
        line.trim(),
        "fixed|online|degraded|failing: t|healthy|critical",
        "argv: fixed argument, old, new, reason; severities in the environment"
    );
    // The command sleeps; the agent answers meanwhile.
    let t = Instant::now();
    assert_eq!(agent.get("/health").0, 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    agent.wait_log(
        "killed after 1s (on_change_timeout)",
        Duration::from_secs(10),
    );
    // The transition went upstream at once, not at the 10 minute flush.
    let transition = wait_for("the transition upload", Duration::from_secs(10), || {
        let req = fake.requests.try_recv().ok()?;
        req.lines
            .iter()
            .find(|l| field(l, "type") == "transition" && l.contains("\"scope\":\"agent\""))
            .cloned()
    });
    assert_eq!(field(&transition, "to"), "degraded", "{transition}");
    assert!(changed.elapsed() < Duration::from_secs(60));

    // The next change runs after the killed one.
    let _back = TcpListener::bind(addr).unwrap();
    wait_for("the second on_change", Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&out).ok()?;
        text.lines()
            .any(|l| l.starts_with("fixed|degraded|online|"))
            .then_some(())
    });
}

#[test]
fn a_bundle_has_every_section_and_no_secret() {
    // The token is also a check's name, so it shows in the status, the log
    // and the configuration: the bundle must still not contain it.
    let secret = "tok-SECRET-bundle-1234";
    let token = token_file(secret);
    let fake = Fake::start("127.0.0.1:0");
    let body = format!(
        r#"[agent]
interval = "1s"

[upstream]
url = "http://{}/"
allow_plaintext = true
token_file = "{}"

[[check]]
name = "{secret}"
kind = "exec"
timeout = "500ms"
command = ["/bin/true", "--password", "pw-SECRET-arg"]
env = {{ API_PASSWORD = "pw-SECRET-env" }}

[[check]]
name = "api"
kind = "http"
timeout = "500ms"
url = "http://127.0.0.1:1/"
headers = {{ Authorization = "Bearer hdr-SECRET-9" }}
"#,
        fake.addr,
        token.display()
    );
    let agent = Agent::start("bundle", &body);
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    let config = agent.cli_config();
    let path = agent.dir.join("bundle.txt");
    let out = tether_cli(&config, &["bundle", "-o", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    for section in [
        "== agent ==",
        "== status and health history ==",
        "== tether doctor --json ==",
        "== configuration (secrets redacted) ==",
        "== last 200 log lines ==",
        "== spool and upstream ==",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    let (_, status) = agent.get("/status");
    let id = field(&status, "agent_id");
    assert!(text.contains(&format!("id: {id}")), "{text}");
    assert!(text.contains("kernel: Linux"), "{text}");
    assert!(text.contains("starting"), "the live log is in it:\n{text}");
    assert!(text.contains("\"live\":true"), "{text}");
    assert!(
        text.contains("tether_upstream_records_sent_total"),
        "{text}"
    );
    assert!(!text.contains("SECRET"), "a secret in the bundle:\n{text}");

    // Without the agent: the history file, a doctor run of its own.
    let mut agent = agent;
    assert!(agent.stop("TERM").success());
    let out = tether_cli(&config, &["bundle", "-o", "-"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("no agent answers"), "{text}");
    assert!(
        text.contains("agent: started ->"),
        "the history file:\n{text}"
    );
    assert!(text.contains("\"live\":false"), "{text}");
    assert!(!text.contains("SECRET"), "a secret in the bundle:\n{text}");
}

#[test]
fn maintenance_is_a_transition_with_why_and_who_and_ends_by_itself() {
    let agent = Agent::start(
        "maintenance",
        "[agent]\ninterval = \"1s\"\ntimeout = \"100ms\"\n\n[[check]]\nname = \"root\"\nkind = \"file\"\npath = \"/\"\n",
    );
    let status = || agent.get("/status").1;
    wait_for("online", Duration::from_secs(10), || {
        status().contains("\"status\":\"online\"").then_some(())
    });
    let cli = agent.cli_config();
    let o = tether_cli(&cli, &["disable", "--reason", "patching", "--for", "3s"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ends by itself at"));
    let s = wait_for("disabled", Duration::from_secs(5), || {
        let s = status();
        s.contains("\"status\":\"disabled\"").then_some(s)
    });
    assert!(
        s.contains("\"maintenance\":{\"reason\":\"patching\",\"by\":\"uid "),
        "{s}"
    );
    // The transition is recorded at once, with its reason and who.
    let into = history(&agent)
        .into_iter()
        .find(|t| t["to"] == "disabled (healthy)")
        .expect("a transition into maintenance");
    let why = into["why"].as_str().unwrap();
    assert!(
        why.contains("\"patching\" by uid ") && why.contains("ends by itself"),
        "{why}"
    );
    let table = tether_cli(&cli, &["status"]);
    assert_eq!(table.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&table.stdout).contains("maintenance: \"patching\""));
    // --for 3s: it ends by itself, says so, and removes the flag.
    wait_for("maintenance to end", Duration::from_secs(10), || {
        status().contains("\"status\":\"online\"").then_some(())
    });
    let out = history(&agent)
        .into_iter()
        .find(|t| t["from"] == "disabled (healthy)")
        .unwrap_or_else(|| panic!("no transition out of maintenance: {:?}", history(&agent)));
    assert!(
        out["why"]
            .as_str()
            .unwrap()
            .contains("maintenance ended by itself"),
        "{out}"
    );
    assert!(!agent.dir.join("state/disabled").exists());
}

#[test]
fn status_and_doctor_ask_only_the_agent_their_configuration_names() {
    let agent = Agent::start(
        "whose-agent",
        "[agent]\nname = \"edge-a\"\ninterval = \"1s\"\ntimeout = \"100ms\"\n\n[[check]]\nname = \"root\"\nkind = \"file\"\npath = \"/\"\n",
    );
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    let ours = agent.cli_config();
    let o = tether_cli(&ours, &["status"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Another configuration with the same listen address.
    let other = agent.dir.join("other.toml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&ours)
            .unwrap()
            .replace("name = \"edge-a\"", "name = \"edge-b\""),
    )
    .unwrap();
    for cmd in ["status", "doctor"] {
        let o = tether_cli(&other, &[cmd]);
        assert_eq!(o.status.code(), Some(3), "{cmd}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("is \"edge-a\", not \"edge-b\""),
            "{cmd}: {err}"
        );
        assert!(
            o.stdout.is_empty(),
            "{cmd}: nothing of the wrong agent's is shown"
        );
    }
    let out = agent.dir.join("other-bundle.txt");
    let o = tether_cli(&other, &["bundle", "-o", &out.to_string_lossy()]);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("could not be asked") && said.contains("not \"edge-b\""),
        "{said}"
    );
}

#[test]
fn no_configured_secret_appears_in_any_output() {
    let (http, _rx) = common::http_server(vec![("/h", common::reply(200, "ok"))]);
    let body = format!(
        r#"[agent]
interval = "1s"

[[check]]
name = "plugin"
kind = "exec"
timeout = "500ms"
command = ["/bin/sh", "-c", "exit 0", "--token", "tk-SECRET-1", "--password=pw-SECRET-2", "-H", "host"]
env = {{ API_PASSWORD = "env-SECRET-3" }}

[[check]]
name = "api"
kind = "http"
timeout = "500ms"
url = "http://{http}/h?api_key=q-SECRET-4&x=1"
headers = {{ Authorization = "Bearer hdr-SECRET-5" }}
"#
    );
    let agent = Agent::start("no-secrets", &body);
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    let cli = agent.cli_config();
    let mut outputs: Vec<(String, String)> = Vec::new();
    for path in [
        "/status",
        "/status?format=table&history=1",
        "/metrics",
        "/logs",
        "/doctor",
    ] {
        outputs.push((path.into(), agent.get(path).1));
    }
    for args in [
        &["status"][..],
        &["check"][..],
        &["check", "--json"][..],
        &["check", "--table"][..],
        &["bundle", "-o", "-"][..],
    ] {
        let o = tether_cli(&cli, args);
        outputs.push((
            format!("tether {}", args.join(" ")),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ));
    }
    let status = &outputs[0].1;
    assert!(
        status.contains("/bin/sh -c exit 0 --token [redacted] --password=[redacted] -H host"),
        "{status}"
    );
    assert!(status.contains("api_key=[redacted]&x=1"), "{status}");
    for (what, text) in &outputs {
        assert!(!text.contains("SECRET"), "{what} shows a secret:\n{text}");
    }
}
