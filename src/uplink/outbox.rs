//! Everything not yet acknowledged by the upstream, and the order it goes
//! out in: a bounded memory ring in front of the disk spool.
//!
//! - While the upstream answers, records wait in the ring and are uploaded
//!   from there: nothing touches the disk (appliances on flash storage).
//! - From the first failed upload ([`Outbox::failed`]), the ring's records,
//!   and from then on every new record at each flush (or at once under
//!   `sync = "always"`), are appended to the spool.
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

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::SpoolConfig;
use crate::config::SyncPolicy;
use crate::uplink::at_risk::{AtRisk, Mirror};
use crate::uplink::identity::Sequence;
use crate::uplink::record::{self, Body, Gap, GapReason, Rec};
use crate::uplink::spool::{Pos, Spool};

pub const DISK_RETRY: Duration = Duration::from_secs(30);

/// Where a batch came from, so its acknowledgement removes the right records.
#[derive(Debug)]
pub enum Source {
    /// The front of the ring, up to this sequence number.
    Ring(u64),
    /// The spool's backlog, up to this position.
    Spool(Pos),
    /// Records made for this upload only (the reconnect heartbeat): queued
    /// if it fails.
    Fresh,
}

pub struct Outgoing {
    pub recs: Vec<Rec>,
    pub source: Source,
}

pub struct Outbox {
    ring: VecDeque<Rec>,
    ring_bytes: usize,
    cfg: SpoolConfig,
    spool: Option<Spool>,
    /// Why the spool cannot be used right now: `spool_degraded`.
    pub disk_error: Option<String>,
    disk_retry: Option<Instant>,
    /// The upstream has failed since its last success: new records go to disk.
    spooling: bool,
    /// Records dropped from the ring, not yet reported by a gap record.
    pending_gap: Option<Gap>,
    pub seq: Sequence,
    /// Records dropped (ring and spool), for `/metrics`.
    pub dropped: u64,
    last_from_spool: bool,
    /// What only memory holds, mirrored for the next run after a crash
    /// (`None` if the file could not be made: a crash then reports the
    /// lease window).
    mirror: Option<AtRisk>,
    /// Records made for the upload in flight and kept nowhere else.
    fresh: Vec<u64>,
    /// The gap records in the ring (number, range), oldest first.
    ring_gaps: VecDeque<(u64, Gap)>,
}

impl Outbox {
    /// Opens the spool and the sequence numbers; the gaps recovery found are
    /// queued as records.
    pub fn open(cfg: &SpoolConfig, state_dir: &Path, fresh_identity: bool, now_ms: u64) -> Outbox {
        let (spool, disk_error, mut gaps) = match Spool::open(&cfg.dir, cfg.max_bytes, cfg.sync) {
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
            spooling: false,
            pending_gap: None,
            seq,
            dropped: 0,
            last_from_spool: false,
            mirror,
            fresh: Vec::new(),
            ring_gaps: VecDeque::new(),
        };
        out.sync_mirror(None);
        for g in gaps {
            out.push_gap(g, now_ms);
        }
        out
    }

    /// Numbers and queues a record.
    pub fn push(&mut self, body: Body) {
        let rec = self.make(body, None);
        self.queue(rec);
    }

    /// Queues a gap record for `g`.
    pub fn push_gap(&mut self, g: Gap, now_ms: u64) {
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

    /// Numbers a record for an upload of its own (the reconnect heartbeat).
    pub fn make_fresh(&mut self, body: Body) -> Outgoing {
        let rec = self.make(body, None);
        self.fresh.push(rec.seq);
        Outgoing {
            recs: vec![rec],
            source: Source::Fresh,
        }
    }

    /// Writes what memory holds to the mirror: the ring, the fresh records,
    /// `extra` (a number just handed out), and the ranges that gap records
    /// in the ring and unreported drops name.
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
        for s in self.fresh.iter().copied().chain(extra.map(|e| e.0)) {
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

    /// Puts a record in the ring at its place by sequence number (a failed
    /// reconnect heartbeat is older than what arrived during its upload).
    pub fn queue(&mut self, rec: Rec) {
        while self.ring.len() >= self.cfg.ring_records {
            let Some(old) = self.ring.pop_front() else {
                break;
            };
            self.ring_bytes -= old.body.len();
            self.dropped += 1;
            self.pending_gap = Some(Gap::absorb(self.pending_gap, &old, GapReason::RingFull));
        }
        self.ring_bytes += rec.body.len();
        self.fresh.retain(|s| *s != rec.seq);
        if let Some(g) = rec.gap {
            let at = self.ring_gaps.partition_point(|(s, _)| *s < rec.seq);
            self.ring_gaps.insert(at, (rec.seq, g));
        }
        let at = self.ring.partition_point(|r| r.seq < rec.seq);
        self.ring.insert(at, rec);
        self.sync_mirror(None);
        if self.spooling && self.cfg.sync == SyncPolicy::Always {
            self.spill();
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

    pub fn spooling(&self) -> bool {
        self.spooling
    }

    pub fn ring_len(&self) -> usize {
        self.ring.len()
    }

    pub fn spool_records(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.backlog_records())
    }

    /// Records not yet acknowledged, in memory and on disk.
    pub fn backlog_records(&self) -> u64 {
        self.ring.len() as u64 + self.spool_records()
    }

    pub fn backlog_bytes(&self) -> u64 {
        self.ring_bytes as u64 + self.spool.as_ref().map_or(0, |s| s.backlog_bytes())
    }

    /// Time (Unix ms) of the oldest record not yet acknowledged.
    pub fn oldest_ms(&self) -> Option<u64> {
        let spool = self.spool.as_ref().and_then(|s| s.oldest_ms());
        let ring = self.ring.front().map(|r| r.time_ms);
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
        let backlog = self.spool_records() > 0;
        if backlog && (!self.last_from_spool || self.ring.is_empty()) {
            let spool = self.spool.as_ref().expect("backlog implies a spool");
            match spool.read(max_records, max_bytes) {
                Ok(b) => {
                    for g in &b.gaps {
                        self.push_gap(*g, now_ms);
                    }
                    self.last_from_spool = true;
                    if b.recs.is_empty() {
                        // Only damage was found: skip past it.
                        self.spool.as_mut().expect("checked").ack(b.end);
                        return self.next_batch(max_records, max_bytes, now_ms);
                    }
                    return Some(Outgoing {
                        recs: b.recs,
                        source: Source::Spool(b.end),
                    });
                }
                Err(e) => self.disk_failed(format!("cannot read the spool: {e}")),
            }
        }
        self.last_from_spool = false;
        let mut bytes = 0;
        // Gap records go in batches of their own (see delivery.rs).
        let gaps = self.ring.front()?.gap.is_some();
        let recs: Vec<Rec> = self
            .ring
            .iter()
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

    /// The upstream acknowledged `out`; the upstream is live again.
    pub fn acked(&mut self, out: &Outgoing) {
        self.spooling = false;
        match &out.source {
            Source::Ring(last) => {
                while self.ring.front().is_some_and(|r| r.seq <= *last) {
                    let r = self.ring.pop_front().expect("checked");
                    self.ring_bytes -= r.body.len();
                }
            }
            Source::Spool(end) => {
                if let Some(s) = self.spool.as_mut() {
                    s.ack(*end);
                }
            }
            Source::Fresh => {
                self.fresh.retain(|s| !out.recs.iter().any(|r| r.seq == *s));
            }
        }
        self.sync_mirror(None);
    }

    /// An upload failed: from now on records go to disk.
    pub fn failed(&mut self, out: Outgoing) {
        if let Source::Fresh = out.source {
            for r in out.recs {
                self.queue(r);
            }
        }
        self.spool_from_now();
    }

    /// From now on records go to disk (the upstream failed, or nothing can
    /// be sent); the ring goes first.
    pub fn spool_from_now(&mut self) {
        self.spooling = true;
        self.spill();
    }

    /// Appends the ring to the spool (while spooling). Under a disk error
    /// the records stay in memory until [`DISK_RETRY`] has passed.
    pub fn spill(&mut self) {
        if self.ring.is_empty() {
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
        let now_ms = self.ring.back().map_or(0, |r| r.time_ms);
        let a = spool.append(self.ring.make_contiguous());
        for r in self.ring.drain(..a.written) {
            self.ring_bytes -= r.body.len();
        }
        self.sync_mirror(None);
        for g in &a.gaps {
            self.dropped += g.count;
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
        let dropped_more = !a.gaps.is_empty();
        for g in a.gaps {
            self.push_gap(g, now_ms);
        }
        if dropped_more && self.disk_error.is_none() {
            // The gap records go to disk now, not at the next flush.
            self.spill();
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
        self.spooling = true;
        self.disk_retry = None;
        self.spill();
        // Drops not yet reported become a gap record that is kept too.
        self.report_drops(crate::os::clock::unix_millis(std::time::SystemTime::now()));
        self.spill();
        if let Some(s) = &self.spool {
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
