//! The fleet rules (`packaging/prometheus/tether-rules.yml`) on what real
//! agents send: checked and unit-tested by promtool, evaluated by vmalert
//! on pushed series, and by Prometheus on a scraped agent and a pushing
//! one side by side: one rule file for both kinds of fleet.

mod common;

use std::time::Duration;

use common::store::{Kind, Store};
use common::upstream::{field, token_file, Fake};
use common::{wait_for, Agent};

fn rules_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/prometheus/tether-rules.yml")
}

#[test]
fn the_rules_file_passes_promtool_check_and_its_unit_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/prometheus");
    for args in [
        vec!["check", "rules", "tether-rules.yml"],
        vec!["test", "rules", "tether-rules.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn vmalert_evaluates_the_rules_on_what_the_agent_pushed() {
    use common::store::Vmalert;
    let vm = Store::start(Kind::Victoria);
    // The notifier: any POST is acknowledged.
    let notifier = Fake::start("127.0.0.1:0");
    let vmalert = Vmalert::start(&rules_file(), &vm, notifier.addr);
    // Heartbeats every 300 ms (the upstream's flush), pushed every 2 s:
    // the interval the agent reports is the longer one, so the heartbeat
    // is never taken for missing between two pushes. The control-plane
    // check is refused, so the agent is offline.
    let upstream = Fake::start("127.0.0.1:0");
    let closed = common::closed_port();
    let a = Agent::start(
        "rw-vmalert",
        &format!(
            r#"[agent]
name = "edge-9"
interval = "1s"
timeout = "500ms"
fall = 1

[upstream]
url = "http://{}/"
allow_plaintext = true
token_file = "{}"
flush_interval = "300ms"

[remote_write]
url = "{}"
allow_plaintext = true
flush_interval = "2s"
labels = {{ group = "eu-west" }}

[[check]]
name = "cp"
kind = "tcp"
target = "{closed}"
role = "control_plane"
"#,
            upstream.addr,
            token_file("t0ken-for-tests").display(),
            vm.write_url()
        ),
    );
    wait_for("the agent offline", Duration::from_secs(10), || {
        let (_, s) = a.get("/status");
        (field(&s, "status") == "offline").then_some(())
    });
    wait_for(
        "vmalert to raise TetherConnectorOffline",
        Duration::from_secs(30),
        || {
            vmalert
                .alerts()
                .iter()
                .any(|al| {
                    al["name"] == "TetherConnectorOffline"
                        && al["labels"]["agent"] == "edge-9"
                        && al["labels"]["group"] == "eu-west"
                })
                .then_some(())
        },
    );
    // Recording rules are evaluated and written back: the heartbeat is
    // fresh, the group is connected in no sense (its one member is offline).
    wait_for(
        "recording results in the store",
        Duration::from_secs(30),
        || {
            let fresh = vm.samples("tether:connector_heartbeat_fresh{agent=\"edge-9\"}");
            let connected = vm.samples("tether:group_connected{group=\"eu-west\"}");
            let ok = fresh
                .first()
                .and_then(|s| s.samples.last())
                .is_some_and(|p| p.1 == 1.0)
                && connected
                    .first()
                    .and_then(|s| s.samples.last())
                    .is_some_and(|p| p.1 == 0.0);
            ok.then_some(())
        },
    );
    let interval = vm.samples("tether_agent_heartbeat_interval_seconds{agent=\"edge-9\"}");
    assert_eq!(interval[0].samples.last().unwrap().1, 2.0, "{interval:?}");
    // Nothing fires or is pending that should not: the connector is not
    // degraded, flapping or silent.
    let names: Vec<String> = vmalert
        .alerts()
        .iter()
        .map(|al| al["name"].as_str().unwrap().to_string())
        .collect();
    for quiet in [
        "TetherConnectorDegraded",
        "TetherCheckFlapping",
        "TetherHeartbeatMissing",
    ] {
        assert!(!names.iter().any(|n| n == quiet), "{names:?}");
    }
}

/// An agent that is only scraped (its control plane refused: offline) and
/// one that pushes into the same Prometheus (healthy): the same rules give
/// both their statuses, heartbeats and groups.
#[test]
fn prometheus_evaluates_the_rules_on_a_scraped_and_a_pushing_agent() {
    let (listener, open) = common::open_port();
    std::mem::forget(listener);
    let closed = common::closed_port();
    let scraped = Agent::start(
        "rules-scraped",
        &format!(
            r#"[agent]
name = "edge-s"
interval = "1s"
timeout = "500ms"
fall = 1

[[check]]
name = "cp"
kind = "tcp"
target = "{closed}"
role = "control_plane"
"#
        ),
    );
    let prom = Store::prometheus(&format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: tether\n    static_configs:\n      - targets: ['{}']\n        labels:\n          group: scraped\n",
        rules_file().display(),
        scraped.addr
    ));
    let _pushing = Agent::start(
        "rules-pushing",
        &format!(
            r#"[agent]
name = "edge-p"
interval = "1s"
timeout = "500ms"

[remote_write]
url = "{}"
allow_plaintext = true
flush_interval = "500ms"
labels = {{ group = "pushed" }}

[[check]]
name = "db"
kind = "tcp"
target = "{open}"
"#,
            prom.write_url()
        ),
    );
    let value = |e: &str| prom.value(e);
    wait_for("the rules' view of both", Duration::from_secs(30), || {
        let ok = value("tether:connector_heartbeat_fresh{agent=\"edge-s\",group=\"scraped\"}")
            == Some(1.0)
            && value("tether:connector_heartbeat_fresh{agent=\"edge-p\",group=\"pushed\"}")
                == Some(1.0)
            && value("tether:group_connected{group=\"scraped\"}") == Some(0.0)
            && value("tether:group_connected{group=\"pushed\"}") == Some(1.0)
            && value("tether:group_members:count{group=\"scraped\"}") == Some(1.0)
            && value("tether:group_members_online:count{group=\"pushed\"}") == Some(1.0);
        ok.then_some(())
    });
    // The scraped agent's offline status is seen (pending: `for: 1m`), with
    // its agent and group; nothing else is.
    let alerts = wait_for(
        "TetherConnectorOffline for edge-s",
        Duration::from_secs(20),
        || {
            let a = prom.alerts();
            a.iter()
                .any(|al| {
                    al["labels"]["alertname"] == "TetherConnectorOffline"
                        && al["labels"]["agent"] == "edge-s"
                        && al["labels"]["group"] == "scraped"
                })
                .then_some(a)
        },
    );
    let names: Vec<(String, String)> = alerts
        .iter()
        .map(|al| {
            (
                al["labels"]["alertname"].as_str().unwrap().to_string(),
                al["labels"]["agent"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        names
            .iter()
            .all(|(n, a)| n == "TetherConnectorOffline" && a == "edge-s"
                || n == "TetherGroupDisconnected"),
        "{names:?}"
    );
    // The scraped agent goes away: its series go stale at the next failed
    // scrape, and its heartbeat is missing.
    drop(scraped);
    wait_for(
        "TetherHeartbeatMissing for edge-s",
        Duration::from_secs(20),
        || {
            prom.alerts()
                .iter()
                .any(|al| {
                    al["labels"]["alertname"] == "TetherHeartbeatMissing"
                        && al["labels"]["agent"] == "edge-s"
                })
                .then_some(())
        },
    );
    assert!(!prom
        .alerts()
        .iter()
        .any(|al| al["labels"]["agent"] == "edge-p"));
}
