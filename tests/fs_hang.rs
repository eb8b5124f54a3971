//! Filesystem calls that really hang: a `cert_file` check on a FIFO nobody
//! writes (open(2) blocks until a writer comes) among other checks. The
//! agent's `/health` keeps answering within 50 ms throughout, the check
//! ends in `fs_timeout` naming the call and the path at its deadline, its
//! helper is killed and replaced, and neither threads nor helpers nor
//! zombies accumulate; once the path is a plain file, the next run reads it.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_hung_open_costs_one_check_its_deadline_and_nothing_else() {
    let dir = temp_dir("fs-hang");
    let fifo = dir.join("client.pem");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let marker = dir.join("marker");
    std::fs::write(&marker, "snapshot\n").unwrap();
    let (_listener, tcp) = open_port();
    let mut agent = Agent::start_in(
        dir.clone(),
        &format!(
            "[[check]]\nname = \"stuck\"\nkind = \"cert_file\"\npath = \"{}\"\ninterval = \"2s\"\ntimeout = \"1s\"\n\n\
             [[check]]\nname = \"marker\"\nkind = \"file\"\npath = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n\
             [[check]]\nname = \"state\"\nkind = \"writable\"\npath = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\n\
             [[check]]\nname = \"tcp\"\nkind = \"tcp\"\ntarget = \"{tcp}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            fifo.display(),
            marker.display(),
            dir.display(),
        ),
    );
    // /health from another thread, all along: every answer within 50 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let addr = agent.addr;
    let prober = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (code, _) = http_get(addr, "/health");
                worst = worst.max(t.elapsed());
                assert_eq!(code, 200);
                n += 1;
                thread::sleep(Duration::from_millis(10));
            }
            (worst, n)
        })
    };
    let pid = agent.pid();
    let mut most_children = 0;
    let status = wait_for(
        "the FIFO check to time out three times",
        Duration::from_secs(20),
        || {
            let kids = children(pid);
            most_children = most_children.max(kids.len());
            let zombies = kids.iter().filter(|(_, s)| *s == 'Z').count();
            assert!(zombies <= 1, "zombies pile up: {kids:?}");
            assert!(agent.threads() <= 2, "threads: {}", agent.threads());
            let (_, metrics) = agent.get("/metrics");
            let killed = metric(&metrics, "tether_fs_helpers_killed_total")?;
            let (_, s) = agent.get("/status");
            (killed >= 3.0).then_some(s)
        },
    );
    assert_eq!(
        check_field(&status, "stuck", "reason").as_deref(),
        Some("fs_timeout"),
        "{status}"
    );
    let message = check_field(&status, "stuck", "message").unwrap();
    assert!(
        message.contains(&format!("open {}", fifo.display())) && message.contains("within 1s"),
        "{message}"
    );
    // The other filesystem checks went on, in other helpers.
    for name in ["marker", "state", "tcp"] {
        assert_eq!(
            check_field(&status, name, "status").as_deref(),
            Some("ok"),
            "{name}: {status}"
        );
    }
    // Bounded: the stuck one, the two idle ones kept, one being replaced.
    assert!(most_children <= 4, "{most_children} helpers at once");
    assert!(status.contains("\"fs_helpers\":{\"running\":"), "{status}");

    // The path becomes a plain file: the next run reads it with a fresh
    // helper (not a certificate, so file_error, but no longer a timeout).
    let plain = dir.join("plain");
    std::fs::write(&plain, "not a certificate\n").unwrap();
    std::fs::rename(&plain, &fifo).unwrap();
    wait_for(
        "the check to read the file",
        Duration::from_secs(10),
        || {
            let (_, s) = agent.get("/status");
            (check_field(&s, "stuck", "reason").as_deref() == Some("file_error")).then_some(())
        },
    );
    let (_, metrics) = agent.get("/metrics");
    assert_eq!(
        metric(&metrics, "tether_fs_helpers{state=\"stuck\"}"),
        Some(0.0),
        "killed helpers were reaped"
    );
    let running = metric(&metrics, "tether_fs_helpers{state=\"running\"}").unwrap();
    assert!((1.0..=2.0).contains(&running), "{running} idle helpers");
    assert!(
        children(pid).iter().all(|(_, s)| *s != 'Z'),
        "{:?}",
        children(pid)
    );
    stop.store(true, Ordering::Relaxed);
    let (worst, n) = prober.join().unwrap();
    assert!(n >= 100, "only {n} health requests");
    assert!(
        worst < Duration::from_millis(50),
        "/health took {worst:?} at worst"
    );
    let helpers = children(pid);
    assert!(!helpers.is_empty());
    assert!(agent.stop("TERM").success());
    // The helpers end with the agent (gone, or dead and awaiting init).
    wait_for("the helpers to exit", Duration::from_secs(5), || {
        helpers
            .iter()
            .all(|(h, _)| {
                std::fs::read_to_string(format!("/proc/{h}/stat"))
                    .map_or(true, |s| s.contains(") Z"))
            })
            .then_some(())
    });
}

/// An upgrade replaces the binary under a running agent: its helpers are
/// started from `/proc/self/exe`, the image it runs, so a helper that dies
/// is replaced by one of the same version even with the file gone.
#[test]
fn helpers_restart_from_the_running_image_after_the_binary_is_replaced() {
    let dir = temp_dir("fs-upgrade");
    let copy = dir.join("tether-old");
    std::fs::copy(env!("CARGO_BIN_EXE_tether"), &copy).unwrap();
    let marker = dir.join("marker");
    std::fs::write(&marker, "x").unwrap();
    let copy_for_start = copy.clone();
    let agent = Agent::start_with(
        dir.clone(),
        &format!(
            "[[check]]\nname = \"marker\"\nkind = \"file\"\npath = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            marker.display()
        ),
        move |config| {
            let mut cmd = Command::new(&copy_for_start);
            cmd.args(["run", "-c"]).arg(config);
            cmd
        },
    );
    let pid = agent.pid();
    let first = wait_for("a helper", Duration::from_secs(10), || {
        children(pid).first().map(|c| c.0)
    });
    std::fs::remove_file(&copy).unwrap();
    assert!(Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap()
        .success());
    wait_for(
        "a new helper and an ok run",
        Duration::from_secs(10),
        || {
            let (_, metrics) = agent.get("/metrics");
            let started = metric(&metrics, "tether_fs_helpers_started_total")?;
            let runs_ok = children(pid).iter().any(|(c, _)| *c != first);
            (started >= 2.0 && runs_ok).then_some(())
        },
    );
    let before = check_field(&agent.get("/status").1, "marker", "runs").unwrap();
    wait_for("more runs", Duration::from_secs(10), || {
        let (_, s) = agent.get("/status");
        (check_field(&s, "marker", "runs")? != before
            && check_field(&s, "marker", "status").as_deref() == Some("ok"))
        .then_some(())
    });
}
