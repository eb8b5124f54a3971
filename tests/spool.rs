//! The disk spool against real files: round trips, every kind of damage the
//! module header promises to survive, a full disk (a 64 KiB tmpfs), and a
//! model-based test of random appends, reads, acknowledgements, restarts and
//! crashes compared step by step with a plain in-memory model.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use tether::config::SyncPolicy;
use tether::uplink::record::{Body, Gap, GapReason, Rec};
use tether::uplink::spool::Spool;

fn rec(seq: u64) -> Rec {
    let mut b = Body::new(1_795_290_810_000 + seq, "result");
    b.json().str(Some("check"), &format!("c{seq}"));
    b.finish(seq, None)
}

fn open(dir: &Path, max: u64) -> (Spool, tether::uplink::spool::Recovered) {
    Spool::open(dir, max, SyncPolicy::Batch).expect("open spool")
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// The sequence number a segment file is named after.
fn first_seq(seg: &Path) -> u64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// Appends and syncs, as the outbox does before it counts records as
/// spooled (a sync that fails here fails the test).
fn put(s: &mut Spool, recs: &[Rec]) -> tether::uplink::spool::Appended {
    let a = s.append(recs);
    if let Some(r) = s.sync_here() {
        s.synced(r.expect("synced"));
    }
    a
}

/// Reads and acknowledges everything; the sequence numbers in order.
fn drain(s: &mut Spool) -> (Vec<u64>, Vec<Gap>) {
    let (mut seqs, mut gaps) = (Vec::new(), Vec::new());
    loop {
        let b = s.read(7, 1 << 20).unwrap();
        gaps.extend(b.gaps.iter().copied());
        if b.recs.is_empty() && b.gaps.is_empty() {
            break;
        }
        seqs.extend(b.recs.iter().map(|r| r.seq));
        s.ack(b.end);
    }
    (seqs, gaps)
}

#[test]
fn records_round_trip_across_segments_and_restarts() {
    let dir = common::temp_dir("spool-rt");
    let (mut s, r) = open(&dir, 64 << 10);
    assert_eq!((r.records, r.segments), (0, 0));
    let recs: Vec<Rec> = (1..=300).map(rec).collect();
    let a = put(&mut s, &recs);
    assert!(a.error.is_none() && a.gaps.is_empty(), "{a:?}");
    assert_eq!(a.written, 300);
    assert!(segments(&dir).len() > 2, "4 KiB segments: several files");
    assert_eq!(s.backlog_records(), 300);
    assert_eq!(s.oldest_ms(), Some(1_795_290_810_001));
    // Acknowledge the first 100, then restart: the backlog resumes at 101.
    let b = s.read(100, 1 << 20).unwrap();
    assert_eq!(b.recs.first().unwrap().seq, 1);
    assert_eq!(b.recs.last().unwrap().seq, 100);
    assert_eq!(b.recs[4], recs[4], "the body comes back byte for byte");
    s.ack(b.end);
    assert_eq!(s.backlog_records(), 200);
    assert_eq!(s.oldest_ms(), Some(1_795_290_810_101));
    drop(s);
    let (mut s, r) = open(&dir, 64 << 10);
    assert_eq!(r.records, 200);
    assert!(r.gaps.is_empty());
    assert_eq!(r.max_seq, 300);
    let (seqs, gaps) = drain(&mut s);
    assert_eq!(seqs, (101..=300).collect::<Vec<_>>());
    assert!(gaps.is_empty());
    assert!(
        segments(&dir).is_empty(),
        "every segment acknowledged: deleted"
    );
    // A new record after a full drain starts a new segment.
    put(&mut s, &[rec(301)]);
    assert_eq!(drain(&mut s).0, [301]);
}

#[test]
fn a_full_spool_drops_its_oldest_segment_with_a_gap() {
    let dir = common::temp_dir("spool-full");
    let max = 64 << 10;
    let (mut s, _) = open(&dir, max);
    let mut gaps = Vec::new();
    for seq in 1..=2000 {
        let a = put(&mut s, &[rec(seq)]);
        assert!(a.error.is_none());
        gaps.extend(a.gaps);
        assert!(s.disk_bytes() <= max, "{} > {max}", s.disk_bytes());
    }
    let on_disk: u64 = segments(&dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, s.disk_bytes());
    assert!(!gaps.is_empty());
    assert!(gaps.iter().all(|g| g.reason == GapReason::SpoolFull));
    // The gaps and the backlog together account for every record, once.
    let (seqs, more) = drain(&mut s);
    assert!(more.is_empty());
    let mut seen = BTreeSet::new();
    for g in &gaps {
        assert_eq!(g.count, g.last - g.first + 1);
        seen.extend(g.first..=g.last);
    }
    assert_eq!(seqs.first().copied(), Some(seen.last().unwrap() + 1));
    seen.extend(seqs.iter().copied());
    assert_eq!(seen.len(), 2000);
    assert_eq!(*seen.last().unwrap(), 2000);
}

/// Writes records 1..=n in one segment and returns its path.
fn one_segment(dir: &Path, n: u64) -> PathBuf {
    let (mut s, _) = open(dir, 64 << 20);
    let recs: Vec<Rec> = (1..=n).map(rec).collect();
    assert_eq!(put(&mut s, &recs).written, n as usize);
    let segs = segments(dir);
    assert_eq!(segs.len(), 1);
    segs[0].clone()
}

/// Byte offset of record `seq` (1-based) in a segment.
fn offset_of(path: &Path, seq: u64) -> usize {
    let bytes = fs::read(path).unwrap();
    let mut at = 16;
    for _ in 1..seq {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    at
}

fn damage(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes);
    fs::write(path, bytes).unwrap();
}

/// A record whose body is about `size` bytes.
fn big_rec(seq: u64, size: usize) -> Rec {
    let mut b = Body::new(1_795_290_810_000 + seq, "result");
    b.json().str(Some("check"), &"x".repeat(size));
    b.finish(seq, None)
}

#[test]
fn records_larger_than_a_read_window_and_damage_across_one_read_back() {
    // The spool is read in 64 KiB windows: records of every size around
    // that, and one near the 1 MiB limit, come back whole and in order.
    let dir = common::temp_dir("spool-windows");
    let (mut s, _) = open(&dir, 64 << 20);
    let sizes = [
        10, 60_000, 70_000, 10, 200_000, 10, 1_000_000, 5, 65_500, 10,
    ];
    let mut recs: Vec<Rec> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| big_rec(i as u64 + 1, *n))
        .collect();
    recs.extend((11..=400).map(rec));
    assert_eq!(put(&mut s, &recs).written, recs.len());
    assert_eq!(segments(&dir).len(), 1);
    let mut got = Vec::new();
    loop {
        let b = s.read(7, 1 << 20).unwrap();
        assert!(b.gaps.is_empty());
        if b.recs.is_empty() {
            break;
        }
        got.extend(b.recs);
        s.ack(b.end);
    }
    assert_eq!(got, recs);
    // Damage read after recovery (the disk changed under the agent), in a
    // record that straddles the first window's end: exactly it is lost.
    let dir = common::temp_dir("spool-windows-damage");
    let (mut s, _) = open(&dir, 64 << 20);
    assert_eq!(put(&mut s, &recs).written, recs.len());
    let seg = segments(&dir)[0].clone();
    let at = offset_of(&seg, 3);
    assert!(at < 64 * 1024 && at + 70_000 > 64 * 1024);
    damage(&seg, |b| b[at + 20] ^= 0x01);
    let (seqs, gaps) = drain(&mut s);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].first, gaps[0].last), (3, 3));
    let want: Vec<u64> = (1..=400).filter(|q| *q != 3).collect();
    assert_eq!(seqs, want);
}

#[test]
fn a_flipped_checksum_bit_skips_exactly_that_record() {
    let dir = common::temp_dir("spool-crc");
    let seg = one_segment(&dir, 10);
    let at = offset_of(&seg, 4);
    damage(&seg, |b| b[at + 4] ^= 0x10);
    let (mut s, r) = open(&dir, 64 << 20);
    assert_eq!(r.records, 9);
    assert_eq!(r.gaps.len(), 1);
    let g = r.gaps[0];
    assert_eq!((g.first, g.last, g.count), (4, 4, 1));
    assert_eq!(g.reason, GapReason::SpoolCorrupt);
    let (seqs, _) = drain(&mut s);
    assert_eq!(seqs, [1, 2, 3, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn a_zeroed_length_is_skipped_and_reported() {
    let dir = common::temp_dir("spool-zero");
    let seg = one_segment(&dir, 10);
    let at = offset_of(&seg, 6);
    damage(&seg, |b| b[at..at + 4].fill(0));
    let (mut s, r) = open(&dir, 64 << 20);
    assert_eq!(r.gaps.len(), 1);
    assert_eq!((r.gaps[0].first, r.gaps[0].last), (6, 6));
    assert_eq!(drain(&mut s).0, [1, 2, 3, 4, 5, 7, 8, 9, 10]);
}

#[test]
fn a_record_cut_in_half_is_truncated_and_appends_continue() {
    let dir = common::temp_dir("spool-torn");
    let seg = one_segment(&dir, 10);
    let at = offset_of(&seg, 10);
    let len = fs::metadata(&seg).unwrap().len() as usize;
    damage(&seg, |b| b.truncate(at + (len - at) / 2));
    let (mut s, r) = open(&dir, 64 << 20);
    assert_eq!(r.records, 9);
    assert_eq!(r.truncated as usize, (len - at) / 2);
    // The torn record's header was whole: it is reported by number.
    assert_eq!(r.gaps.len(), 1);
    assert_eq!((r.gaps[0].first, r.gaps[0].last), (10, 10));
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, at);
    // New records go after the cut, not after the garbage.
    put(&mut s, &[rec(11), rec(12)]);
    drop(s);
    let (mut s, r) = open(&dir, 64 << 20);
    assert!(r.gaps.is_empty(), "{:?}", r.gaps);
    assert_eq!(drain(&mut s).0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12]);
}

#[test]
fn a_deleted_segment_is_noticed_from_the_next_ones_header() {
    let dir = common::temp_dir("spool-deleted");
    let (mut s, _) = open(&dir, 64 << 10);
    let recs: Vec<Rec> = (1..=200).map(rec).collect();
    put(&mut s, &recs);
    drop(s);
    let segs = segments(&dir);
    assert!(segs.len() >= 3);
    let second_first = first_seq(&segs[1]);
    let third_first = first_seq(&segs[2]);
    fs::remove_file(&segs[1]).unwrap();
    let (mut s, r) = open(&dir, 64 << 10);
    assert_eq!(r.gaps.len(), 1, "{:?}", r.gaps);
    let g = r.gaps[0];
    assert_eq!((g.first, g.last), (second_first, third_first - 1));
    let (seqs, _) = drain(&mut s);
    assert!(seqs.iter().all(|q| *q < second_first || *q >= third_first));
    assert_eq!(seqs.len() as u64, 200 - (third_first - second_first));
}

#[test]
fn a_damaged_previous_record_field_in_a_header_reports_no_false_loss() {
    let dir = common::temp_dir("spool-prev-last");
    let (mut s, _) = open(&dir, 64 << 10);
    put(&mut s, &(1..=200).map(rec).collect::<Vec<_>>());
    drop(s);
    let segs = segments(&dir);
    // The field has no checksum: a value at or past the segment's own
    // first record cannot be true, and 18 quintillion lost records were
    // once reported from it.
    damage(&segs[1], |b| {
        b[8..16].copy_from_slice(&(u64::MAX - 15).to_le_bytes())
    });
    let (mut s, r) = open(&dir, 64 << 10);
    assert!(r.gaps.is_empty(), "{:?}", r.gaps);
    assert_eq!(drain(&mut s).0, (1..=200).collect::<Vec<_>>());
}

#[test]
fn a_segment_with_a_bad_header_is_removed_and_reported() {
    let dir = common::temp_dir("spool-header");
    let (mut s, _) = open(&dir, 64 << 10);
    put(&mut s, &(1..=200).map(rec).collect::<Vec<_>>());
    drop(s);
    let segs = segments(&dir);
    damage(&segs[0], |b| b[0] = b'X');
    let next_first = first_seq(&segs[1]);
    let (mut s, r) = open(&dir, 64 << 10);
    assert_eq!(r.gaps.len(), 1);
    assert_eq!((r.gaps[0].first, r.gaps[0].last), (1, next_first - 1));
    assert_eq!(drain(&mut s).0, (next_first..=200).collect::<Vec<_>>());
}

#[test]
fn garbage_files_and_a_garbage_acked_file_do_not_stop_recovery() {
    let dir = common::temp_dir("spool-garbage");
    fs::write(dir.join("acked"), b"\xff\xfe nonsense").unwrap();
    fs::write(dir.join("notes.txt"), b"hello").unwrap();
    fs::write(dir.join("00000000000000000001.seg"), b"").unwrap();
    let (mut s, r) = open(&dir, 64 << 10);
    assert_eq!(r.records, 0);
    put(&mut s, &[rec(5)]);
    assert_eq!(drain(&mut s).0, [5]);
}

/// Mounts a tmpfs of `size` at `dir` for the life of the guard.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_the_spool_recovers() {
    let dir = common::temp_dir("spool-enospc");
    let _fs = Tmpfs::mount(&dir, "64k");
    // The spool allows 1 MiB; the disk holds 64 KiB.
    let (mut s, _) = open(&dir, 1 << 20);
    let mut seq = 0;
    let error = loop {
        seq += 1;
        let a = put(&mut s, &[rec(seq)]);
        if let Some(e) = a.error {
            assert_eq!(a.written, 0);
            break e;
        }
        assert!(seq < 10_000, "the disk never filled");
    };
    assert_eq!(error.raw_os_error(), Some(28), "ENOSPC: {error}");
    let written = seq - 1;
    assert_eq!(s.backlog_records(), written);
    // Draining frees space; appending works again, and a restart finds no
    // torn bytes from the failed write.
    let b = s.read(written as usize, 1 << 20).unwrap();
    assert_eq!(b.recs.len() as u64, written);
    s.ack(b.end);
    assert!(put(&mut s, &[rec(seq)]).error.is_none());
    drop(s);
    let (mut s, r) = open(&dir, 1 << 20);
    assert_eq!((r.truncated, r.gaps.len()), (0, 0));
    assert_eq!(drain(&mut s).0, [seq]);
}

/// Random appends, reads, acknowledgements (and failed uploads), clean
/// restarts and crashes that tear the last write, against a model: the
/// unacknowledged records in order, and the set of numbers reported lost.
#[test]
fn model_based_random_operations() {
    for seed in 1..=12u64 {
        let dir = common::temp_dir("spool-model");
        let mut rng = fastrand::Rng::with_seed(seed);
        let max = 64 << 10;
        let (mut s, _) = open(&dir, max);
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut lost: BTreeSet<u64> = BTreeSet::new();
        let mut delivered: BTreeSet<u64> = BTreeSet::new();
        let mut next = 1u64;
        for step in 0..400 {
            let what = rng.u32(0..100);
            let ctx = format!("seed {seed} step {step} op {what}");
            match what {
                0..=44 => {
                    let n = rng.u64(1..40);
                    let recs: Vec<Rec> = (next..next + n).map(rec).collect();
                    next += n;
                    let a = put(&mut s, &recs);
                    assert!(a.error.is_none(), "{ctx}");
                    model.extend(recs.iter().map(|r| r.seq));
                    for g in &a.gaps {
                        // The range may span numbers already lost (a torn
                        // write); `count` is exactly what was queued.
                        let queued = model.iter().filter(|q| (g.first..=g.last).contains(*q));
                        assert_eq!(queued.count() as u64, g.count, "{ctx}: {g}");
                        for q in g.first..=g.last {
                            assert!(
                                model.contains(&q) || lost.contains(&q),
                                "{ctx}: {g} names {q}"
                            );
                            lost.insert(q);
                        }
                    }
                    model.retain(|q| !lost.contains(q));
                }
                45..=79 => {
                    let n = rng.usize(1..120);
                    let b = s.read(n, 1 << 20).unwrap();
                    assert!(b.gaps.is_empty(), "{ctx}");
                    let got: Vec<u64> = b.recs.iter().map(|r| r.seq).collect();
                    let want: Vec<u64> = model.iter().take(n).copied().collect();
                    assert_eq!(got, want, "{ctx}");
                    if rng.bool() {
                        s.ack(b.end);
                        for q in got {
                            model.pop_front();
                            delivered.insert(q);
                        }
                    }
                }
                80..=89 => {
                    drop(s);
                    let (s2, r) = open(&dir, max);
                    assert!(r.gaps.is_empty() && r.truncated == 0, "{ctx}: {r:?}");
                    s = s2;
                }
                _ => {
                    // Crash in the middle of a write: half a record at the end.
                    let extra = rec(next);
                    next += 1;
                    drop(s);
                    if let Some(last) = segments(&dir).last() {
                        let mut frame = Vec::new();
                        tether::uplink::spool::frame::encode(
                            &mut frame,
                            extra.seq,
                            extra.body.as_bytes(),
                        );
                        let mut bytes = fs::read(last).unwrap();
                        bytes.extend_from_slice(&frame[..frame.len() / 2]);
                        fs::write(last, bytes).unwrap();
                    }
                    let (s2, r) = open(&dir, max);
                    for g in &r.gaps {
                        assert_eq!((g.first, g.last), (extra.seq, extra.seq), "{ctx}");
                    }
                    // Never acknowledged as written: reported or not, it is
                    // not part of the backlog.
                    lost.insert(extra.seq);
                    s = s2;
                }
            }
            assert_eq!(s.backlog_records(), model.len() as u64, "{ctx}");
            assert!(s.disk_bytes() <= max, "{ctx}");
        }
        // Everything ever appended is delivered, still queued, or reported.
        let (rest, _) = drain(&mut s);
        assert_eq!(rest, Vec::from(model.clone()), "seed {seed}");
        for q in 1..next {
            let accounted = delivered.contains(&q) || lost.contains(&q) || model.contains(&q);
            assert!(accounted, "seed {seed}: record {q} vanished");
        }
    }
}

/// Records written since the last sync are not read until it returns; a
/// failed sync takes them back (the caller still holds them) and the files
/// are cut back, at once or at the next write, so that writing them again
/// leaves each record on disk exactly once, after a restart too.
#[test]
fn a_failed_sync_takes_back_what_it_was_for_and_nothing_else() {
    use tether::os::fs_helper::Job;
    for cut_at_once in [true, false] {
        let dir = common::temp_dir("spool-sync");
        let (mut s, _) = open(&dir, 64 << 10);
        let recs: Vec<Rec> = (1..=300).map(rec).collect();
        assert_eq!(s.append(&recs[..50]).written, 50);
        assert!(s.unsynced());
        assert_eq!(s.backlog_records(), 0, "not read before its sync returned");
        let took = s.sync_here().expect("a job").expect("synced");
        s.synced(took);
        assert!(!s.unsynced());
        assert_eq!(s.backlog_records(), 50);
        let before = segments(&dir);
        let b = s.read(20, 1 << 20).unwrap();
        s.ack(b.end);

        assert_eq!(s.append(&recs[50..]).written, 250);
        let after = segments(&dir);
        assert!(after.len() > before.len(), "new segments were made");
        assert_eq!(s.backlog_records(), 30, "only what the last sync covered");
        let b = s.read(100, 1 << 20).unwrap();
        assert_eq!(b.recs.last().map(|r| r.seq), Some(50));
        let Some(Job::Sync {
            names, dir_entry, ..
        }) = s.sync_job()
        else {
            panic!("a sync job");
        };
        assert!(dir_entry, "a segment was made: the directory too");
        let newest_then = before.last().unwrap().file_name().unwrap();
        assert_eq!(names.first().map(|n| n.as_str()), newest_then.to_str());
        assert_eq!(names.len(), after.len() - before.len() + 1);

        s.sync_failed();
        assert!(!s.unsynced());
        assert_eq!((s.max_seq(), s.backlog_records()), (50, 30));
        if cut_at_once {
            s.repair_now().unwrap();
            assert_eq!(segments(&dir), before, "the segments made since are gone");
        }
        // The caller writes them again.
        assert_eq!(s.append(&recs[50..]).written, 250);
        let took = s.sync_here().expect("a job").expect("synced");
        s.synced(took);
        assert_eq!(s.backlog_records(), 280);
        drop(s);
        let (mut s, r) = open(&dir, 64 << 10);
        assert!(r.gaps.is_empty() && r.truncated == 0, "{r:?}");
        let (seqs, gaps) = drain(&mut s);
        assert_eq!(
            seqs,
            (21..=300).collect::<Vec<u64>>(),
            "cut at once: {cut_at_once}"
        );
        assert!(gaps.is_empty(), "{gaps:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}

/// A record that reaches the disk after newer ones (a reconnect heartbeat
/// whose upload failed while they were spooled) is read by a destination
/// that already read and acknowledged those newer ones.
#[test]
fn a_late_record_is_read_after_newer_ones_were_acknowledged() {
    use tether::uplink::spool::Dest;
    let dir = common::temp_dir("spool-late");
    let dests = [Dest::Upstream, Dest::Otlp];
    let (mut s, _) = Spool::open_for(&dir, 64 << 20, SyncPolicy::Batch, &dests).unwrap();
    put(&mut s, &[rec(1), rec(2), rec(3), rec(5), rec(6)]);
    let b = s.read_for(Dest::Otlp, 100, 1 << 20, &|_| false).unwrap();
    let got: Vec<u64> = b.recs.iter().map(|r| r.seq).collect();
    assert_eq!(got, [1, 2, 3, 5, 6]);
    s.ack_for(Dest::Otlp, b.end);
    // The late one.
    put(&mut s, &[rec(4)]);
    let b = s.read_for(Dest::Otlp, 100, 1 << 20, &|_| false).unwrap();
    let got: Vec<u64> = b.recs.iter().map(|r| r.seq).collect();
    assert_eq!(got, [4]);
    let _ = fs::remove_dir_all(&dir);
}
