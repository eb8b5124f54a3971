//! Upstream delivery against a scripted fake control plane on loopback, with
//! the real binary: the wire format, the order after an outage, what every
//! kind of answer does, restarts, and that the token never leaks.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::upstream::{delivered_and_gaps, field, section, upstream_field, Act, Fake, Req};
use common::{wait_for, Agent};

const TOKEN: &str = "s3cr3t-t0ken-abc";

/// One tcp check against an open port, uploads every 500ms.
fn config(upstream: SocketAddr, extra: &str) -> String {
    let (listener, open) = common::open_port();
    std::mem::forget(listener);
    let upstream = section(&format!("http://{upstream}/base/"), TOKEN);
    format!(
        r#"[agent]
interval = "1s"
timeout = "500ms"

{upstream}offline_after = "1s"
{extra}

[[check]]
name = "open"
kind = "tcp"
target = "{open}"
"#
    )
}

fn status(a: &Agent) -> String {
    let (code, body) = a.get("/status");
    assert_eq!(code, 200);
    body
}

fn wait_status(a: &Agent, key: &str, want: &str) {
    wait_for(
        &format!("/status {key} = {want}"),
        Duration::from_secs(15),
        || {
            let s = status(a);
            let got = if key == "status" {
                field(&s, "status")
            } else {
                upstream_field(a, key)
            };
            (got == want).then_some(())
        },
    );
}

/// Waits until more than `n` records are in the spool.
fn wait_spooled(a: &Agent, n: u64) {
    wait_for("records on disk", Duration::from_secs(10), || {
        let on_disk: u64 = upstream_field(a, "spool_records").parse().unwrap();
        (on_disk > n).then_some(())
    });
}

/// Every sequence number from 1 to the highest one received arrived.
fn assert_no_holes(reqs: &[Req]) -> u64 {
    let seqs: BTreeSet<u64> = reqs
        .iter()
        .filter(|r| r.acked())
        .flat_map(|r| r.records().into_iter().map(|(s, _)| s))
        .collect();
    let max = *seqs.last().expect("records were acknowledged");
    let missing: Vec<u64> = (1..=max).filter(|s| !seqs.contains(s)).collect();
    if !missing.is_empty() {
        for r in reqs {
            eprintln!("{} {:?}", r.act, r.records());
        }
    }
    assert!(
        missing.is_empty(),
        "sequence numbers never acknowledged: {missing:?}"
    );
    max
}

/// Receives uploads until every number from 1 to at least `min_max` has
/// been acknowledged (live records keep coming; this waits for the ones
/// that matter, bounded).
fn collect_complete(fake: &Fake, reqs: &mut Vec<Req>, min_max: u64) {
    wait_for("every number acknowledged", Duration::from_secs(40), || {
        if let Ok(r) = fake.requests.recv_timeout(Duration::from_millis(200)) {
            reqs.push(r);
        }
        let seqs: BTreeSet<u64> = reqs
            .iter()
            .filter(|r| r.acked())
            .flat_map(|r| r.records().into_iter().map(|(s, _)| s))
            .collect();
        let max = seqs.last().copied().unwrap_or(0);
        (max >= min_max && (1..=max).all(|s| seqs.contains(&s))).then_some(())
    });
}

#[test]
fn uploads_carry_the_protocol_and_never_the_token() {
    let fake = Fake::start("127.0.0.1:0");
    let agent = Agent::start("up-happy", &config(fake.addr, ""));
    // First: a heartbeat alone.
    let first = fake.next(Duration::from_secs(10));
    assert_eq!(first.records().len(), 1);
    assert_eq!(first.records()[0].1, "heartbeat");
    assert!(
        first.head.starts_with("POST /base/v1/reports HTTP/1.1\r\n"),
        "{}",
        first.head
    );
    assert_eq!(
        first.header("content-type").as_deref(),
        Some("application/x-ndjson")
    );
    assert_eq!(
        first.header("authorization"),
        Some(format!("Bearer {TOKEN}"))
    );
    assert!(first.header("user-agent").unwrap().starts_with("tether/"));
    let id = first.header("tether-agent").unwrap();
    assert_eq!(id.len(), 32);
    let hb = &first.lines[0];
    assert_eq!(field(hb, "agent_id"), id);
    assert!(field(hb, "time").ends_with('Z') && field(hb, "time").len() == 24);
    assert!(hb.contains("\"os_release\":\"") && hb.contains("\"checks\":[{\"name\":\"open\""));
    // Then results, transitions and heartbeats, numbered in order.
    let mut reqs = vec![first];
    let mut types = BTreeSet::new();
    while !(types.contains("result") && types.contains("transition") && reqs.len() > 3) {
        let r = fake.next(Duration::from_secs(10));
        types.extend(r.records().into_iter().map(|(_, t)| t));
        reqs.push(r);
    }
    let mut seen = BTreeSet::new();
    for r in &reqs {
        let recs = r.records();
        let batch = format!("{}-{}", recs[0].0, recs.last().unwrap().0);
        assert_eq!(r.header("tether-batch"), Some(batch));
        assert_eq!(r.header("tether-agent").as_deref(), Some(id.as_str()));
        // Increasing within a batch, each number sent once.
        assert!(recs.windows(2).all(|w| w[0].0 < w[1].0), "{recs:?}");
        for (seq, _) in recs {
            assert!(seen.insert(seq), "{seq} sent twice");
        }
    }
    assert_no_holes(&reqs);
    let result = reqs
        .iter()
        .flat_map(|r| r.lines.iter())
        .find(|l| l.contains("\"type\":\"result\""))
        .unwrap();
    assert_eq!(field(result, "check"), "open");
    assert_eq!(field(result, "status"), "ok");
    wait_status(&agent, "state", "up");
    assert_eq!(upstream_field(&agent, "agent_id"), id);
    // The identity is kept, private, and the token is nowhere to be read.
    let ident = agent.dir.join("state/identity");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&ident).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&ident).unwrap().contains(&id));
    let (_, metrics) = agent.get("/metrics");
    assert!(metrics.contains("tether_upstream_state{state=\"up\"} 1"));
    assert!(!metrics.contains(TOKEN) && !status(&agent).contains(TOKEN));
    let logs: Vec<String> = agent.log.try_iter().collect();
    assert!(logs.iter().all(|l| !l.contains(TOKEN)));
    // Nothing was written to disk while the upstream answered.
    let spool = agent.dir.join("state/spool");
    let segs = std::fs::read_dir(&spool).map_or(0, |d| d.count());
    assert_eq!(segs, 0, "no spool writes while the upstream answers");
}

#[test]
fn an_outage_is_spooled_and_drained_after_a_heartbeat_oldest_first() {
    let addr = common::closed_port();
    let agent = Agent::start("up-outage", &config(addr, ""));
    wait_status(&agent, "status", "offline");
    assert_eq!(upstream_field(&agent, "state"), "failing");
    wait_spooled(&agent, 3);
    // The spool's fsyncs are timed: they hold the agent's thread.
    let (_, metrics) = agent.get("/metrics");
    let fsyncs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tether_spool_fsyncs_total "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(fsyncs.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(
        metrics.contains("tether_spool_fsync_max_seconds "),
        "{metrics}"
    );
    let fake = Fake::start(&addr.to_string());
    let first = fake.next(Duration::from_secs(40));
    let recs = first.records();
    assert_eq!(recs.len(), 1, "the current state goes first, alone");
    assert_eq!(recs[0].1, "heartbeat");
    assert_eq!(field(&first.lines[0], "status"), "offline");
    let second = fake.next(Duration::from_secs(5));
    assert_eq!(second.records()[0].0, 1, "then the backlog, oldest first");
    let mut reqs = vec![first, second];
    let newest = reqs[0].records()[0].0;
    collect_complete(&fake, &mut reqs, newest);
    wait_status(&agent, "status", "online");
    assert_no_holes(&reqs);
    let transitions: Vec<&String> = reqs
        .iter()
        .flat_map(|r| r.lines.iter())
        .filter(|l| l.contains("\"scope\":\"agent\""))
        .collect();
    assert!(
        transitions.iter().any(|l| field(l, "to") == "offline"),
        "the outage itself is reported: {transitions:?}"
    );
}

#[test]
fn a_restart_keeps_the_identity_the_numbers_and_the_spool() {
    let addr = common::closed_port();
    let cfg = config(addr, "");
    let mut agent = Agent::start("up-restart", &cfg);
    wait_spooled(&agent, 2);
    assert!(agent.stop("TERM").success());
    let dir = agent.into_dir();
    let id_before = std::fs::read_to_string(dir.join("state/identity")).unwrap();

    let fake = Fake::start(&addr.to_string());
    let seq_file = std::fs::read_to_string(dir.join("state/sequence")).unwrap();
    let next: u64 = seq_file
        .lines()
        .find_map(|l| l.strip_prefix("next="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(seq_file.contains("clean=1"), "{seq_file}");
    let agent = Agent::start_in(dir.clone(), &cfg);
    let mut reqs = Vec::new();
    collect_complete(&fake, &mut reqs, next + 1);
    wait_status(&agent, "spool_records", "0");
    assert_eq!(
        std::fs::read_to_string(dir.join("state/identity")).unwrap(),
        id_before
    );
    let ids: BTreeSet<String> = reqs
        .iter()
        .filter_map(|r| r.header("tether-agent"))
        .collect();
    assert_eq!(ids.len(), 1);
    assert!(id_before.contains(ids.iter().next().unwrap().as_str()));
    // Records of both runs, one numbering, nothing missing, no crash gap.
    assert_no_holes(&reqs);
    assert!(reqs
        .iter()
        .flat_map(|r| r.lines.iter())
        .all(|l| !l.contains("unclean_shutdown")));
}

/// Waits for the next upload and SIGHUPs the agent so the retry comes at
/// once instead of after the backoff.
fn next_then_hurry(fake: &Fake, agent: &Agent) -> Req {
    let r = fake.next(Duration::from_secs(40));
    if !r.acked() {
        agent.signal("HUP");
    }
    r
}

#[test]
fn failed_answers_are_retried_and_lose_nothing() {
    let fake = Fake::start("127.0.0.1:0");
    fake.script([
        Act::Status(500, vec![], "oops".into()),
        Act::Garbage,
        Act::Reset,
        Act::HugeHeaders,
        Act::Hang,
        Act::SlowBody(3),
    ]);
    let agent = Agent::start("up-failures", &config(fake.addr, ""));
    let mut reqs = Vec::new();
    while reqs.iter().filter(|r: &&Req| r.acked()).count() < 3 {
        reqs.push(next_then_hurry(&fake, &agent));
    }
    let acts: Vec<&str> = reqs.iter().map(|r| r.act.as_str()).collect();
    assert_eq!(
        &acts[..7],
        [
            "Status 500",
            "Garbage",
            "Reset",
            "HugeHeaders",
            "Hang",
            "SlowBody(3)",
            "Ack"
        ]
    );
    assert_no_holes(&reqs);
    wait_status(&agent, "state", "up");
    let retried: u64 = upstream_field(&agent, "retried").parse().unwrap();
    assert!(retried >= 6, "{retried}");
}

/// An IMF-fixdate (RFC 9110) `secs` seconds from now, rounded up.
fn http_date_in(secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs + 1);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        &t.weekday().to_string()[..3],
        t.day(),
        &t.month().to_string()[..3],
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[test]
fn retry_after_is_obeyed_in_seconds_and_as_a_date() {
    let fake = Fake::start("127.0.0.1:0");
    fake.script([Act::Status(
        429,
        vec![("Retry-After", "2".into())],
        String::new(),
    )]);
    let agent = Agent::start("up-retry-after", &config(fake.addr, ""));
    let first = fake.next(Duration::from_secs(10));
    let t0 = Instant::now();
    assert_eq!(first.act, "Status 429");
    // A date at least 4 s from now (made while the agent waits out the
    // 429): the retry after the 503 comes no sooner.
    fake.script([Act::Status(
        503,
        vec![("Retry-After", http_date_in(4))],
        String::new(),
    )]);
    let second = fake.next(Duration::from_secs(10));
    let t1 = Instant::now();
    assert_eq!(second.act, "Status 503");
    assert!(
        t1 - t0 >= Duration::from_millis(1900),
        "retried {:?} after Retry-After: 2",
        t1 - t0
    );
    let third = fake.next(Duration::from_secs(10));
    assert!(
        t0.elapsed() >= Duration::from_millis(3900),
        "retried {:?} after the 429, for a date 4 s after it",
        t0.elapsed()
    );
    assert!(third.acked());
    wait_status(&agent, "state", "up");
    // A date in the year 292277026596 once panicked the agent (an
    // overflow adding it to the clock): it is no usable date, so the agent
    // backs off instead, and lives.
    fake.script([Act::Status(
        503,
        vec![
            (
                "Retry-After",
                "Sun, 04 Dec 292277026596 23:59:59 GMT".into(),
            ),
            ("Date", "Sun, 04 Dec 292277026596 23:59:59 GMT".into()),
        ],
        String::new(),
    )]);
    agent.signal("HUP");
    wait_for("the far-future 503", Duration::from_secs(10), || {
        (fake.next(Duration::from_secs(10)).act == "Status 503").then_some(())
    });
    assert!(fake.next(Duration::from_secs(10)).acked());
    wait_status(&agent, "state", "up");
}

#[test]
fn retry_after_zero_never_means_at_once() {
    let fake = Fake::start("127.0.0.1:0");
    fake.set_default(Some(Act::Status(
        429,
        vec![("Retry-After", "0".into())],
        String::new(),
    )));
    let _agent = Agent::start("up-retry-after-0", &config(fake.addr, ""));
    let first = fake.next(Duration::from_secs(10)).at;
    // Ten seconds of "429, come back at once": the backoff still holds.
    let mut n = 1;
    while let Ok(r) = fake
        .requests
        .recv_timeout((first + Duration::from_secs(10)).saturating_duration_since(Instant::now()))
    {
        if r.at < first + Duration::from_secs(10) {
            n += 1;
        }
    }
    assert!((2..=12).contains(&n), "{n} uploads in 10 s");
}

#[test]
fn a_wrong_url_holds_the_records_instead_of_refusing_them() {
    let fake = Fake::start("127.0.0.1:0");
    fake.set_default(Some(Act::Status(404, vec![], "no such route".into())));
    let agent = Agent::start("up-404", &config(fake.addr, ""));
    assert_eq!(fake.next(Duration::from_secs(10)).act, "Status 404");
    wait_status(&agent, "state", "not_found");
    wait_status(&agent, "status", "offline");
    // Held: no dead letters, no `rejected` gap, no retry for 5 minutes.
    assert!(fake.requests.recv_timeout(Duration::from_secs(2)).is_err());
    assert!(!agent.dir.join("state/spool/dead-letter.ndjson").exists());
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics.contains("tether_upstream_state{state=\"not_found\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tether_upstream_records_dead_lettered_total 0"));
    // The URL is fixed (here: the receiver), SIGHUP: everything arrives.
    fake.set_default(None);
    agent.signal("HUP");
    let mut reqs = vec![fake.next(Duration::from_secs(10))];
    wait_status(&agent, "state", "up");
    wait_for("the backlog sent", Duration::from_secs(10), || {
        (upstream_field(&agent, "backlog_records") == "0").then_some(())
    });
    while let Ok(r) = fake.requests.try_recv() {
        reqs.push(r);
    }
    let (seqs, gaps) = delivered_and_gaps(&reqs);
    assert!(gaps.iter().all(|g| g.reason != "rejected"), "{gaps:?}");
    let max = *seqs.iter().max().unwrap();
    assert_eq!(
        seqs.len() as u64,
        max,
        "every record from 1 to {max}: {seqs:?}"
    );
}

#[test]
fn rejected_credentials_need_recovery_until_a_reload() {
    let fake = Fake::start("127.0.0.1:0");
    fake.script([Act::Status(401, vec![], "bad token".into())]);
    let agent = Agent::start("up-401", &config(fake.addr, ""));
    assert_eq!(fake.next(Duration::from_secs(10)).act, "Status 401");
    wait_status(&agent, "status", "needs_recovery");
    assert_eq!(upstream_field(&agent, "state"), "credentials_rejected");
    // No retry for 5 minutes, unless SIGHUP.
    assert!(fake.requests.recv_timeout(Duration::from_secs(2)).is_err());
    agent.signal("HUP");
    assert!(fake.next(Duration::from_secs(10)).acked());
    wait_status(&agent, "status", "online");
}

#[test]
fn an_unsupported_version_is_reported_with_the_minimum() {
    let fake = Fake::start("127.0.0.1:0");
    fake.script([Act::Status(
        409,
        vec![("Tether-Min-Version", "9.8.7".into())],
        String::new(),
    )]);
    let agent = Agent::start("up-409", &config(fake.addr, ""));
    assert_eq!(fake.next(Duration::from_secs(10)).act, "Status 409");
    wait_status(&agent, "status", "version_unsupported");
    assert_eq!(upstream_field(&agent, "min_version"), "9.8.7");
    let (_, metrics) = agent.get("/metrics");
    assert!(
        metrics.contains("status=\"version_unsupported\"} 1"),
        "{metrics}"
    );
}

#[test]
fn too_large_halves_the_batch_and_a_refused_batch_is_set_aside_with_a_gap() {
    let fake = Fake::start("127.0.0.1:0");
    let agent = Agent::start("up-413", &config(fake.addr, "batch_max_records = 4"));
    assert!(fake.next(Duration::from_secs(10)).acked()); // the first heartbeat
                                                         // Wait for a full batch, refuse it as too large.
    fake.script([Act::Status(413, vec![], String::new())]);
    let big = loop {
        let r = fake.next(Duration::from_secs(10));
        if r.act == "Status 413" {
            break r;
        }
    };
    let n = big.lines.len();
    let next = fake.next(Duration::from_secs(10));
    assert!(next.lines.len() <= n / 2, "{} then {}", n, next.lines.len());
    assert_eq!(
        next.records()[0].0,
        big.records()[0].0,
        "the same records, fewer at a time"
    );
    // A 400: set aside, and a gap says which numbers.
    fake.script([Act::Status(400, vec![], "line 1: unknown field".into())]);
    let refused = loop {
        let r = fake.next(Duration::from_secs(10));
        if r.act == "Status 400" {
            break r;
        }
    };
    let seqs: Vec<u64> = refused.records().iter().map(|(s, _)| *s).collect();
    let gap = wait_for("a gap record", Duration::from_secs(10), || {
        let r = fake.next(Duration::from_secs(10));
        r.lines.into_iter().find(|l| l.contains("\"type\":\"gap\""))
    });
    assert_eq!(field(&gap, "reason"), "rejected");
    assert_eq!(field(&gap, "first_seq").parse::<u64>().unwrap(), seqs[0]);
    assert_eq!(
        field(&gap, "last_seq").parse::<u64>().unwrap(),
        *seqs.last().unwrap()
    );
    let dead = std::fs::read_to_string(agent.dir.join("state/spool/dead-letter.ndjson")).unwrap();
    assert!(dead.contains("unknown field"));
    for s in &seqs {
        assert!(dead.contains(&format!("\"seq\":{s},")));
    }
    assert_eq!(
        upstream_field(&agent, "dead_lettered"),
        seqs.len().to_string()
    );
}

/// Receives uploads until every number up to at least `min_max` was
/// acknowledged or is named by an acknowledged gap record.
fn collect_explained(fake: &Fake, reqs: &mut Vec<Req>, min_max: u64) {
    wait_for("every number explained", Duration::from_secs(40), || {
        if let Ok(r) = fake.requests.recv_timeout(Duration::from_millis(200)) {
            reqs.push(r);
        }
        let (seqs, gaps) = delivered_and_gaps(reqs);
        let max = seqs.last().copied().unwrap_or(0);
        let explained = |s: &u64| seqs.contains(s) || gaps.iter().any(|g| g.contains(*s));
        (max >= min_max && (1..=max).all(|s| explained(&s))).then_some(())
    });
}

/// A receiver that refuses everything with `code` from the first upload
/// (the link was never up) for a while, then takes everything.
fn refusal_then_ok(code: u16) {
    let fake = Fake::start("127.0.0.1:0");
    fake.set_default(Some(Act::Status(
        code,
        vec![],
        "line 1: field x not allowed\nsecond line".into(),
    )));
    let agent = Agent::start(
        &format!("up-refuse-{code}"),
        &config(fake.addr, "batch_max_records = 4"),
    );
    let t0 = Instant::now();
    let mut reqs = Vec::new();
    wait_for("the refusal to show", Duration::from_secs(15), || {
        reqs.extend(fake.requests.try_iter());
        (upstream_field(&agent, "state") == "rejected" && reqs.len() >= 2).then_some(())
    });
    let s = status(&agent);
    assert_eq!(field(&s, "severity"), "unhealthy", "{s}");
    let err = upstream_field(&agent, "last_error");
    assert!(
        err.contains(&format!("HTTP {code}")) && err.contains("not allowed"),
        "{err}"
    );
    assert!(!err.contains("second line"), "{err}");
    let (_, doctor) = agent.get("/doctor");
    assert!(
        doctor.contains("[critical] the control plane refuses what this agent sends"),
        "{doctor}"
    );
    // Five seconds of refusals: the backoff, not a loop.
    wait_for("five seconds", Duration::from_secs(10), || {
        reqs.extend(fake.requests.try_iter());
        (t0.elapsed() >= Duration::from_secs(5)).then_some(())
    });
    reqs.extend(fake.requests.try_iter());
    let refused = reqs.len();
    assert!(
        (2..=12).contains(&refused),
        "{refused} uploads in 5 s against a receiver that refuses everything"
    );
    let newest = reqs
        .iter()
        .flat_map(|r| r.records())
        .map(|(s, _)| s)
        .max()
        .unwrap();
    fake.set_default(None);
    agent.signal("HUP");
    collect_explained(&fake, &mut reqs, newest);
    // Gap records rode alone, and were never dead-lettered.
    for r in reqs.iter().filter(|r| r.acked()) {
        let kinds: BTreeSet<bool> = r.records().iter().map(|(_, t)| t == "gap").collect();
        assert!(
            kinds.len() <= 1,
            "a batch mixed gap records and others: {:?}",
            r.records()
        );
    }
    let dead = std::fs::read_to_string(agent.dir.join("state/spool/dead-letter.ndjson")).unwrap();
    assert!(!dead.contains("\"type\":\"gap\""), "{dead}");
    assert!(dead.contains("not allowed"));
    wait_status(&agent, "state", "up");
    assert_eq!(field(&status(&agent), "severity"), "healthy");
}

#[test]
fn a_refusing_receiver_is_backed_off_shown_and_every_number_is_explained() {
    refusal_then_ok(400);
}

#[test]
fn a_sustained_413_dead_letters_single_records_and_the_stream_goes_on() {
    refusal_then_ok(413);
}

#[test]
fn https_upstream_is_verified_against_the_ca_file() {
    use common::pki;
    let dir = common::temp_dir("up-https");
    let root = pki::Ca::root("Upstream Test Root");
    let leaf = pki::leaf(Some(&root), &["127.0.0.1"], -1, 30);
    let fake = Fake::start_tls("127.0.0.1:0", pki::server_config(&leaf, &[]));
    let https = |ca: &std::path::Path| {
        config(fake.addr, &format!("ca_file = \"{}\"", ca.display()))
            .replace("http://", "https://")
            .replace("allow_plaintext = true\n", "")
    };
    // Another CA: the handshake fails and nothing is sent.
    let other = pki::Ca::root("Someone Else").write_pem(&dir);
    let untrusted = Agent::start("up-https-untrusted", &https(&other));
    wait_status(&untrusted, "state", "failing");
    let err = upstream_field(&untrusted, "last_error");
    assert!(err.contains("certificate"), "{err}");
    assert!(fake.requests.try_recv().is_err(), "nothing sent");
    drop(untrusted);
    // The right CA: uploads arrive over TLS.
    let agent = Agent::start("up-https", &https(&root.write_pem(&dir)));
    let first = fake.next(Duration::from_secs(10));
    assert_eq!(first.records()[0].1, "heartbeat");
    assert_eq!(
        first.header("authorization"),
        Some(format!("Bearer {TOKEN}"))
    );
    wait_status(&agent, "state", "up");
}

#[test]
fn a_broken_disk_keeps_records_in_memory_and_drops_the_oldest_with_a_gap() {
    let addr = common::closed_port();
    let dir = common::temp_dir("up-disk");
    // The spool directory cannot be created: its parent is a file.
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, "not a directory").unwrap();
    let mut extra = format!(
        "\n[spool]\ndir = \"{}\"\nring_records = 16\n",
        blocker.join("spool").display()
    );
    for i in 0..20 {
        extra.push_str(&format!(
            "\n[[check]]\nname = \"f{i}\"\nkind = \"file\"\npath = \"{}\"\n",
            blocker.display()
        ));
    }
    let agent = Agent::start_in(dir, &config(addr, &extra));
    agent.wait_log("cannot open the spool", Duration::from_secs(10));
    wait_status(&agent, "spool_degraded", "true");
    let (_, metrics) = agent.get("/metrics");
    assert!(metrics.contains("tether_spool_degraded 1"), "{metrics}");
    // 20 results a second into a ring of 16: the oldest are dropped.
    wait_for("records dropped", Duration::from_secs(15), || {
        (upstream_field(&agent, "dropped").parse::<u64>().unwrap() > 20).then_some(())
    });
    wait_status(&agent, "status", "offline");
    // The disk comes back; SIGHUP retries it at once.
    std::fs::remove_file(&blocker).unwrap();
    agent.signal("HUP");
    wait_status(&agent, "spool_degraded", "false");
    let dropped: u64 = upstream_field(&agent, "dropped").parse().unwrap();
    // The upstream comes back: the gaps name exactly what was dropped.
    let fake = Fake::start(&addr.to_string());
    agent.signal("HUP");
    let mut reqs = Vec::new();
    wait_for(
        "everything delivered or named",
        Duration::from_secs(40),
        || {
            if let Ok(r) = fake.requests.recv_timeout(Duration::from_millis(200)) {
                reqs.push(r);
            }
            let (seqs, gaps) = delivered_and_gaps(&reqs);
            let max = *seqs.last()?;
            let named: u64 = gaps.iter().map(|g| g.count).sum();
            let covered = |s: &u64| seqs.contains(s) || gaps.iter().any(|g| g.contains(*s));
            (named >= dropped && (1..=max).all(|s| covered(&s))).then_some(())
        },
    );
    wait_status(&agent, "backlog_records", "0");
    while let Ok(r) = fake.requests.try_recv() {
        reqs.push(r);
    }
    let (seqs, gaps) = delivered_and_gaps(&reqs);
    assert!(gaps.iter().all(|g| g.reason == "ring_full"), "{gaps:?}");
    let named: u64 = gaps.iter().map(|g| g.count).sum();
    let dropped: u64 = upstream_field(&agent, "dropped").parse().unwrap();
    assert_eq!(
        named, dropped,
        "the gap counts add up to the records dropped"
    );
    // Exact: the numbers the gaps name and that never arrived are as many
    // as were dropped (a dropped gap record's range is carried forward).
    let max = *seqs.last().unwrap();
    let lost = (1..=max)
        .filter(|s| !seqs.contains(s) && gaps.iter().any(|g| g.contains(*s)))
        .count() as u64;
    assert_eq!(lost, dropped, "{gaps:?}");
}

#[test]
fn a_damaged_identity_needs_recovery_until_tether_enroll_with_the_agent_stopped() {
    use std::os::unix::fs::PermissionsExt;
    let fake = Fake::start("127.0.0.1:0");
    let dir = common::temp_dir("up-enroll");
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(
        dir.join("state/identity"),
        "tether-identity 1\nid=0123\ncrc32c=0\n",
    )
    .unwrap();
    let cfg = config(fake.addr, "");
    let mut agent = Agent::start_in(dir.clone(), &cfg);
    agent.wait_log("tether enroll", Duration::from_secs(10));
    wait_status(&agent, "status", "needs_recovery");
    assert_eq!(upstream_field(&agent, "state"), "no_identity");
    // Never replaced silently: the damaged file is still there.
    assert!(std::fs::read_to_string(dir.join("state/identity"))
        .unwrap()
        .contains("id=0123"));
    wait_spooled(&agent, 2);
    assert!(
        fake.requests.try_recv().is_err(),
        "nothing sent without an identity"
    );

    let config_path = agent.config.clone();
    let tether = |args: &[&str]| {
        common::tether_command()
            .args(args)
            .arg("-c")
            .arg(&config_path)
            .output()
            .unwrap()
    };
    // Not under the running agent: it holds the state directory.
    let out = tether(&["enroll"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("one agent per state directory"), "{err}");
    assert!(
        err.contains("systemctl stop tether; tether enroll; systemctl start tether"),
        "{err}"
    );
    assert!(agent.stop("TERM").success());
    let dir = agent.into_dir();
    // A token readable by others is refused, and nothing changes.
    let loose = dir.join("new-token");
    std::fs::write(&loose, "n3w-t0ken\n").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = tether(&["enroll", "--token-file", loose.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("new-token") && err.contains("0644"), "{err}");
    assert!(std::fs::read_to_string(dir.join("state/identity"))
        .unwrap()
        .contains("id=0123"));
    // Enrolled with a new token: a new identity, the token installed 0600.
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = tether(&["enroll", "--token-file", loose.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    let id = said
        .split("new agent identity ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    assert_eq!(id.len(), 32);
    let first_on_disk = std::fs::read_dir(dir.join("state/spool"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".seg")?.parse::<u64>().ok()
        })
        .min()
        .unwrap();
    // The next start uses both.
    let agent = Agent::start_in(dir.clone(), &cfg);
    let first = fake.next(Duration::from_secs(10));
    assert_eq!(first.header("tether-agent"), Some(id.clone()));
    assert_eq!(
        first.header("authorization").as_deref(),
        Some("Bearer n3w-t0ken")
    );
    let mut reqs = vec![first];
    wait_for("the spooled records", Duration::from_secs(30), || {
        if let Ok(r) = fake.requests.recv_timeout(Duration::from_millis(200)) {
            reqs.push(r);
        }
        let (seqs, _) = delivered_and_gaps(&reqs);
        let newest = reqs[0].records()[0].0;
        (first_on_disk..=newest)
            .all(|s| seqs.contains(&s))
            .then_some(())
    });
    assert!(reqs
        .iter()
        .all(|r| r.header("tether-agent").as_deref() == Some(id.as_str())));
    wait_status(&agent, "status", "online");
}

#[test]
fn a_restored_upstream_hears_from_the_agent_within_30_s_even_at_the_backoff_cap() {
    let fake = Fake::start("127.0.0.1:0");
    fake.set_default(Some(Act::Status(500, vec![], "down".into())));
    let agent = Agent::start("up-recovery", &config(fake.addr, ""));
    // Enough failures for the backoff to reach its cap (2^4 s > 15 s).
    let mut failed = 0;
    wait_for("five failed uploads", Duration::from_secs(60), || {
        if let Ok(r) = fake.requests.recv_timeout(Duration::from_millis(200)) {
            assert_eq!(r.act, "Status 500");
            failed += 1;
        }
        (failed >= 5).then_some(())
    });
    assert!(
        upstream_field(&agent, "consecutive_failures")
            .parse::<u32>()
            .unwrap()
            >= 5,
        "{}",
        status(&agent)
    );
    let restored = Instant::now();
    fake.set_default(None);
    wait_for(
        "the first acknowledged upload",
        Duration::from_secs(30),
        || {
            let r = fake
                .requests
                .recv_timeout(Duration::from_millis(200))
                .ok()?;
            r.acked().then_some(())
        },
    );
    eprintln!(
        "heard from the agent {:?} after the restore",
        restored.elapsed()
    );
    wait_status(&agent, "state", "up");
}

/// A spool sync that never returns (its helper stopped, as a process in a
/// hung disk's fsync would be) costs the agent nothing but that sync:
/// `/health` answers within 50 ms throughout, the sync is given up at its
/// deadline with the call named, the records stay in memory (the spool is
/// degraded, not lost), and after SIGHUP they are written and synced again.
/// When the upstream answers, every record arrives and none is a gap.
#[test]
fn a_spool_sync_that_never_returns_costs_only_that_sync() {
    let fake = Fake::start("127.0.0.1:0");
    fake.set_failing(true);
    let agent = Agent::start("up-sync-hang", &config(fake.addr, ""));
    wait_spooled(&agent, 2);
    let pid = agent.pid();
    let helper = wait_for("the spool's sync helper", Duration::from_secs(10), || {
        common::children(pid).first().map(|c| c.0)
    });
    assert!(Command::new("kill")
        .args(["-STOP", &helper.to_string()])
        .status()
        .unwrap()
        .success());
    let stop = Arc::new(AtomicBool::new(false));
    let addr = agent.addr;
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(common::http_get(addr, "/health").0, 200);
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(10));
            }
            worst
        })
    };
    let error = wait_for("the sync given up", Duration::from_secs(30), || {
        let e = upstream_field(&agent, "spool_error");
        e.contains("did not return within 10 s").then_some(e)
    });
    assert!(error.contains("fsync") || error.contains("open"), "{error}");
    assert_eq!(upstream_field(&agent, "spool_degraded"), "true");
    let backlog = |a: &Agent| -> u64 { upstream_field(a, "backlog_records").parse().unwrap() };
    let held = backlog(&agent);
    wait_for("records kept in memory", Duration::from_secs(10), || {
        (backlog(&agent) > held).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let worst = prober.join().unwrap();
    assert!(worst < Duration::from_millis(50), "/health took {worst:?}");
    // The stopped helper was killed at the deadline and reaped.
    wait_for("the stopped helper gone", Duration::from_secs(10), || {
        common::children(pid)
            .iter()
            .all(|(c, _)| *c != helper)
            .then_some(())
    });

    agent.signal("HUP");
    wait_status(&agent, "spool_degraded", "false");
    let made = backlog(&agent);
    fake.set_failing(false);
    let mut reqs = Vec::new();
    collect_complete(&fake, &mut reqs, made);
    assert_no_holes(&reqs);
    let (_, gaps) = delivered_and_gaps(&reqs);
    assert!(gaps.is_empty(), "nothing was lost: no gap {gaps:?}");
}
