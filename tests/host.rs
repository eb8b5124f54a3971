//! Checks of the connector host itself: `file` (age, size), `writable`, and
//! `system` (CPU over a window from a fake /proc, memory, disk), plus the
//! agent's `overloaded` flag.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use tether::config::ProbeSpec;
use tether::outcome::{Outcome, Reason, Status};

fn resolver() -> tether::net::resolve::Resolver {
    hosts_resolver("")
}

fn one(body: &str) -> Outcome {
    run(&check(body), &resolver())
}

fn aged(path: &Path, age: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[test]
fn file_age_and_size_against_thresholds() {
    let dir = temp_dir("file");
    let marker = dir.join("last-snapshot");
    std::fs::write(&marker, b"snapshot 42\n").unwrap();
    let body = |extra: &str| {
        format!(
            "kind = \"file\"\npath = \"{}\"\nwarn_age = \"24h\"\ncrit_age = \"48h\"\n{extra}",
            marker.display()
        )
    };
    let o = one(&body(""));
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(o.detail.file.as_ref().unwrap().size, 12);
    aged(&marker, Duration::from_secs(25 * 3600));
    let o = one(&body(""));
    assert_eq!(
        (o.status, o.reason),
        (Status::Warn, Some(Reason::FileStale)),
        "{o:?}"
    );
    assert!(o.message.contains("older than 1d"), "{}", o.message);
    assert!(o.message.contains("(1d1h"), "{}", o.message);
    aged(&marker, Duration::from_secs(49 * 3600));
    assert_reason(&one(&body("")), Reason::FileStale);
    aged(&marker, Duration::from_secs(60));
    assert_reason(&one(&body("min_size = 1024")), Reason::FileTooSmall);
    assert_reason(
        &one(&format!(
            "kind = \"file\"\npath = \"{}\"",
            dir.join("nope").display()
        )),
        Reason::FileMissing,
    );
}

#[test]
fn writable_directory_leaves_nothing_behind() {
    let dir = temp_dir("writable");
    let o = one(&format!(
        "kind = \"writable\"\npath = \"{}\"",
        dir.display()
    ));
    assert_eq!(o.status, Status::Ok, "{o:?}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "probe file removed"
    );
    // /proc refuses new files even to root.
    assert_reason(
        &one("kind = \"writable\"\npath = \"/proc\""),
        Reason::NotWritable,
    );
    let file = dir.join("f");
    std::fs::write(&file, "x").unwrap();
    let o = one(&format!(
        "kind = \"writable\"\npath = \"{}\"",
        file.display()
    ));
    assert_reason(&o, Reason::NotWritable);
    assert!(o.message.contains("not a directory"), "{}", o.message);
    assert_reason(
        &one(&format!(
            "kind = \"writable\"\npath = \"{}\"",
            dir.join("gone").display()
        )),
        Reason::FileMissing,
    );
}

fn fake_proc(dir: &Path, busy: u64, idle: u64, avail_kb: u64) {
    std::fs::write(
        dir.join("stat"),
        format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 1 1 1\nintr 0\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("meminfo"),
        format!("MemTotal:       1000000 kB\nMemFree:  1 kB\nMemAvailable:   {avail_kb} kB\n"),
    )
    .unwrap();
}

fn system_spec(extra: &str) -> tether::config::SystemSpec {
    match check(&format!("kind = \"system\"\n{extra}")).probe {
        ProbeSpec::System(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn system_cpu_over_the_window_memory_and_disk() {
    use tether::probe::system::probe_at;
    let proc = temp_dir("fake-proc");
    let spec = system_spec("window = \"5m\"");
    let t0 = Instant::now();
    // First run: the average since boot (10%).
    fake_proc(&proc, 100, 900, 500_000);
    let r = probe_at(&spec, &proc, t0, Ok((100, 90)));
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(
        r.message.contains("cpu 10.0% busy since boot"),
        "{}",
        r.message
    );
    // One minute later, 80 of the last 100 ticks busy: overloaded.
    fake_proc(&proc, 180, 920, 500_000);
    let r = probe_at(&spec, &proc, t0 + Duration::from_secs(60), Ok((100, 90)));
    assert_eq!(
        (r.status, r.reason),
        (Status::Warn, Some(Reason::CpuOverloaded)),
        "{r:?}"
    );
    assert!(
        r.message
            .contains("WARN cpu 80.0% busy over 1m (warn at 70%)"),
        "{}",
        r.message
    );
    let d = r.detail.system.as_ref().unwrap();
    assert!(d.overloaded && d.cpu_window_seconds == Some(60.0), "{d:?}");
    // Memory at 4% available is critical and comes first in severity.
    fake_proc(&proc, 190, 1010, 40_000);
    let r = probe_at(&spec, &proc, t0 + Duration::from_secs(120), Ok((100, 90)));
    assert_eq!(
        (r.status, r.reason),
        (Status::Crit, Some(Reason::MemoryLow)),
        "{r:?}"
    );
    // Each part names the threshold it crossed: critical, not warn.
    assert!(
        r.message.contains("CRIT memory 4% available") && r.message.contains("(critical below 5%)"),
        "{}",
        r.message
    );
    let r = probe_at(&spec, &proc, t0 + Duration::from_secs(120), Ok((100, 3)));
    assert!(
        r.message
            .contains("CRIT / 3% free (3 B of 100 B) (critical below 5%)"),
        "{}",
        r.message
    );
    // Disk: any filesystem has less than 100% free.
    let disk = system_spec("disk_warn_percent = 100\ndisk_crit_percent = 0");
    let other = temp_dir("fake-proc-2");
    fake_proc(&other, 1, 99, 900_000);
    let r = probe_at(&disk, &other, t0, Ok((100, 50)));
    assert_eq!(
        (r.status, r.reason),
        (Status::Warn, Some(Reason::DiskLow)),
        "{r:?}"
    );
    // A disk that cannot be measured is unknown, with the reason.
    let r = probe_at(&spec, &other, t0, Err("statvfs /x: gone".into()));
    assert_eq!(
        (r.status, r.message.as_str()),
        (Status::Unknown, "statvfs /x: gone")
    );
    // A /proc without the files is unknown, not a panic.
    let empty = temp_dir("empty-proc");
    assert_eq!(
        probe_at(&spec, &empty, t0, Ok((100, 90))).status,
        Status::Unknown
    );
}

/// The machine's own memory and disk must not decide this test (a CI runner
/// with a nearly full disk answered `disk_low`): only the CPU threshold can
/// trip.
#[test]
fn overloaded_flag_rides_beside_the_status() {
    let dir = temp_dir("overloaded");
    let cfg = dir.join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nstate_dir = \"{}\"\n\n[[check]]\nname = \"host\"\nkind = \"system\"\nwarn_percent = 0\n\
             memory_warn_percent = 0\nmemory_crit_percent = 0\ndisk_warn_percent = 0\ndisk_crit_percent = 0\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = common::tether_command()
        .args(["check", "--json", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert!(json.contains("\"overloaded\":true"), "{json}");
    assert_eq!(
        check_field(&json, "host", "reason").as_deref(),
        Some("cpu_overloaded")
    );
}
