//! Spool figures (issue 4's goals), on the real disk under the system temp
//! directory. `cargo bench --bench spool` prints:
//! - append rate with `sync = "batch"`: 100 appends of 1,000 records, each
//!   append fdatasynced (the agent's flush);
//! - read + acknowledge rate of the whole backlog in 500-record batches (the
//!   disk side of a drain; `benches/drain.rs` measures the whole drain by
//!   the real agent to a loopback receiver);
//! - recovery time of a full 64 MiB spool (`Spool::open`, every frame
//!   checked), warm page cache and after dropping it when run as root.
//!
//! Medians of 5 runs. A benchmark, not a test: it never fails.

use std::time::Instant;

mod common;

use common::{median, rec};
use tether::record::Rec;
use tether::spool::{Spool, SyncPolicy};

fn main() {
    let base = std::env::temp_dir().join(format!("tether-bench-spool-{}", std::process::id()));
    let (mut append, mut drain, mut warm, mut cold) = (vec![], vec![], vec![], vec![]);
    for run in 0..5 {
        let dir = base.join(format!("run{run}"));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut s, _) = Spool::open(&dir, 64 << 20, SyncPolicy::Batch).unwrap();
        let batches: Vec<Vec<Rec>> = (0..100u64)
            .map(|b| (b * 1000 + 1..=b * 1000 + 1000).map(rec).collect())
            .collect();
        let t = Instant::now();
        for b in &batches {
            assert!(s.append(b).error.is_none());
        }
        append.push(100_000.0 / t.elapsed().as_secs_f64());
        // Fill to the bound for recovery.
        let mut seq = 100_001;
        while s.disk_bytes() + 300_000 < 64 << 20 {
            let b: Vec<Rec> = (seq..seq + 1000).map(rec).collect();
            seq += 1000;
            s.append(&b);
        }
        let (records, bytes) = (s.backlog_records(), s.disk_bytes());
        drop(s);
        let t = Instant::now();
        let (s, r) = Spool::open(&dir, 64 << 20, SyncPolicy::Batch).unwrap();
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.records, records);
        drop(s);
        let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
        if dropped {
            let t = Instant::now();
            let _ = Spool::open(&dir, 64 << 20, SyncPolicy::Batch).unwrap();
            cold.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (mut s, _) = Spool::open(&dir, 64 << 20, SyncPolicy::Batch).unwrap();
        let t = Instant::now();
        let mut n = 0;
        loop {
            let b = s.read(500, 1 << 20).unwrap();
            if b.recs.is_empty() {
                break;
            }
            n += b.recs.len();
            s.ack(b.end);
        }
        drain.push(n as f64 / t.elapsed().as_secs_f64());
        if run == 0 {
            println!(
                "full spool: {records} records, {:.1} MiB",
                bytes as f64 / (1 << 20) as f64
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "append, sync=batch (1,000 records per fdatasync): {:.0} records/s (goal 100,000)",
        median(append)
    );
    println!(
        "read + acknowledge the backlog, 500 per batch:    {:.0} records/s",
        median(drain)
    );
    println!(
        "recover a full 64 MiB spool, page cache warm:     {:.1} ms (goal 200)",
        median(warm)
    );
    if cold.is_empty() {
        println!("recover, page cache dropped:                      (needs root)");
    } else {
        println!(
            "recover a full 64 MiB spool, page cache dropped:  {:.1} ms",
            median(cold)
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}
