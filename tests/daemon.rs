//! The daemon as a real process (`tether run`) against loopback fakes.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn health_answers_fast_while_probes_hang_on_black_holes() {
    let fb = full_backlog();
    let silent = silent_server();
    let (quiet_dns, _) = dns_server(Dns::Silence, vec![], vec![]);
    let dir_conf = temp_dir("resolv");
    let resolv = dir_conf.join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {quiet_dns}\noptions timeout:5\n"),
    )
    .unwrap();
    let agent = Agent::start(
        "blackhole",
        &format!(
            "[agent]\ninterval = \"3s\"\ntimeout = \"2s\"\nresolv_conf = \"{}\"\n\n\
             [[check]]\nname = \"syn-dropped\"\nkind = \"tcp\"\ntarget = \"{}\"\n\n\
             [[check]]\nname = \"never-answers\"\nkind = \"http\"\nurl = \"http://{silent}/\"\n\n\
             [[check]]\nname = \"dns-silent\"\nkind = \"tcp\"\ntarget = \"nowhere.example:80\"\n",
            resolv.display(),
            fb.addr
        ),
    );
    // While all three probes hang (for 2 s each), /health answers promptly.
    let until = Instant::now() + Duration::from_millis(2_500);
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while Instant::now() < until {
        let t = Instant::now();
        let (code, body) = agent.get("/health");
        worst = worst.max(t.elapsed());
        assert_eq!((code, body.as_str()), (200, "ok\n"));
        n += 1;
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(n > 20);
    assert!(
        worst < Duration::from_millis(250),
        "a /health request took {worst:?} while probes hung"
    );
    // And the hung probes end as data with the right reason codes.
    let json = wait_for(
        "all three timeouts reported",
        Duration::from_secs(10),
        || {
            let (_, j) = agent.get("/status");
            (check_field(&j, "syn-dropped", "reason").is_some()
                && check_field(&j, "never-answers", "reason").is_some()
                && check_field(&j, "dns-silent", "reason").is_some())
            .then_some(j)
        },
    );
    assert_eq!(
        check_field(&json, "syn-dropped", "reason").as_deref(),
        Some("connect_timeout")
    );
    assert_eq!(
        check_field(&json, "never-answers", "reason").as_deref(),
        Some("timeout")
    );
    assert_eq!(
        check_field(&json, "dns-silent", "reason").as_deref(),
        Some("dns_timeout")
    );
    let _ = std::fs::remove_dir_all(dir_conf);
}

#[test]
fn at_most_two_threads_with_every_probe_kind_running() {
    let (_l, open) = open_port();
    let (http, _rx) = http_server(vec![("/", reply(200, "ok"))]);
    let (ns, _) = dns_server(Dns::Answer, vec![[127, 0, 0, 1]], vec![]);
    let (tls, ca, _) = common::pki::trusted_server(&temp_dir("threads-pki"));
    let agent = Agent::start(
        "threads",
        &format!(
            "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n\
             [[check]]\nname = \"t\"\nkind = \"tcp\"\ntarget = \"{open}\"\n\n\
             [[check]]\nname = \"h\"\nkind = \"http\"\nurl = \"http://{http}/\"\n\n\
             [[check]]\nname = \"s\"\nkind = \"http\"\nurl = \"https://{tls}/\"\nca_file = \"{ca}\"\n\n\
             [[check]]\nname = \"x\"\nkind = \"tls\"\ntarget = \"{tls}\"\nca_file = \"{ca}\"\n\n\
             [[check]]\nname = \"e\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"echo OK; sleep 0.2\"]\n\n\
             [[check]]\nname = \"d\"\nkind = \"dns\"\nquery = \"x.example\"\nserver = \"{ns}\"\n",
            ca = ca.display()
        ),
    );
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    let runs = |j: &str| {
        check_field(j, "d", "runs")
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("three rounds of probes", Duration::from_secs(10), || {
        (runs(&agent.get("/status").1) >= 3).then_some(())
    });
    let threads = agent.threads();
    assert!(threads <= 2, "{threads} threads");
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("tether_process_threads {threads}")),
        "{metrics}"
    );
}

#[test]
fn ready_turns_200_after_every_check_ran_and_status_reports_it() {
    let (_l, open) = open_port();
    let closed = closed_port();
    let agent = Agent::start(
        "ready",
        &format!(
            "[agent]\ninterval = \"2s\"\ntimeout = \"1s\"\n\n\
             [[check]]\nname = \"cp\"\nkind = \"tcp\"\nrole = \"control_plane\"\ntarget = \"{open}\"\n\n\
             [[check]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"{closed}\"\n"
        ),
    );
    // The second check's first slot is offset by interval/2 (1 s).
    let (code, body) = agent.get("/ready");
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("not ready: "), "{body}");
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    let (_, json) = agent.get("/status");
    assert!(
        json.contains("\"status\":\"degraded\",\"severity\":\"critical\""),
        "{json}"
    );
    assert_eq!(check_field(&json, "cp", "status").as_deref(), Some("ok"));
    assert_eq!(check_field(&json, "db", "status").as_deref(), Some("crit"));
    assert_eq!(
        check_field(&json, "db", "reason").as_deref(),
        Some("connect_refused")
    );
    // `tether status` asks the running agent.
    let cfg = agent.config.to_string_lossy().into_owned();
    let dir = temp_dir("statuscfg");
    let p = dir.join("s.toml");
    std::fs::write(&p, format!("[agent]\nlisten = \"{}\"\n", agent.addr)).unwrap();
    let out = common::tether_command()
        .args(["status", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    // Degraded (critical): `status` exits 2, like `check`.
    assert_eq!(
        out.status.code(),
        Some(2),
        "{cfg}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains(": degraded (critical)"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("db ") && l.contains("connect_refused")),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn endpoint_rejects_what_it_does_not_serve() {
    let agent = Agent::start("endpoint", "");
    let raw = |req: &[u8]| parse_response(&http_raw(agent.addr, req)).0;
    assert_eq!(raw(b"GET /nope HTTP/1.1\r\n\r\n"), 404);
    assert_eq!(
        raw(b"POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        405
    );
    assert_eq!(raw(b"\x16\x03\x01garbage\r\n\r\n"), 400);
    assert_eq!(raw(b"GET / HTTP/1.1\r\nHost\r\n\r\n"), 400);
    let mut big = b"GET /health HTTP/1.1\r\n".to_vec();
    big.extend(
        std::iter::repeat_n(
            b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            200,
        )
        .flatten(),
    );
    big.extend_from_slice(b"\r\n");
    assert_eq!(raw(&big), 431, "too many headers");
    let mut long = b"GET /health HTTP/1.1\r\n".to_vec();
    for _ in 0..20 {
        long.extend_from_slice(b"X-Pad: ");
        long.extend(std::iter::repeat_n(b'a', 500));
        long.extend_from_slice(b"\r\n");
    }
    long.extend_from_slice(b"\r\n");
    assert_eq!(raw(&long), 431, "head over 8 KiB");
    let head = http_raw(agent.addr, b"HEAD /health HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head:?}"
    );
    let allow = http_raw(agent.addr, b"DELETE /status HTTP/1.1\r\n\r\n");
    assert!(allow.contains("\r\nAllow: GET, HEAD\r\n"), "{allow}");

    // A slow client is dropped after a few seconds, and does not hold up others.
    let mut slow = TcpStream::connect(agent.addr).unwrap();
    slow.write_all(b"GET /heal").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(agent.get("/health").0, 200);
    let t = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(
        slow.read(&mut buf).unwrap_or(0),
        0,
        "slow client must be closed without a reply"
    );
    assert!(t.elapsed() < Duration::from_secs(9));

    // More connections than the cap, all idle: the oldest idle ones are
    // closed to make room, so a request is always served (32 idle
    // connections once kept /health refusing for the whole client deadline).
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(agent.addr).unwrap())
        .collect();
    for _ in 0..3 {
        let (code, _) = agent.get("/health");
        assert_eq!(code, 200, "/health with 40 idle connections held open");
    }
    let closed = idle
        .iter()
        .filter(|s| {
            let mut s = *s;
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            matches!(s.read(&mut [0u8; 1]), Ok(0))
        })
        .count();
    assert!(
        closed >= 8,
        "only {closed} of 40 idle connections were closed"
    );
    drop(idle);
    wait_for("/health after the flood", Duration::from_secs(10), || {
        (agent.get("/health").0 == 200).then_some(())
    });
}

#[test]
fn sighup_reloads_keeping_unchanged_checks_and_refuses_invalid_files() {
    let (_l, open) = open_port();
    let first = format!("[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n[[check]]\nname = \"keep\"\nkind = \"tcp\"\ntarget = \"{open}\"\n");
    let agent = Agent::start("reload", &first);
    let runs = |j: &str, c: &str| {
        check_field(j, c, "runs")
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_for("two runs", Duration::from_secs(10), || {
        (runs(&agent.get("/status").1, "keep") >= 2).then_some(())
    });

    // Invalid: logged, the running configuration stays.
    std::fs::write(&agent.config, "[agent]\nbogus = 1\n").unwrap();
    agent.signal("HUP");
    let line = agent.wait_log("reload refused", Duration::from_secs(5));
    assert!(line.contains("reload refused (1 error)"), "{line}");
    // Each error on a line of its own.
    let line = agent.wait_log("unknown key `bogus`", Duration::from_secs(5));
    assert!(line.contains("ERROR   "), "{line}");
    let (_, json) = agent.get("/status");
    assert!(check_field(&json, "keep", "status").is_some());
    let (_, m) = agent.get("/metrics");
    assert!(
        m.contains("\ntether_config_reload_failures_total 1\n"),
        "{m}"
    );

    // Nesting 20,000 deep once overflowed the stack and killed the agent.
    std::fs::write(&agent.config, format!("x = {}\n", "[".repeat(20_000))).unwrap();
    agent.signal("HUP");
    agent.wait_log("reload refused", Duration::from_secs(5));
    agent.wait_log("nested more than", Duration::from_secs(5));
    assert_eq!(agent.get("/health").0, 200);

    // Valid: a new check appears, the unchanged one keeps its counters.
    let before = runs(&agent.get("/status").1, "keep");
    let second = format!(
        "{first}\n[[check]]\nname = \"new\"\nkind = \"tcp\"\ntarget = \"{}\"\n",
        closed_port()
    );
    std::fs::write(&agent.config, with_agent_defaults(&second, &agent.dir)).unwrap();
    agent.signal("HUP");
    agent.wait_log("reloaded", Duration::from_secs(5));
    let json = wait_for("the new check's first run", Duration::from_secs(10), || {
        let (_, j) = agent.get("/status");
        check_field(&j, "new", "reason").is_some().then_some(j)
    });
    assert!(
        runs(&json, "keep") >= before,
        "state of the unchanged check was lost"
    );
    assert_eq!(
        check_field(&json, "new", "reason").as_deref(),
        Some("connect_refused")
    );
}

#[test]
fn sigterm_stops_within_5s_with_exit_0() {
    for sig in ["TERM", "INT"] {
        let mut agent = Agent::start("term", "");
        agent.signal(sig);
        let t = Instant::now();
        let status = wait_for("exit", Duration::from_secs(5), || {
            agent.child.try_wait().unwrap()
        });
        assert_eq!(status.code(), Some(0), "{sig}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn maintenance_mode_via_the_state_directory() {
    let agent = Agent::start("maint", "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\n");
    let cfg = agent.config.to_string_lossy().into_owned();
    let out = common::tether_command()
        .args(["disable", "-c", &cfg, "--reason", "upgrade"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    wait_for("disabled", Duration::from_secs(5), || {
        agent
            .get("/status")
            .1
            .contains("\"status\":\"disabled\"")
            .then_some(())
    });
    common::tether_command()
        .args(["enable", "-c", &cfg])
        .output()
        .unwrap();
    wait_for("enabled", Duration::from_secs(5), || {
        agent
            .get("/status")
            .1
            .contains("\"status\":\"online\"")
            .then_some(())
    });
}

#[test]
fn metrics_pass_promtool() {
    let (_l, open) = open_port();
    let closed = closed_port();
    let (tls, ca, leaf) = common::pki::trusted_server(&temp_dir("promtool-pki"));
    let agent = Agent::start(
        "promtool",
        &format!(
            "[agent]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n\
             [[check]]\nname = \"ok\"\nkind = \"tcp\"\ntarget = \"{open}\"\n\n\
             [[check]]\nname = \"bad/quoted\"\nkind = \"tcp\"\ntarget = \"{closed}\"\n\n\
             [[check]]\nname = \"https\"\nkind = \"http\"\nurl = \"https://{tls}/\"\nca_file = \"{}\"\n\n\
             [[check]]\nname = \"skip\"\nkind = \"tls\"\ntarget = \"{tls}\"\ninsecure_skip_verify = true\n\n\
             [[check]]\nname = \"host\"\nkind = \"system\"\n\n\
             [[check]]\nname = \"marker\"\nkind = \"file\"\npath = \"{}\"\n\n\
             [[check]]\nname = \"plugin\"\nkind = \"exec\"\ncommand = [\"/bin/sh\", \"-c\", \"echo 'OK | \\\"q\\\"=1.5s;2;3;0 x=U'\"]\n",
            ca.display(),
            ca.display()
        ),
    );
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    let (code, metrics) = agent.get("/metrics");
    assert_eq!(code, 200);
    // Families that are also pushed carry the pushed labels: `agent` (the
    // host name by default) and, on checks, `kind` and `role`.
    let host = common::hostname();
    let check = |name: &str, kind: &str| {
        format!("{{agent=\"{host}\",check=\"{name}\",kind=\"{kind}\",role=\"resource\"}}")
    };
    for needle in [
        format!(
            "tether_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
        format!("tether_agent_status{{agent=\"{host}\",status=\"degraded\"}} 1"),
        format!("tether_agent_info{{agent=\"{host}\",os_release=\""),
        format!("version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
        format!("tether_agent_heartbeat_interval_seconds{{agent=\"{host}\"}} 0"),
        "tether_check_http_status_code{check=\"https\"} 200".into(),
        "tether_check_failures_total{check=\"bad/quoted\",reason=\"connect_refused\"}".into(),
        "tether_check_phase_duration_seconds{check=\"ok\",phase=\"connect\"}".into(),
        format!("tether_check_up{} 1", check("ok", "tcp")),
        format!("tether_check_up{} 1", check("https", "http")),
        "tether_check_cert_verified{check=\"https\"} 1".into(),
        "tether_check_cert_verified{check=\"skip\"} 0".into(),
        "tether_check_tls_verify_skipped{check=\"skip\"} 1".into(),
        "tether_check_tls_verify_skipped{check=\"https\"} 0".into(),
        "tether_check_file_size_bytes{check=\"marker\"}".into(),
        format!("tether_check_cpu_busy_percent{}", check("host", "system")),
        format!("tether_agent_overloaded{{agent=\"{host}\"}} "),
        "tether_check_slots_skipped_total 0".into(),
        "tether_check_perfdata{check=\"plugin\",label=\"\\\"q\\\"\",uom=\"s\"} 1.5".into(),
        "tether_check_perfdata_crit{check=\"plugin\",label=\"\\\"q\\\"\",uom=\"s\"} 3".into(),
        format!(
            "tether_check_cert_not_after_timestamp_seconds{} {}",
            check("https", "http"),
            leaf.not_after.unix_timestamp()
        ),
    ] {
        assert!(metrics.contains(&needle), "missing {needle}\n{metrics}");
    }
    // Every first run is in the lateness histogram, and +Inf is the count.
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name}\n{metrics}"))
    };
    let count = value("tether_check_start_lateness_seconds_count ");
    assert!(count >= 7.0, "{count}");
    assert_eq!(
        value("tether_check_start_lateness_seconds_bucket{le=\"+Inf\"} "),
        count
    );
    let (_, status) = agent.get("/status");
    assert_eq!(
        check_field(&status, "skip", "insecure_skip_verify").as_deref(),
        Some("true"),
        "{status}"
    );
    promtool_check_metrics(&metrics);
}

#[test]
fn json_logs_are_one_object_a_line_with_the_fields() {
    let (listener, addr) = open_port();
    let body = format!(
        "[agent]\nlog_format = \"json\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n[[check]]\nname = \"db\"\nkind = \"tcp\"\ntarget = \"{addr}\"\nfall = 1\n"
    );
    let agent = Agent::start("json-logs", &body);
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    drop(listener);
    let line = agent.wait_log("\"to\":\"crit\"", Duration::from_secs(10));
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "warn", "{line}");
    assert_eq!(v["check"], "db", "{line}");
    assert_eq!(v["to"], "crit", "{line}");
    assert_eq!(v["reason"], "connect_refused", "{line}");
    assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    assert!(
        v["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("check db: ok -> crit")),
        "{line}"
    );
    // The agent's own change too, with its status.
    let line = agent.wait_log("\"status\":\"degraded\"", Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["severity"], "critical", "{line}");
}

#[test]
fn metrics_of_many_checks_stream_in_chunks_and_end_complete() {
    let (_l, open) = open_port();
    let checks: String = (0..300)
        .map(|i| format!("\n[[check]]\nname = \"c{i}\"\nkind = \"tcp\"\ntarget = \"{open}\"\n"))
        .collect();
    let agent = Agent::start(
        "metrics-chunks",
        &format!("[agent]\ninterval = \"2s\"\ntimeout = \"1s\"\n{checks}"),
    );
    wait_for("ready", Duration::from_secs(10), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    // HTTP/1.1: chunked as it renders, ending with the empty chunk.
    let raw = http_raw(agent.addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    assert!(body.ends_with("\r\n0\r\n\r\n"), "cut short");
    let text = dechunk(body).expect("well-formed chunks");
    let sizes = body.len() - text.len();
    assert!(sizes > 20, "one chunk only for {} bytes", text.len());
    for i in [0, 150, 299] {
        let up = format!("tether_check_up{{agent=\"{}\",check=\"c{i}\"", hostname());
        assert!(text.contains(&up), "{up} missing");
    }
    assert!(text.ends_with('\n') && text.contains("tether_process_start_time_seconds"));
    // HTTP/1.0 (no chunked encoding there) and HEAD: the length, once known.
    let raw10 = http_raw(agent.addr, b"GET /metrics HTTP/1.0\r\n\r\n");
    let (head10, body10) = raw10.split_once("\r\n\r\n").unwrap();
    let length: usize = head10
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("a length for HTTP/1.0")
        .parse()
        .unwrap();
    assert_eq!(length, body10.len());
    assert!(body10.contains("check=\"c299\""));
    let head_only = http_raw(agent.addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head_only.contains("Content-Length: "), "{head_only}");
    assert!(head_only.ends_with("\r\n\r\n"), "a HEAD has no body");
}
