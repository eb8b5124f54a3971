//! `[otlp]` against the official-classes receiver (`otlp_receiver.py`):
//! every request parses, and every result the agent made arrives exactly
//! once, through outages, a SIGKILL, faults and a SIGTERM. The fake control
//! plane records every record the agent made: it is the ground truth the
//! receiver's points are compared with. Needs `target/otel-venv` (made by
//! `bash .ci/run`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::otlp::Receiver;
use common::rw::{collect, keep_answering, remove_checks, results, stored_up};
use common::store::{Kind, Store};
use common::upstream::{field, Act, Fake, Req};
use common::{wait_for, Agent};
use serde_json::Value;

/// The fake upstream (recording), the receiver, two TCP checks (one ok,
/// one refused) at 1 s; `extra_otlp` goes in `[otlp]`, `extra` after it.
fn config(upstream: SocketAddr, url: &str, extra_otlp: &str, extra: &str) -> String {
    let otlp = format!(
        r#"[otlp]
url = "{url}"
allow_plaintext = true
timeout = "2s"
flush_interval = "500ms"
resource = {{ "deployment.environment" = "test" }}
{extra_otlp}
"#
    );
    common::rw::config_with(upstream, &otlp, extra)
}

/// Nothing was refused, for any reason.
fn nothing_rejected(a: &Agent) {
    for reason in tether::agent::otlp::REASONS {
        let name = format!("tether_otlp_points_rejected_total{{reason=\"{reason}\"}}");
        assert_eq!(metric(a, &name), 0.0, "{name}");
    }
}

/// `tether.check.up` per check: the points' times (Unix ms), in arrival
/// order, duplicates kept.
fn received_up(r: &Receiver) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for p in r.received() {
        if p["metric"] == "tether.check.up" {
            let check = p["attributes"]["check"].as_str().unwrap().to_string();
            let ns = p["time"].as_u64().unwrap();
            out.entry(check).or_default().push((ns / 1_000_000) as i64);
        }
    }
    out
}

/// Waits until the receiver holds exactly the results the fake recorded,
/// per check, each once.
fn wait_exact(r: &Receiver, fake: &Fake, all: &mut Vec<Req>, limit: Duration) {
    wait_complete(r, fake, all, limit, 0);
}

/// [`wait_exact`], but up to `twice` points may have come twice (those of
/// a request in flight when the agent was killed: stored, but the answer
/// never reached the agent).
fn wait_complete(r: &Receiver, fake: &Fake, all: &mut Vec<Req>, limit: Duration, twice: usize) {
    let mut last = String::new();
    let ok = common::wait_for_opt(limit, || {
        collect(fake, all);
        let want = results(all);
        let got = received_up(r);
        let extra: usize = got
            .values()
            .map(|g| g.len() - g.iter().collect::<BTreeSet<_>>().len())
            .sum();
        let same = want.len() == got.len()
            && want.iter().all(|(check, times)| {
                got.get(check)
                    .is_some_and(|g| g.iter().copied().collect::<BTreeSet<_>>() == *times)
            });
        last = format!("want {want:?}\ngot {got:?}");
        (same && extra <= twice).then_some(())
    });
    assert!(
        ok.is_some(),
        "the receiver does not hold every result once (at most {twice} twice):\n{last}"
    );
    assert_eq!(r.malformed(), 0, "a request did not parse");
}

fn otlp_field(a: &Agent, key: &str) -> String {
    let (code, s) = a.get("/status");
    assert_eq!(code, 200, "{s}");
    let o = &s[s.find("\"otlp\":{").expect("an otlp object")..];
    field(o, key)
}

fn metric(a: &Agent, name: &str) -> f64 {
    let (_, m) = a.get("/metrics");
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{m}"))
}

#[test]
fn every_result_arrives_once_with_its_resource_names_units_and_times() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("otlp-all", &config(fake.addr, &r.url(), "", ""));
    let mut all = Vec::new();
    wait_for("a few runs received", Duration::from_secs(20), || {
        let got = received_up(&r);
        (got.len() == 2 && got.values().all(|t| t.len() >= 4)).then_some(())
    });
    remove_checks(&a);
    wait_exact(&r, &fake, &mut all, Duration::from_secs(20));

    let points = r.received();
    let agent_id = otlp_agent_id(&a);
    for p in &points {
        let res = &p["resource"];
        assert_eq!(res["service.name"], "tether", "{p}");
        assert_eq!(res["service.version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(res["service.instance.id"], agent_id.as_str());
        assert_eq!(res["tether.agent"], "edge-1");
        assert_eq!(res["os.type"], "linux");
        assert_eq!(res["deployment.environment"], "test");
        assert_eq!(res["site"], "ams");
        assert_eq!(res["tier"], "prod");
        assert!(res["host.name"].as_str().is_some_and(|h| !h.is_empty()));
        assert!(res["host.arch"].as_str().is_some_and(|h| !h.is_empty()));
        assert_eq!(
            p["scope"],
            serde_json::json!(["tether", env!("CARGO_PKG_VERSION")])
        );
    }
    let one = |metric: &str, check: &str| -> &Value {
        points
            .iter()
            .find(|p| p["metric"] == metric && p["attributes"]["check"] == check)
            .unwrap_or_else(|| panic!("no {metric} of {check}"))
    };
    let up = one("tether.check.up", "refused");
    assert_eq!(up["kind"], "gauge");
    assert_eq!(up["unit"], "1");
    assert_eq!(up["value"], "0.0");
    // A check's own labels win over the built-in attributes of the name.
    let want: BTreeMap<&str, &str> = [
        ("check", "refused"),
        ("kind", "tcp"),
        ("role", "control_plane"),
        ("service", "db"),
        ("site", "here"),
    ]
    .into();
    let got: BTreeMap<&str, &str> = up["attributes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    assert_eq!(got, want);
    let d = one("tether.check.duration", "open");
    assert_eq!(d["unit"], "s");
    let secs: f64 = d["value"].as_str().unwrap().parse().unwrap();
    assert!(secs > 0.0 && secs < 0.5, "{d}");
    // The damped status: crit after `fall` failures.
    assert!(points.iter().any(|p| p["metric"] == "tether.check.status"
        && p["attributes"]["check"] == "refused"
        && p["attributes"]["status"] == "crit"
        && p["value"] == "1.0"));
    // A counter is cumulative and monotonic, from the process start.
    let sent = points
        .iter()
        .find(|p| p["kind"] == "sum")
        .expect("a counter point");
    assert_eq!(sent["monotonic"], true);
    assert_eq!(sent["temporality"], 2, "cumulative");
    assert!(sent["start"].as_u64().unwrap() > 0);
    assert!(sent["start"].as_u64() <= sent["time"].as_u64());
    // Each point at its result's own time: the fake's times, to the ms.
    assert_eq!(otlp_field(&a, "state"), "up");
    // Every request gzip-compressed, every one answered 200.
    let log = r.log();
    assert!(log.len() >= 4);
    assert!(
        log.iter()
            .all(|l| l["encoding"] == "gzip" && l["status"] == 200),
        "{log:?}"
    );
    let (_, m) = a.get("/metrics");
    assert!(m.contains("tether_otlp_state{state=\"up\"} 1"), "{m}");
    assert!(metric(&a, "tether_otlp_points_sent_total") > 0.0);
    // The page shows the destination beside the upstream.
    let (_, page) = a.get("/");
    assert!(
        page.contains(&format!("<p>OTLP {}: <b>up</b>", r.url())),
        "{page}"
    );
}

fn otlp_agent_id(a: &Agent) -> String {
    let (_, s) = a.get("/status");
    field(&s, "agent_id")
}

#[test]
fn uncompressed_bodies_when_asked() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start(
        "otlp-plain",
        &config(fake.addr, &r.url(), "compression = \"none\"", ""),
    );
    wait_for("requests", Duration::from_secs(20), || {
        (r.log().len() >= 2).then_some(())
    });
    assert!(r
        .log()
        .iter()
        .all(|l| l["encoding"] == "" && l["status"] == 200));
    drop(a);
}

/// The receiver stopped for 60 s while the agent probes; halfway through,
/// the agent is killed and started again on the same spool. Once the
/// receiver is back (answering slowly), the agent is killed again while it
/// drains the backlog. Afterwards every result of the window is there
/// once: the OTLP cursor is on disk at every acknowledgement, so only the
/// request in flight at the second kill can come twice (two records).
#[test]
fn an_outage_with_a_kill_loses_nothing_and_sends_nothing_twice() {
    let mut r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    // Records are fsynced as they are queued while spooling: a SIGKILL
    // loses nothing that was made.
    // Two records a request: the drain takes many requests.
    let body = config(
        fake.addr,
        &r.url(),
        "batch_max_points = 40",
        "[spool]\nsync = \"always\"\n",
    );
    let a = Agent::start("otlp-outage", &body);
    let mut all = Vec::new();
    wait_for("results received", Duration::from_secs(20), || {
        (received_up(&r).values().map(Vec::len).sum::<usize>() >= 4).then_some(())
    });
    let outage = Instant::now();
    r.stop();
    a.wait_log("otlp", Duration::from_secs(10));
    keep_answering(&a, &fake, &mut all, outage + Duration::from_secs(30));
    let spooled: u64 = otlp_field(&a, "spool_records").parse().unwrap();
    assert!(spooled > 50, "{spooled}");
    let dir = a.into_dir(); // SIGKILL
    let a = Agent::start_in(dir, &body);
    keep_answering(&a, &fake, &mut all, outage + Duration::from_secs(60));
    let spooled_after: u64 = otlp_field(&a, "spool_records").parse().unwrap();
    assert!(spooled_after > spooled, "{spooled} then {spooled_after}");
    assert_eq!(otlp_field(&a, "state"), "failing");
    let before = received_up(&r).values().map(Vec::len).sum::<usize>();
    r.restart();
    r.fault(r#"{"delay": 0.05, "count": 100000}"#);
    wait_for("the drain under way", Duration::from_secs(20), || {
        (received_up(&r).values().map(Vec::len).sum::<usize>() >= before + 10).then_some(())
    });
    let left: u64 = otlp_field(&a, "spool_records").parse().unwrap();
    assert!(left > 20, "killed after the drain, not in it: {left} left");
    let dir = a.into_dir(); // SIGKILL
    let a = Agent::start_in(dir, &body);
    remove_checks(&a);
    wait_complete(&r, &fake, &mut all, Duration::from_secs(60), 2);
    let got = received_up(&r);
    assert!(got.values().map(Vec::len).sum::<usize>() >= 100, "{got:?}");
    // Each check's points in time order, as sent (the request sent again
    // after the kill repeats a time, at once).
    for times in got.values() {
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
    wait_for("the backlog drained", Duration::from_secs(10), || {
        let age = otlp_field(&a, "oldest_unsent_age_seconds");
        (age == "null" || age.parse::<f64>().is_ok_and(|s| s < 3.0)).then_some(())
    });
    // Records made in the drain went to disk behind the backlog; the last
    // of them leave it within a few flushes.
    let left = common::wait_for_opt(Duration::from_secs(10), || {
        (otlp_field(&a, "spool_records") == "0").then_some(())
    });
    assert!(left.is_some(), "{}", a.get("/status").1);
    assert_eq!(otlp_field(&a, "records_lost"), "0");
    // A counter starts again with each process: three runs, three starts,
    // each at or before its points.
    let starts: BTreeSet<u64> = r
        .received()
        .iter()
        .filter(|p| p["kind"] == "sum")
        .map(|p| {
            let (s, t) = (p["start"].as_u64().unwrap(), p["time"].as_u64().unwrap());
            assert!(s > 0 && s <= t, "{p}");
            s
        })
        .collect();
    assert_eq!(starts.len(), 3, "{starts:?}");
}

/// The arrival times (s) of this run's requests after `from`, with their
/// statuses.
fn arrivals(r: &Receiver, from: usize) -> Vec<(f64, u64)> {
    r.log()[from..]
        .iter()
        .map(|l| (l["at"].as_f64().unwrap(), l["status"].as_u64().unwrap()))
        .collect()
}

#[test]
fn busy_answers_are_retried_after_the_wait_they_ask_for_and_never_sooner_than_a_second() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("otlp-busy", &config(fake.addr, &r.url(), "", ""));
    let mut all = Vec::new();
    wait_for("requests", Duration::from_secs(20), || {
        (r.log().len() >= 2).then_some(())
    });
    for (fault, floor, said) in [
        (
            r#"{"status": 429, "retry_after": "3", "count": 1}"#,
            3.0,
            "",
        ),
        (r#"{"status": 429, "count": 1}"#, 1.0, ""),
        (
            r#"{"status": 503, "retry_after": "0", "count": 1}"#,
            1.0,
            "",
        ),
        // A damaged Status: its bytes are no sentence for an operator.
        (
            r#"{"status": 502, "count": 1, "body_hex": "12ffffffff0f78787878"}"#,
            1.0,
            "HTTP 502 Bad Gateway: a body of 10 bytes that is not text",
        ),
        (r#"{"status": 504, "count": 1}"#, 1.0, ""),
        // A redirect is not followed, and loses nothing.
        (r#"{"status": 308, "count": 1}"#, 1.0, ""),
    ] {
        let from = r.log().len();
        r.fault(fault);
        let seen = wait_for("the fault and its retry", Duration::from_secs(20), || {
            let a = arrivals(&r, from);
            let i = a.iter().position(|x| x.1 != 200)?;
            let next = a.get(i + 1)?;
            Some((a[i], *next))
        });
        let waited = seen.1 .0 - seen.0 .0;
        assert!(
            waited >= floor - 0.05,
            "{fault}: retried after {waited:.2} s"
        );
        assert!(
            waited < floor + 31.0,
            "{fault}: retried after {waited:.2} s"
        );
        assert_eq!(seen.1 .1, 200, "{fault}");
        let last = otlp_field(&a, "last_error");
        assert!(last.contains(said), "{fault}: {last}");
    }
    let retried = metric(&a, "tether_otlp_points_retried_total");
    assert!(retried > 0.0);
    // Nothing was lost and nothing counted twice.
    remove_checks(&a);
    wait_exact(&r, &fake, &mut all, Duration::from_secs(30));
    nothing_rejected(&a);
}

#[test]
fn a_refused_request_is_set_aside_and_counted_and_nothing_after_it_is_lost() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("otlp-400", &config(fake.addr, &r.url(), "", ""));
    let mut all = Vec::new();
    wait_for("requests", Duration::from_secs(20), || {
        (r.log().len() >= 2).then_some(())
    });
    let from = r.log().len();
    r.fault(r#"{"status": 400, "message": "metric name is not valid", "count": 1}"#);
    let refused = wait_for("the 400", Duration::from_secs(20), || {
        let l = &r.log()[from..];
        let i = l.iter().position(|x| x["status"] == 400)?;
        Some(l[i]["points"].as_u64().unwrap())
    });
    wait_for("counted", Duration::from_secs(10), || {
        (metric(
            &a,
            "tether_otlp_points_rejected_total{reason=\"bad_request\"}",
        ) == refused as f64)
            .then_some(())
    });
    assert_eq!(otlp_field(&a, "state"), "rejected");
    let (_, s) = a.get("/status");
    assert!(
        s.contains("metric name is not valid"),
        "the receiver's message: {s}"
    );
    let letters = std::fs::read_to_string(a.dir.join("state/spool/otlp-dead-letter.txt")).unwrap();
    assert!(letters.starts_with("# "), "{letters}");
    assert!(letters.contains("metric name is not valid"));
    let lines = letters.lines().filter(|l| !l.starts_with('#')).count() as u64;
    assert_eq!(lines, refused);
    // Everything after it arrives: the results the receiver has are all but
    // those in the refused request, each once.
    remove_checks(&a);
    collect(&fake, &mut all);
    wait_for("every later result", Duration::from_secs(20), || {
        collect(&fake, &mut all);
        let want: usize = results(&all).values().map(BTreeSet::len).sum();
        let got: Vec<i64> = received_up(&r).into_values().flatten().collect();
        let refused_up = letters
            .lines()
            .filter(|l| l.starts_with("tether.check.up{"))
            .count();
        (got.len() + refused_up == want).then_some(())
    });
    let got = received_up(&r);
    for times in got.values() {
        let set: BTreeSet<_> = times.iter().collect();
        assert_eq!(set.len(), times.len(), "a point twice: {times:?}");
    }
    assert_eq!(r.malformed(), 0);
}

#[test]
fn a_partial_success_is_counted_and_logged_and_nothing_is_sent_again() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("otlp-partial", &config(fake.addr, &r.url(), "", ""));
    let mut all = Vec::new();
    wait_for("requests", Duration::from_secs(20), || {
        (r.log().len() >= 2).then_some(())
    });
    r.fault(r#"{"rejected": 3, "message": "3 points had no unit", "count": 1}"#);
    wait_for("counted", Duration::from_secs(10), || {
        (metric(
            &a,
            "tether_otlp_points_rejected_total{reason=\"partial_success\"}",
        ) == 3.0)
            .then_some(())
    });
    a.wait_log("3 points had no unit", Duration::from_secs(5));
    // Not sent again: the receiver holds every result once (it stored
    // the whole request; the agent counts what it said it rejected).
    remove_checks(&a);
    wait_exact(&r, &fake, &mut all, Duration::from_secs(20));
    assert!(r.log().iter().all(|l| l["status"] == 200));
}

#[test]
fn sigterm_sends_what_the_agent_holds() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let body = config(fake.addr, &r.url(), "", "").replace(
        "timeout = \"2s\"\nflush_interval = \"500ms\"\nresource",
        "timeout = \"2s\"\nflush_interval = \"1h\"\nresource",
    );
    assert!(body.contains("\"1h\""));
    let mut a = Agent::start("otlp-sigterm", &body);
    let mut all = Vec::new();
    wait_for("a few results upstream", Duration::from_secs(20), || {
        collect(&fake, &mut all);
        (results(&all).values().map(|t| t.len()).sum::<usize>() >= 6).then_some(())
    });
    // The first flush went at start, before any result.
    assert!(received_up(&r).is_empty());
    let stop = Instant::now();
    assert!(a.stop("TERM").success());
    assert!(
        stop.elapsed() < Duration::from_secs(5),
        "{:?}",
        stop.elapsed()
    );
    collect(&fake, &mut all);
    wait_exact(&r, &fake, &mut all, Duration::from_secs(10));
}

/// All three destinations; each in turn goes down while the other two stay
/// current, and gets everything once back.
#[test]
fn one_destination_down_does_not_hold_the_other_two() {
    let mut r = Receiver::start();
    let mut vm = Store::start(Kind::Victoria);
    let fake = Fake::start("127.0.0.1:0");
    let rw = format!(
        "[remote_write]\nurl = \"{}\"\nallow_plaintext = true\ntimeout = \"2s\"\nflush_interval = \"500ms\"\n",
        vm.write_url()
    );
    let a = Agent::start("otlp-three", &config(fake.addr, &r.url(), "", &rw));
    let mut all = Vec::new();
    let now_ms = || tether::os::clock::unix_millis(std::time::SystemTime::now()) as i64;
    let fresh_points = |r: &Receiver, from: i64| -> usize {
        received_up(r)
            .values()
            .map(|t| t.iter().filter(|x| **x > from + 2000).count())
            .sum()
    };
    let fresh_samples = |vm: &Store, from: i64| -> usize {
        stored_up(vm)
            .values()
            .map(|t| t.iter().filter(|x| **x > from + 2000).count())
            .sum()
    };
    wait_for("all three current", Duration::from_secs(20), || {
        (fresh_points(&r, 0) >= 2 && fresh_samples(&vm, 0) >= 2).then_some(())
    });

    // The OTLP receiver down: the store and the control plane stay current.
    r.stop();
    let from = now_ms();
    wait_for("fresh samples and results", Duration::from_secs(15), || {
        collect(&fake, &mut all);
        let up: usize = results(&all)
            .values()
            .map(|t| t.iter().filter(|x| **x > from + 2000).count())
            .sum();
        (fresh_samples(&vm, from) >= 4 && up >= 4).then_some(())
    });
    assert_eq!(otlp_field(&a, "state"), "failing");

    // The store down, the receiver back: the receiver catches up and stays
    // current.
    vm.stop();
    r.restart();
    let from = now_ms();
    wait_for(
        "fresh points while the store is down",
        Duration::from_secs(20),
        || (fresh_points(&r, from) >= 4).then_some(()),
    );
    // The control plane down, the store back.
    fake.set_failing(true);
    vm.restart();
    let from = now_ms();
    wait_for(
        "fresh points and samples while the upstream fails",
        Duration::from_secs(20),
        || (fresh_points(&r, from) >= 4 && fresh_samples(&vm, from) >= 4).then_some(()),
    );
    fake.set_failing(false);
    remove_checks(&a);
    wait_exact(&r, &fake, &mut all, Duration::from_secs(30));
    common::rw::wait_exact(&vm, &fake, &mut all, Duration::from_secs(30));
}

#[test]
fn rejected_credentials_hold_the_points_and_a_reload_sends_them() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("otlp-401", &config(fake.addr, &r.url(), "", ""));
    let mut all = Vec::new();
    wait_for("requests", Duration::from_secs(20), || {
        (r.log().len() >= 2).then_some(())
    });
    r.fault(r#"{"status": 401, "message": "bad token", "count": 1}"#);
    wait_for("held", Duration::from_secs(10), || {
        (otlp_field(&a, "state") == "credentials_rejected").then_some(())
    });
    let (_, m) = a.get("/metrics");
    assert!(
        m.contains("tether_otlp_state{state=\"credentials_rejected\"} 1"),
        "{m}"
    );
    assert!(otlp_field(&a, "last_error").contains("401"));
    assert!(
        otlp_field(&a, "last_error").contains("bad token"),
        "the Status message"
    );
    let doctor = common::tether_cli(&a.cli_config(), &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.contains("the OTLP receiver rejects the credentials"),
        "{text}"
    );
    let status = common::tether_cli(&a.cli_config(), &["status"]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&format!("otlp {}: credentials_rejected", r.url()))),
        "{table}"
    );
    // The heartbeat tells the control plane too.
    wait_for("a heartbeat saying so", Duration::from_secs(10), || {
        collect(&fake, &mut all);
        all.iter()
            .flat_map(|q| q.lines.iter())
            .any(|l| {
                field(l, "type") == "heartbeat"
                    && l.contains("\"otlp\":{\"state\":\"credentials_rejected\"")
            })
            .then_some(())
    });
    // Held: nothing more is sent for a while.
    let held = r.log().len();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(r.log().len(), held, "a request while held");
    let from = r.log().len();
    // Held a minute; a reload (new credentials) sends at once.
    a.signal("HUP");
    wait_for(
        "sent again after the reload",
        Duration::from_secs(10),
        || {
            r.log()[from..]
                .iter()
                .any(|l| l["status"] == 200)
                .then_some(())
        },
    );
    remove_checks(&a);
    wait_exact(&r, &fake, &mut all, Duration::from_secs(20));
    nothing_rejected(&a);
}

#[test]
fn a_request_has_the_protocol_headers_and_the_secret_goes_nowhere_else() {
    let fake = Fake::start("127.0.0.1:0");
    let secret = "otlp-SECRET-token-77";
    let body = format!(
        r#"[agent]
interval = "1s"
timeout = "500ms"

[otlp]
url = "http://{}/v1/metrics?tenant=a"
allow_plaintext = true
bearer_token_file = "{}"
flush_interval = "500ms"
headers = {{ x-api-key = "connectors" }}

[[check]]
name = "{secret}"
kind = "tcp"
target = "{}"
"#,
        fake.addr,
        common::upstream::token_file(secret).display(),
        common::closed_port()
    );
    let a = Agent::start("otlp-headers", &body);
    let req = wait_for("an OTLP request", Duration::from_secs(10), || {
        fake.requests.recv_timeout(Duration::from_millis(100)).ok()
    });
    assert!(
        req.head
            .starts_with("POST /v1/metrics?tenant=a HTTP/1.1\r\n"),
        "{}",
        req.head
    );
    for (k, v) in [
        ("Content-Encoding", "gzip".to_string()),
        ("Content-Type", "application/x-protobuf".to_string()),
        (
            "User-Agent",
            format!("tether/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("Authorization", format!("Bearer {secret}")),
        ("x-api-key", "connectors".to_string()),
    ] {
        assert_eq!(
            req.header(k).as_deref(),
            Some(v.as_str()),
            "{k}: {}",
            req.head
        );
    }
    let (_, status) = a.get("/status");
    let (_, metrics) = a.get("/metrics");
    assert!(!status.contains("Bearer"), "{status}");
    assert!(!metrics.contains("Bearer"), "{metrics}");
    let path = a.dir.join("bundle.txt");
    let out = common::tether_cli(&a.cli_config(), &["bundle", "-o", path.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("SECRET"), "a secret in the bundle:\n{text}");
    assert!(text.contains("tether_otlp_requests_total"), "{text}");
}

/// The upstream black-holes for 20 s: the agent probes it with reconnect
/// heartbeats, each cut by the timeout and queued again after newer records
/// went to disk (so it reaches the spool after them). Every heartbeat the
/// control plane finally has reaches the receiver too (those of the last
/// two seconds may still be on their way).
#[test]
fn heartbeats_made_while_the_upstream_hangs_reach_the_receiver() {
    let r = Receiver::start();
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("otlp-hb", &config(fake.addr, &r.url(), "", ""));
    let mut all = Vec::new();
    wait_for("some", Duration::from_secs(10), || {
        (r.received().len() > 10).then_some(())
    });
    fake.set_default(Some(Act::Hang));
    std::thread::sleep(Duration::from_secs(20));
    fake.set_default(None);
    remove_checks(&a);
    wait_for("results", Duration::from_secs(30), || {
        collect(&fake, &mut all);
        let want: usize = results(&all).values().map(BTreeSet::len).sum();
        let got = r
            .received()
            .iter()
            .filter(|p| p["metric"] == "tether.check.up")
            .count();
        (got == want).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    collect(&fake, &mut all);
    let mut seen = BTreeSet::new();
    let mut want = BTreeSet::new();
    for q in all.iter().filter(|q| q.acked()) {
        for l in &q.lines {
            if field(l, "type") == "heartbeat" && seen.insert(field(l, "seq")) {
                let t = field(l, "time");
                want.insert(tether::os::clock::parse_rfc3339_millis(&t).unwrap() as i64);
            }
        }
    }
    let got: BTreeSet<i64> = r
        .received()
        .iter()
        .filter(|p| p["metric"] == "tether.agent.heartbeat.interval")
        .map(|p| (p["time"].as_u64().unwrap() / 1_000_000) as i64)
        .collect();
    let cut = tether::os::clock::unix_millis(std::time::SystemTime::now()) as i64 - 2000;
    let missing: Vec<_> = want.difference(&got).filter(|t| **t < cut).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty(),
        "heartbeats missing: {missing:?} (extra {extra:?})"
    );
    assert!(want.len() >= 20, "{} heartbeats", want.len());
}
