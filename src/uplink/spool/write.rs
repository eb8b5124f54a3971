//! Appending: frames written to the tail segment (synced afterwards, see
//! `sync.rs`), a new segment when the tail is full, the oldest dropped (as
//! a `spool_full` gap) when the spool would pass its bound.

use super::*;

impl Spool {
    /// Appends `recs` (in increasing sequence order), dropping the oldest
    /// segments if the spool would exceed `max_bytes`. Written, not synced:
    /// see [`Spool::sync_job`].
    pub fn append(&mut self, recs: &[Rec]) -> Appended {
        let mut out = Appended::default();
        if let Err(e) = self.repair_now() {
            out.error = Some(e);
            return out;
        }
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
                // One write per record (the sync after it is the caller's).
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
        // The disk is written anyway: a cursor that moved goes with it.
        if !out.gaps.is_empty() || (self.acked_dirty && out.written > 0) {
            self.save_acked();
        }
        out
    }

    /// Writes the frames buffered for the tail. On failure the tail is cut
    /// back to its last good length.
    pub(super) fn write_out(
        &mut self,
        frames: &mut Vec<u8>,
        pending: &mut Vec<&Rec>,
        out: &mut Appended,
    ) -> io::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        self.changing(false);
        let (Some(file), Some(seg)) = (self.tail.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("spool: no open segment"));
        };
        if let Err(e) = file.write_all(frames) {
            let _ = file.set_len(seg.bytes);
            self.tail = None;
            frames.clear();
            pending.clear();
            return Err(e);
        }
        for r in pending.iter() {
            if seg.records == 0 {
                seg.first_ms = r.time_ms;
                for c in self.cursors.iter_mut() {
                    if c.pos.seg == seg.first_seq && c.pos.records == 0 {
                        c.pos.next_ms = Some(r.time_ms);
                    }
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
    pub(super) fn reopen_tail(&mut self) -> io::Result<()> {
        let seg = self.segments.back().expect("called with a segment");
        let f = OpenOptions::new()
            .append(true)
            .open(self.dir.join(segment_name(seg.first_seq)))?;
        self.tail = Some(f);
        Ok(())
    }

    /// Starts a new segment whose first record is `r`.
    pub(super) fn open_segment(&mut self, r: &Rec) -> io::Result<()> {
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
        self.changing(true);
        self.segments.push_back(Segment {
            first_seq: r.seq,
            last_seq: self.last_written,
            records: 0,
            bytes: HEADER,
            first_ms: r.time_ms,
            gaps: None,
        });
        if self.segments.len() == 1 {
            for c in self.cursors.iter_mut() {
                c.pos = Pos::start_of(self.segments.front(), c.acked);
            }
        }
        self.total_bytes += HEADER;
        self.tail = Some(f);
        Ok(())
    }

    /// Drops the oldest segment; the gaps, per configured destination, for
    /// what in it that destination had not acknowledged (the upstream's
    /// also carries the ranges of the gap records inside: they are its).
    pub(super) fn drop_oldest(&mut self) -> Vec<Gap> {
        let Some(s) = self.segments.pop_front() else {
            return Vec::new();
        };
        if self.segments.is_empty() {
            self.tail = None;
        }
        self.total_bytes -= s.bytes;
        remove(&self.dir.join(segment_name(s.first_seq)));
        self.dropped = self.dropped.max(s.last_seq);
        let mut gaps: Vec<Gap> = Vec::new();
        let front = self.segments.front().cloned();
        for d in Dest::ALL {
            let c = &mut self.cursors[d as usize];
            if c.pos.seg > s.first_seq && c.pos.seg != 0 {
                continue; // Past this segment already.
            }
            let inside = c.pos.seg == s.first_seq;
            let unacked = if inside {
                s.records.saturating_sub(c.pos.records)
            } else {
                s.records
            };
            let first = if inside && c.pos.records > 0 {
                c.pos.last_seq + 1
            } else {
                s.first_seq
            };
            c.pos = Pos::start_of(front.as_ref(), c.pos.last_seq.max(s.last_seq));
            if !c.on {
                continue;
            }
            let own = (unacked > 0).then_some(Gap {
                first,
                last: s.last_seq,
                count: unacked,
                reason: GapReason::SpoolFull,
                dests: d.bit(),
            });
            let gap = match (own, s.gaps.filter(|_| d == Dest::Upstream)) {
                (Some(a), Some(b)) => Some(a.merge(b)),
                (a, b) => a.or(b),
            };
            let Some(g) = gap else { continue };
            // The same loss for both destinations is one gap naming both.
            match gaps
                .iter_mut()
                .find(|h| (h.first, h.last, h.count) == (g.first, g.last, g.count))
            {
                Some(h) => h.dests |= g.dests,
                None => gaps.push(g),
            }
        }
        for g in &gaps {
            log::warn!("spool full ({} bytes): dropped {g}", self.max_bytes);
        }
        gaps
    }
}
