//! `[remote_write]` against real stores: Prometheus 2.42 with its
//! remote-write receiver and VictoriaMetrics single-node, each a child
//! process on loopback with its data in a temporary directory, read back
//! through the store's own query API. The fake control plane records every
//! record the agent made: it is the ground truth the stores are compared
//! with (the agent's own run count, with each run's timestamp).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::rw::*;
use common::store::{Kind, Store, Stored};
use common::upstream::{token_file, Fake};
use common::{wait_for, wait_for_opt, Agent};

#[test]
fn prometheus_holds_every_result_with_its_labels_and_time() {
    let prom = Store::start(Kind::Prometheus);
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("rw-prom", &config(fake.addr, &prom.write_url(), "", ""));
    let mut all = Vec::new();
    wait_for("a few runs in the store", Duration::from_secs(20), || {
        stored_up(&prom)
            .values()
            .all(|t| t.len() >= 4)
            .then_some(())
            .filter(|_| stored_up(&prom).len() == 2)
    });
    remove_checks(&a);
    wait_exact(&prom, &fake, &mut all, Duration::from_secs(20));

    // The labels: agent, check, kind, role, [agent] labels and
    // [remote_write] labels (which win on the same name), and the check's
    // own (which win over both).
    let up: Vec<Stored> = prom.samples("tether_check_up{check=\"refused\"}");
    assert_eq!(up.len(), 1);
    let want: BTreeMap<String, String> = [
        ("agent", "edge-1"),
        ("check", "refused"),
        ("group", "eu-west"),
        ("kind", "tcp"),
        ("role", "control_plane"),
        ("service", "db"),
        ("site", "here"),
        ("tier", "prod"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(up[0].labels, want);
    // Upstream, every record carries the agent's labels (as configured
    // when sent), and a check's results its own, as `label.NAME` fields kept
    // from when they were made.
    let lines: Vec<&String> = all.iter().flat_map(|r| &r.lines).collect();
    assert!(lines.iter().any(|l| l.contains(r#","check":"refused""#)));
    for l in lines {
        assert!(
            l.contains(r#""labels":{"site":"ams","tier":"prod"},"#),
            "{l}"
        );
        if l.contains(r#""type":"result","check":"refused""#) {
            assert!(
                l.contains(r#","label.service":"db","label.site":"here""#),
                "{l}"
            );
        }
    }
    assert!(up[0].samples.iter().all(|(_, v)| *v == 0.0));
    // The damped status: crit after `fall` failures, as in /metrics.
    let crit = prom.samples("tether_check_status{check=\"refused\",status=\"crit\"}");
    assert_eq!(crit[0].samples.last().unwrap().1, 1.0);
    let dur = prom.samples("tether_check_duration_seconds{check=\"open\"}");
    assert!(
        dur[0].samples.iter().all(|(_, v)| *v > 0.0 && *v < 0.5),
        "{dur:?}"
    );
    // The heartbeat's series.
    let info = prom.samples("tether_agent_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].labels["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info[0].labels["agent_id"].len(), 32);
    let status = prom.samples("tether_agent_status{status=\"offline\"}");
    assert!(!status.is_empty());
    // A removed check's series end with a stale marker: nothing current.
    wait_for("stale markers", Duration::from_secs(10), || {
        (prom.current("tether_check_up") == 0).then_some(())
    });
    assert_eq!(rw_field(&a, "state"), "up");
    let (_, metrics) = a.get("/metrics");
    assert!(
        metrics.contains("tether_remote_write_state{state=\"up\"} 1"),
        "{metrics}"
    );
}

/// The store stopped for 60 s while the agent probes; halfway through, the
/// agent is killed and started again on the same spool. Afterwards every
/// series holds exactly one sample per record it stands for.
fn outage_with_a_kill(kind: Kind) {
    let mut store = Store::start(kind);
    let fake = Fake::start("127.0.0.1:0");
    // Records are fsynced as they are queued while spooling: a SIGKILL
    // loses nothing that was made.
    let body = config(
        fake.addr,
        &store.write_url(),
        "",
        "[spool]\nsync = \"always\"\n",
    );
    let a = Agent::start("rw-outage", &body);
    let mut all = Vec::new();
    wait_for("results in the store", Duration::from_secs(20), || {
        (stored_up(&store).values().map(Vec::len).sum::<usize>() >= 4).then_some(())
    });

    // Throughout the outage, the agent keeps answering.
    let outage = std::time::Instant::now();
    store.stop();
    a.wait_log("remote_write", Duration::from_secs(10));
    keep_answering(&a, &fake, &mut all, outage + Duration::from_secs(30));
    let spooled: u64 = rw_field(&a, "spool_records").parse().unwrap();
    assert!(spooled > 50, "{spooled}");
    let dir = a.into_dir(); // SIGKILL
    let a = Agent::start_in(dir, &body);
    keep_answering(&a, &fake, &mut all, outage + Duration::from_secs(60));
    let spooled_after: u64 = rw_field(&a, "spool_records").parse().unwrap();
    assert!(spooled_after > spooled, "{spooled} then {spooled_after}");
    assert_eq!(rw_field(&a, "state"), "failing");
    store.restart();
    remove_checks(&a);
    wait_exact(&store, &fake, &mut all, Duration::from_secs(30));
    let got = stored_up(&store);
    let total: usize = got.values().map(Vec::len).sum();
    assert!(total >= 20, "{got:?}");
    // Each series in time order, as sent.
    for times in got.values() {
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }
    wait_every_series_once(&store, &fake, &mut all, Duration::from_secs(30));
    // Drained: nothing older than a few flushes waits (heartbeats keep
    // coming every 500 ms, so under load the count is rarely 0 itself).
    wait_for("the backlog drained", Duration::from_secs(10), || {
        let age = rw_field(&a, "oldest_unsent_age_seconds");
        (age == "null" || age.parse::<f64>().is_ok_and(|s| s < 3.0)).then_some(())
    });
    // Records made in the drain went to disk behind the backlog; the last
    // of them leave it within a few flushes.
    let left = wait_for_opt(Duration::from_secs(10), || {
        (rw_field(&a, "spool_records") == "0").then_some(())
    });
    assert!(left.is_some(), "{}", a.get("/status").1);
    assert_eq!(rw_field(&a, "records_lost"), "0");
}

#[test]
fn victoriametrics_gets_the_outage_and_a_killed_agent_back_exactly_once() {
    outage_with_a_kill(Kind::Victoria);
}

#[test]
fn prometheus_gets_the_outage_and_a_killed_agent_back_exactly_once() {
    outage_with_a_kill(Kind::Prometheus);
}

#[test]
fn one_destination_down_does_not_hold_the_other() {
    let vm = Store::start(Kind::Victoria);
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("rw-both", &config(fake.addr, &vm.write_url(), "", ""));
    let mut all = Vec::new();
    // The control plane fails: the store stays current.
    fake.set_failing(true);
    wait_for("the upstream failing", Duration::from_secs(10), || {
        let (_, s) = a.get("/status");
        s.contains("\"state\":\"failing\"").then_some(())
    });
    let from = tether::os::clock::unix_millis(std::time::SystemTime::now()) as i64;
    wait_for(
        "fresh samples in the store while the upstream fails",
        Duration::from_secs(15),
        || {
            let fresh: usize = stored_up(&vm)
                .values()
                .map(|t| t.iter().filter(|x| **x > from + 2000).count())
                .sum();
            (fresh >= 4).then_some(())
        },
    );
    assert_eq!(rw_field(&a, "state"), "up");
    // The store fails, the control plane is back: it is current again.
    let mut vm = vm;
    vm.stop();
    fake.set_failing(false);
    collect(&fake, &mut all);
    let from = tether::os::clock::unix_millis(std::time::SystemTime::now()) as i64;
    wait_for(
        "fresh results upstream while the store is down",
        Duration::from_secs(15),
        || {
            collect(&fake, &mut all);
            let fresh: usize = results(&all)
                .values()
                .map(|t| t.iter().filter(|x| **x > from + 2000).count())
                .sum();
            (fresh >= 4).then_some(())
        },
    );
    assert_eq!(rw_field(&a, "state"), "failing");
    // And once the store is back, it gets the whole of both outages.
    vm.restart();
    remove_checks(&a);
    wait_exact(&vm, &fake, &mut all, Duration::from_secs(30));
}

#[test]
fn prometheus_refusing_a_too_old_sample_costs_that_sample_only() {
    let prom = Store::start(Kind::Prometheus);
    let fake = Fake::start("127.0.0.1:0");
    let body = config(fake.addr, &prom.write_url(), "", "");
    let a = Agent::start("rw-too-old", &body);
    let mut all = Vec::new();
    wait_for(
        "current samples in Prometheus",
        Duration::from_secs(20),
        || (stored_up(&prom).values().map(Vec::len).sum::<usize>() >= 4).then_some(()),
    );
    let mut a = a;
    assert!(a.stop("TERM").success());
    collect(&fake, &mut all);
    // A result from three hours ago, spooled behind the agent's back (as
    // a clock step or an old backlog would leave it): outside Prometheus's
    // head block, so it answers 400 "out of bounds" for any request with it.
    let old = tether::os::clock::unix_millis(std::time::SystemTime::now()) - 3 * 3600 * 1000;
    spool_results(&a.dir.join("state/spool"), &[("old".into(), old)]);
    let dir = a.into_dir();
    let a = Agent::start_in(dir, &body);
    wait_for(
        "the refused samples counted",
        Duration::from_secs(30),
        || {
            let (_, m) = a.get("/metrics");
            m.contains("tether_remote_write_samples_rejected_total{reason=\"too_old\"} 8")
                .then_some(())
        },
    );
    // Everything else arrives; the old record's samples do not.
    remove_checks(&a);
    wait_exact(&prom, &fake, &mut all, Duration::from_secs(30));
    assert!(prom.samples("tether_check_up{check=\"old\"}").is_empty());
    let dead =
        std::fs::read_to_string(a.dir.join("state/spool/remote-write-dead-letter.txt")).unwrap();
    assert!(dead.contains("tether_check_up{"), "{dead}");
    assert!(dead.contains("check=\"old\""), "{dead}");
    assert_eq!(rw_field(&a, "records_lost"), "0");
}

#[test]
fn a_request_has_the_protocol_headers_and_the_secret_goes_nowhere_else() {
    let fake = Fake::start("127.0.0.1:0");
    let secret = "rw-SECRET-token-77";
    let body = format!(
        r#"[agent]
interval = "1s"
timeout = "500ms"

[remote_write]
url = "http://{}/api/v1/push?tenant=a"
allow_plaintext = true
bearer_token_file = "{}"
flush_interval = "500ms"
headers = {{ X-Scope-OrgID = "connectors" }}

[[check]]
name = "{secret}"
kind = "tcp"
target = "{}"
"#,
        fake.addr,
        token_file(secret).display(),
        common::closed_port()
    );
    let a = Agent::start("rw-headers", &body);
    let req = wait_for("a remote-write request", Duration::from_secs(10), || {
        fake.requests.recv_timeout(Duration::from_millis(100)).ok()
    });
    assert!(
        req.head
            .starts_with("POST /api/v1/push?tenant=a HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    for (k, v) in [
        ("Content-Encoding", "snappy".to_string()),
        ("Content-Type", "application/x-protobuf".to_string()),
        ("X-Prometheus-Remote-Write-Version", "0.1.0".to_string()),
        (
            "User-Agent",
            format!("tether/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("Authorization", format!("Bearer {secret}")),
        ("X-Scope-OrgID", "connectors".to_string()),
    ] {
        assert_eq!(
            req.header(k).as_deref(),
            Some(v.as_str()),
            "{k}: {}",
            req.head
        );
    }
    // The check is named like the secret, so the secret would show in
    // /status and /metrics if it could: only the redacted bundle is checked
    // for it, the endpoint for the header value.
    let (_, status) = a.get("/status");
    let (_, metrics) = a.get("/metrics");
    assert!(!status.contains("Bearer"), "{status}");
    assert!(!metrics.contains("Bearer"), "{metrics}");
    let path = a.dir.join("bundle.txt");
    let out = common::tether_cli(&a.cli_config(), &["bundle", "-o", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("SECRET"), "a secret in the bundle:\n{text}");
    assert!(
        text.contains("tether_remote_write_samples_sent_total"),
        "{text}"
    );
}

#[test]
fn basic_auth_is_sent_as_the_spec_says() {
    let fake = Fake::start("127.0.0.1:0");
    let body = format!(
        r#"[remote_write]
url = "http://{}/api/v1/write"
allow_plaintext = true
basic_auth_user = "edge-1"
basic_auth_password_file = "{}"
flush_interval = "500ms"
"#,
        fake.addr,
        token_file("open-sesame").display()
    );
    let _a = Agent::start("rw-basic", &body);
    let req = wait_for("a remote-write request", Duration::from_secs(10), || {
        fake.requests.recv_timeout(Duration::from_millis(100)).ok()
    });
    // base64("edge-1:open-sesame")
    assert_eq!(
        req.header("Authorization").as_deref(),
        Some("Basic ZWRnZS0xOm9wZW4tc2VzYW1l")
    );
}
