//! `tether doctor`: each fake target on loopback (closed port, black hole,
//! unresolvable name, expired certificate, a spool on tmpfs) yields its own
//! finding and fix; with a running agent, its live history is read
//! (intermittent timeouts with a suggested timeout), the control plane's
//! announced minimum version and its clock are compared.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::pki::{leaf, tls_server, Ca};
use common::upstream::token_file;
use common::{
    check_field, closed_port, dns_server, full_backlog, temp_dir, tether_cli, wait_for, Agent, Dns,
};
use serde_json::Value;

/// The findings of a `doctor --json` run.
fn findings(out: &Output) -> (Value, Vec<Value>) {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let f = v["findings"].as_array().unwrap().clone();
    (v, f)
}

/// The one finding of `step` with `code`, which must name a fix.
fn finding<'a>(all: &'a [Value], step: &str, code: &str) -> &'a Value {
    let f = all
        .iter()
        .find(|f| f["step"] == step && f["code"] == code)
        .unwrap_or_else(|| panic!("no {step}/{code} finding in {all:#?}"));
    assert!(
        !f["fix"].as_str().unwrap().is_empty(),
        "{step}/{code} has no fix: {f}"
    );
    f
}

#[test]
fn without_an_agent_each_fake_target_has_its_own_finding_and_fix() {
    let dir = temp_dir("doctor-alone");
    let refused = closed_port();
    let hole = full_backlog();
    let (dns, _) = dns_server(Dns::NxDomain, vec![], vec![]);
    std::fs::write(dir.join("resolv.conf"), format!("nameserver {dns}\n")).unwrap();
    std::fs::write(dir.join("hosts"), "").unwrap();
    let root = Ca::root("Doctor Root");
    let ca = root.write_pem(&dir);
    let expired = tls_server(&leaf(Some(&root), &["127.0.0.1"], -30, -3), &[]);
    let shm = Path::new("/dev/shm").join(format!("tether-doctor-{}", std::process::id()));
    let token = token_file("doctor-token");
    let config = dir.join("tether.toml");
    std::fs::write(
        &config,
        format!(
            r#"[agent]
listen = "{listen}"
state_dir = "{state}"
resolv_conf = "{resolv}"
hosts_file = "{hosts}"
timeout = "400ms"

[upstream]
url = "http://{refused}/"
allow_plaintext = true
token_file = "{token}"
timeout = "400ms"

[spool]
dir = "{shm}"

[[check]]
name = "refused"
kind = "tcp"
target = "{refused}"

[[check]]
name = "blackhole"
kind = "tcp"
target = "{hole}"

[[check]]
name = "nxname"
kind = "tcp"
target = "nowhere.test:80"

[[check]]
name = "cp-expired"
kind = "tls"
role = "control_plane"
target = "{expired}"
ca_file = "{ca}"
"#,
            listen = closed_port(),
            state = dir.join("state").display(),
            resolv = dir.join("resolv.conf").display(),
            hosts = dir.join("hosts").display(),
            token = token.display(),
            shm = shm.display(),
            hole = hole.addr,
            ca = ca.display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::create_dir_all(&shm).unwrap();

    let out = tether_cli(&config, &["doctor", "--json"]);
    let _ = std::fs::remove_dir_all(&shm);
    let (v, all) = findings(&out);
    assert_eq!(out.status.code(), Some(2), "{v:#}");
    assert_eq!(v["verdict"], "critical");
    assert_eq!(v["live"], false);
    assert_eq!(
        finding(&all, "status", "agent_not_running")["level"],
        "warning"
    );

    let up = finding(&all, "offline", "connect_refused");
    assert!(
        up["title"].as_str().unwrap().contains("the upstream"),
        "{up}"
    );
    assert!(
        up["fix"].as_str().unwrap().contains("nothing listens"),
        "{up}"
    );
    let tls = finding(&all, "offline", "tls_expired");
    assert!(tls["fix"].as_str().unwrap().contains("renew"), "{tls}");

    let closed = finding(&all, "degraded", "port_refused");
    assert!(
        closed["evidence"].as_str().unwrap().contains("refused ("),
        "{closed}"
    );
    let hole_f = finding(&all, "degraded", "unreachable");
    let e = hole_f["evidence"].as_str().unwrap();
    assert!(
        e.contains("blackhole") && e.contains("connect_timeout"),
        "{e}"
    );
    assert!(
        hole_f["fix"].as_str().unwrap().contains("firewall"),
        "{hole_f}"
    );
    let nx = finding(&all, "degraded", "name_not_resolved");
    let e = nx["evidence"].as_str().unwrap();
    assert!(e.contains("nxname") && e.contains("dns_nxdomain"), "{e}");

    let tmp = finding(&all, "local", "not_persistent");
    assert_eq!(tmp["level"], "warning");
    assert!(tmp["title"].as_str().unwrap().contains("tmpfs"), "{tmp}");

    // Worst first: every critical finding before any warning.
    let worst: Vec<&str> = v["worst_first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["level"].as_str().unwrap())
        .collect();
    let first_warning = worst.iter().position(|l| *l == "warning").unwrap();
    assert!(
        worst[first_warning..].iter().all(|l| *l == "warning"),
        "{worst:?}"
    );

    // The text form: every step, then the verdict.
    let text = tether_cli(&config, &["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    for head in [
        "1. Status",
        "2. Offline",
        "3. Degraded",
        "4. Intermittent",
        "5. Version",
        "6. Local",
        "7. Verdict: critical (exit 2)",
    ] {
        assert!(text.contains(head), "{head} missing:\n{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A check that times out every other run, and succeeds slowly otherwise.
fn slow_plugin(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("slow.sh");
    let n = dir.join("n");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nn=$(cat {n} 2>/dev/null || echo 0)\necho $((n + 1)) > {n}\n\
             if [ $((n % 2)) -eq 1 ]; then sleep 5; fi\nsleep 0.25\necho OK\n",
            n = n.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

#[test]
fn with_an_agent_it_reads_the_live_history_version_and_clock() {
    let dir = temp_dir("doctor-live");
    let plugin = slow_plugin(&dir);
    // The control plane: /healthz answers with a Date two hours behind and
    // a minimum version above ours.
    let skewed = std::time::SystemTime::now() - Duration::from_secs(7200);
    let date = httpdate(skewed);
    let mut healthz = common::reply(200, "ok");
    healthz.headers = vec![
        ("Date".into(), date),
        ("Tether-Min-Version".into(), "99.0.0".into()),
    ];
    let (cp, _) = common::http_server(vec![("/healthz", healthz)]);
    let token = token_file("doctor-live-token");
    let body = format!(
        r#"[agent]
interval = "1s"

[upstream]
url = "http://{cp}/"
allow_plaintext = true
token_file = "{}"

[[check]]
name = "slow"
kind = "exec"
command = ["{}"]
timeout = "400ms"
"#,
        token.display(),
        plugin.display()
    );
    let agent = Agent::start_in(dir.clone(), &body);
    wait_for(
        "six runs of the slow check",
        Duration::from_secs(30),
        || {
            let (_, s) = agent.get("/status");
            let runs: u64 = check_field(&s, "slow", "runs")?.parse().ok()?;
            (runs >= 6).then_some(())
        },
    );
    // The command finds the agent through `listen` in its configuration.
    let config = agent.cli_config();
    let out = tether_cli(&config, &["doctor", "--json"]);
    let (v, all) = findings(&out);
    assert_eq!(v["live"], true, "{v:#}");
    assert_eq!(out.status.code(), Some(2), "{v:#}");

    let slow = finding(&all, "intermittent", "timeout_too_short");
    let e = slow["evidence"].as_str().unwrap();
    assert!(
        e.contains("timed out") && e.contains("median") && e.contains("timeout 400.0ms"),
        "{e}"
    );
    let fix = slow["fix"].as_str().unwrap();
    let suggested = fix
        .split("set timeout = \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|d| tether::config::duration::parse(d).ok())
        .unwrap_or_else(|| panic!("no suggested timeout in {fix}"));
    assert!(suggested > Duration::from_millis(400), "{fix}");

    let version = finding(&all, "version", "version_unsupported");
    assert!(
        version["title"].as_str().unwrap().contains("99.0.0"),
        "{version}"
    );
    let clock = finding(&all, "local", "clock_skew");
    assert!(
        clock["evidence"].as_str().unwrap().contains("ahead"),
        "{clock}"
    );
    let ok: Vec<&str> = all
        .iter()
        .filter(|f| f["step"] == "offline" && f["level"] == "ok")
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert!(
        ok.iter().any(|t| t.starts_with("GET /healthz: HTTP 200")),
        "{ok:?}"
    );

    // The same run over the endpoint, with the verdict in a header.
    let raw = common::http_raw(agent.addr, b"GET /doctor HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.contains("Tether-Verdict: 2\r\n"), "{raw}");
    assert!(raw.contains("4. Intermittent"), "{raw}");
}

/// IMF-fixdate, as a server sends it.
fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        days[dt.weekday().number_days_from_monday() as usize],
        dt.day(),
        months[dt.month() as usize - 1],
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

#[test]
fn an_outage_that_is_over_is_the_past_not_intermittent() {
    use std::net::TcpListener;
    // A port that answers, refuses for a few runs, then answers again.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let agent = Agent::start(
        "doctor-past-outage",
        &format!(
            "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n[[check]]\nname = \"svc\"\nkind = \"tcp\"\ntarget = \"{addr}\"\nfall = 1\nrise = 1\n"
        ),
    );
    let runs = || -> u64 {
        check_field(&agent.get("/status").1, "svc", "runs")
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    };
    wait_for("two good runs", Duration::from_secs(10), || {
        (runs() >= 2).then_some(())
    });
    drop(l);
    let down_at = runs();
    wait_for("three refused runs", Duration::from_secs(10), || {
        (runs() >= down_at + 3).then_some(())
    });
    let _back = TcpListener::bind(addr).unwrap();
    let up_at = runs();
    wait_for("two good runs again", Duration::from_secs(10), || {
        (runs() >= up_at + 2
            && check_field(&agent.get("/status").1, "svc", "status").as_deref() == Some("ok"))
        .then_some(())
    });
    let out = tether_cli(&agent.cli_config(), &["doctor", "--json"]);
    let (_, all) = findings(&out);
    assert!(
        !all.iter()
            .any(|f| f["step"] == "intermittent" && f["level"] != "ok"),
        "a clean outage reported as intermittent: {all:#?}"
    );
    let past = all
        .iter()
        .find(|f| f["code"] == "past_outage")
        .unwrap_or_else(|| panic!("no past_outage finding: {all:#?}"));
    assert!(
        past["title"].as_str().unwrap().contains("connect_refused"),
        "{past}"
    );
    // The past sets no exit code. The only other finding that may raise
    // one is the machine's own: a test directory on a nearly full disk.
    let machine: Vec<_> = all
        .iter()
        .filter(|f| f["level"] != "ok" && f["code"] != "past_outage")
        .collect();
    assert!(
        machine.iter().all(|f| f["code"] == "low_disk"),
        "{machine:#?}"
    );
    assert_eq!(
        out.status.code(),
        Some(if machine.is_empty() { 0 } else { 1 }),
        "the past sets no exit code: {all:#?}"
    );
}
