//! Helpers for the remote-write tests: the agent's config, the ground
//! truth (every record the fake control plane received), and comparing a
//! store's series with it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use super::store::Store;
use super::upstream::{field, section, Fake, Req};
use super::{wait_for, Agent};

/// A config with the fake upstream (recording) and the store, two TCP
/// checks (one ok, one refused) at 1 s.
pub fn config(upstream: SocketAddr, write_url: &str, extra_rw: &str, extra: &str) -> String {
    let rw = format!(
        r#"[remote_write]
url = "{write_url}"
allow_plaintext = true
timeout = "2s"
flush_interval = "500ms"
labels = {{ site = "fra1", group = "eu-west" }}
{extra_rw}
"#
    );
    config_with(upstream, &rw, extra)
}

/// The agent (`edge-1`, labels `tier` and `site`), the fake upstream
/// (recording), the receiver's section `dest`, `extra`, and two TCP checks
/// at 1 s: `open` (ok) and `refused` (crit, with labels of its own).
pub fn config_with(upstream: SocketAddr, dest: &str, extra: &str) -> String {
    let (listener, open) = super::open_port();
    std::mem::forget(listener);
    let closed = super::closed_port();
    let upstream = section(&format!("http://{upstream}/"), "t0ken-for-tests");
    format!(
        r#"[agent]
name = "edge-1"
interval = "1s"
timeout = "500ms"
labels = {{ tier = "prod", site = "ams" }}

{upstream}
{dest}

{extra}

[[check]]
name = "open"
kind = "tcp"
target = "{open}"

[[check]]
name = "refused"
kind = "tcp"
target = "{closed}"
role = "control_plane"
labels = {{ service = "db", site = "here" }}
"#
    )
}

/// Drains what the fake received so far into `all`.
pub fn collect(fake: &Fake, all: &mut Vec<Req>) {
    while let Ok(r) = fake.requests.try_recv() {
        all.push(r);
    }
}

/// Result times (Unix ms) per check from everything the fake acknowledged,
/// each record once (the upstream may see one twice).
pub fn results(reqs: &[Req]) -> BTreeMap<String, BTreeSet<i64>> {
    let mut seen = BTreeSet::new();
    let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for r in reqs.iter().filter(|r| r.acked()) {
        for l in &r.lines {
            // `old` is the record a test spooled by hand for the store to refuse.
            if field(l, "type") != "result"
                || field(l, "check") == "old"
                || !seen.insert(field(l, "seq"))
            {
                continue;
            }
            let t = field(l, "time");
            let ms = tether::os::clock::parse_rfc3339_millis(&t).unwrap() as i64;
            out.entry(field(l, "check")).or_default().insert(ms);
        }
    }
    out
}

/// `tether_check_up` per check in the store: sample times, and whether any
/// time is there twice.
pub fn stored_up(store: &Store) -> BTreeMap<String, Vec<i64>> {
    store
        .samples("tether_check_up")
        .into_iter()
        .map(|s| {
            (
                s.labels["check"].clone(),
                s.samples.iter().map(|p| p.0).collect(),
            )
        })
        .collect()
}

/// Removes every check by a reload: no more results, stale markers for
/// the old series.
pub fn remove_checks(a: &Agent) {
    let text = std::fs::read_to_string(&a.config).unwrap();
    let cut = text.find("[[check]]").unwrap();
    std::fs::write(&a.config, &text[..cut]).unwrap();
    a.signal("HUP");
    a.wait_log("reloaded", Duration::from_secs(10));
}

/// Waits until the store holds exactly the results the fake recorded,
/// per check, each once.
pub fn wait_exact(store: &Store, fake: &Fake, all: &mut Vec<Req>, limit: Duration) {
    wait_for("the store to hold every result exactly once", limit, || {
        collect(fake, all);
        let want = results(all);
        let got = stored_up(store);
        let same = want.len() == got.len()
            && want.iter().all(|(check, times)| {
                got.get(check).is_some_and(|g| {
                    g.len() == times.len() && g.iter().copied().collect::<BTreeSet<_>>() == *times
                })
            });
        same.then_some(())
    });
}

/// Until `end`: the agent's /health answers 200 every 200 ms (the outage
/// goes on meanwhile), and what the fake receives is kept.
pub fn keep_answering(a: &Agent, fake: &Fake, all: &mut Vec<Req>, end: std::time::Instant) {
    while std::time::Instant::now() < end {
        assert_eq!(a.get("/health").0, 200);
        collect(fake, all);
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn rw_field(a: &Agent, key: &str) -> String {
    let (code, s) = a.get("/status");
    assert_eq!(code, 200, "{s}");
    let rw = &s[s.find("\"remote_write\":{").expect("a remote_write object")..];
    field(rw, key)
}

/// Heartbeat times (Unix ms) in everything the fake acknowledged, each
/// record once.
pub fn heartbeats(reqs: &[Req]) -> BTreeSet<i64> {
    let mut seen = BTreeSet::new();
    reqs.iter()
        .filter(|r| r.acked())
        .flat_map(|r| r.lines.iter())
        .filter(|l| field(l, "type") == "heartbeat" && seen.insert(field(l, "seq")))
        .map(|l| tether::os::clock::parse_rfc3339_millis(&field(l, "time")).unwrap() as i64)
        .collect()
}

/// Waits until every series the agent pushed holds exactly one sample per
/// record it stands for, up to a few seconds ago: each `tether_check_*`
/// series one per result of its check, each heartbeat series
/// (`tether_agent_*`, `tether_upstream_*`) one per heartbeat. A time stored
/// twice, or one missing, fails.
pub fn wait_every_series_once(store: &Store, fake: &Fake, all: &mut Vec<Req>, limit: Duration) {
    let mut last = String::new();
    let done = super::wait_until(limit, || {
        collect(fake, all);
        let cutoff = tether::os::clock::unix_millis(std::time::SystemTime::now()) as i64 - 3000;
        let results = results(all);
        let beats = heartbeats(all);
        let series = store.samples("{__name__=~\"tether_.*\"}");
        let mut names = BTreeSet::new();
        for s in &series {
            let name = s.name.clone();
            if s.samples.is_empty() {
                // Only the stale markers of a series that does not apply
                // (a TCP check's certificate expiry): nothing to compare.
                continue;
            }
            let want: Vec<i64> = if name.starts_with("tether_check_") {
                let Some(check) = s.labels.get("check") else {
                    last = format!("{name} without a check label");
                    return false;
                };
                results
                    .get(check)
                    .map_or(Vec::new(), |t| t.iter().copied().collect())
            } else {
                beats.iter().copied().collect()
            };
            let want: Vec<i64> = want.into_iter().filter(|t| *t <= cutoff).collect();
            let got: Vec<i64> = s
                .samples
                .iter()
                .map(|p| p.0)
                .filter(|t| *t <= cutoff)
                .collect();
            if got != want {
                last = format!("{name} {:?}: stored {got:?}, made {want:?}", s.labels);
                return false;
            }
            names.insert(name);
        }
        for must in [
            "tether_check_up",
            "tether_check_status",
            "tether_check_duration_seconds",
            "tether_check_flapping",
            "tether_agent_info",
            "tether_agent_status",
            "tether_agent_severity",
            "tether_agent_heartbeat_interval_seconds",
        ] {
            if !names.contains(must) {
                last = format!("no {must} in the store");
                return false;
            }
        }
        true
    });
    assert!(
        done,
        "not every series exactly once within {limit:?}: {last}"
    );
}

/// Appends ok `tcp` results of these checks at these times (Unix ms) to a
/// stopped agent's spool, for both destinations, numbered past what it
/// holds: a backlog made behind the agent's back.
pub fn spool_results(spool_dir: &std::path::Path, results: &[(String, u64)]) {
    use tether::uplink::spool::{Dest, Spool};
    let (mut s, _) = Spool::open_for(
        spool_dir,
        64 << 20,
        tether::config::SyncPolicy::Batch,
        &[Dest::Upstream, Dest::RemoteWrite],
    )
    .unwrap();
    let first = s.max_seq() + 1000;
    let recs: Vec<tether::uplink::record::Rec> = results
        .iter()
        .zip(first..)
        .map(|((check, t), seq)| {
            let body = format!(
                "\"time\":\"{}\",\"type\":\"result\",\"check\":\"{check}\",\"kind\":\"tcp\",\"role\":\"resource\",\"status\":\"ok\",\"health\":\"ok\",\"flapping\":false,\"message\":\"\",\"duration_ms\":1.0}}",
                tether::os::clock::rfc3339_millis(*t)
            );
            tether::uplink::record::Rec {
                seq,
                time_ms: *t,
                body: body.into(),
                gap: None,
            }
        })
        .collect();
    assert_eq!(s.append(&recs).written, recs.len());
}
