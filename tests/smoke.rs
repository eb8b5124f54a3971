//! The smoke run every build of tether passes: natively here, and in CI
//! for each ARM target under qemu-user, where `TETHER_TEST_BIN` names the
//! binary, `TETHER_TEST_RUNNER` its runner (`qemu-aarch64-static`) and
//! `TETHER_TEST_TARGET` the triple its `--version` must name
//! (docs/operations.md, "Every target"), and `TETHER_TEST_DEB` with
//! `TETHER_TEST_DEB_ARCH` its Debian package: the package's architecture
//! and contents, the version line, the reference configuration, TCP and HTTP checks until `/ready`, `/metrics` through
//! promtool, a spool written during an upstream outage and recovered after
//! SIGKILL, and SIGTERM ending in exit 0.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::upstream::{delivered_and_gaps, section, upstream_field, Fake, Req};
use common::*;

#[test]
fn the_version_line_and_the_reference_configuration() {
    let v = tether_command().arg("--version").output().unwrap();
    let line = String::from_utf8_lossy(&v.stdout).to_string();
    assert!(v.status.success(), "{line}");
    assert!(
        line.starts_with(&format!("tether {} (", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    if let Ok(t) = std::env::var("TETHER_TEST_TARGET") {
        assert!(line.contains(&format!("({t}, commit ")), "{line}");
    }
    if let Some(bin) = std::env::var_os("TETHER_TEST_BIN") {
        let size = std::fs::metadata(&bin).unwrap().len();
        assert!(size <= 1_835_008, "{size} bytes is over the 1.75 MiB goal");
    }
    // The Debian package built for this target (`TETHER_TEST_DEB`, its
    // architecture `TETHER_TEST_DEB_ARCH`) carries this very binary.
    if let (Some(deb), Ok(arch)) = (
        std::env::var_os("TETHER_TEST_DEB"),
        std::env::var("TETHER_TEST_DEB_ARCH"),
    ) {
        let info = std::process::Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains(&format!("Architecture: {arch}\n")), "{info}");
        let dir = temp_dir("smoke-deb");
        let x = std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&dir)
            .status()
            .unwrap();
        assert!(x.success());
        for f in [
            "usr/share/man/man1/tether.1.gz",
            "usr/share/bash-completion/completions/tether",
            "etc/tether/tether.toml",
        ] {
            assert!(dir.join(f).exists(), "{f} missing from the package");
        }
        let packaged = std::fs::read(dir.join("usr/bin/tether")).unwrap();
        let bin =
            std::env::var_os("TETHER_TEST_BIN").expect("TETHER_TEST_BIN with TETHER_TEST_DEB");
        assert!(
            packaged == std::fs::read(bin).unwrap(),
            "the package's usr/bin/tether is not the binary under test"
        );
    }
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/tether.toml");
    let o = tether_command()
        .args(["validate", "-c"])
        .arg(&reference)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn config(
    upstream: std::net::SocketAddr,
    tcp: std::net::SocketAddr,
    http: std::net::SocketAddr,
) -> String {
    let upstream = section(&format!("http://{upstream}/"), "smoke-token");
    format!(
        r#"[agent]
interval = "1s"
timeout = "900ms"

{upstream}
[[check]]
name = "port"
kind = "tcp"
target = "{tcp}"

[[check]]
name = "web"
kind = "http"
url = "http://{http}/health"
"#
    )
}

#[test]
fn probes_metrics_an_outage_a_kill_and_a_clean_stop() {
    let (_listener, tcp) = open_port();
    let (http, _) = http_server(vec![("/health", reply(200, "ok\n"))]);
    let upstream = closed_port();
    let body = config(upstream, tcp, http);
    let agent = Agent::start("smoke", &body);
    wait_for("/ready", Duration::from_secs(30), || {
        (agent.get("/ready").0 == 200).then_some(())
    });
    let (_, status) = agent.get("/status");
    for check in ["port", "web"] {
        assert_eq!(
            check_field(&status, check, "status").as_deref(),
            Some("ok"),
            "{status}"
        );
    }
    let (code, metrics) = agent.get("/metrics");
    assert_eq!(code, 200);
    let metrics = dechunk(&metrics).unwrap_or(metrics);
    assert!(metrics.contains("tether_check_up{"), "{metrics}");
    promtool_check_metrics(&metrics);

    // The upstream is down: records go to the spool, synced.
    let spooled = wait_for("records on disk", Duration::from_secs(30), || {
        let n: u64 = upstream_field(&agent, "spool_records").parse().ok()?;
        (n > 3).then_some(n)
    });
    let dir = agent.into_dir(); // SIGKILL

    // Started again with the upstream up: what was spooled arrives.
    let fake = Fake::start(&upstream.to_string());
    let mut agent = Agent::start_in(dir, &body);
    let mut reqs: Vec<Req> = Vec::new();
    wait_for("the spool delivered", Duration::from_secs(60), || {
        if let Ok(r) = fake.requests.recv_timeout(Duration::from_millis(200)) {
            reqs.push(r);
        }
        let (seqs, _) = delivered_and_gaps(&reqs);
        (1..=spooled).all(|s| seqs.contains(&s)).then_some(())
    });
    // Every number up to the highest one delivered arrived or is named by
    // a gap (records only in memory at the kill).
    let (seqs, gaps) = delivered_and_gaps(&reqs);
    let max = *seqs.last().unwrap();
    let missing: BTreeSet<u64> = (1..=max)
        .filter(|s| !seqs.contains(s) && !gaps.iter().any(|g| g.contains(*s)))
        .collect();
    assert!(
        missing.is_empty(),
        "neither delivered nor named: {missing:?}"
    );
    assert!(agent.stop("TERM").success(), "SIGTERM ends in exit 0");
}
