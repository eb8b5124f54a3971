//! Everything not yet acknowledged by the upstream, and the order it goes
//! out in: a bounded memory ring in front of the disk spool.
//!
//! - While the upstream answers, records wait in the ring and are uploaded
//!   from there: nothing touches the disk (appliances on flash storage).
//! - From the first failed upload ([`Outbox::failed`]), the ring's records,
//!   and from then on every new record at each flush (or at once under
//!   `sync = "always"`), are appended to the spool. So they are while a
//!   receiver (remote-write, OTLP) drains a backlog on disk: a new record
//!   waits behind it, and in memory a crash would lose it for that
//!   receiver.
//! - When the upstream answers again the backlog drains oldest first, and
//!   batches from the ring (live records) alternate with backlog batches, so
//!   a live record never waits behind more than one backlog batch. (The
//!   delivery loop sends a fresh heartbeat before any of this, so the
//!   control plane is current within one round trip.)
//! - The ring holds at most `ring_records`; past that the oldest record is
//!   dropped and folded into a `ring_full` gap record. The spool drops its
//!   oldest segment the same way (`spool_full`).
//! - A disk that fails (full, read-only, I/O errors) never stops the agent:
//!   records stay in the ring, `spool_degraded` is reported, and the disk is
//!   tried again every [`DISK_RETRY`].
//!
//! Records enter the spool in increasing sequence order, which the spool's
//! acknowledgement bookkeeping relies on.
//!
//! # Spooled means synced
//!
//! A spill writes the ring to the spool and moves the records written to
//! `syncing`: they leave memory only when the sync of what was written
//! returned ([`Outbox::sync_done`]). In the agent that sync runs in a
//! filesystem helper (`agent/spool_sync.rs`), so a slow or hung disk stalls
//! only the helper; without one (`sync_wake` unset: tests, one-shot
//! commands) it runs at once on the caller's thread. Meanwhile nothing else
//! is written: new records wait in the ring, which keeps its bound (so
//! memory holds at most twice `ring_records` while a sync is out). A sync
//! that fails or does not return puts the records back in the ring (the
//! spool forgets them and cuts its files back before the next write), and
//! the spool is `spool_degraded` as for any disk error. The thread writes
//! nothing to a spool whose directory has a helper stuck in the kernel.
//!
//! # Three destinations
//!
//! With `[remote_write]` or `[otlp]` configured beside (or instead of)
//! `[upstream]`, each destination is a [`Lane`] over the same ring and
//! spool. A record leaves the ring when every configured destination has
//! it; while any destination fails, records are spooled, and each reads
//! the spool at its own cursor. A lane remembers the numbers it took from
//! the ring (`done`), so a record spooled for another destination is not
//! sent to it twice. The receivers' lanes (remote-write, OTLP) read
//! strictly oldest first (the spool, then the ring), so one series' points
//! go out in time order.
//!
//! The reconnect heartbeat goes up alone ([`Outbox::make_fresh`]), but it
//! is queued in the ring when it is made, like any record, so the
//! receivers take it in its place; while its upload is out the ring is
//! spilled only up to it (spooled and then acknowledged, it would go to
//! the upstream again after a crash), and after the answer it goes to disk
//! before the records made meanwhile. (Queued only when its upload failed,
//! it once reached the disk after them; a receiver that had read those and
//! then crashed skipped it at the next start, its saved cursor past it.)

use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::config::SpoolConfig;
use crate::config::SyncPolicy;
use crate::os::wake::Notify;
use crate::uplink::at_risk::{AtRisk, Mirror};
use crate::uplink::identity::Sequence;
use crate::uplink::record::{self, Body, Gap, GapReason, Rec};
use crate::uplink::spool::{Dest, Pos, Spool};

pub const DISK_RETRY: Duration = Duration::from_secs(30);
/// While spooling, the ring goes to disk at every flush, and at once when
/// it holds this much: memory stays bounded however many results a flush
/// interval brings (100 checks at 1 s make ~45 KB a second).
pub const SPILL_BYTES: usize = 64 * 1024;

/// How a sync of the spool ended.
#[derive(Debug)]
pub enum SyncOutcome {
    /// It returned after this long.
    Done(Duration),
    /// The disk answered with an error (why, for an operator): the spool's
    /// files are cut back at once.
    Failed(String),
    /// No answer in time, or no helper to ask: the files are cut back
    /// before the next write, not now (the disk may be hung).
    NoAnswer(String),
}

impl SyncOutcome {
    /// No sync was tried: a helper killed in the call `what` on the spool
    /// is still stuck in the kernel.
    pub fn still_stuck(what: &str) -> SyncOutcome {
        SyncOutcome::NoAnswer(format!("its last {what} is still stuck in the kernel"))
    }
}

/// Where a batch came from, so its acknowledgement removes the right records.
#[derive(Debug)]
pub enum Source {
    /// The front of the ring, up to this sequence number.
    Ring(u64),
    /// The spool's backlog, up to this position.
    Spool(Pos),
    /// A record made for this upload (the reconnect heartbeat), queued
    /// for the other destinations and the disk as it was made.
    Fresh,
}

pub struct Outgoing {
    pub recs: Vec<Rec>,
    pub source: Source,
}

/// Ranges of sequence numbers, sorted and merged: what a lane took from
/// the ring. Bounded: past [`Done::MAX`] ranges the oldest is forgotten,
/// which can only make a record go to that destination twice.
#[derive(Default)]
struct Done(Vec<(u64, u64)>);

impl Done {
    const MAX: usize = 1024;

    fn contains(&self, seq: u64) -> bool {
        let i = self.0.partition_point(|(_, last)| *last < seq);
        self.0.get(i).is_some_and(|(first, _)| *first <= seq)
    }

    fn insert(&mut self, seq: u64) {
        let i = self
            .0
            .partition_point(|(_, last)| last.saturating_add(1) < seq);
        match self.0.get_mut(i) {
            Some((first, last)) if *first <= seq.saturating_add(1) => {
                *first = (*first).min(seq);
                *last = (*last).max(seq);
                // Now touching the next range: one range.
                if let Some(&(f2, l2)) = self.0.get(i + 1) {
                    if f2 <= self.0[i].1.saturating_add(1) {
                        self.0[i].1 = self.0[i].1.max(l2);
                        self.0.remove(i + 1);
                    }
                }
            }
            _ => self.0.insert(i, (seq, seq)),
        }
        if self.0.len() > Done::MAX {
            self.0.remove(0);
        }
    }

    /// Forgets ranges wholly below `seq`.
    fn forget_below(&mut self, seq: u64) {
        self.0.retain(|(_, last)| *last >= seq);
    }

    fn max(&self) -> Option<u64> {
        self.0.last().map(|(_, l)| *l)
    }
}

/// One destination's side of the outbox.
#[derive(Default)]
struct Lane {
    on: bool,
    /// Its last send failed: records go to disk.
    failing: bool,
    /// Numbers it took from the ring (or its own uploads).
    done: Done,
    /// Of the records spooled for the other destinations, those this one
    /// already has: on disk past its cursor, not in its backlog.
    done_on_disk: u64,
    /// Of those, how many its batch in flight passed over: no longer on
    /// disk past its cursor once the batch is acknowledged.
    passed_in_flight: u64,
    /// The upstream alternates backlog and ring batches.
    last_from_spool: bool,
    /// Reading its backlog did not move it: it reads the ring meanwhile
    /// (so new records are not sent to disk for it).
    stuck: bool,
}

pub struct Outbox {
    ring: VecDeque<Rec>,
    ring_bytes: usize,
    cfg: SpoolConfig,
    spool: Option<Spool>,
    /// Why the spool cannot be used right now: `spool_degraded`.
    pub disk_error: Option<String>,
    disk_retry: Option<Instant>,
    /// Per destination (`Dest as usize`).
    lanes: [Lane; 3],
    /// Records dropped from the ring, not yet reported by a gap record.
    pending_gap: Option<Gap>,
    pub seq: Sequence,
    /// Records dropped (ring and spool), for `/metrics`.
    pub dropped: u64,
    /// Of those, the ones each destination missed (`Dest as usize`).
    pub lost: [u64; 3],
    /// What only memory holds, mirrored for the next run after a crash
    /// (`None` if the file could not be made: a crash then reports the
    /// lease window).
    mirror: Option<AtRisk>,
    /// Reconnect heartbeats whose upload to the upstream is out (each is
    /// also in the ring, which is not spilled past it).
    fresh: Vec<u64>,
    /// The gap records in the ring (number, range), oldest first.
    ring_gaps: VecDeque<(u64, Gap)>,
    /// Records written to the spool whose sync has not returned yet.
    syncing: Vec<Rec>,
    /// Its job is out (see [`Outbox::sync_job`]).
    sync_out: bool,
    /// Told when a sync is wanted; `None`: syncs run on the caller's
    /// thread.
    pub sync_wake: Option<Rc<Notify>>,
}

impl Outbox {
    /// Opens the spool and the sequence numbers for the upstream alone; the
    /// gaps recovery found are queued as records.
    pub fn open(cfg: &SpoolConfig, state_dir: &Path, fresh_identity: bool, now_ms: u64) -> Outbox {
        Outbox::open_for(cfg, state_dir, fresh_identity, now_ms, &[Dest::Upstream])
    }

    /// [`Outbox::open`] for these destinations.
    pub fn open_for(
        cfg: &SpoolConfig,
        state_dir: &Path,
        fresh_identity: bool,
        now_ms: u64,
        dests: &[Dest],
    ) -> Outbox {
        let opened = Spool::open_for(&cfg.dir, cfg.max_bytes, cfg.sync, dests);
        let (spool, disk_error, mut gaps) = match opened {
            Ok((s, r)) => {
                if r.records > 0 || r.truncated > 0 || !r.gaps.is_empty() {
                    log::info!(
                        "spool {}: {} records in {} segments to send{}",
                        cfg.dir.display(),
                        r.records,
                        r.segments,
                        if r.gaps.is_empty() {
                            String::new()
                        } else {
                            format!(", {} damaged ranges reported as gaps", r.gaps.len())
                        }
                    );
                }
                (Some(s), None, r.gaps)
            }
            Err(e) => {
                let why = format!("cannot open the spool {}: {e}", cfg.dir.display());
                log::error!("{why}; records are kept in memory only");
                (None, Some(why), Vec::new())
            }
        };
        let floor = spool.as_ref().map_or(0, |s| s.max_seq());
        let (seq, unclean) = Sequence::open(state_dir, floor, fresh_identity);
        gaps.extend(unclean);
        let mirror = match AtRisk::create(state_dir) {
            Ok(m) => Some(m),
            Err(e) => {
                log::error!(
                    "cannot map {}: {e}; after a crash the gap will name the whole lease window",
                    crate::uplink::at_risk::path(state_dir).display()
                );
                None
            }
        };
        let mut out = Outbox {
            ring: VecDeque::new(),
            ring_bytes: 0,
            cfg: cfg.clone(),
            spool,
            disk_retry: disk_error.as_ref().map(|_| Instant::now() + DISK_RETRY),
            disk_error,
            lanes: Default::default(),
            pending_gap: None,
            seq,
            dropped: 0,
            lost: [0; 3],
            mirror,
            fresh: Vec::new(),
            ring_gaps: VecDeque::new(),
            syncing: Vec::new(),
            sync_out: false,
            sync_wake: None,
        };
        for d in dests {
            out.lanes[*d as usize].on = true;
        }
        out.sync_mirror(None);
        for g in gaps {
            out.push_gap(g, now_ms);
        }
        out
    }

    /// Which destinations are configured (a reload may change them).
    pub fn set_dests(&mut self, dests: &[Dest]) {
        for d in Dest::ALL {
            let on = dests.contains(&d);
            self.lanes[d as usize].on = on;
            if !on {
                self.lanes[d as usize].failing = false;
                self.lanes[d as usize].done = Done::default();
            }
            if let Some(s) = self.spool.as_mut() {
                s.set_on(d, on);
            }
        }
        self.pop_done();
    }

    pub fn has(&self, d: Dest) -> bool {
        self.lanes[d as usize].on
    }

    /// The configured destinations as gap bits.
    fn dest_bits(&self) -> u8 {
        Dest::ALL
            .iter()
            .filter(|d| self.has(**d))
            .fold(0, |m, d| m | d.bit())
    }

    /// `d` has record `seq` (it took it from memory).
    fn done(&self, d: Dest, seq: u64) -> bool {
        let lane = &self.lanes[d as usize];
        !lane.on || lane.done.contains(seq)
    }

    /// Drops from the ring what every configured destination has, and the
    /// lanes' memory of numbers no longer anywhere they could meet them.
    fn pop_done(&mut self) {
        while let Some(front) = self.ring.front() {
            if !Dest::ALL.iter().all(|d| self.done(*d, front.seq)) {
                break;
            }
            let r = self.ring.pop_front().expect("checked");
            self.ring_bytes -= r.body.len();
        }
        let ring_min = self.ring.front().map_or(u64::MAX, |r| r.seq);
        let fresh_min = self.fresh.iter().copied().min().unwrap_or(u64::MAX);
        // Records waiting for their sync are read from the spool after it.
        let syncing_min = self.syncing.first().map_or(u64::MAX, |r| r.seq);
        for d in Dest::ALL {
            if self.spool_unread(d) == 0 {
                self.lanes[d as usize]
                    .done
                    .forget_below(ring_min.min(fresh_min).min(syncing_min));
            }
        }
    }

    /// Numbers and queues a record.
    pub fn push(&mut self, body: Body) {
        let rec = self.make(body, None);
        self.queue(rec);
    }

    /// Queues a gap record for `g` (naming, of the destinations it names,
    /// those configured).
    pub fn push_gap(&mut self, mut g: Gap, now_ms: u64) {
        g.dests &= self.dest_bits();
        if g.dests == 0 {
            g.dests = self.dest_bits();
        }
        log::warn!("records lost: {g}; a gap record tells the control plane");
        // Until the gap record is delivered or spooled, a crash must name
        // its numbers again.
        self.seq.cover_from(g.first);
        let rec = self.make(record::gap(&g, now_ms), Some(g));
        self.queue(rec);
    }

    /// Numbers a record without queueing it.
    pub fn make(&mut self, body: Body, gap: Option<Gap>) -> Rec {
        if self.seq.lease_due() {
            let mark = self.at_risk().unwrap_or(self.seq.peek());
            self.seq.set_at_risk(mark);
        }
        let rec = body.finish(self.seq.take(), gap);
        // The new number (and what it names) is held before anyone can use it.
        self.sync_mirror(Some((rec.seq, gap)));
        rec
    }

    /// Numbers a record for an upload of its own (the reconnect heartbeat),
    /// and queues it for the other destinations. The upstream sends one
    /// thing at a time, so it does not read it again while the upload is
    /// out; if the upload fails, it reads it again like any other record.
    pub fn make_fresh(&mut self, body: Body) -> Outgoing {
        let rec = self.make(body, None);
        self.fresh.push(rec.seq);
        self.queue(rec.clone());
        Outgoing {
            recs: vec![rec],
            source: Source::Fresh,
        }
    }

    /// Writes what memory holds to the mirror: the ring (the fresh records
    /// in it too), `extra` (a number just handed out), and the ranges that
    /// gap records in the ring and unreported drops name.
    fn sync_mirror(&mut self, extra: Option<(u64, Option<Gap>)>) {
        while let Some(&(seq, _)) = self.ring_gaps.front() {
            if self.ring.front().is_some_and(|r| r.seq <= seq) {
                break;
            }
            self.ring_gaps.pop_front();
        }
        let Some(mirror) = self.mirror.as_mut() else {
            return;
        };
        let mut m = Mirror {
            run: self.seq.run(),
            next: self.seq.peek(),
            spool_max: self.spool.as_ref().map_or(0, |s| s.max_seq()),
            held: Vec::new(),
            named: self.ring_gaps.iter().copied().collect(),
        };
        if let (Some(a), Some(b)) = (self.ring.front(), self.ring.back()) {
            m.hold(a.seq, b.seq, self.ring.len() as u64);
        }
        if let Some((s, _)) = extra {
            m.hold(s, s, 1);
        }
        if let Some((s, Some(g))) = extra {
            m.named.push((s, g));
        }
        if let Some(g) = self.pending_gap {
            m.named.push((0, g));
        }
        mirror.write(&m);
    }

    /// The lowest number only in memory: the ring's oldest record, a range
    /// a gap record in the ring names, or the drops not yet reported.
    fn at_risk(&self) -> Option<u64> {
        let ring = self.ring.front().map(|r| r.seq);
        // `ring_gaps` holds the ring's gap records: no walk of the ring.
        let gaps = self.ring_gaps.iter().map(|(_, g)| g.first);
        let pending = self.pending_gap.map(|g| g.first);
        ring.into_iter().chain(gaps).chain(pending).min()
    }

    /// Puts a record in the ring at its place by sequence number (records
    /// a failed sync gives back are older than the ring's).
    pub fn queue(&mut self, rec: Rec) {
        self.trim(1);
        self.ring_bytes += rec.body.len();
        if let Some(g) = rec.gap {
            let at = self.ring_gaps.partition_point(|(s, _)| *s < rec.seq);
            self.ring_gaps.insert(at, (rec.seq, g));
        }
        let at = self.ring.partition_point(|r| r.seq < rec.seq);
        self.ring.insert(at, rec);
        self.sync_mirror(None);
        if self.spill_due() {
            self.spill();
        }
    }

    /// While spooling, the ring goes to disk at once under `sync =
    /// "always"`, or when it holds [`SPILL_BYTES`]; otherwise at the flush.
    fn spill_due(&self) -> bool {
        self.spooling() && (self.cfg.sync == SyncPolicy::Always || self.ring_bytes >= SPILL_BYTES)
    }

    /// Drops the oldest records until `room` more fit in the ring: counted,
    /// and folded into the gap record to come. A reconnect heartbeat whose
    /// upload is out is kept: whether the upstream has it is not known yet.
    fn trim(&mut self, room: usize) {
        while self.ring.len() + room > self.cfg.ring_records {
            let Some(i) = self.ring.iter().position(|r| !self.fresh.contains(&r.seq)) else {
                break;
            };
            let old = self.ring.remove(i).expect("found");
            self.ring_bytes -= old.body.len();
            self.dropped += 1;
            for d in Dest::ALL {
                if !self.done(d, old.seq) {
                    self.lost[d as usize] += 1;
                }
            }
            self.pending_gap = Some(Gap::absorb(self.pending_gap, &old, GapReason::RingFull));
        }
    }

    /// Turns dropped records into a gap record (once per delivery turn).
    pub fn report_drops(&mut self, now_ms: u64) {
        if let Some(g) = self.pending_gap.take() {
            self.push_gap(g, now_ms);
        }
    }

    /// The gap records in memory: (number, what it names).
    pub fn gaps_in_memory(&self) -> Vec<(u64, Gap)> {
        self.ring_gaps.iter().copied().collect()
    }

    /// New records go to disk: a destination failed since its last
    /// success, or a receiver drains its backlog.
    pub fn spooling(&self) -> bool {
        self.lanes.iter().any(|l| l.on && l.failing)
            || [Dest::RemoteWrite, Dest::Otlp]
                .into_iter()
                .any(|d| self.draining(d))
    }

    /// Receiver `d` (which reads strictly oldest first) has records on
    /// disk it still needs (written or syncing): a new record waits behind
    /// them for the whole drain, so it waits on disk, not in memory, where
    /// a crash would lose it for `d` (the upstream, which alternates
    /// backlog and ring, takes it at once).
    fn draining(&self, d: Dest) -> bool {
        self.has(d) && !self.lanes[d as usize].stuck && self.spool_records_of(d) > 0
    }

    /// Records in memory the upstream has not taken.
    pub fn ring_len(&self) -> usize {
        self.ring_len_of(self.primary())
    }

    pub fn ring_len_of(&self, d: Dest) -> usize {
        self.ring.iter().filter(|r| !self.done(d, r.seq)).count()
    }

    /// The destination the heartbeat's backlog figures are about: the
    /// first configured of the upstream, the remote-write receiver and the
    /// OTLP receiver.
    fn primary(&self) -> Dest {
        Dest::ALL
            .into_iter()
            .find(|d| self.has(*d))
            .unwrap_or(Dest::Upstream)
    }

    /// The spool's fsyncs so far (none without a spool).
    pub fn fsync_stats(&self) -> crate::uplink::spool::FsyncStats {
        self.spool.as_ref().map(|s| s.fsyncs).unwrap_or_default()
    }

    pub fn spool_records(&self) -> u64 {
        self.spool_records_of(self.primary())
    }

    pub fn spool_records_of(&self, d: Dest) -> u64 {
        // Records waiting for their sync are past every cursor.
        let on_disk =
            self.spool.as_ref().map_or(0, |s| s.backlog_of(d)) + self.syncing.len() as u64;
        on_disk.saturating_sub(self.lanes[d as usize].done_on_disk)
    }

    /// Records on disk past `d`'s cursor, those it already has included:
    /// what reading must still pass.
    fn spool_unread(&self, d: Dest) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.backlog_of(d))
    }

    /// Records not yet acknowledged, in memory and on disk.
    pub fn backlog_records(&self) -> u64 {
        self.backlog_of(self.primary())
    }

    pub fn backlog_of(&self, d: Dest) -> u64 {
        self.ring_len_of(d) as u64 + self.spool_records_of(d)
    }

    pub fn backlog_bytes(&self) -> u64 {
        let d = self.primary();
        let ring: usize = self
            .ring
            .iter()
            .filter(|r| !self.done(d, r.seq))
            .map(|r| r.body.len())
            .sum();
        ring as u64 + self.spool.as_ref().map_or(0, |s| s.backlog_bytes_of(d))
    }

    /// Time (Unix ms) of the oldest record not yet acknowledged.
    pub fn oldest_ms(&self) -> Option<u64> {
        self.oldest_ms_of(self.primary())
    }

    pub fn oldest_ms_of(&self, d: Dest) -> Option<u64> {
        let spool = self.spool.as_ref().and_then(|s| s.oldest_ms_of(d));
        let ring = self
            .ring
            .iter()
            .find(|r| !self.done(d, r.seq))
            .map(|r| r.time_ms);
        match (spool, ring) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next batch while the upstream answers: the backlog and the ring
    /// take turns. A batch holds only gap records or none.
    pub fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        now_ms: u64,
    ) -> Option<Outgoing> {
        const D: Dest = Dest::Upstream;
        let backlog = self.spool_unread(D) > 0;
        let ring_empty = self.ring_len_of(D) == 0;
        if backlog && (!self.lanes[D as usize].last_from_spool || ring_empty) {
            let before = self.spool_unread(D);
            match self.read_spool(D, max_records, max_bytes, now_ms) {
                Ok(Some(out)) => {
                    self.lanes[D as usize].last_from_spool = true;
                    return Some(out);
                }
                Ok(None) if self.spool_unread(D) < before => {
                    return self.next_batch(max_records, max_bytes, now_ms)
                }
                Ok(None) => {
                    // Never spin on a backlog that reading does not shrink.
                    log::error!("spool: the upstream backlog does not move; sending the ring");
                }
                Err(e) => self.disk_failed(format!("cannot read the spool: {e}")),
            }
        }
        self.lanes[D as usize].last_from_spool = false;
        let mut bytes = 0;
        // Gap records go in batches of their own (see delivery.rs).
        let mut todo = self.ring.iter().filter(|r| !self.done(D, r.seq)).peekable();
        let gaps = todo.peek()?.gap.is_some();
        let recs: Vec<Rec> = todo
            .take(max_records)
            .take_while(|r| r.gap.is_some() == gaps)
            .take_while(|r| {
                bytes += r.body.len() + 48;
                bytes <= max_bytes || bytes == r.body.len() + 48
            })
            .cloned()
            .collect();
        let last = recs.last()?.seq;
        Some(Outgoing {
            recs,
            source: Source::Ring(last),
        })
    }

    /// A batch of `d`'s backlog; `None` if what was read held nothing to
    /// send (damage, or records `d` already has): the cursor moved past it.
    fn read_spool(
        &mut self,
        d: Dest,
        max_records: usize,
        max_bytes: usize,
        now_ms: u64,
    ) -> std::io::Result<Option<Outgoing>> {
        let spool = self.spool.as_ref().expect("a backlog implies a spool");
        let done = &self.lanes[d as usize].done;
        let b = spool.read_for(d, max_records, max_bytes, &|seq| done.contains(seq))?;
        let lane = &mut self.lanes[d as usize];
        lane.passed_in_flight = b.passed;
        for g in &b.gaps {
            self.push_gap(*g, now_ms);
        }
        if b.recs.is_empty() {
            self.spool.as_mut().expect("checked").ack_for(d, b.end);
            self.passed(d);
            self.pop_done();
            return Ok(None);
        }
        Ok(Some(Outgoing {
            recs: b.recs,
            source: Source::Spool(b.end),
        }))
    }

    /// The next batch for a receiver (`d`: remote-write or OTLP), oldest
    /// first: its backlog on disk, then the ring.
    pub fn next_ordered(&mut self, d: Dest, max_records: usize, now_ms: u64) -> Option<Outgoing> {
        let name = d.as_str();
        while self.spool_unread(d) > 0 {
            let before = self.spool_unread(d);
            match self.read_spool(d, max_records, usize::MAX / 2, now_ms) {
                Ok(Some(out)) => {
                    self.lanes[d as usize].stuck = false;
                    return Some(out);
                }
                Ok(None) if self.spool_unread(d) < before => {
                    self.lanes[d as usize].stuck = false;
                    continue;
                }
                Ok(None) => {
                    // Never spin on a backlog that reading does not shrink.
                    log::error!("spool: the {name} backlog does not move; reading the ring");
                    self.lanes[d as usize].stuck = true;
                    break;
                }
                Err(e) => {
                    self.disk_failed(format!("cannot read the spool: {e}"));
                    return None;
                }
            }
        }
        // Records waiting for their sync are older than the ring's: the
        // ring waits for them (they are read from the spool once synced).
        if self.syncing.iter().any(|r| !self.done(d, r.seq)) {
            return None;
        }
        let recs: Vec<Rec> = self
            .ring
            .iter()
            .filter(|r| !self.done(d, r.seq))
            .take(max_records)
            .cloned()
            .collect();
        let last = recs.last()?.seq;
        Some(Outgoing {
            recs,
            source: Source::Ring(last),
        })
    }

    /// `d`'s cursor has moved past the records its last read passed over.
    fn passed(&mut self, d: Dest) {
        let lane = &mut self.lanes[d as usize];
        lane.done_on_disk = lane.done_on_disk.saturating_sub(lane.passed_in_flight);
        lane.passed_in_flight = 0;
        if self.syncing.is_empty() && self.spool.as_ref().is_none_or(|s| s.backlog_of(d) == 0) {
            self.lanes[d as usize].done_on_disk = 0;
        }
    }

    /// The upstream acknowledged `out`; the upstream is live again.
    pub fn acked(&mut self, out: &Outgoing) {
        self.acked_for(Dest::Upstream, out);
    }

    /// `d` acknowledged `out`: it is live again.
    pub fn acked_for(&mut self, d: Dest, out: &Outgoing) {
        self.lanes[d as usize].failing = false;
        match &out.source {
            Source::Ring(_) => {
                for r in &out.recs {
                    self.lanes[d as usize].done.insert(r.seq);
                }
                if d != Dest::Upstream {
                    // A receiver's lane reads in order: the spool first,
                    // the ring only once it has every record on disk, so
                    // every record up to here is delivered. A copy spooled
                    // for another destination (also one spilled while this
                    // batch was out, or still syncing) is passed over,
                    // also after a restart.
                    let max = self.lanes[d as usize].done.max();
                    if let (Some(s), Some(m)) = (self.spool.as_mut(), max) {
                        s.acked_up_to(d, m);
                    }
                }
            }
            Source::Spool(end) => {
                if let Some(s) = self.spool.as_mut() {
                    s.ack_for(d, *end);
                }
                self.passed(d);
            }
            Source::Fresh => {
                self.fresh.retain(|s| !out.recs.iter().any(|r| r.seq == *s));
                for r in &out.recs {
                    self.lanes[d as usize].done.insert(r.seq);
                    // Newer records may be in front of it: it leaves the
                    // ring here if no one else needs it.
                    if Dest::ALL.iter().all(|d| self.done(*d, r.seq)) {
                        if let Some(i) = self.ring.iter().position(|x| x.seq == r.seq) {
                            let gone = self.ring.remove(i).expect("found");
                            self.ring_bytes -= gone.body.len();
                        }
                    }
                }
            }
        }
        self.pop_done();
        self.sync_mirror(None);
    }

    /// An upload failed: from now on records go to disk.
    pub fn failed(&mut self, out: Outgoing) {
        self.failed_for(Dest::Upstream, out);
    }

    /// A send to `d` failed: from now on records go to disk.
    pub fn failed_for(&mut self, d: Dest, out: Outgoing) {
        if let Source::Fresh = out.source {
            // Already queued: the upstream reads it again like any other.
            self.fresh.retain(|s| !out.recs.iter().any(|r| r.seq == *s));
        }
        self.lanes[d as usize].failing = true;
        self.spill();
    }

    /// `d` cannot be reached, with its batch still in hand: from now on
    /// records go to disk.
    pub fn failing(&mut self, d: Dest) {
        self.lanes[d as usize].failing = true;
        self.spill();
    }

    /// From now on records go to disk (the upstream failed, or nothing can
    /// be sent); the ring goes first.
    pub fn spool_from_now(&mut self) {
        self.lanes[Dest::Upstream as usize].failing = true;
        self.spill();
    }

    /// Appends the ring to the spool (while spooling), and has it synced.
    /// Under a disk error the records stay in memory until [`DISK_RETRY`]
    /// has passed; while a sync is out they wait for it.
    pub fn spill(&mut self) {
        // Never past a reconnect heartbeat whose upload is out: on disk, an
        // acknowledged one would go to the upstream again after a crash;
        // left behind, it would reach the disk after newer records.
        let upto = self
            .ring
            .iter()
            .position(|r| self.fresh.contains(&r.seq))
            .unwrap_or(self.ring.len());
        if upto == 0 || !self.syncing.is_empty() {
            return;
        }
        if let Some(what) = crate::os::fs_helper::stuck_on(&self.cfg.dir) {
            self.disk_failed(format!(
                "not written: the spool's last {what} is still stuck in the kernel"
            ));
            return;
        }
        if self.disk_error.is_some() {
            if self.disk_retry.is_some_and(|t| Instant::now() < t) {
                return;
            }
            if self.spool.is_none() {
                match Spool::open(&self.cfg.dir, self.cfg.max_bytes, self.cfg.sync) {
                    Ok((s, _)) => self.spool = Some(s),
                    Err(e) => {
                        self.disk_failed(format!(
                            "cannot open the spool {}: {e}",
                            self.cfg.dir.display()
                        ));
                        return;
                    }
                }
            }
        }
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        let now_ms = self.ring[upto - 1].time_ms;
        let a = spool.append(&self.ring.make_contiguous()[..upto]);
        let unsynced = spool.unsynced();
        for r in self.ring.drain(..a.written) {
            self.ring_bytes -= r.body.len();
            for lane in self.lanes.iter_mut() {
                if lane.on && lane.done.contains(r.seq) {
                    lane.done_on_disk += 1;
                }
            }
            if unsynced {
                self.syncing.push(r);
            }
        }
        self.sync_mirror(None);
        let primary = self.primary().bit();
        for g in &a.gaps {
            if g.dests & primary != 0 {
                self.dropped += g.count;
            }
            for d in Dest::ALL {
                if g.dests & d.bit() != 0 {
                    self.lost[d as usize] += g.count;
                }
            }
        }
        match a.error {
            Some(e) => self.disk_failed(format!(
                "cannot write the spool {}: {e}",
                self.cfg.dir.display()
            )),
            None => {
                if let Some(why) = self.disk_error.take() {
                    log::info!("the spool is writable again (was: {why})");
                }
            }
        }
        for g in a.gaps {
            self.push_gap(g, now_ms);
        }
        if unsynced {
            match &self.sync_wake {
                Some(w) => w.notify(),
                None => self.sync_now(),
            }
        } else {
            self.spill_gaps();
        }
    }

    /// Gap records in the ring go to disk now, not at the next flush.
    fn spill_gaps(&mut self) {
        if !self.ring_gaps.is_empty() && self.disk_error.is_none() && self.spooling() {
            self.spill();
        }
    }

    /// The sync the spool wants, if it is not out already; tell
    /// [`Outbox::sync_done`] its outcome.
    pub fn sync_job(&mut self) -> Option<crate::os::fs_helper::Job> {
        if self.sync_out {
            return None;
        }
        let job = self.spool.as_ref()?.sync_job()?;
        self.sync_out = true;
        Some(job)
    }

    /// How the sync ended. Synced records leave memory; otherwise they go
    /// back to the ring (keeping its bound) and the spool is degraded.
    pub fn sync_done(&mut self, outcome: SyncOutcome) {
        self.sync_out = false;
        let Some(spool) = self.spool.as_mut() else {
            return;
        };
        match outcome {
            SyncOutcome::Done(took) => {
                spool.synced(took);
                self.syncing.clear();
            }
            SyncOutcome::Failed(why) => {
                spool.sync_failed();
                // The disk answers: the spool's files match it again now,
                // so a crash cannot bring back what it forgot.
                if let Err(e) = spool.repair_now() {
                    log::debug!("spool: cannot cut back after a failed sync: {e}");
                }
                self.give_back(why);
            }
            SyncOutcome::NoAnswer(why) => {
                spool.sync_failed();
                self.give_back(why);
            }
        }
        self.sync_mirror(None);
        if self.spill_due() {
            self.spill();
        } else {
            self.spill_gaps();
        }
    }

    /// After a failed sync: the records it was for go back to the ring
    /// (no destination read them from the spool: reading stops at the last
    /// sync), the ring keeps its bound, the spool is degraded.
    fn give_back(&mut self, why: String) {
        let back = std::mem::take(&mut self.syncing);
        for r in &back {
            for lane in self.lanes.iter_mut() {
                if lane.on && lane.done.contains(r.seq) {
                    lane.done_on_disk = lane.done_on_disk.saturating_sub(1);
                }
            }
            if let Some(g) = r.gap {
                let at = self.ring_gaps.partition_point(|(s, _)| *s < r.seq);
                self.ring_gaps.insert(at, (r.seq, g));
            }
            self.ring_bytes += r.body.len();
        }
        let mut all: Vec<Rec> = back.into_iter().chain(self.ring.drain(..)).collect();
        all.sort_by_key(|r| r.seq);
        self.ring = all.into();
        self.trim(0);
        self.disk_failed(format!(
            "cannot sync the spool {}: {why}",
            self.cfg.dir.display()
        ));
    }

    /// The sync that is out, run on this thread instead (no helper could
    /// take it).
    pub fn sync_in_place(&mut self) {
        self.sync_out = false;
        self.sync_now();
    }

    /// Runs the spool's sync on this thread, unless a helper is stuck on
    /// the spool's directory (the disk is hung: the records stay in
    /// memory).
    fn sync_now(&mut self) {
        if let Some(what) = crate::os::fs_helper::stuck_on(&self.cfg.dir) {
            return self.sync_done(SyncOutcome::still_stuck(&what));
        }
        match self.spool.as_ref().and_then(|s| s.sync_here()) {
            Some(Ok(took)) => self.sync_done(SyncOutcome::Done(took)),
            Some(Err(why)) => self.sync_done(SyncOutcome::Failed(why)),
            None => {}
        }
    }

    /// SIGHUP: try the disk again at the next spill instead of waiting.
    pub fn retry_disk_now(&mut self) {
        self.disk_retry = None;
    }

    fn disk_failed(&mut self, why: String) {
        if self.disk_error.as_deref() != Some(why.as_str()) {
            log::error!(
                "{why}; records stay in memory (at most {}) and the disk is tried again in {}s",
                self.cfg.ring_records,
                DISK_RETRY.as_secs()
            );
        }
        self.disk_error = Some(why);
        self.disk_retry = Some(Instant::now() + DISK_RETRY);
    }

    /// Shutdown: everything still in memory goes to disk, synced, and the
    /// next sequence number is saved as a clean stop.
    pub fn close(&mut self) {
        // An upload still out was cut: its heartbeat is kept like the rest.
        self.fresh.clear();
        for l in self.lanes.iter_mut() {
            l.failing |= l.on;
        }
        // The sync task has stopped: what it had out, and what follows, is
        // synced here.
        self.sync_wake = None;
        if !self.syncing.is_empty() {
            self.sync_now();
        }
        self.disk_retry = None;
        self.spill();
        // Drops not yet reported become a gap record that is kept too.
        self.report_drops(crate::os::clock::unix_millis(std::time::SystemTime::now()));
        self.spill();
        if let Some(s) = self.spool.as_mut() {
            s.save_acked_if_moved();
            if let Err(e) = s.sync() {
                log::error!("cannot sync the spool: {e}");
            }
        }
        if !self.ring.is_empty() {
            log::error!(
                "{} records could not be written to the spool and are lost at exit",
                self.ring.len()
            );
        }
        if let Err(e) = self.seq.close() {
            log::error!("cannot save the sequence number: {e}");
        }
    }
}
