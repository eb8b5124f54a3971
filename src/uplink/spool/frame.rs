//! The bytes of the spool: the frame every record is written in, the walk
//! that finds valid frames in a damaged segment, and how segments are named
//! and sized. The layout is documented byte by byte in `docs/spool.md`;
//! the first test pins it.

use crate::uplink::crc32c;

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
pub(super) fn frame_at(buf: &[u8], at: usize) -> Option<(u64, &[u8])> {
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
pub(super) enum Step<'b> {
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
pub(super) struct Walk<'b> {
    pub(super) buf: &'b [u8],
    pub(super) at: usize,
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

pub(super) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

/// The segment size for a spool bound: 1/16 of it, between 4 KiB and 4 MiB.
pub fn segment_bytes(max_bytes: u64) -> u64 {
    (max_bytes / 16).clamp(4096, 4 << 20)
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
