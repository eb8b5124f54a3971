//! The disk spool: records the upstream has not acknowledged, kept in
//! segment files under `[spool] dir` while the upstream cannot be reached,
//! bounded by `max_bytes`, checksummed, and recovered on start.
//!
//! This file holds the spool and its reading and acknowledging; the frame
//! bytes and segment names are in [`frame`] (`docs/spool.md` is the same
//! format for a reader of the disk), opening and recovery in `recover.rs`,
//! appending in `write.rs`.
//!
//! # On-disk format (version 1)
//!
//! A segment is a file named after the sequence number of its first record,
//! twenty decimal digits and `.seg` (`00000000000000000042.seg`), so a
//! directory listing sorts oldest first. It holds:
//!
//! ```text
//! header, 16 bytes:
//!   0..8    magic  54 53 50 4F 4F 4C 00 01   ("TSPOOL", 0, format version 1)
//!   8..16   u64 LE the sequence number of the last record written to the
//!                  segment before this one (0 if none): a segment deleted
//!                  from the middle of the spool is noticed and reported.
//! then records, back to back:
//!   0..4    u32 LE payload length N, 1 ..= 1 MiB
//!   4..8    u32 LE CRC-32C (Castagnoli) of bytes 8 .. 16+N: the sequence
//!                  number and the payload
//!   8..16   u64 LE sequence number
//!   16..16+N       payload: the record body, UTF-8 JSON from `"time"` on
//!                  (see `uplink/record.rs`), no newline
//! ```
//!
//! `acked` in the same directory holds decimal lines: `acked=N` (every
//! spooled record up to seq N was acknowledged by the upstream),
//! `remote_acked=N` and `otlp_acked=N` (the same for the remote-write and
//! the OTLP receiver) and
//! `dropped=N` (records up to N were dropped and a gap record was queued
//! for them). It is written by rename, without fsync: losing it only means
//! records are sent again, and the receivers drop duplicates (the upstream
//! by agent id and seq, a Prometheus store by series and timestamp).
//!
//! # Destinations
//!
//! Each configured destination ([`Dest`]) has its own cursor: the
//! upstream, the remote-write and the OTLP receiver read the same
//! segments, each at its own pace. Records are appended in increasing sequence order; each backlog
//! drains oldest first, so what a destination has acknowledged is a prefix.
//! A segment is deleted only when every configured destination has
//! acknowledged every record in it, or when the spool is full and it is
//! the oldest (then a `spool_full` gap is returned, per destination, for
//! what each had not acknowledged).
//!
//! # Recovery
//!
//! [`Spool::open`] reads every segment and checks every frame. A frame whose
//! length is out of range or whose checksum fails is skipped: tether looks
//! for the next valid frame byte by byte and reports the sequence numbers in
//! between as a `spool_corrupt` gap. Bytes after the last valid frame (a
//! write torn by a crash) are truncated. A segment with a bad header is
//! removed and reported. Nothing here refuses to start.
//!
//! # fsync (`[spool] sync`)
//!
//! [`Spool::append`] only writes (into the page cache, which a killed
//! process does not lose). Under `batch` (default) and `always` the caller
//! then syncs what was written: [`Spool::sync_job`] names the segments
//! written since the last sync (and the directory, if a segment was made),
//! for a filesystem helper to fdatasync where a failing disk stalls only
//! the helper ([`Spool::sync_here`] runs it on the caller's thread);
//! [`Spool::synced`] or [`Spool::sync_failed`] is its outcome. Until then
//! the caller keeps the records in memory, and reading stops where the
//! last sync ended. A failed sync rolls the bookkeeping back to the last
//! sync (the records written since are no longer in the spool: the caller
//! still has them) and cuts the files back to match
//! ([`Spool::repair_now`], at the latest before the next write). `none`
//! never syncs (the kernel writes back within about 30 s).

pub mod frame;
mod recover;
mod sync;
pub use sync::sync_error;
mod write;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use frame::{
    encode, frame_at, parse_segment_name, segment_bytes, segment_name, Step, Walk, FRAME, HEADER,
    MAGIC, MAX_RECORD,
};

use crate::config::SyncPolicy;
use crate::uplink::record::{read_back, Gap, GapReason, Rec, ALL_DESTS};

/// A destination with its own cursor in the spool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// The control plane (`[upstream]`).
    Upstream = 0,
    /// The Prometheus remote-write receiver (`[remote_write]`).
    RemoteWrite = 1,
    /// The OpenTelemetry OTLP/HTTP receiver (`[otlp]`).
    Otlp = 2,
}

impl Dest {
    pub const ALL: [Dest; 3] = [Dest::Upstream, Dest::RemoteWrite, Dest::Otlp];

    pub fn as_str(self) -> &'static str {
        match self {
            Dest::Upstream => "upstream",
            Dest::RemoteWrite => "remote_write",
            Dest::Otlp => "otlp",
        }
    }

    /// The bit of this destination in [`Gap::dests`].
    pub fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Its receiver keeps duplicates (the control plane drops them by
    /// agent id and seq, an OTLP backend keeps both): its cursor is written
    /// at every acknowledgement. A Prometheus store drops a sample it has,
    /// so the remote-write receiver's is written every [`ACKED_EVERY`].
    fn exact(self) -> bool {
        self != Dest::RemoteWrite
    }

    /// Its key in the `acked` file.
    fn acked_key(self) -> &'static str {
        match self {
            Dest::Upstream => "acked",
            Dest::RemoteWrite => "remote_acked",
            Dest::Otlp => "otlp_acked",
        }
    }
}

/// One destination's place in the spool.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    pos: Pos,
    /// Every spooled record up to this seq is acknowledged.
    acked: u64,
    /// `acked` as the spool was opened: a record at or below it found past
    /// the cursor was delivered in an earlier run. Not the live `acked`,
    /// which a record that reached the disk after newer ones would be
    /// passed over by (the outbox appends in order; this guards it).
    floor: u64,
    /// Configured: its cursor holds segments.
    on: bool,
}

#[derive(Clone, Debug)]
struct Segment {
    /// From the file name.
    first_seq: u64,
    last_seq: u64,
    /// Valid records in the file.
    records: u64,
    /// File length.
    bytes: u64,
    /// Time of its first record (Unix ms).
    first_ms: u64,
    /// Gap records inside it, merged: if the segment is dropped, the ranges
    /// they reported are reported again.
    gaps: Option<Gap>,
}

/// The first unacknowledged record: in the oldest segment, at `offset`,
/// after `records` acknowledged ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    seg: u64,
    offset: u64,
    records: u64,
    /// The highest sequence number read up to here.
    last_seq: u64,
    /// The time of the record at this position, if it was seen.
    next_ms: Option<u64>,
}

impl Pos {
    /// The start of `seg` (or of the next segment to be made, if `None`),
    /// with everything up to `last_seq` behind it.
    fn start_of(seg: Option<&Segment>, last_seq: u64) -> Pos {
        Pos {
            seg: seg.map_or(0, |s| s.first_seq),
            offset: HEADER,
            records: 0,
            last_seq,
            next_ms: seg.map(|s| s.first_ms),
        }
    }
}

/// A batch read from the backlog, oldest first.
pub struct Batch {
    pub recs: Vec<Rec>,
    /// Damage found while reading (after recovery: the disk changed under us).
    pub gaps: Vec<Gap>,
    /// Pass to [`Spool::ack`] once the upstream acknowledged `recs`.
    pub end: Pos,
    /// Records passed over because `done` said the destination has them.
    pub passed: u64,
}

/// What [`Spool::open`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub segments: usize,
    pub records: u64,
    /// Bytes cut from the end of segments (torn writes).
    pub truncated: u64,
    pub gaps: Vec<Gap>,
    pub max_seq: u64,
}

/// The outcome of [`Spool::append`].
#[derive(Debug, Default)]
pub struct Appended {
    /// How many of the records are on disk (a prefix of those given).
    pub written: usize,
    /// Oldest segments dropped to make room.
    pub gaps: Vec<Gap>,
    pub error: Option<io::Error>,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    sync: SyncPolicy,
    segments: VecDeque<Segment>,
    /// The newest segment, open for appending.
    tail: Option<File>,
    cursors: [Cursor; 3],
    dropped: u64,
    /// The sequence number of the last record ever written (segment headers).
    last_written: u64,
    total_bytes: u64,
    /// The cursors moved since `acked` was last written, and when that was
    /// (see [`Spool::note_acked`]).
    acked_dirty: bool,
    acked_saved: Instant,
    /// How long its fsyncs took.
    pub fsyncs: FsyncStats,
    /// Written since the last sync returned.
    unsynced: Option<Unsynced>,
    /// What a failed sync left on disk past the bookkeeping: undone before
    /// the next write.
    repair: Option<Repair>,
}

/// The state at the last sync, to return to if the next one fails.
#[derive(Debug)]
struct Unsynced {
    /// The newest segment then (`None`: there was none).
    mark: Option<Segment>,
    last_written: u64,
    /// A segment file was made since: the directory needs a sync too.
    dir_entry: bool,
}

/// Files to cut back (segment, length) and remove after a failed sync.
#[derive(Debug, Default)]
struct Repair {
    cut: Option<(u64, u64)>,
    remove: Vec<u64>,
}

/// The spool's syncs so far (each one fdatasync per segment written since
/// the last, and the directory's fsync when a segment was made): how long
/// records waited in memory for the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FsyncStats {
    pub count: u64,
    pub total: Duration,
    pub max: Duration,
}

impl FsyncStats {
    /// Counts one sync that took `took`; a new longest over a second is
    /// logged: the disk under the spool is slow.
    pub fn record(&mut self, took: Duration) {
        self.count += 1;
        self.total += took;
        if took > self.max {
            self.max = took;
            if took > Duration::from_secs(1) {
                log::warn!(
                    "spool: one sync took {} ms: the disk under the spool is slow (records wait in memory meanwhile)",
                    took.as_millis()
                );
            }
        }
    }
}

/// The spool is read this much at a time (more for a larger record): what
/// a read holds in memory is its batch and one window, not the segment.
const READ_WINDOW: usize = 64 * 1024;

/// While a receiver (remote-write, OTLP) drains a backlog, its cursor is written
/// at most this often (and at once when a segment is deleted, with an
/// upstream acknowledgement, and at shutdown): after a crash, at most this
/// much of its backlog is sent again.
pub const ACKED_EVERY: Duration = Duration::from_secs(60);

impl Spool {
    /// Opens (creating it, mode 0700) and recovers the spool in `dir`, for
    /// the upstream alone.
    pub fn open(dir: &Path, max_bytes: u64, sync: SyncPolicy) -> io::Result<(Spool, Recovered)> {
        Spool::open_for(dir, max_bytes, sync, &[Dest::Upstream])
    }

    /// [`Spool::open`] for these destinations: each gets its cursor back.
    pub fn open_for(
        dir: &Path,
        max_bytes: u64,
        sync: SyncPolicy,
        dests: &[Dest],
    ) -> io::Result<(Spool, Recovered)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let (acked, dropped) = read_acked(dir);
        let cursor = |d: Dest| Cursor {
            pos: Pos::start_of(None, acked[d as usize]),
            acked: acked[d as usize],
            floor: acked[d as usize],
            on: dests.contains(&d),
        };
        let mut names: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| parse_segment_name(e.ok()?.file_name().to_str()?))
            .collect();
        names.sort_unstable();
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: segment_bytes(max_bytes),
            sync,
            segments: VecDeque::new(),
            tail: None,
            cursors: Dest::ALL.map(cursor),
            dropped,
            // Numbers up to `acked` and `dropped` were written here once,
            // even when no segment is left: the floor for the sequence
            // numbers and for the next segment's header.
            last_written: acked.into_iter().fold(dropped, u64::max),
            total_bytes: 0,
            acked_dirty: false,
            acked_saved: Instant::now(),
            fsyncs: FsyncStats::default(),
            unsynced: None,
            repair: None,
        };
        let mut rec = Recovered::default();
        let mut buf = Vec::new();
        for (i, first_seq) in names.iter().copied().enumerate() {
            let next_first = names.get(i + 1).copied();
            spool.recover_segment(first_seq, next_first, &mut buf, &mut rec)?;
        }
        // Leading segments that were wholly acknowledged before a crash.
        let floor = spool.on().map(|c| c.acked).min().unwrap_or(u64::MAX);
        while spool.segments.len() > 1 && spool.segments[0].last_seq <= floor {
            let s = spool.segments.pop_front().expect("checked");
            spool.total_bytes -= s.bytes;
            remove(&spool.dir.join(segment_name(s.first_seq)));
        }
        for d in Dest::ALL {
            let acked = spool.cursors[d as usize].acked;
            spool.cursors[d as usize].pos = spool.position(acked, &mut buf)?;
        }
        rec.segments = spool.segments.len();
        rec.records = dests
            .iter()
            .map(|d| spool.backlog_of(*d))
            .max()
            .unwrap_or(0);
        rec.max_seq = spool.last_written;
        Ok((spool, rec))
    }

    /// The segments as far as they are synced: the newest one at the last
    /// sync as it was then, none made since. Reading, backlogs and ages
    /// see only these, so no destination is sent a record that a failed
    /// sync could take back.
    fn readable(&self) -> impl Iterator<Item = Segment> + '_ {
        let mark = self.unsynced.as_ref().map(|u| u.mark.as_ref());
        self.segments.iter().map_while(move |s| match mark {
            None => Some(s.clone()),
            Some(None) => None,
            Some(Some(m)) if s.first_seq < m.first_seq => Some(s.clone()),
            Some(Some(m)) if s.first_seq == m.first_seq => Some(m.clone()),
            Some(Some(_)) => None,
        })
    }

    /// The configured destinations' cursors.
    fn on(&self) -> impl Iterator<Item = &Cursor> {
        self.cursors.iter().filter(|c| c.on)
    }

    /// Configures or unconfigures a destination (a reload); an
    /// unconfigured one holds no segment.
    pub fn set_on(&mut self, d: Dest, on: bool) {
        self.cursors[d as usize].on = on;
        self.collect();
    }

    /// The upstream's backlog.
    pub fn backlog_records(&self) -> u64 {
        self.backlog_of(Dest::Upstream)
    }

    /// Records not yet acknowledged by `d`.
    pub fn backlog_of(&self, d: Dest) -> u64 {
        self.past_cursor(d, |s| s.records, |p| p.records)
    }

    /// The upstream's backlog in bytes.
    pub fn backlog_bytes(&self) -> u64 {
        self.backlog_bytes_of(Dest::Upstream)
    }

    pub fn backlog_bytes_of(&self, d: Dest) -> u64 {
        self.past_cursor(d, |s| s.bytes, |p| p.offset)
    }

    /// `whole` of every segment from `d`'s cursor on, less `behind` of the
    /// cursor in its own segment.
    fn past_cursor(&self, d: Dest, whole: fn(&Segment) -> u64, behind: fn(&Pos) -> u64) -> u64 {
        let pos = &self.cursors[d as usize].pos;
        self.readable()
            .filter(|s| s.first_seq >= pos.seg)
            .map(|s| {
                if s.first_seq == pos.seg {
                    whole(&s).saturating_sub(behind(pos))
                } else {
                    whole(&s)
                }
            })
            .sum()
    }

    /// Bytes on disk, headers included.
    pub fn disk_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.backlog_records() == 0
    }

    /// Time of the oldest record the upstream has not acknowledged (Unix ms).
    pub fn oldest_ms(&self) -> Option<u64> {
        self.oldest_ms_of(Dest::Upstream)
    }

    pub fn oldest_ms_of(&self, d: Dest) -> Option<u64> {
        if self.backlog_of(d) == 0 {
            return None;
        }
        let pos = &self.cursors[d as usize].pos;
        pos.next_ms.or_else(|| {
            self.readable()
                .find(|s| s.first_seq >= pos.seg)
                .map(|s| s.first_ms)
        })
    }

    pub fn max_seq(&self) -> u64 {
        self.last_written
    }

    /// Reads up to `max_records` / `max_bytes` of payload from the
    /// upstream's backlog, stopping where gap records start or end (they
    /// travel alone).
    pub fn read(&self, max_records: usize, max_bytes: usize) -> io::Result<Batch> {
        self.read_for(Dest::Upstream, max_records, max_bytes, &|_| false)
    }

    /// [`Spool::read`] from `d`'s backlog, passing over the records `done`
    /// says `d` already has (it took them from memory before they were
    /// spooled for another destination).
    pub fn read_for(
        &self,
        d: Dest,
        max_records: usize,
        max_bytes: usize,
        done: &dyn Fn(u64) -> bool,
    ) -> io::Result<Batch> {
        let acked = self.cursors[d as usize].floor;
        let mut batch = Batch {
            recs: Vec::new(),
            gaps: Vec::new(),
            end: self.cursors[d as usize].pos,
            passed: 0,
        };
        let mut bytes = 0usize;
        let mut buf = Vec::new();
        for seg in self.readable() {
            let seg = &seg;
            if seg.first_seq < batch.end.seg {
                continue;
            }
            if seg.first_seq > batch.end.seg {
                batch.end = Pos::start_of(Some(seg), batch.end.last_seq);
            }
            // The segment is read in windows of READ_WINDOW (or one frame,
            // if larger), so what is held is the batch, not the segment.
            let mut start = batch.end.offset;
            let mut window = READ_WINDOW;
            let mut f: Option<File> = None;
            'windows: while start < seg.bytes {
                let left = (seg.bytes - start) as usize;
                let want = left.min(window);
                buf.resize(want, 0);
                let file = match f.as_mut() {
                    Some(file) => file,
                    None => f.insert(File::open(self.dir.join(segment_name(seg.first_seq)))?),
                };
                file.seek(SeekFrom::Start(start))?;
                file.read_exact(&mut buf)?;
                for step in (Walk { buf: &buf, at: 0 }) {
                    match step {
                        Step::Record { at, seq, payload } => {
                            let parsed = std::str::from_utf8(payload)
                                .ok()
                                .and_then(|b| Some((b, read_back(b)?)));
                            // Gap records go in batches of their own.
                            let kind_changes = batch.recs.first().is_some_and(|r| {
                                r.gap.is_some() != parsed.is_some_and(|(_, (_, g))| g.is_some())
                            });
                            let full = batch.recs.len() >= max_records
                                || kind_changes
                                || (!batch.recs.is_empty() && bytes + payload.len() > max_bytes);
                            if full {
                                batch.end.next_ms = parsed.map(|(_, (ms, _))| ms);
                                return Ok(batch);
                            }
                            batch.end.offset = start + (at + FRAME + payload.len()) as u64;
                            batch.end.records += 1;
                            let Some((body, (time_ms, gap))) = parsed else {
                                // A valid frame whose payload is not a record
                                // of ours: never send it.
                                batch.gaps.push(corrupt_gap(seq, seq));
                                continue;
                            };
                            let passed = done(seq);
                            if passed {
                                batch.passed += 1;
                            }
                            if (seq <= batch.end.last_seq && seq <= acked) || passed {
                                // Passed over, but behind the cursor like any
                                // other: the backlog count must not keep it.
                                continue;
                            }
                            bytes += payload.len();
                            batch.recs.push(Rec {
                                seq,
                                time_ms,
                                body: body.into(),
                                gap,
                            });
                            batch.end.last_seq = seq;
                        }
                        Step::Skipped { from, to } if to == buf.len() && want < left => {
                            // Cut by the window, or damage that may end past
                            // it: read again from there, with room for the
                            // frame that starts there (or twice the room, if
                            // nothing was read in this window).
                            let need = buf
                                .get(from..from + 4)
                                .map(|l| {
                                    u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize
                                })
                                .filter(|l| *l <= MAX_RECORD)
                                .map_or(0, |l| l + FRAME);
                            window = if from == 0 {
                                (window * 2).max(need)
                            } else {
                                READ_WINDOW.max(need)
                            };
                            start += from as u64;
                            continue 'windows;
                        }
                        Step::Skipped { from, to } => {
                            let next = frame_at(&buf, to).map(|(s, _)| s);
                            let last = next.map_or(seg.last_seq, |n| n.saturating_sub(1));
                            if last > batch.end.last_seq {
                                batch.gaps.push(corrupt_gap(batch.end.last_seq + 1, last));
                            }
                            log::error!(
                                "spool: segment {}: {} damaged bytes at offset {} skipped while reading",
                                seg.first_seq,
                                to - from,
                                start + from as u64
                            );
                            batch.end.offset = start + to as u64;
                            batch.end.last_seq = batch.end.last_seq.max(last);
                        }
                    }
                }
                start += want as u64;
                window = READ_WINDOW;
            }
        }
        batch.end.next_ms = None;
        Ok(batch)
    }

    /// Everything before `end` is acknowledged by the upstream.
    pub fn ack(&mut self, end: Pos) {
        self.ack_for(Dest::Upstream, end);
    }

    /// Everything before `end` is acknowledged by `d`: moves its cursor and
    /// deletes the segments wholly behind every configured cursor.
    pub fn ack_for(&mut self, d: Dest, end: Pos) {
        let c = &mut self.cursors[d as usize];
        c.pos = end;
        c.acked = c.acked.max(end.last_seq);
        let deleted = self.collect();
        // The upstream's and the OTLP receiver's cursors are written at
        // every acknowledgement (a crash sends them nothing twice); the
        // remote-write receiver's as [`Spool::note_acked`] says.
        self.note_acked(deleted || d.exact());
    }

    /// `d` has every record up to `seq` (it took them from memory): spooled
    /// copies of them are passed over, also after a restart. With nothing
    /// spooled this touches no disk: it is written with the next append.
    pub fn acked_up_to(&mut self, d: Dest, seq: u64) {
        let c = &mut self.cursors[d as usize];
        if seq > c.acked {
            c.acked = seq;
            if self.segments.is_empty() {
                self.acked_dirty = true;
            } else {
                self.note_acked(d.exact());
            }
        }
    }

    /// A cursor moved: `acked` is rewritten now if it must be (`now`:
    /// segments were deleted, or an exact destination's cursor moved) or the last
    /// write is [`ACKED_EVERY`] old; otherwise later. Losing the
    /// remote-write receiver's newer cursor to a crash only sends samples
    /// again, which a store drops or keeps as duplicates (`docs/spool.md`).
    fn note_acked(&mut self, now: bool) {
        if now || self.acked_saved.elapsed() >= ACKED_EVERY {
            self.save_acked();
        } else {
            self.acked_dirty = true;
        }
    }

    /// Writes `acked` if a cursor moved since it was written (shutdown).
    pub fn save_acked_if_moved(&mut self) {
        if self.acked_dirty {
            self.save_acked();
        }
    }

    /// Deletes the leading segments every configured cursor has passed, and
    /// moves cursors that pointed into them to what is left; whether any
    /// was deleted.
    fn collect(&mut self) -> bool {
        let mut deleted = false;
        while let Some(front) = self.segments.front() {
            let passed = |p: &Pos| {
                front.first_seq < p.seg || (front.first_seq == p.seg && p.offset >= front.bytes)
            };
            if self.on().count() == 0 || !self.on().all(|c| passed(&c.pos)) {
                break;
            }
            let s = self.segments.pop_front().expect("checked");
            self.total_bytes -= s.bytes;
            if self.segments.is_empty() {
                // The next record starts a new segment.
                self.tail = None;
            }
            remove(&self.dir.join(segment_name(s.first_seq)));
            deleted = true;
        }
        let front = self.segments.front().cloned();
        for c in self.cursors.iter_mut() {
            match &front {
                Some(f) if c.pos.seg < f.first_seq => {
                    c.pos = Pos::start_of(Some(f), c.pos.last_seq);
                }
                None => c.pos = Pos::start_of(None, c.pos.last_seq),
                _ => {}
            }
        }
        deleted
    }

    fn save_acked(&mut self) {
        self.acked_dirty = false;
        self.acked_saved = Instant::now();
        let tmp = self.dir.join("acked.tmp");
        let mut text = String::new();
        for d in Dest::ALL {
            text += &format!("{}={}\n", d.acked_key(), self.cursors[d as usize].acked);
        }
        text += &format!("dropped={}\n", self.dropped);
        // Not fsynced: a lost cursor costs duplicates, never records.
        let r = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| fs::rename(&tmp, self.dir.join("acked")));
        if let Err(e) = r {
            log::debug!("spool: cannot save the acknowledged position: {e}");
        }
    }

    /// fsyncs the open segment (shutdown under `sync = "none"`).
    pub fn sync(&mut self) -> io::Result<()> {
        let start = Instant::now();
        let r = match &self.tail {
            Some(f) => f.sync_data(),
            None => return Ok(()),
        };
        self.fsyncs.record(start.elapsed());
        r
    }
}

fn corrupt_gap(first: u64, last: u64) -> Gap {
    Gap {
        first,
        last,
        count: last.saturating_sub(first) + 1,
        reason: GapReason::SpoolCorrupt,
        dests: ALL_DESTS,
    }
}

/// Each destination's `acked` number and `dropped` (0 when missing).
fn read_acked(dir: &Path) -> ([u64; 3], u64) {
    let text = fs::read_to_string(dir.join("acked")).unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('=')?.trim().parse().ok())
            .unwrap_or(0)
    };
    (Dest::ALL.map(|d| field(d.acked_key())), field("dropped"))
}

fn remove(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("spool: cannot remove {}: {e}", path.display());
        }
    }
}
