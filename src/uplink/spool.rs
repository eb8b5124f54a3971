//! The disk spool: records the upstream has not acknowledged, kept in
//! segment files under `[spool] dir` while the upstream cannot be reached,
//! bounded by `max_bytes`, checksummed, and recovered on start.
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
//!                  (see record.rs), no newline
//! ```
//!
//! `acked` in the same directory holds two decimal lines, `acked=N` (every
//! spooled record up to seq N was acknowledged) and `dropped=N` (records up
//! to N were dropped and a gap record was queued for them). It is written by
//! rename, without fsync: losing it only means records are sent again, and
//! the receiver drops duplicates by (agent id, seq).
//!
//! Records are appended in increasing sequence order; the backlog drains
//! oldest first, so what has been acknowledged is always a prefix. A segment
//! is deleted only when every record in it is acknowledged, or when the
//! spool is full and it is the oldest (then a `spool_full` gap is returned
//! for its unacknowledged records).
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
//! `batch` (default) fdatasyncs once per append call, `always` after every
//! record, `none` never (the kernel writes back within about 30 s). A new
//! segment's directory entry is synced under `batch` and `always`.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::SyncPolicy;
use crate::uplink::crc32c;
use crate::uplink::record::{read_back, Gap, GapReason, Rec};

pub const MAGIC: [u8; 8] = *b"TSPOOL\x00\x01";
pub const HEADER: u64 = 16;
pub const FRAME: usize = 16;
pub const MAX_RECORD: usize = 1 << 20;

/// Appends one frame for (`seq`, `payload`) to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let seq_bytes = seq.to_le_bytes();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::checksum(&[&seq_bytes, payload]).to_le_bytes());
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(payload);
}

/// The frame at `buf[at..]` if it is whole and its checksum holds:
/// (sequence number, payload).
fn frame_at(buf: &[u8], at: usize) -> Option<(u64, &[u8])> {
    let head = buf.get(at..at + FRAME)?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = buf.get(at + FRAME..at + FRAME + len)?;
    if crc32c::checksum(&[&head[8..16], payload]) != crc {
        return None;
    }
    Some((u64::from_le_bytes(head[8..16].try_into().ok()?), payload))
}

/// One step of walking a segment's bytes.
enum Step<'b> {
    Record {
        at: usize,
        seq: u64,
        payload: &'b [u8],
    },
    /// Bytes `from..to` hold no valid frame; `to` is where the next valid
    /// frame starts, or the end of the buffer.
    Skipped { from: usize, to: usize },
}

/// Walks frames from `at`, resynchronising after damage.
struct Walk<'b> {
    buf: &'b [u8],
    at: usize,
}

impl<'b> Iterator for Walk<'b> {
    type Item = Step<'b>;

    fn next(&mut self) -> Option<Step<'b>> {
        if self.at >= self.buf.len() {
            return None;
        }
        let from = self.at;
        if let Some((seq, payload)) = frame_at(self.buf, from) {
            self.at = from + FRAME + payload.len();
            return Some(Step::Record {
                at: from,
                seq,
                payload,
            });
        }
        let to = (from + 1..self.buf.len())
            .find(|p| frame_at(self.buf, *p).is_some())
            .unwrap_or(self.buf.len());
        self.at = to;
        Some(Step::Skipped { from, to })
    }
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
    cursor: Pos,
    acked: u64,
    dropped: u64,
    /// The sequence number of the last record ever written (segment headers).
    last_written: u64,
    total_bytes: u64,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// The segment size for a spool bound: 1/16 of it, between 4 KiB and 4 MiB.
pub fn segment_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 16).clamp(4096, 4 << 20)
}

impl Spool {
    /// Opens (creating it, mode 0700) and recovers the spool in `dir`.
    pub fn open(dir: &Path, max_bytes: u64, sync: SyncPolicy) -> io::Result<(Spool, Recovered)> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let (acked, dropped) = read_acked(dir);
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
            cursor: Pos::start_of(None, acked),
            acked,
            dropped,
            // Numbers up to `acked` and `dropped` were written here once,
            // even when no segment is left: the floor for the sequence
            // numbers and for the next segment's header.
            last_written: acked.max(dropped),
            total_bytes: 0,
        };
        let mut rec = Recovered::default();
        let mut buf = Vec::new();
        for (i, first_seq) in names.iter().copied().enumerate() {
            let next_first = names.get(i + 1).copied();
            spool.recover_segment(first_seq, next_first, &mut buf, &mut rec)?;
        }
        // Leading segments that were wholly acknowledged before a crash.
        while spool.segments.len() > 1 && spool.segments[0].last_seq <= acked {
            let s = spool.segments.pop_front().expect("checked");
            spool.total_bytes -= s.bytes;
            remove(&spool.dir.join(segment_name(s.first_seq)));
        }
        spool.position_cursor(&mut buf)?;
        rec.segments = spool.segments.len();
        rec.records = spool.backlog_records();
        rec.max_seq = spool.last_written;
        Ok((spool, rec))
    }

    fn recover_segment(
        &mut self,
        first_seq: u64,
        next_first: Option<u64>,
        buf: &mut Vec<u8>,
        rec: &mut Recovered,
    ) -> io::Result<()> {
        let path = self.dir.join(segment_name(first_seq));
        buf.clear();
        File::open(&path)?.read_to_end(buf)?;
        let floor = self.acked.max(self.dropped).max(self.last_written);
        if buf.len() < HEADER as usize || buf[..8] != MAGIC {
            // Not a segment we can read: report what it must have held.
            let last = next_first.map_or(first_seq, |n| n.saturating_sub(1).max(first_seq));
            if last > floor {
                rec.gaps.push(Gap {
                    first: first_seq.max(floor + 1),
                    last,
                    count: last - first_seq.max(floor + 1) + 1,
                    reason: GapReason::SpoolCorrupt,
                });
            }
            self.last_written = self.last_written.max(last);
            log::error!(
                "spool: {} has no valid segment header; removed",
                path.display()
            );
            remove(&path);
            return Ok(());
        }
        let mut prev_last = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
        if prev_last >= first_seq && first_seq > 0 {
            // The field has no checksum of its own; the segment's name (its
            // first record) bounds it: what came before is below it.
            log::error!(
                "spool: {}: its header names record {prev_last} before it, which cannot be: ignored",
                path.display()
            );
            prev_last = floor.min(first_seq - 1);
        }
        if prev_last > floor {
            // The segment before this one is gone.
            let first = floor + 1;
            rec.gaps.push(Gap {
                first,
                last: prev_last,
                count: prev_last - first + 1,
                reason: GapReason::SpoolCorrupt,
            });
            log::error!(
                "spool: records {first}-{prev_last} are missing (a segment before {} was removed)",
                path.display()
            );
        }
        let mut seg = Segment {
            first_seq,
            last_seq: prev_last,
            records: 0,
            bytes: HEADER,
            first_ms: 0,
            gaps: None,
        };
        let mut last_good = prev_last.max(floor);
        let mut pending_skip: Option<usize> = None;
        for step in (Walk {
            buf,
            at: HEADER as usize,
        }) {
            match step {
                Step::Record { at, seq, payload } => {
                    if let Some(from) = pending_skip.take() {
                        if seq > last_good + 1 {
                            rec.gaps.push(corrupt_gap(last_good + 1, seq - 1));
                        }
                        log::error!(
                            "spool: {}: {} damaged bytes at offset {from} skipped",
                            path.display(),
                            at - from
                        );
                    }
                    let (ms, gap) = std::str::from_utf8(payload)
                        .ok()
                        .and_then(read_back)
                        .unwrap_or((0, None));
                    if seg.records == 0 {
                        seg.first_ms = ms;
                    }
                    if let Some(g) = gap {
                        seg.gaps = Some(seg.gaps.map_or(g, |a| a.merge(g)));
                    }
                    seg.records += 1;
                    seg.last_seq = seq;
                    seg.bytes = (at + FRAME + payload.len()) as u64;
                    last_good = last_good.max(seq);
                }
                Step::Skipped { from, .. } => pending_skip = Some(from),
            }
        }
        if let Some(from) = pending_skip {
            // Damage up to the end: a torn write, or a damaged last record.
            let cut = buf.len() - from;
            rec.truncated += cut as u64;
            let torn_seq = buf
                .get(from + 8..from + 16)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
            match (torn_seq, next_first) {
                // Damage before the next segment: all numbers in between.
                (_, Some(n)) if n > last_good + 1 => {
                    rec.gaps.push(corrupt_gap(last_good + 1, n - 1));
                }
                // The newest write, torn: its header still names it.
                (Some(s), None) if s > last_good && s < last_good.saturating_add(1 << 32) => {
                    rec.gaps.push(corrupt_gap(s, s));
                }
                _ => {}
            }
            log::warn!(
                "spool: {}: {cut} bytes after the last whole record truncated",
                path.display()
            );
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(from as u64)?;
        }
        self.last_written = self.last_written.max(seg.last_seq);
        self.total_bytes += seg.bytes;
        self.segments.push_back(seg);
        Ok(())
    }

    /// Puts the cursor on the first record after `acked` in the oldest segment.
    fn position_cursor(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let Some(first) = self.segments.front() else {
            return Ok(());
        };
        self.cursor = Pos::start_of(Some(first), self.acked);
        if first.first_seq > self.acked {
            return Ok(());
        }
        buf.clear();
        File::open(self.dir.join(segment_name(first.first_seq)))?.read_to_end(buf)?;
        for step in (Walk {
            buf,
            at: HEADER as usize,
        }) {
            if let Step::Record { at, seq, payload } = step {
                if seq > self.acked {
                    self.cursor.next_ms = std::str::from_utf8(payload)
                        .ok()
                        .and_then(read_back)
                        .map(|(ms, _)| ms);
                    break;
                }
                self.cursor.offset = (at + FRAME + payload.len()) as u64;
                self.cursor.records += 1;
            }
        }
        Ok(())
    }

    pub fn backlog_records(&self) -> u64 {
        let total: u64 = self.segments.iter().map(|s| s.records).sum();
        total.saturating_sub(self.cursor.records)
    }

    pub fn backlog_bytes(&self) -> u64 {
        if self.segments.is_empty() {
            0
        } else {
            self.total_bytes.saturating_sub(self.cursor.offset)
        }
    }

    /// Bytes on disk, headers included.
    pub fn disk_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.backlog_records() == 0
    }

    /// Time of the oldest unacknowledged record (Unix ms).
    pub fn oldest_ms(&self) -> Option<u64> {
        if self.is_empty() {
            return None;
        }
        self.cursor
            .next_ms
            .or_else(|| self.segments.front().map(|s| s.first_ms))
    }

    pub fn max_seq(&self) -> u64 {
        self.last_written
    }

    /// Appends `recs` (in increasing sequence order), dropping the oldest
    /// segments if the spool would exceed `max_bytes`.
    pub fn append(&mut self, recs: &[Rec]) -> Appended {
        let mut out = Appended::default();
        let mut frames = Vec::new();
        let mut pending: Vec<&Rec> = Vec::new();
        for r in recs {
            if r.body.is_empty() || r.body.len() > MAX_RECORD {
                out.error = Some(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "record size out of range",
                ));
                break;
            }
            let len = (FRAME + r.body.len()) as u64;
            let buffered = frames.len() as u64;
            let mut new_segment = self.segments.back().is_none_or(|s| {
                (s.records > 0 || buffered > 0) && s.bytes + buffered + len > self.segment_bytes
            });
            let header = if new_segment { HEADER } else { 0 };
            if self.total_bytes + buffered + len + header > self.max_bytes {
                if let Err(e) = self.write_out(&mut frames, &mut pending, &mut out) {
                    out.error = Some(e);
                    break;
                }
                while !self.segments.is_empty() && self.total_bytes + len + HEADER > self.max_bytes
                {
                    out.gaps.extend(self.drop_oldest());
                }
                new_segment |= self.segments.is_empty();
            }
            let opened = if new_segment {
                self.write_out(&mut frames, &mut pending, &mut out)
                    .and_then(|()| self.open_segment(r))
            } else if self.tail.is_none() {
                self.reopen_tail()
            } else {
                Ok(())
            };
            if let Err(e) = opened {
                out.error = Some(e);
                break;
            }
            encode(&mut frames, r.seq, r.body.as_bytes());
            pending.push(r);
            if self.sync == SyncPolicy::Always {
                if let Err(e) = self.write_out(&mut frames, &mut pending, &mut out) {
                    out.error = Some(e);
                    break;
                }
            }
        }
        if out.error.is_none() {
            if let Err(e) = self.write_out(&mut frames, &mut pending, &mut out) {
                out.error = Some(e);
            }
        }
        if !out.gaps.is_empty() {
            self.save_acked();
        }
        out
    }

    /// Writes the frames buffered for the tail and syncs per the policy. On
    /// failure the tail is cut back to its last good length.
    fn write_out(
        &mut self,
        frames: &mut Vec<u8>,
        pending: &mut Vec<&Rec>,
        out: &mut Appended,
    ) -> io::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let (Some(file), Some(seg)) = (self.tail.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("spool: no open segment"));
        };
        let result = file.write_all(frames).and_then(|()| {
            if self.sync == SyncPolicy::Never {
                Ok(())
            } else {
                file.sync_data()
            }
        });
        if let Err(e) = result {
            let _ = file.set_len(seg.bytes);
            self.tail = None;
            frames.clear();
            pending.clear();
            return Err(e);
        }
        for r in pending.iter() {
            if seg.records == 0 {
                seg.first_ms = r.time_ms;
                if self.cursor.seg == seg.first_seq && self.cursor.records == 0 {
                    self.cursor.next_ms = Some(r.time_ms);
                }
            }
            if let Some(g) = r.gap {
                seg.gaps = Some(seg.gaps.map_or(g, |a| a.merge(g)));
            }
            seg.records += 1;
            seg.last_seq = r.seq;
        }
        let n = frames.len() as u64;
        seg.bytes += n;
        self.total_bytes += n;
        self.last_written = seg.last_seq;
        out.written += pending.len();
        frames.clear();
        pending.clear();
        Ok(())
    }

    /// Opens the newest segment again for appending (after a write error).
    fn reopen_tail(&mut self) -> io::Result<()> {
        let seg = self.segments.back().expect("called with a segment");
        let f = OpenOptions::new()
            .append(true)
            .open(self.dir.join(segment_name(seg.first_seq)))?;
        self.tail = Some(f);
        Ok(())
    }

    /// Starts a new segment whose first record is `r`.
    fn open_segment(&mut self, r: &Rec) -> io::Result<()> {
        self.tail = None;
        let path = self.dir.join(segment_name(r.seq));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&self.last_written.to_le_bytes());
        if let Err(e) = f.write_all(&header) {
            remove(&path);
            return Err(e);
        }
        if self.sync != SyncPolicy::Never {
            f.sync_data()?;
            File::open(&self.dir)?.sync_all()?;
        }
        self.segments.push_back(Segment {
            first_seq: r.seq,
            last_seq: self.last_written,
            records: 0,
            bytes: HEADER,
            first_ms: r.time_ms,
            gaps: None,
        });
        if self.segments.len() == 1 {
            self.cursor = Pos::start_of(self.segments.front(), self.acked);
        }
        self.total_bytes += HEADER;
        self.tail = Some(f);
        Ok(())
    }

    /// Drops the oldest segment; the gap for what in it was not acknowledged.
    fn drop_oldest(&mut self) -> Option<Gap> {
        let s = self.segments.pop_front()?;
        if self.segments.is_empty() {
            self.tail = None;
        }
        self.total_bytes -= s.bytes;
        remove(&self.dir.join(segment_name(s.first_seq)));
        let unacked = if self.cursor.seg == s.first_seq {
            s.records.saturating_sub(self.cursor.records)
        } else {
            s.records
        };
        let first = if self.cursor.seg == s.first_seq && self.cursor.records > 0 {
            self.cursor.last_seq + 1
        } else {
            s.first_seq
        };
        self.dropped = self.dropped.max(s.last_seq);
        self.cursor = Pos::start_of(self.segments.front(), s.last_seq);
        let own = (unacked > 0).then_some(Gap {
            first,
            last: s.last_seq,
            count: unacked,
            reason: GapReason::SpoolFull,
        });
        let gap = match (own, s.gaps) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        };
        if let Some(g) = gap {
            log::warn!("spool full ({} bytes): dropped {g}", self.max_bytes);
        }
        gap
    }

    /// Reads up to `max_records` / `max_bytes` of payload from the backlog,
    /// stopping where gap records start or end (they travel alone).
    pub fn read(&self, max_records: usize, max_bytes: usize) -> io::Result<Batch> {
        let mut batch = Batch {
            recs: Vec::new(),
            gaps: Vec::new(),
            end: self.cursor,
        };
        let mut bytes = 0usize;
        let mut buf = Vec::new();
        for seg in self.segments.iter() {
            if seg.first_seq < batch.end.seg {
                continue;
            }
            if seg.first_seq > batch.end.seg {
                batch.end = Pos::start_of(Some(seg), batch.end.last_seq);
            }
            let start = batch.end.offset;
            if start >= seg.bytes {
                continue;
            }
            // Read what the limits can take, plus one frame header to learn
            // the next record's time.
            let want = ((seg.bytes - start) as usize).min(max_bytes.saturating_add(64 * 1024));
            buf.resize(want, 0);
            let mut f = File::open(self.dir.join(segment_name(seg.first_seq)))?;
            f.seek(SeekFrom::Start(start))?;
            f.read_exact(&mut buf)?;
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
                        let Some((body, (time_ms, gap))) = parsed else {
                            // A valid frame whose payload is not a record of
                            // ours: never send it.
                            batch.gaps.push(corrupt_gap(seq, seq));
                            batch.end.offset = start + (at + FRAME + payload.len()) as u64;
                            continue;
                        };
                        if seq <= batch.end.last_seq && seq <= self.acked {
                            batch.end.offset = start + (at + FRAME + payload.len()) as u64;
                            continue;
                        }
                        bytes += payload.len();
                        batch.recs.push(Rec {
                            seq,
                            time_ms,
                            body: body.into(),
                            gap,
                        });
                        batch.end.offset = start + (at + FRAME + payload.len()) as u64;
                        batch.end.records += 1;
                        batch.end.last_seq = seq;
                    }
                    Step::Skipped { from, to } => {
                        if to == buf.len() && want < (seg.bytes - start) as usize {
                            // Cut by our own read window, not damage.
                            batch.end.next_ms = None;
                            return Ok(batch);
                        }
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
            if want < (seg.bytes - start) as usize {
                return Ok(batch);
            }
        }
        batch.end.next_ms = None;
        Ok(batch)
    }

    /// Everything before `end` is acknowledged: moves the cursor and deletes
    /// the segments wholly behind it.
    pub fn ack(&mut self, end: Pos) {
        while let Some(front) = self.segments.front() {
            let behind = front.first_seq < end.seg
                || (front.first_seq == end.seg
                    && end.offset >= front.bytes
                    && self.segments.len() > 1);
            if !behind {
                break;
            }
            let s = self.segments.pop_front().expect("checked");
            self.total_bytes -= s.bytes;
            remove(&self.dir.join(segment_name(s.first_seq)));
        }
        match self.segments.front() {
            Some(front) if front.first_seq == end.seg => {
                if end.offset >= front.bytes && self.segments.len() == 1 {
                    // The newest segment is all acknowledged: delete it too;
                    // the next record starts a new one.
                    let s = self.segments.pop_front().expect("checked");
                    self.total_bytes -= s.bytes;
                    self.tail = None;
                    remove(&self.dir.join(segment_name(s.first_seq)));
                    self.cursor = Pos::start_of(None, end.last_seq);
                } else {
                    self.cursor = end;
                }
            }
            Some(front) => self.cursor = Pos::start_of(Some(front), end.last_seq),
            None => {}
        }
        self.acked = self.acked.max(end.last_seq);
        self.save_acked();
    }

    fn save_acked(&self) {
        let tmp = self.dir.join("acked.tmp");
        let text = format!("acked={}\ndropped={}\n", self.acked, self.dropped);
        let r = fs::write(&tmp, text).and_then(|()| fs::rename(&tmp, self.dir.join("acked")));
        if let Err(e) = r {
            log::debug!("spool: cannot save the acknowledged position: {e}");
        }
    }

    /// fsyncs the open segment (shutdown under `sync = "none"`).
    pub fn sync(&self) -> io::Result<()> {
        match &self.tail {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }
}

fn corrupt_gap(first: u64, last: u64) -> Gap {
    Gap {
        first,
        last,
        count: last.saturating_sub(first) + 1,
        reason: GapReason::SpoolCorrupt,
    }
}

fn read_acked(dir: &Path) -> (u64, u64) {
    let text = fs::read_to_string(dir.join("acked")).unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('=')?.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("acked"), field("dropped"))
}

fn remove(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!("spool: cannot remove {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the frame layout documented at the top of this module. The
    /// expected checksum was computed independently (a bitwise CRC-32C in
    /// Python), so the doc, the code and the polynomial cannot drift apart.
    #[test]
    fn a_known_record_encodes_to_known_bytes() {
        let payload = br#""time":"2026-11-21T19:53:30.123Z","type":"heartbeat"}"#;
        let mut out = Vec::new();
        encode(&mut out, 42, payload);
        let head: [u8; 16] = [
            0x35, 0x00, 0x00, 0x00, // length 53
            0x18, 0xad, 0xfa, 0xf6, // CRC-32C 0xf6faad18 of seq + payload
            0x2a, 0, 0, 0, 0, 0, 0, 0, // seq 42
        ];
        assert_eq!(out[..16], head);
        assert_eq!(&out[16..], payload);
        assert_eq!(frame_at(&out, 0), Some((42, &payload[..])));
        assert_eq!(MAGIC, [0x54, 0x53, 0x50, 0x4f, 0x4f, 0x4c, 0x00, 0x01]);
    }

    #[test]
    fn damaged_frames_are_skipped_and_the_walk_resynchronises() {
        let mut buf = Vec::new();
        for seq in 1..=3u64 {
            encode(&mut buf, seq, format!("payload {seq}").as_bytes());
        }
        let second = FRAME + 9;
        buf[second + 5] ^= 0x01; // a checksum bit of record 2
        let steps: Vec<String> = Walk { buf: &buf, at: 0 }
            .map(|s| match s {
                Step::Record { seq, .. } => format!("r{seq}"),
                Step::Skipped { from, to } => format!("skip {from}..{to}"),
            })
            .collect();
        assert_eq!(steps, ["r1", "skip 25..50", "r3"]);
    }

    #[test]
    fn segment_names_sort_and_parse() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name("00000000000000000042.seg"), Some(42));
        assert_eq!(parse_segment_name("42.seg"), None);
        assert_eq!(parse_segment_name("acked"), None);
        assert_eq!(segment_bytes(64 << 20), 4 << 20);
        assert_eq!(segment_bytes(16 << 10), 4096);
    }
}
