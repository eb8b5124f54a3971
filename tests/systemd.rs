//! systemd's notify protocol, against a Unix datagram socket standing in for
//! `$NOTIFY_SOCKET`: the messages, their order, the watchdog period, and
//! both socket kinds (a path and an abstract `@name`).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{silent_server, temp_dir, wait_for, Agent};

/// Receives every datagram on `sock` with its arrival time.
fn listen(sock: UnixDatagram) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if tx.send((Instant::now(), msg)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects messages until one satisfies `stop` (bounded); returns them all.
fn until(
    rx: &mpsc::Receiver<(Instant, String)>,
    what: &str,
    limit: Duration,
    stop: impl Fn(&str) -> bool,
) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    wait_for(what, limit, || {
        while let Ok(m) = rx.recv_timeout(Duration::from_millis(20)) {
            let done = stop(&m.1);
            got.push(m);
            if done {
                return Some(());
            }
        }
        None
    });
    got
}

fn texts(msgs: &[(Instant, String)]) -> Vec<&str> {
    msgs.iter().map(|m| m.1.as_str()).collect()
}

/// One check whose first run takes its whole timeout (a banner that never
/// comes), so that readiness comes visibly later than the start.
fn slow_config() -> String {
    format!(
        "[agent]\ninterval = \"2s\"\n\n[[check]]\nname = \"slow\"\nkind = \"tcp\"\n\
         target = \"{}\"\nexpect = \"SSH-\"\ninterval = \"2s\"\ntimeout = \"1500ms\"\n",
        silent_server()
    )
}

/// The agent under `sh`, so that `$WATCHDOG_PID` can be the agent's own
/// pid: `exec` keeps the shell's.
fn under_systemd(socket: &str, watchdog_usec: u64) -> impl FnOnce(&Path) -> Command {
    let socket = socket.to_string();
    move |config| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" run -c \"$1\"")
            .arg(env!("CARGO_BIN_EXE_tether"))
            .arg(config)
            .env("NOTIFY_SOCKET", socket)
            .env("WATCHDOG_USEC", watchdog_usec.to_string());
        cmd
    }
}

fn monotonic_usec() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000 + t.tv_nsec as u64 / 1_000
}

#[test]
fn ready_status_watchdog_reload_and_stopping_in_order_on_a_path_socket() {
    let dir = temp_dir("notify");
    let path = dir.join("notify.sock");
    let rx = listen(UnixDatagram::bind(&path).unwrap());
    let mut agent = Agent::start_with(
        dir,
        &slow_config(),
        under_systemd(path.to_str().unwrap(), 600_000),
    );

    // Not ready while the slow check's first run is in flight, and systemd
    // has not been told otherwise.
    assert_eq!(agent.get("/ready").0, 503);
    let before = until(&rx, "a first STATUS", Duration::from_secs(5), |m| {
        m.starts_with("STATUS=")
    });
    assert!(!texts(&before).contains(&"READY=1"), "{before:?}");
    assert!(
        texts(&before).contains(&"STATUS=online · 1 check (1 pending) · backlog 0"),
        "{before:?}"
    );

    // READY=1 comes when /ready would answer 200, and the last STATUS before
    // it is already the ready one (the slow check failed: degraded).
    let ready = until(&rx, "READY=1", Duration::from_secs(10), |m| m == "READY=1");
    assert_eq!(agent.get("/ready").0, 200);
    let status = ready
        .iter()
        .rev()
        .find(|m| m.1.starts_with("STATUS="))
        .map(|m| m.1.as_str());
    assert_eq!(
        status,
        Some("STATUS=degraded · 1 check · backlog 0"),
        "{ready:?}"
    );

    // The watchdog: WATCHDOG_PID is this agent, so pings come at half of
    // WATCHDOG_USEC (300 ms), never further apart than the timeout.
    let pings: Vec<Instant> = until(&rx, "8 watchdog pings", Duration::from_secs(10), {
        let n = std::cell::Cell::new(0);
        move |m| {
            if m == "WATCHDOG=1" {
                n.set(n.get() + 1);
            }
            n.get() == 8
        }
    })
    .into_iter()
    .chain(ready)
    .filter(|m| m.1 == "WATCHDOG=1")
    .map(|m| m.0)
    .collect();
    let mut pings = pings;
    pings.sort();
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 7, "{gaps:?}");
    for g in &gaps {
        assert!(
            *g < Duration::from_millis(600),
            "a ping came late: {gaps:?}"
        );
        assert!(
            *g > Duration::from_millis(200),
            "pinged too often: {gaps:?}"
        );
    }

    // SIGHUP: RELOADING=1 with a current MONOTONIC_USEC in one message, then
    // READY=1 again.
    let sent = monotonic_usec();
    agent.signal("HUP");
    let reload = until(
        &rx,
        "READY=1 after the reload",
        Duration::from_secs(10),
        |m| m == "READY=1",
    );
    let reloading = reload
        .iter()
        .position(|m| m.1.starts_with("RELOADING=1\n"))
        .unwrap_or_else(|| panic!("no RELOADING=1: {:?}", texts(&reload)));
    let usec: u64 = reload[reloading]
        .1
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        usec >= sent && usec < monotonic_usec(),
        "{usec} not within the reload"
    );
    assert_eq!(reload.last().unwrap().1, "READY=1");

    // SIGTERM: STOPPING=1, and no READY after it.
    agent.signal("TERM");
    let stop = until(&rx, "STOPPING=1", Duration::from_secs(10), |m| {
        m == "STOPPING=1"
    });
    assert!(!texts(&stop).contains(&"READY=1"), "{stop:?}");
    assert!(agent.stop("TERM").success());
}

#[test]
fn an_abstract_socket_works_and_a_foreign_watchdog_pid_is_not_pinged() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("tether-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let rx = listen(UnixDatagram::bind_addr(&addr).unwrap());
    let config = "[agent]\ninterval = \"1s\"\n";
    let socket = format!("@{name}");
    let agent = Agent::start_with(temp_dir("abstract"), config, |config| {
        let mut cmd = common::tether_command();
        cmd.args(["run", "-c"])
            .arg(config)
            .env("NOTIFY_SOCKET", &socket)
            .env("WATCHDOG_USEC", "200000")
            // The watchdog is meant for another process (pid 1).
            .env("WATCHDOG_PID", "1");
        cmd
    });
    // No checks: ready at once.
    let got = until(&rx, "READY=1", Duration::from_secs(5), |m| m == "READY=1");
    assert_eq!(agent.get("/ready").0, 200);
    // Five watchdog periods (100 ms each) and more: no ping.
    let end = Instant::now() + Duration::from_millis(800);
    let mut later = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if let Ok(m) = rx.recv_timeout(left) {
            later.push(m);
        }
    }
    let all: Vec<&str> = texts(&got).into_iter().chain(texts(&later)).collect();
    assert!(!all.contains(&"WATCHDOG=1"), "{all:?}");
}

#[test]
fn a_full_notify_socket_never_blocks_the_loop() {
    let dir = temp_dir("notify-full");
    let path = dir.join("notify.sock");
    // Bound and never read: its queue fills after a few hundred pings.
    let _sock = UnixDatagram::bind(&path).unwrap();
    let agent = Agent::start_with(dir, "[agent]\ninterval = \"1s\"\n", |config| {
        let mut cmd = common::tether_command();
        cmd.args(["run", "-c"])
            .arg(config)
            .env("NOTIFY_SOCKET", &path)
            // A ping every millisecond.
            .env("WATCHDOG_USEC", "2000");
        cmd
    });
    agent.wait_log("cannot notify systemd", Duration::from_secs(20));
    // The loop still turns and the endpoint (same thread) still answers.
    for _ in 0..3 {
        assert_eq!(agent.get("/health").0, 200);
    }
}
