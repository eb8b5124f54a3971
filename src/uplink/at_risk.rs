//! What only memory holds, mirrored into a shared file mapping
//! (`<state dir>/at-risk`) so that after a crash the next run can name
//! exactly the records the crash took: no more, no less.
//!
//! The outbox rewrites the mirror after every change of what it holds only
//! in memory (a number handed out, a record queued, acknowledged, spilled
//! to disk or dropped). A write is a copy into a `MAP_SHARED` mapping: no
//! system call, a few hundred nanoseconds. The page cache keeps it when the
//! process is killed (SIGKILL, OOM, abort, a panic); only a power loss or a
//! kernel crash can lose it, and then the next run falls back to the
//! fsynced lease in `sequence` and says that its gap is an upper bound.
//!
//! ```text
//! header, 16 bytes:
//!   0..8     magic 54 45 54 48 52 49 53 4B  ("TETHRISK")
//!   8..12    u32 LE format version, 1
//!   12..16   u32 LE slot size, 512
//! two slots of 512 bytes at 16 and 528; all numbers u64 LE:
//!   0        generation (the newer valid slot is the state)
//!   8        run: the first sequence number of the run that wrote it
//!   16       next: the next number the run would hand out
//!   24       spool_max: the highest number the run had written to the spool
//!   32       held_len, 0 ..= 4
//!   40       held[4]: first, last, count          records only in memory
//!   136      named_len, 0 ..= 6
//!   144      named[6]: record, first, last, count, reason
//!                      ranges that only in-memory gap records name
//!                      (record 0: drops not yet turned into a record)
//!   384      u32 LE CRC-32C of bytes 0..384
//! ```
//!
//! A slot is written whole and then its checksum, into the slot that is not
//! current; a kill in the middle leaves the other slot, one change older,
//! which is still true: every change either hands out a number only after
//! the slot naming it is complete, or moves records out of memory (an
//! acknowledgement, a spill), so an older slot can only over-state. The
//! next run trims what the spool shows was spilled. The one remaining
//! over-statement is an acknowledgement that arrived in the microseconds
//! before the kill: those records are delivered and also named by the gap.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::uplink::crc32c;
use crate::uplink::record::{Gap, GapReason};

const MAGIC: [u8; 8] = *b"TETHRISK";
const VERSION: u32 = 1;
const SLOT: usize = 512;
const HEADER: usize = 16;
const FILE_LEN: usize = HEADER + 2 * SLOT;
const HELD_MAX: usize = 4;
const NAMED_MAX: usize = 6;
const CRC_AT: usize = 384;

/// One run's records and gap ranges that exist only in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mirror {
    /// The first number of the run: ties the mirror to the `sequence` file.
    pub run: u64,
    pub next: u64,
    pub spool_max: u64,
    /// (first, last, count): records only in memory, in ranges that may
    /// have holes (numbers delivered out of order).
    pub held: Vec<(u64, u64, u64)>,
    /// (the gap record's own number, or 0, and the range it names).
    pub named: Vec<(u64, Gap)>,
}

impl Mirror {
    /// What a crash with this state lost, given that the spool now holds
    /// records up to `spool_max` (records spilled after the last write are
    /// not lost).
    pub fn lost(&self, spool_max: u64) -> Vec<Gap> {
        let mut out = Vec::new();
        for &(first, last, count) in &self.held {
            // Spills take a prefix of the ring: numbers the spool holds
            // beyond what the mirror knew of were spilled in its last
            // moments, and are not lost.
            let (lo, hi) = (first.max(self.spool_max + 1), last.min(spool_max));
            let (from, cut) = match lo <= hi {
                true if lo == first => (hi + 1, hi - lo + 1),
                true => (first, hi - lo + 1),
                false => (first, 0),
            };
            let count = count
                .saturating_sub(cut)
                .min((last + 1).saturating_sub(from));
            if from <= last && count > 0 {
                out.push(Gap {
                    first: from,
                    last,
                    count,
                    reason: GapReason::UncleanShutdown,
                    dests: crate::uplink::record::ALL_DESTS,
                });
            }
        }
        for &(rec, g) in &self.named {
            // A gap record that reached the spool names its range there.
            if rec == 0 || rec > spool_max {
                out.push(g);
            }
        }
        out
    }

    /// Adds a range of held records, merging with one it overlaps.
    pub fn hold(&mut self, first: u64, last: u64, count: u64) {
        if count == 0 {
            return;
        }
        for h in self.held.iter_mut() {
            if first <= h.1.saturating_add(1) && h.0 <= last.saturating_add(1) {
                *h = (h.0.min(first), h.1.max(last), h.2 + count);
                return;
            }
        }
        self.held.push((first, last, count));
    }

    fn encode(&self, gen: u64, out: &mut [u8; SLOT]) {
        out.fill(0);
        let mut put = |at: usize, v: u64| out[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(0, gen);
        put(8, self.run);
        put(16, self.next);
        put(24, self.spool_max);
        let held = squeeze(&self.held, HELD_MAX, |a, b| {
            (a.0.min(b.0), a.1.max(b.1), a.2 + b.2)
        });
        put(32, held.len() as u64);
        for (i, (f, l, c)) in held.iter().enumerate() {
            let at = 40 + i * 24;
            put(at, *f);
            put(at + 8, *l);
            put(at + 16, *c);
        }
        let named = squeeze(&self.named, NAMED_MAX, |a, b| {
            (a.0.max(b.0), a.1.merge(b.1))
        });
        put(136, named.len() as u64);
        for (i, (rec, g)) in named.iter().enumerate() {
            let at = 144 + i * 40;
            put(at, *rec);
            put(at + 8, g.first);
            put(at + 16, g.last);
            put(at + 24, g.count);
            put(at + 32, reason_code(g.reason));
        }
        let crc = crc32c::checksum(&[&out[..CRC_AT]]);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }

    fn decode(slot: &[u8]) -> Option<(u64, Mirror)> {
        let crc = u32::from_le_bytes(slot.get(CRC_AT..CRC_AT + 4)?.try_into().ok()?);
        if crc32c::checksum(&[&slot[..CRC_AT]]) != crc {
            return None;
        }
        let get = |at: usize| u64::from_le_bytes(slot[at..at + 8].try_into().expect("8 bytes"));
        let held_len = usize::try_from(get(32)).ok().filter(|n| *n <= HELD_MAX)?;
        let named_len = usize::try_from(get(136)).ok().filter(|n| *n <= NAMED_MAX)?;
        let mut m = Mirror {
            run: get(8),
            next: get(16),
            spool_max: get(24),
            held: Vec::new(),
            named: Vec::new(),
        };
        for i in 0..held_len {
            let at = 40 + i * 24;
            let h = (get(at), get(at + 8), get(at + 16));
            if h.0 > h.1 || h.2 > h.1 - h.0 + 1 {
                return None;
            }
            m.held.push(h);
        }
        for i in 0..named_len {
            let at = 144 + i * 40;
            let g = Gap {
                first: get(at + 8),
                last: get(at + 16),
                count: get(at + 24),
                reason: reason_from(get(at + 32))?,
                dests: crate::uplink::record::ALL_DESTS,
            };
            if g.first > g.last {
                return None;
            }
            m.named.push((get(at), g));
        }
        Some((get(0), m))
    }
}

/// Folds the entries past `max` into the last one kept.
fn squeeze<T: Copy>(items: &[T], max: usize, merge: impl Fn(T, T) -> T) -> Vec<T> {
    let mut out: Vec<T> = items.iter().take(max).copied().collect();
    for extra in items.iter().skip(max) {
        let last = out.last_mut().expect("max is at least 1");
        *last = merge(*last, *extra);
    }
    out
}

fn reason_code(r: GapReason) -> u64 {
    match r {
        GapReason::SpoolFull => 1,
        GapReason::RingFull => 2,
        GapReason::SpoolCorrupt => 3,
        GapReason::Rejected => 4,
        GapReason::UncleanShutdown => 5,
    }
}

fn reason_from(code: u64) -> Option<GapReason> {
    Some(match code {
        1 => GapReason::SpoolFull,
        2 => GapReason::RingFull,
        3 => GapReason::SpoolCorrupt,
        4 => GapReason::Rejected,
        5 => GapReason::UncleanShutdown,
        _ => return None,
    })
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("at-risk")
}

/// The newer valid slot of the file in `state_dir`, and its generation.
pub fn read_last(state_dir: &Path) -> Option<(u64, Mirror)> {
    let bytes = std::fs::read(path(state_dir)).ok()?;
    if bytes.len() < FILE_LEN || bytes[..8] != MAGIC || bytes[8..12] != VERSION.to_le_bytes() {
        return None;
    }
    (0..2)
        .filter_map(|i| Mirror::decode(&bytes[HEADER + i * SLOT..HEADER + (i + 1) * SLOT]))
        .max_by_key(|(gen, _)| *gen)
}

/// The live mirror: a shared mapping of the file.
pub struct AtRisk {
    map: *mut u8,
    gen: u64,
    last: Mirror,
}

impl AtRisk {
    /// Creates (or takes over) the file, continuing its generations.
    pub fn create(state_dir: &Path) -> io::Result<AtRisk> {
        let gen = read_last(state_dir).map_or(0, |(g, _)| g);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path(state_dir))?;
        f.set_len(FILE_LEN as u64)?;
        // SAFETY: a fresh shared mapping of a file we hold open and sized
        // to FILE_LEN; nothing else in this process maps it, and it is
        // unmapped only in Drop. Another process truncating the file could
        // make an access fault; the file lives in the agent's private state
        // directory (mode 0700), which only the agent writes.
        let map = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                FILE_LEN,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                &f,
                0,
            )?
        } as *mut u8;
        let mut head = [0u8; HEADER];
        head[..8].copy_from_slice(&MAGIC);
        head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        head[12..16].copy_from_slice(&(SLOT as u32).to_le_bytes());
        // SAFETY: within the mapping (HEADER ≤ FILE_LEN).
        unsafe { std::ptr::copy_nonoverlapping(head.as_ptr(), map, HEADER) };
        Ok(AtRisk {
            map,
            gen,
            last: Mirror::default(),
        })
    }

    /// Makes `m` the state (unless it is the state already).
    pub fn write(&mut self, m: &Mirror) {
        if *m == self.last {
            return;
        }
        self.gen += 1;
        let mut slot = [0u8; SLOT];
        m.encode(self.gen, &mut slot);
        let at = HEADER + (self.gen as usize % 2) * SLOT;
        // SAFETY: the slot lies within the mapping (at + SLOT ≤ FILE_LEN).
        // The checksum covers the whole slot, so a copy cut short by a
        // kill leaves a slot that fails it, and the other slot stands.
        unsafe { std::ptr::copy_nonoverlapping(slot.as_ptr(), self.map.add(at), SLOT) };
        self.last.clone_from(m);
    }
}

impl Drop for AtRisk {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create`, not used after this.
        let _ = unsafe { rustix::mm::munmap(self.map.cast(), FILE_LEN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(first: u64, last: u64, count: u64, reason: GapReason) -> Gap {
        Gap {
            first,
            last,
            count,
            reason,
            dests: crate::uplink::record::ALL_DESTS,
        }
    }

    #[test]
    fn a_slot_round_trips_and_the_newer_valid_one_wins() {
        let d = std::env::temp_dir().join(format!("tether-atrisk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let mut m = Mirror {
            run: 10,
            next: 20,
            spool_max: 12,
            ..Mirror::default()
        };
        m.hold(13, 19, 6);
        m.named.push((15, gap(1, 9, 9, GapReason::RingFull)));
        let mut a = AtRisk::create(&d).unwrap();
        a.write(&m);
        assert_eq!(read_last(&d), Some((1, m.clone())));
        let mut m2 = m.clone();
        m2.next = 21;
        a.write(&m2);
        assert_eq!(read_last(&d).unwrap().1, m2);
        // Damage the newer slot: the older one stands.
        drop(a);
        let mut bytes = std::fs::read(path(&d)).unwrap();
        bytes[HEADER + 20] ^= 1; // slot 0 holds generation 2
        std::fs::write(path(&d), &bytes).unwrap();
        assert_eq!(read_last(&d), Some((1, m.clone())));
        // A new mapping continues the generations.
        let mut a = AtRisk::create(&d).unwrap();
        a.write(&m2);
        assert_eq!(read_last(&d).unwrap().0, 2);
    }

    #[test]
    fn what_was_lost_is_trimmed_by_what_the_spool_shows() {
        let mut m = Mirror {
            run: 1,
            next: 200,
            spool_max: 99,
            ..Mirror::default()
        };
        m.hold(100, 199, 100);
        m.hold(50, 50, 1); // a heartbeat in flight, older than the ring
        m.named.push((150, gap(10, 20, 11, GapReason::RingFull)));
        m.named.push((0, gap(30, 31, 2, GapReason::RingFull)));
        // Nothing spilled since: exactly what memory held.
        assert_eq!(
            m.lost(99),
            vec![
                gap(100, 199, 100, GapReason::UncleanShutdown),
                gap(50, 50, 1, GapReason::UncleanShutdown),
                gap(10, 20, 11, GapReason::RingFull),
                gap(30, 31, 2, GapReason::RingFull),
            ]
        );
        // A spill up to 160 landed before the kill; the gap record at 150
        // went with it.
        assert_eq!(
            m.lost(160),
            vec![
                gap(161, 199, 39, GapReason::UncleanShutdown),
                gap(50, 50, 1, GapReason::UncleanShutdown),
                gap(30, 31, 2, GapReason::RingFull),
            ]
        );
    }

    #[test]
    fn overflowing_entries_merge_and_keep_their_counts() {
        let mut m = Mirror::default();
        for i in 0..10u64 {
            m.named
                .push((0, gap(i * 10, i * 10 + 1, 2, GapReason::Rejected)));
            m.hold(1000 + i * 10, 1000 + i * 10, 1);
        }
        let mut slot = [0u8; SLOT];
        m.encode(7, &mut slot);
        let (gen, back) = Mirror::decode(&slot).unwrap();
        assert_eq!(gen, 7);
        assert_eq!(back.named.len(), NAMED_MAX);
        assert_eq!(back.named.iter().map(|(_, g)| g.count).sum::<u64>(), 20);
        assert_eq!(back.named[5].1.last, 91);
        assert_eq!(back.held.iter().map(|h| h.2).sum::<u64>(), 10);
        // Every single flipped byte is refused or decodes to something sane.
        for i in 0..SLOT {
            let mut bad = slot;
            bad[i] ^= 0x40;
            if let Some((_, b)) = Mirror::decode(&bad) {
                assert!(
                    i >= CRC_AT + 4,
                    "byte {i} flipped and still accepted: {b:?}"
                );
            }
        }
    }
}
