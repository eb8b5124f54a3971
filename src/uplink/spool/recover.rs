//! Recovery at open: every segment read and every frame checked; damage
//! becomes a `spool_corrupt` gap, a torn tail is cut, and the cursor is put
//! on the first record not acknowledged.

use super::*;

impl Spool {
    pub(super) fn recover_segment(
        &mut self,
        first_seq: u64,
        next_first: Option<u64>,
        buf: &mut Vec<u8>,
        rec: &mut Recovered,
    ) -> io::Result<()> {
        let path = self.dir.join(segment_name(first_seq));
        buf.clear();
        File::open(&path)?.read_to_end(buf)?;
        let floor = self.dropped.max(self.last_written);
        if buf.len() < HEADER as usize || buf[..8] != MAGIC {
            // Not a segment we can read: report what it must have held.
            let last = next_first.map_or(first_seq, |n| n.saturating_sub(1).max(first_seq));
            if last > floor {
                rec.gaps.push(Gap {
                    first: first_seq.max(floor + 1),
                    last,
                    count: last - first_seq.max(floor + 1) + 1,
                    reason: GapReason::SpoolCorrupt,
                    dests: ALL_DESTS,
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
                dests: ALL_DESTS,
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

    /// Where a cursor that has every record up to `acked` stands: on the
    /// first later record, or past the end.
    pub(super) fn position(&self, acked: u64, buf: &mut Vec<u8>) -> io::Result<Pos> {
        for seg in self.segments.iter() {
            if seg.last_seq <= acked && seg.records > 0 {
                continue;
            }
            let mut pos = Pos::start_of(Some(seg), acked);
            if seg.first_seq > acked {
                return Ok(pos);
            }
            buf.clear();
            File::open(self.dir.join(segment_name(seg.first_seq)))?.read_to_end(buf)?;
            for step in (Walk {
                buf,
                at: HEADER as usize,
            }) {
                if let Step::Record { at, seq, payload } = step {
                    if seq > acked {
                        pos.next_ms = std::str::from_utf8(payload)
                            .ok()
                            .and_then(read_back)
                            .map(|(ms, _)| ms);
                        break;
                    }
                    pos.offset = (at + FRAME + payload.len()) as u64;
                    pos.records += 1;
                }
            }
            return Ok(pos);
        }
        // Everything is behind it: past the end of the newest segment.
        Ok(match self.segments.back() {
            Some(last) => Pos {
                seg: last.first_seq,
                offset: last.bytes,
                records: last.records,
                last_seq: acked,
                next_ms: None,
            },
            None => Pos::start_of(None, acked),
        })
    }
}
