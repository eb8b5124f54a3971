//! A model-based test of the outbox (memory ring + disk spool), the layer
//! the delivery loop drives: random pushes, uploads that are acknowledged
//! or fail, reconnect heartbeats, flushes, clean restarts and crashes,
//! against a plain model of what is owed to the upstream.
//!
//! Checked at every step: the backlog is exactly what the model owes; every
//! batch is increasing, holds only owed records, and never repeats an
//! acknowledged one; a live record never waits behind two backlog batches in
//! a row. After a crash the new run's gap records name exactly what was
//! only in memory: their counts add up to it, their ranges cover it and hold
//! nothing else but numbers delivered out of order. At the end, after a clean drain: every number ever given out was
//! delivered exactly once or named by a delivered gap record.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use tether::config::SpoolConfig;
use tether::config::SyncPolicy;
use tether::uplink::outbox::{Outbox, Outgoing, Source, SyncOutcome};
use tether::uplink::record::{Body, Gap, GapReason};
use tether::uplink::spool::Spool;

fn open(dir: &Path, sync: SyncPolicy, small: bool) -> Outbox {
    let cfg = SpoolConfig {
        dir: dir.join("spool"),
        max_bytes: if small { 64 << 10 } else { 64 << 20 },
        sync,
        ring_records: if small { 16 } else { 10_000 },
    };
    Outbox::open(&cfg, dir, false, 1_795_290_810_000)
}

fn body(i: u64) -> Body {
    let mut b = Body::new(1_795_290_810_000 + i, "result");
    b.json()
        .str(Some("check"), &format!("c{}", i % 7))
        .str(Some("status"), "ok")
        .str(Some("message"), &"x".repeat((i % 200) as usize));
    b
}

/// What the upstream has been sent and what it is owed.
#[derive(Default)]
struct Model {
    /// Owed: made and neither acknowledged nor lost.
    owed: BTreeSet<u64>,
    delivered: BTreeSet<u64>,
    /// Gaps delivered: numbers the receiver was told it will never get.
    named: BTreeSet<u64>,
    made: BTreeSet<u64>,
    /// The crash gap records made, by number.
    gap_recs: std::collections::BTreeMap<u64, Gap>,
    /// The model cannot follow drops exactly (small sizes): only the end
    /// state is compared then.
    exact: bool,
}

impl Model {
    fn deliver(&mut self, out: &Outgoing, ctx: &str) {
        for r in &out.recs {
            assert!(
                self.delivered.insert(r.seq),
                "{ctx}: seq {} delivered twice",
                r.seq
            );
            self.owed.remove(&r.seq);
            if let Some(g) = r.gap {
                self.named.extend(g.first..=g.last);
            }
        }
    }
}

fn check_batch(out: &Outgoing, model: &Model, ctx: &str) {
    assert!(!out.recs.is_empty(), "{ctx}: empty batch");
    assert!(
        out.recs.windows(2).all(|w| w[0].seq < w[1].seq),
        "{ctx}: batch not increasing"
    );
    for r in &out.recs {
        assert!(
            !model.delivered.contains(&r.seq),
            "{ctx}: seq {} again",
            r.seq
        );
        if model.exact {
            assert!(model.owed.contains(&r.seq), "{ctx}: seq {} not owed", r.seq);
        }
    }
}

/// With `deferred`, syncs are left out like the agent's sync task leaves
/// them, and each step may finish the one out: done, or failed (the
/// records go back to the ring and the spool forgets them).
fn run(seed: u64, sync: SyncPolicy, small: bool, deferred: bool) {
    let dir = common::temp_dir("outbox-model");
    let mut rng = fastrand::Rng::with_seed(seed);
    let open = |dir: &Path| {
        let mut ob = open(dir, sync, small);
        if deferred {
            ob.sync_wake = Some(std::rc::Rc::default());
        }
        ob
    };
    let mut ob = open(&dir);
    let mut m = Model {
        exact: !small,
        ..Model::default()
    };
    let mut i = 0;
    let mut last_was_spool = false;
    // A reconnect heartbeat whose upload is out while other steps run (the
    // upstream sends one thing at a time).
    let mut out_now: Option<Outgoing> = None;
    for step in 0..600 {
        let what = rng.u32(0..100);
        let ctx = format!("seed {seed} {sync:?} small={small} step {step} op {what}");
        if deferred && rng.u32(0..3) == 0 && ob.sync_job().is_some() {
            if rng.u32(0..4) == 0 {
                ob.sync_done(SyncOutcome::Failed(
                    "fsync failed: Input/output error".into(),
                ));
                assert!(ob.disk_error.is_some(), "{ctx}");
                if rng.bool() {
                    ob.retry_disk_now();
                }
            } else {
                ob.sync_done(SyncOutcome::Done(std::time::Duration::from_millis(1)));
            }
        }
        match what {
            // Results arrive.
            0..=39 => {
                for _ in 0..rng.u64(1..8) {
                    i += 1;
                    let seq = ob.seq.peek();
                    ob.push(body(i));
                    m.owed.insert(seq);
                    m.made.insert(seq);
                }
            }
            // A flush: the delivery loop's tick.
            40..=49 => {
                ob.report_drops(0);
                if ob.spooling() {
                    ob.spill();
                }
            }
            // An upload from the outbox, acknowledged or failed.
            50..=79 if out_now.is_none() => {
                ob.report_drops(0);
                let ring_waiting = ob.ring_len() > 0;
                let Some(out) = ob.next_batch(rng.usize(1..60), 1 << 20, 0) else {
                    last_was_spool = false;
                    continue;
                };
                check_batch(&out, &m, &ctx);
                let from_spool = matches!(out.source, Source::Spool(_));
                assert!(
                    !(from_spool && last_was_spool && ring_waiting),
                    "{ctx}: two backlog batches in a row while live records wait"
                );
                last_was_spool = from_spool;
                if rng.u32(0..4) > 0 {
                    m.deliver(&out, &ctx);
                    ob.acked(&out);
                } else {
                    ob.failed(out);
                    last_was_spool = false;
                }
            }
            50..=79 => {}
            // The reconnect heartbeat: a fresh record, alone, answered at
            // once or some steps later.
            80..=87 => {
                let out = match out_now.take() {
                    Some(out) => out,
                    None => {
                        i += 1;
                        let out = ob.make_fresh(body(i));
                        m.made.insert(out.recs[0].seq);
                        m.owed.insert(out.recs[0].seq);
                        if rng.bool() {
                            out_now = Some(out);
                            continue;
                        }
                        out
                    }
                };
                if rng.bool() {
                    m.deliver(&out, &ctx);
                    ob.acked(&out);
                } else {
                    ob.failed(out);
                }
            }
            // A clean stop and start (an upload still out is cut).
            88..=94 => {
                out_now = None;
                ob.close();
                drop(ob);
                ob = open(&dir);
                last_was_spool = false;
            }
            // A crash: what was only in memory is gone, and the next run
            // names exactly that in gap records.
            _ => {
                out_now = None;
                drop(ob);
                ob = open(&dir);
                last_was_spool = false;
                if m.exact {
                    let on_disk = spooled(&dir);
                    let lost: BTreeSet<u64> = m.owed.difference(&on_disk).copied().collect();
                    m.owed.retain(|s| on_disk.contains(s));
                    let gaps = ob.gaps_in_memory();
                    assert_eq!(ob.ring_len(), gaps.len(), "{ctx}: only gap records");
                    let mut unclean: Vec<Gap> = gaps
                        .iter()
                        .map(|(_, g)| *g)
                        .filter(|g| g.reason == GapReason::UncleanShutdown)
                        .collect();
                    // A lost gap record's range is named again, as it was.
                    for s in &lost {
                        if let Some(g) = m.gap_recs.get(s) {
                            let at = unclean.iter().position(|u| u == g);
                            let at = at.unwrap_or_else(|| {
                                panic!("{ctx}: lost gap record {s} ({g:?}) not named again")
                            });
                            unclean.remove(at);
                        }
                    }
                    let counted: u64 = unclean.iter().map(|g| g.count).sum();
                    assert_eq!(
                        counted,
                        lost.len() as u64,
                        "{ctx}: {unclean:?} for {lost:?}"
                    );
                    for s in &lost {
                        assert!(
                            unclean.iter().any(|g| (g.first..=g.last).contains(s)),
                            "{ctx}: lost seq {s} named by none of {unclean:?}"
                        );
                    }
                    for g in &unclean {
                        for s in g.first..=g.last {
                            assert!(
                                !on_disk.contains(&s)
                                    && (lost.contains(&s) || m.delivered.contains(&s)),
                                "{ctx}: {g:?} names seq {s}, which is neither lost nor delivered out of order"
                            );
                        }
                    }
                    for (seq, g) in gaps {
                        m.gap_recs.insert(seq, g);
                        m.owed.insert(seq);
                        m.made.insert(seq);
                    }
                }
            }
        }
        if m.exact {
            assert_eq!(ob.backlog_records(), m.owed.len() as u64, "{ctx}");
        }
    }
    // Drain: everything left goes out, and the accounts close.
    if let Some(out) = out_now.take() {
        ob.failed(out);
    }
    ob.report_drops(0);
    ob.retry_disk_now();
    if ob.spooling() {
        ob.spill();
    }
    let mut guard = 0;
    loop {
        // A spill in the drain (a gap record under `always`) is synced.
        if ob.sync_job().is_some() {
            ob.sync_done(SyncOutcome::Done(std::time::Duration::from_millis(1)));
        }
        let Some(out) = ob.next_batch(100, 1 << 20, 0) else {
            break;
        };
        check_batch(&out, &m, &format!("seed {seed} drain"));
        m.deliver(&out, "drain");
        ob.acked(&out);
        ob.report_drops(0);
        guard += 1;
        assert!(guard < 100_000, "seed {seed}: the drain never ends");
    }
    assert_eq!(ob.backlog_records(), 0);
    for s in &m.made {
        assert!(
            m.delivered.contains(s) || m.named.contains(s),
            "seed {seed} {sync:?} small={small}: seq {s} neither delivered nor named by a gap"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The unacknowledged records in the spool directory, read by a second,
/// independent open of a copy (reading a batch at a time, gap records
/// apart, needs acknowledging).
fn spooled(dir: &Path) -> BTreeSet<u64> {
    let copy = dir.join("spool-copy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for e in std::fs::read_dir(dir.join("spool")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, copy.join(p.file_name().unwrap())).unwrap();
    }
    let (mut s, _) = Spool::open(&copy, 1 << 40, SyncPolicy::Never).unwrap();
    let mut out = BTreeSet::new();
    loop {
        let b = s.read(usize::MAX, 1 << 30).unwrap();
        if b.recs.is_empty() {
            break;
        }
        out.extend(b.recs.iter().map(|r| r.seq));
        s.ack(b.end);
    }
    let _ = std::fs::remove_dir_all(&copy);
    out
}

/// `TETHER_MODEL_SEEDS=N` runs N seeds instead of 8.
fn seeds() -> u64 {
    std::env::var("TETHER_MODEL_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

#[test]
fn outbox_model_large_bounds_exact_at_every_step() {
    for seed in 1..=seeds() {
        run(seed, SyncPolicy::Batch, false, false);
    }
}

#[test]
fn outbox_model_syncs_deferred_and_failing_exact_at_every_step() {
    for seed in 1..=seeds() {
        run(seed + 200, SyncPolicy::Batch, false, true);
        run(seed + 300, SyncPolicy::Always, true, true);
    }
}

#[test]
fn outbox_model_small_bounds_nothing_unaccounted() {
    for seed in 1..=seeds() {
        run(seed, SyncPolicy::Batch, true, false);
        run(seed + 100, SyncPolicy::Always, true, false);
    }
}

/// One destination's account in the many-destination model.
#[derive(Default)]
struct Account {
    owed: BTreeSet<u64>,
    /// Number -> the run (restarts so far) that first delivered it.
    delivered: std::collections::BTreeMap<u64, u32>,
    /// Numbers named by delivered gap records that name this destination.
    named: BTreeSet<u64>,
}

/// The outbox with the upstream and one or both receivers (remote-write,
/// OTLP): random pushes, flushes, batches for each (acknowledged or
/// failed), reconnect heartbeats, clean restarts. Checked at every step:
/// each destination's backlog is exactly what it is owed (until a restart
/// makes the upstream's inexact: it may get records again that it took
/// from memory, which its protocol allows); the receivers' batches are in
/// increasing order and never repeat a record, across restarts too; the
/// upstream repeats one only after a restart. At the end every number
/// reached each destination or a gap naming it.
fn run_many(seed: u64, small: bool, deferred: bool, otlp: bool) {
    use tether::uplink::spool::Dest;
    let dir = common::temp_dir("outbox-many");
    let all = [Dest::Upstream, Dest::RemoteWrite, Dest::Otlp];
    let both = &all[..if otlp { 3 } else { 2 }];
    let receivers = &both[1..];
    let cfg = SpoolConfig {
        dir: dir.join("spool"),
        max_bytes: if small { 64 << 10 } else { 64 << 20 },
        sync: SyncPolicy::Batch,
        ring_records: if small { 16 } else { 10_000 },
    };
    let open2 = || {
        let mut ob = Outbox::open_for(&cfg, &dir, false, 1_795_290_810_000, both);
        if deferred {
            ob.sync_wake = Some(std::rc::Rc::default());
        }
        ob
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut ob = open2();
    let mut acc: [Account; 3] = Default::default();
    let mut made = BTreeSet::new();
    let mut run_no = 0u32;
    let mut i = 0;
    let exact = !small;
    let deliver = |acc: &mut Account, out: &Outgoing, d: Dest, run_no: u32, ctx: &str| {
        for r in &out.recs {
            if let Some(first) = acc.delivered.get(&r.seq) {
                assert!(
                    d == Dest::Upstream && *first < run_no,
                    "{ctx}: seq {} delivered to {d:?} twice",
                    r.seq
                );
            } else {
                acc.delivered.insert(r.seq, run_no);
            }
            acc.owed.remove(&r.seq);
        }
    };
    let mut gaps_seen: Vec<Gap> = Vec::new();
    let mut upstream_exact = true;
    // A reconnect heartbeat whose upload is out while other steps run (the
    // upstream sends one thing at a time).
    let mut out_now: Option<Outgoing> = None;
    for step in 0..600 {
        let what = rng.u32(0..100);
        let ctx = format!("seed {seed} small={small} step {step} op {what}");
        if deferred && rng.u32(0..3) == 0 && ob.sync_job().is_some() {
            if rng.u32(0..4) == 0 {
                ob.sync_done(SyncOutcome::Failed(
                    "fsync failed: Input/output error".into(),
                ));
                if rng.bool() {
                    ob.retry_disk_now();
                }
            } else {
                ob.sync_done(SyncOutcome::Done(std::time::Duration::from_millis(1)));
            }
        }
        match what {
            0..=34 => {
                for _ in 0..rng.u64(1..8) {
                    i += 1;
                    let seq = ob.seq.peek();
                    ob.push(body(i));
                    made.insert(seq);
                    for a in acc.iter_mut() {
                        a.owed.insert(seq);
                    }
                }
            }
            35..=44 => {
                ob.report_drops(0);
                if ob.spooling() {
                    ob.spill();
                }
            }
            45..=64 if out_now.is_none() => {
                ob.report_drops(0);
                let Some(out) = ob.next_batch(rng.usize(1..60), 1 << 20, 0) else {
                    continue;
                };
                assert!(out.recs.windows(2).all(|w| w[0].seq < w[1].seq), "{ctx}");
                if rng.u32(0..4) > 0 {
                    gaps_seen.extend(out.recs.iter().filter_map(|r| r.gap));
                    deliver(&mut acc[0], &out, Dest::Upstream, run_no, &ctx);
                    ob.acked(&out);
                } else {
                    ob.failed(out);
                }
            }
            65..=84 => {
                let d = receivers[rng.usize(..receivers.len())];
                let Some(out) = ob.next_ordered(d, rng.usize(1..60), 0) else {
                    continue;
                };
                assert!(out.recs.windows(2).all(|w| w[0].seq < w[1].seq), "{ctx}");
                if exact {
                    for r in &out.recs {
                        assert!(
                            acc[d as usize].owed.contains(&r.seq),
                            "{ctx}: seq {} not owed to {d:?}",
                            r.seq
                        );
                    }
                }
                if rng.u32(0..4) > 0 {
                    gaps_seen.extend(out.recs.iter().filter_map(|r| r.gap));
                    deliver(&mut acc[d as usize], &out, d, run_no, &ctx);
                    ob.acked_for(d, &out);
                } else {
                    ob.failed_for(d, out);
                }
            }
            45..=64 => {}
            85..=92 => {
                let out = match out_now.take() {
                    Some(out) => out,
                    None => {
                        i += 1;
                        let out = ob.make_fresh(body(i));
                        let seq = out.recs[0].seq;
                        made.insert(seq);
                        for a in acc.iter_mut() {
                            a.owed.insert(seq);
                        }
                        if rng.bool() {
                            out_now = Some(out);
                            continue;
                        }
                        out
                    }
                };
                if rng.bool() {
                    deliver(&mut acc[0], &out, Dest::Upstream, run_no, &ctx);
                    ob.acked(&out);
                } else {
                    ob.failed(out);
                }
            }
            _ => {
                // An upload still out is cut.
                out_now = None;
                ob.close();
                drop(ob);
                ob = open2();
                run_no += 1;
                upstream_exact = false;
            }
        }
        if exact {
            for d in receivers {
                assert_eq!(
                    ob.backlog_of(*d),
                    acc[*d as usize].owed.len() as u64,
                    "{ctx}: {d:?} backlog"
                );
            }
            if upstream_exact {
                assert_eq!(
                    ob.backlog_of(Dest::Upstream),
                    acc[0].owed.len() as u64,
                    "{ctx}: upstream backlog"
                );
            }
        }
    }
    // Drain them all.
    if let Some(out) = out_now.take() {
        ob.failed(out);
    }
    ob.report_drops(0);
    ob.retry_disk_now();
    if ob.spooling() {
        ob.spill();
    }
    let mut guard = 0;
    loop {
        let mut any = false;
        if ob.sync_job().is_some() {
            ob.sync_done(SyncOutcome::Done(std::time::Duration::from_millis(1)));
            any = true;
        }
        if let Some(out) = ob.next_batch(100, 1 << 20, 0) {
            gaps_seen.extend(out.recs.iter().filter_map(|r| r.gap));
            deliver(&mut acc[0], &out, Dest::Upstream, run_no, "drain");
            ob.acked(&out);
            any = true;
        }
        for d in receivers {
            if let Some(out) = ob.next_ordered(*d, 100, 0) {
                gaps_seen.extend(out.recs.iter().filter_map(|r| r.gap));
                deliver(&mut acc[*d as usize], &out, *d, run_no, "drain");
                ob.acked_for(*d, &out);
                any = true;
            }
        }
        ob.report_drops(0);
        if !any {
            break;
        }
        guard += 1;
        assert!(guard < 100_000, "seed {seed}: the drain never ends");
    }
    for d in both {
        assert_eq!(ob.backlog_of(*d), 0, "{d:?}");
    }
    // Everyone is current: new records wait in memory again, not on disk.
    assert!(
        !ob.spooling(),
        "seed {seed}: still spooling after the drain"
    );
    for g in &gaps_seen {
        for (n, d) in both.iter().enumerate() {
            if g.dests & d.bit() != 0 {
                acc[n].named.extend(g.first..=g.last);
            }
        }
    }
    for s in &made {
        for (n, d) in both.iter().enumerate() {
            assert!(
                acc[n].delivered.contains_key(s) || acc[n].named.contains(s),
                "seed {seed} small={small}: seq {s} neither delivered to {d:?} nor named for it by a gap"
            );
        }
    }
    if exact {
        // With room to spare nothing is dropped: every record reached
        // every receiver.
        for s in &made {
            for d in receivers {
                assert!(
                    acc[*d as usize].delivered.contains_key(s),
                    "seed {seed}: seq {s} never reached {d:?}"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outbox_model_two_destinations() {
    for seed in 1..=seeds() {
        run_many(seed, false, false, false);
        run_many(seed + 500, true, false, false);
        run_many(seed + 700, false, true, false);
        run_many(seed + 900, true, true, false);
    }
}

#[test]
fn outbox_model_three_destinations() {
    for seed in 1..=seeds() {
        run_many(seed + 1100, false, false, true);
        run_many(seed + 1300, true, false, true);
        run_many(seed + 1500, false, true, true);
        run_many(seed + 1700, true, true, true);
    }
}

/// An outbox for the upstream and the OTLP receiver in `dir`, large bounds.
fn with_otlp(dir: &Path, sync: SyncPolicy, now_ms: u64) -> Outbox {
    use tether::uplink::spool::Dest;
    let cfg = SpoolConfig {
        dir: dir.join("spool"),
        max_bytes: 64 << 20,
        sync,
        ring_records: 10_000,
    };
    Outbox::open_for(&cfg, dir, false, now_ms, &[Dest::Upstream, Dest::Otlp])
}

/// The reconnect heartbeat's upload hangs while results are spooled, the
/// OTLP receiver takes what there is, the upload fails, and the agent is
/// killed before the receiver asks again. At the next start the receiver
/// must still get the heartbeat: it once reached the disk after the newer
/// records, and the receiver's saved cursor, past it, skipped it.
#[test]
fn a_heartbeat_cut_while_results_spool_reaches_a_receiver_across_a_crash() {
    use tether::uplink::spool::Dest;
    let dir = common::temp_dir("outbox-late-heartbeat");
    let now = 1_795_290_810_000;
    let mut ob = with_otlp(&dir, SyncPolicy::Batch, now);
    // The control plane is down: records spool.
    ob.push(body(1));
    ob.spool_from_now();
    // It answers a probe again... but the heartbeat's upload hangs.
    let hb = ob.make_fresh(body(2));
    let hb_seq = hb.recs[0].seq;
    for i in 3..8 {
        ob.push(body(i));
    }
    ob.spill();
    let mut got = BTreeSet::new();
    while let Some(out) = ob.next_ordered(Dest::Otlp, 100, now) {
        got.extend(out.recs.iter().map(|r| r.seq));
        ob.acked_for(Dest::Otlp, &out);
    }
    // The upload is cut by its timeout; the loop spools what it has.
    ob.failed(hb);
    ob.spill();
    // SIGKILL: nothing closes.
    drop(ob);
    let mut ob = with_otlp(&dir, SyncPolicy::Batch, now);
    while let Some(out) = ob.next_ordered(Dest::Otlp, 100, now) {
        for r in &out.recs {
            assert!(got.insert(r.seq), "seq {} twice", r.seq);
        }
        ob.acked_for(Dest::Otlp, &out);
    }
    assert!(
        got.contains(&hb_seq),
        "the heartbeat {hb_seq} never reached the receiver: {got:?}"
    );
    assert_eq!(got.len(), 7, "{got:?}");
    // The upstream has everything still, the heartbeat included.
    let mut up = BTreeSet::new();
    while let Some(out) = ob.next_batch(100, 1 << 20, now) {
        up.extend(out.recs.iter().map(|r| r.seq));
        ob.acked(&out);
    }
    assert_eq!(up, got);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The OTLP receiver was down (records spooled) and drains its backlog
/// while the upstream takes every new record from memory. A record made
/// during the drain waits behind the backlog for the receiver, so it goes
/// to disk under `sync = "always"`: a SIGKILL in the drain loses nothing
/// for the receiver (in memory it was at risk for the whole drain, not one
/// flush interval).
#[test]
fn a_record_made_while_a_receiver_drains_survives_a_crash() {
    use tether::uplink::spool::Dest;
    let dir = common::temp_dir("outbox-drain-crash");
    let now = 1_795_290_810_000;
    let mut ob = with_otlp(&dir, SyncPolicy::Always, now);
    let mut up = BTreeSet::new();
    let upstream_takes = |ob: &mut Outbox, up: &mut BTreeSet<u64>| {
        while let Some(out) = ob.next_batch(100, 1 << 20, now) {
            up.extend(out.recs.iter().map(|r| r.seq));
            ob.acked(&out);
        }
    };
    // The receiver is down: its first batch fails, records spool.
    ob.push(body(1));
    let out = ob.next_ordered(Dest::Otlp, 2, now).expect("a batch");
    ob.failed_for(Dest::Otlp, out);
    for i in 2..10 {
        ob.push(body(i));
    }
    upstream_takes(&mut ob, &mut up);
    // It is back: the drain begins, two records a request.
    let mut got = BTreeSet::new();
    let out = ob.next_ordered(Dest::Otlp, 2, now).expect("the backlog");
    got.extend(out.recs.iter().map(|r| r.seq));
    ob.acked_for(Dest::Otlp, &out);
    // A result is made in the drain; the upstream has it at once.
    ob.push(body(10));
    upstream_takes(&mut ob, &mut up);
    assert_eq!(up.len(), 10, "{up:?}");
    // SIGKILL: nothing closes.
    drop(ob);
    let mut ob = with_otlp(&dir, SyncPolicy::Always, now);
    while let Some(out) = ob.next_ordered(Dest::Otlp, 2, now) {
        for r in &out.recs {
            if r.gap.is_none() {
                assert!(got.insert(r.seq), "seq {} twice", r.seq);
            }
        }
        ob.acked_for(Dest::Otlp, &out);
    }
    assert_eq!(got, up, "the receiver lost what the upstream has");
    // Drained: records wait in memory again.
    while let Some(out) = ob.next_batch(100, 1 << 20, now) {
        ob.acked(&out);
    }
    assert!(!ob.spooling());
    let _ = std::fs::remove_dir_all(&dir);
}
