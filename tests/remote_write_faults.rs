//! `[remote_write]` when the receiver misbehaves: a fault proxy
//! (`common/proxy.rs`) between the agent and a real store answers what
//! each test says (429 with `Retry-After: 0`, 401, 404, 413, TLS), or
//! nothing listens at all; Prometheus refuses too-old samples by itself.
//! The fake control plane's records are the ground truth, as in
//! `remote_write.rs`.

mod common;

use std::time::{Duration, Instant};

use common::proxy::{Proxy, Rule};
use common::rw::*;
use common::store::{Kind, Store};
use common::upstream::{field, Fake};
use common::{wait_for, Agent};

/// The agent's own figure `name` (a sample without labels, or the first
/// one with the given label text) from /metrics.
fn metric(a: &Agent, name: &str) -> f64 {
    let (_, m) = a.get("/metrics");
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Until `at`, while the agent keeps answering and what the fake receives
/// is kept: a window whose count is the measurement.
fn until(at: Instant, a: &Agent, fake: &Fake, all: &mut Vec<common::upstream::Req>) {
    keep_answering(a, fake, all, at);
}

#[test]
fn retry_after_zero_or_a_date_in_the_past_never_means_at_once() {
    let fake = Fake::start("127.0.0.1:0");
    let zero = Proxy::start(None);
    zero.set(Rule::Answer(
        429,
        vec![("Retry-After", "0".into())],
        "slow down",
    ));
    let past = Proxy::start(None);
    past.set(Rule::Answer(
        503,
        vec![("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT".into())],
        "busy",
    ));
    // And one that asks for 3 s: longer than the first backoff (1 s), so
    // obeyed.
    let three = Proxy::start(None);
    three.set(Rule::Answer(
        429,
        vec![("Retry-After", "3".into())],
        "slow down",
    ));
    let a = Agent::start("rw-ra-0", &config(fake.addr, &zero.write_url(), "", ""));
    let b = Agent::start("rw-ra-past", &config(fake.addr, &past.write_url(), "", ""));
    let _c = Agent::start("rw-ra-3", &config(fake.addr, &three.write_url(), "", ""));
    let first = wait_for("the first requests", Duration::from_secs(10), || {
        Some(zero.seen().first()?.at.max(past.seen().first()?.at))
    });
    let mut all = Vec::new();
    until(first + Duration::from_secs(10), &a, &fake, &mut all);
    assert_eq!(b.get("/health").0, 200);
    for (p, what) in [
        (&zero, "429 Retry-After: 0"),
        (&past, "503 Retry-After: 1994"),
    ] {
        let start = p.seen()[0].at;
        let n = p
            .seen()
            .iter()
            .filter(|s| s.at < start + Duration::from_secs(10))
            .count();
        assert!((2..=12).contains(&n), "{what}: {n} requests in 10 s");
    }
    assert_eq!(rw_field(&a, "state"), "failing");
    assert!(rw_field(&a, "last_error").contains("429"));
    let asked = three.seen();
    assert!(asked.len() >= 2, "{} requests", asked.len());
    for w in asked.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(2900),
            "{gap:?} after Retry-After: 3"
        );
    }
}

#[test]
fn rejected_credentials_hold_every_sample_until_the_store_takes_them() {
    let vm = Store::start(Kind::Victoria);
    let proxy = Proxy::start(Some(vm.addr));
    proxy.set(Rule::Answer(401, vec![], "invalid bearer token"));
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("rw-401", &config(fake.addr, &proxy.write_url(), "", ""));
    let mut all = Vec::new();
    wait_for("credentials_rejected", Duration::from_secs(10), || {
        (rw_field(&a, "state") == "credentials_rejected").then_some(())
    });
    let first = proxy.seen()[0].at;
    let (_, m) = a.get("/metrics");
    assert!(
        m.contains("tether_remote_write_state{state=\"credentials_rejected\"} 1"),
        "{m}"
    );
    assert!(rw_field(&a, "last_error").contains("401"));
    let doctor = common::tether_cli(&a.cli_config(), &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("rejects the credentials"), "{text}");
    // The heartbeat tells the control plane too.
    wait_for("a heartbeat saying so", Duration::from_secs(10), || {
        collect(&fake, &mut all);
        all.iter()
            .flat_map(|r| r.lines.iter())
            .any(|l| {
                field(l, "type") == "heartbeat"
                    && l.contains("\"remote_write\":{\"state\":\"credentials_rejected\"")
            })
            .then_some(())
    });
    // Thirty seconds of 401: one request, no other; nothing set aside.
    until(first + Duration::from_secs(30), &a, &fake, &mut all);
    assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());
    // The credentials are valid again: within the minute, by itself, the
    // agent asks again and sends everything.
    proxy.set(Rule::Forward);
    let taken = wait_for("the agent to ask again", Duration::from_secs(40), || {
        proxy
            .seen()
            .iter()
            .find(|s| s.status / 100 == 2)
            .map(|s| s.at)
    });
    let after = taken - first;
    assert!(
        after >= Duration::from_secs(55) && after <= Duration::from_secs(65),
        "asked again after {after:?}"
    );
    remove_checks(&a);
    wait_exact(&vm, &fake, &mut all, Duration::from_secs(30));
    assert_eq!(rw_field(&a, "state"), "up");
    assert!(
        rw_field(&a, "last_error").contains("401"),
        "the last error stays"
    );
    assert_eq!(
        metric(
            &a,
            "tether_remote_write_samples_rejected_total{reason=\"bad_request\"}"
        ),
        0.0
    );
    assert!(!a
        .dir
        .join("state/spool/remote-write-dead-letter.txt")
        .exists());
}

#[test]
fn a_wrong_url_is_held_and_a_reload_sends_at_once() {
    let vm = Store::start(Kind::Victoria);
    let proxy = Proxy::start(Some(vm.addr));
    proxy.set(Rule::Answer(404, vec![], "404 page not found"));
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("rw-404", &config(fake.addr, &proxy.write_url(), "", ""));
    let mut all = Vec::new();
    wait_for("not_found", Duration::from_secs(10), || {
        (rw_field(&a, "state") == "not_found").then_some(())
    });
    let doctor = common::tether_cli(&a.cli_config(), &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("nothing at the remote-write URL"), "{text}");
    until(Instant::now() + Duration::from_secs(3), &a, &fake, &mut all);
    assert_eq!(proxy.seen().len(), 1);
    // Fixed, and reloaded: sent at once, not after the minute.
    proxy.set(Rule::Forward);
    let reload = Instant::now();
    remove_checks(&a);
    wait_exact(&vm, &fake, &mut all, Duration::from_secs(10));
    assert!(reload.elapsed() < Duration::from_secs(10));
    assert_eq!(rw_field(&a, "state"), "up");
    assert!(!a
        .dir
        .join("state/spool/remote-write-dead-letter.txt")
        .exists());
}

#[test]
fn too_large_requests_are_halved_until_they_fit() {
    let vm = Store::start(Kind::Victoria);
    let proxy = Proxy::start(Some(vm.addr));
    proxy.set(Rule::TooLarge(5));
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("rw-413", &config(fake.addr, &proxy.write_url(), "", ""));
    let mut all = Vec::new();
    until(Instant::now() + Duration::from_secs(4), &a, &fake, &mut all);
    remove_checks(&a);
    wait_exact(&vm, &fake, &mut all, Duration::from_secs(30));
    let seen = proxy.seen();
    assert!(seen.iter().any(|s| s.status == 413));
    assert!(seen
        .iter()
        .filter(|s| s.status / 100 == 2)
        .all(|s| s.samples() <= 5));
    assert!(!a
        .dir
        .join("state/spool/remote-write-dead-letter.txt")
        .exists());
    assert_eq!(rw_field(&a, "state"), "up");
}

#[test]
fn many_series_each_with_one_too_old_sample_lose_exactly_those() {
    let prom = Store::start(Kind::Prometheus);
    let proxy = Proxy::start(Some(prom.addr));
    let fake = Fake::start("127.0.0.1:0");
    let body = config(fake.addr, &proxy.write_url(), "", "");
    let mut a = Agent::start("rw-many-old", &body);
    wait_for("samples in Prometheus", Duration::from_secs(20), || {
        (stored_up(&prom).values().map(Vec::len).sum::<usize>() >= 4).then_some(())
    });
    assert!(a.stop("TERM").success());
    // Ten checks, each with one result from three hours ago (outside
    // Prometheus's head block: "out of bounds") before five good ones, all
    // in one backlog batch: Prometheus refuses any request holding one of
    // the old samples, and stores nothing of it.
    let now = tether::os::clock::unix_millis(std::time::SystemTime::now());
    let mut recs = Vec::new();
    let mut good = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for round in 0..6u64 {
        for i in 0..10 {
            let name = format!("old-{i}");
            let t = if round == 0 {
                now - 3 * 3600 * 1000
            } else {
                let t = now - 60_000 + round * 1000 + i;
                good.entry(name.clone()).or_default().push(t as i64);
                t
            };
            recs.push((name, t));
        }
    }
    spool_results(&a.dir.join("state/spool"), &recs);
    let before = proxy.seen().len();
    let a = Agent::start_in(a.into_dir(), &body);
    // 10 records × 8 samples refused, each alone.
    wait_for(
        "the refused samples counted",
        Duration::from_secs(120),
        || {
            let n = metric(
                &a,
                "tether_remote_write_samples_rejected_total{reason=\"too_old\"}",
            );
            (n >= 80.0).then_some(())
        },
    );
    assert_eq!(
        metric(
            &a,
            "tether_remote_write_samples_rejected_total{reason=\"too_old\"}"
        ),
        80.0
    );
    // Every good sample is stored, once.
    for (check, times) in &good {
        let got: Vec<i64> = prom
            .samples(&format!("tether_check_up{{check=\"{check}\"}}"))
            .iter()
            .flat_map(|s| s.samples.iter().map(|p| p.0))
            .collect();
        assert_eq!(&got, times, "{check}");
        let status = prom.samples(&format!("tether_check_status{{check=\"{check}\"}}"));
        assert_eq!(status.len(), 5);
        assert!(status.iter().all(|s| s.samples.len() == 5), "{status:?}");
    }
    let dead =
        std::fs::read_to_string(a.dir.join("state/spool/remote-write-dead-letter.txt")).unwrap();
    assert_eq!(dead.lines().filter(|l| !l.starts_with('#')).count(), 80);
    // The search's cost: at most refused × 2·log2(batch) requests, paced.
    let search: Vec<_> = proxy.seen()[before..].to_vec();
    let refused = search.iter().filter(|s| s.status == 400).count();
    let batch = search.iter().map(|s| s.samples()).max().unwrap() as f64;
    let bound = (80.0 * 2.0 * batch.log2()).ceil() as usize;
    assert!(
        search.len() <= bound,
        "{} requests, bound {bound}",
        search.len()
    );
    let gaps: Vec<Duration> = search.windows(2).map(|w| w[1].at - w[0].at).collect();
    let min = gaps.iter().min().unwrap();
    assert!(
        *min >= tether::agent::remote_write::SEARCH_PACE - Duration::from_millis(2),
        "two requests {min:?} apart; {refused} refusals in {} requests",
        search.len()
    );
    eprintln!(
        "the search: {} requests ({refused} refused) for a batch of {batch} samples",
        search.len()
    );
    assert_eq!(rw_field(&a, "records_lost"), "0");
    // The state follows the last batch: up again at the next one stored,
    // with the refusal still shown as the last error, and when.
    wait_for("up again", Duration::from_secs(10), || {
        (rw_field(&a, "state") == "up").then_some(())
    });
    assert!(rw_field(&a, "last_error").contains("out of bounds"));
    assert!(rw_field(&a, "last_error_time").starts_with("20"));
}

#[test]
fn an_https_store_is_verified_with_its_ca_file() {
    use common::pki;
    let vm = Store::start(Kind::Victoria);
    let root = pki::Ca::root("Store Test Root");
    let leaf = pki::leaf(Some(&root), &["127.0.0.1"], -1, 30);
    let proxy = Proxy::start_tls(Some(vm.addr), pki::server_config(&leaf, &[]));
    let url = format!("https://{}/api/v1/write", proxy.addr);
    let fake = Fake::start("127.0.0.1:0");
    // Without the CA: not trusted, nothing sent, the reason said.
    let untrusted = Agent::start("rw-https-untrusted", &config(fake.addr, &url, "", ""));
    wait_for("a TLS failure", Duration::from_secs(10), || {
        (rw_field(&untrusted, "state") == "failing").then_some(())
    });
    let why = rw_field(&untrusted, "last_error");
    assert!(why.contains("certificate"), "{why}");
    drop(untrusted);
    // With it: everything arrives.
    let dir = common::temp_dir("rw-https-ca");
    let ca = root.write_pem(&dir);
    let extra = format!("ca_file = \"{}\"", ca.display());
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("rw-https", &config(fake.addr, &url, &extra, ""));
    let mut all = Vec::new();
    until(Instant::now() + Duration::from_secs(3), &a, &fake, &mut all);
    remove_checks(&a);
    wait_exact(&vm, &fake, &mut all, Duration::from_secs(20));
    assert_eq!(rw_field(&a, "state"), "up");
}

#[test]
fn sigterm_sends_what_the_agent_holds() {
    let vm = Store::start(Kind::Victoria);
    let fake = Fake::start("127.0.0.1:0");
    // A flush interval longer than the run: only the stop sends.
    let body = config(fake.addr, &vm.write_url(), "", "").replace(
        "timeout = \"2s\"\nflush_interval = \"500ms\"",
        "timeout = \"2s\"\nflush_interval = \"1h\"",
    );
    assert!(body.contains("\"1h\""));
    let mut a = Agent::start("rw-sigterm", &body);
    let mut all = Vec::new();
    wait_for("a few results upstream", Duration::from_secs(20), || {
        collect(&fake, &mut all);
        (results(&all).values().map(|t| t.len()).sum::<usize>() >= 6).then_some(())
    });
    assert!(stored_up(&vm).is_empty());
    let stop = Instant::now();
    assert!(a.stop("TERM").success());
    assert!(
        stop.elapsed() < Duration::from_secs(5),
        "{:?}",
        stop.elapsed()
    );
    collect(&fake, &mut all);
    wait_exact(&vm, &fake, &mut all, Duration::from_secs(10));
}

#[test]
fn a_healthy_agent_leaves_the_disk_alone() {
    let vm = Store::start(Kind::Victoria);
    let fake = Fake::start("127.0.0.1:0");
    let a = Agent::start("rw-flash", &config(fake.addr, &vm.write_url(), "", ""));
    let spool = a.dir.join("state/spool");
    wait_for("requests stored", Duration::from_secs(10), || {
        (metric(&a, "tether_remote_write_samples_sent_total") > 0.0).then_some(())
    });
    let listing = |d: &std::path::Path| -> Vec<(String, Option<std::time::SystemTime>)> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .map(|r| {
                r.flatten()
                    .map(|e| {
                        let m = e.metadata().ok().and_then(|m| m.modified().ok());
                        (e.file_name().to_string_lossy().into_owned(), m)
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = listing(&spool);
    let requests = metric(&a, "tether_remote_write_requests_total");
    // Ten more requests stored, each an acknowledgement: nothing written.
    wait_for("ten more requests", Duration::from_secs(20), || {
        (metric(&a, "tether_remote_write_requests_total") >= requests + 10.0).then_some(())
    });
    assert_eq!(listing(&spool), before, "the spool directory changed");
    assert_eq!(rw_field(&a, "state"), "up");
}

#[test]
fn an_unreached_store_is_probed_not_hammered_and_gets_everything_when_back() {
    let addr = common::closed_port();
    let fake = Fake::start("127.0.0.1:0");
    let url = format!("http://{addr}/api/v1/write");
    let a = Agent::start("rw-unreached", &config(fake.addr, &url, "", ""));
    let mut all = Vec::new();
    wait_for("failing", Duration::from_secs(10), || {
        (rw_field(&a, "state") == "failing").then_some(())
    });
    let from = Instant::now();
    let (r0, p0) = (
        metric(&a, "tether_remote_write_requests_total"),
        metric(&a, "tether_remote_write_probes_total"),
    );
    until(from + Duration::from_secs(12), &a, &fake, &mut all);
    let requests = metric(&a, "tether_remote_write_requests_total") - r0;
    let probes = metric(&a, "tether_remote_write_probes_total") - p0;
    // Probes every 1–3 s, no full request while nothing answers.
    assert!(requests <= 1.0, "{requests} requests in 12 s");
    assert!((4.0..=13.0).contains(&probes), "{probes} probes in 12 s");
    // The store comes back where it was: it has everything within a probe.
    let vm = Store::start(Kind::Victoria);
    let proxy = Proxy::start_on(addr, Some(vm.addr));
    let back = Instant::now();
    let stored = wait_for("the first stored request", Duration::from_secs(10), || {
        proxy
            .seen()
            .iter()
            .find(|s| s.status / 100 == 2)
            .map(|s| s.at)
    });
    // A probe every 1–3 s, then the request (slower under a loaded CI):
    // seconds, where a full-request backoff would be at 16–30 s by now.
    assert!(
        stored - back <= Duration::from_secs(5),
        "{:?}",
        stored - back
    );
    remove_checks(&a);
    wait_exact(&vm, &fake, &mut all, Duration::from_secs(20));
}
