//! The spool on the real disk under the system temp directory:
//! - append rate with `sync = "batch"`: 100 appends of 1,000 records, each
//!   append fdatasynced (the agent's flush);
//! - read + acknowledge rate of the whole backlog in 500-record batches
//!   (the disk side of a drain; `drain.rs` measures the agent's whole drain);
//! - recovery time of a full 64 MiB spool (`Spool::open`, every frame
//!   checked), warm page cache and, as root, after dropping it.

use std::path::Path;
use std::time::Instant;

use tether::config::SyncPolicy;
use tether::uplink::record::{Body, Rec};
use tether::uplink::spool::Spool;

pub struct Figures {
    pub append_per_s: f64,
    pub read_ack_per_s: f64,
    pub recover_warm_ms: f64,
    pub recover_cold_ms: Option<f64>,
    pub records: u64,
    pub bytes: u64,
}

/// A typical result record, ~230 bytes.
pub fn rec(seq: u64) -> Rec {
    let mut b = Body::new(1_795_290_810_000 + seq, "result");
    b.json()
        .str(Some("check"), "resource-db-primary")
        .str(Some("kind"), "tcp")
        .str(Some("role"), "resource")
        .str(Some("status"), "ok")
        .opt_str(Some("reason"), None)
        .str(Some("message"), "connected to 10.20.30.40:5432 in 0.4ms")
        .float(Some("duration_ms"), 0.412)
        .str(Some("peer"), "10.20.30.40:5432");
    b.finish(seq, None)
}

pub fn run(dir: &Path) -> Figures {
    let _ = std::fs::remove_dir_all(dir);
    let (mut s, _) = Spool::open(dir, 64 << 20, SyncPolicy::Batch).unwrap();
    let batches: Vec<Vec<Rec>> = (0..100u64)
        .map(|b| (b * 1000 + 1..=b * 1000 + 1000).map(rec).collect())
        .collect();
    let t = Instant::now();
    for b in &batches {
        assert!(s.append(b).error.is_none());
        // The sync the agent's helper makes, here on this thread.
        let took = s.sync_here().expect("written").expect("synced");
        s.synced(took);
    }
    let append_per_s = 100_000.0 / t.elapsed().as_secs_f64();
    // Fill to the bound for recovery.
    let mut seq = 100_001;
    while s.disk_bytes() + 300_000 < 64 << 20 {
        let b: Vec<Rec> = (seq..seq + 1000).map(rec).collect();
        seq += 1000;
        s.append(&b);
    }
    if let Some(r) = s.sync_here() {
        s.synced(r.expect("synced"));
    }
    let (records, bytes) = (s.backlog_records(), s.disk_bytes());
    drop(s);
    let t = Instant::now();
    let (s, r) = Spool::open(dir, 64 << 20, SyncPolicy::Batch).unwrap();
    let recover_warm_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r.records, records);
    drop(s);
    let recover_cold_ms = std::fs::write("/proc/sys/vm/drop_caches", "3")
        .is_ok()
        .then(|| {
            let t = Instant::now();
            let _ = Spool::open(dir, 64 << 20, SyncPolicy::Batch).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        });
    let (mut s, _) = Spool::open(dir, 64 << 20, SyncPolicy::Batch).unwrap();
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
    let read_ack_per_s = n as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(dir);
    Figures {
        append_per_s,
        read_ack_per_s,
        recover_warm_ms,
        recover_cold_ms,
        records,
        bytes,
    }
}
