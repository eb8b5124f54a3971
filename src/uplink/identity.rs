//! Who the agent is to the control plane: a random 128-bit agent id kept in
//! `<state dir>/identity`, and the sequence numbers of its records, kept in
//! `<state dir>/sequence`.
//!
//! The identity is created once, on first start (mode 0600, with a CRC-32C
//! line), and never silently replaced: if the file exists but cannot be read
//! or fails its checksum, [`load_or_create`] says so and the agent turns
//! `needs_recovery`; only `tether enroll` writes a new one.
//!
//! ```text
//! tether-identity 1
//! id=5f0c8e1a9b2d4c6e8f10a2b4c6d8e0f1
//! crc32c=1a2b3c4d          CRC-32C of the two lines above, newlines included
//! ```
//!
//! Sequence numbers strictly increase for the life of the identity, across
//! restarts: the file holds a *lease*, a number not yet used, written (and
//! fsynced) before any number at or above the previous lease is handed out,
//! every [`LEASE`] records. A clean stop writes the exact next number and
//! `clean=1`. After a crash the next run reads what the crashed run held in
//! memory from its mirror ([`crate::uplink::at_risk`], tied to this file by `run=`,
//! the run's first number), reports exactly that as `unclean_shutdown`
//! gaps, and continues after the crashed run's last number. Without a
//! usable mirror (a power loss), it starts at the lease and the gap runs
//! from the file's `at_risk=` mark (the lowest number that was only in
//! memory, or named only by a gap record in memory, as the outbox saw it at
//! the last lease; a lower one is saved at once when a gap record for older
//! numbers is queued) to the lease: an upper bound. If the file is lost while
//! the identity is kept, numbering restarts at 1000 × the Unix time in
//! seconds, above anything a run could have reached (a million records a
//! second for a thousand years stays below 2^53, safe for JSON readers).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::uplink::crc32c;
use crate::uplink::record::{Gap, GapReason};

pub const LEASE: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// 32 lowercase hex digits.
    pub id: String,
}

#[derive(Debug)]
pub enum Loaded {
    Existing(Identity),
    Created(Identity),
    /// The file is there but unusable: why, in one sentence.
    Broken(String),
    /// The file cannot be read, or there is none and none can be written
    /// (the state directory is not usable): why.
    NoAccess(String),
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("identity")
}

fn checked(lines: &str) -> String {
    format!(
        "{lines}crc32c={:08x}\n",
        crc32c::checksum(&[lines.as_bytes()])
    )
}

/// Reads a `key=value` file whose last line is the CRC-32C of the others.
fn read_checked(text: &str) -> Result<&str, String> {
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or("it is truncated")?;
    let (body, last) = text.split_at(body_end);
    let want = last
        .trim_end()
        .strip_prefix("crc32c=")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("its checksum line is missing")?;
    if crc32c::checksum(&[body.as_bytes()]) != want {
        return Err("its checksum does not match (the file was damaged or edited)".into());
    }
    Ok(body)
}

fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// Parses an identity file's text.
pub fn parse(text: &str) -> Result<Identity, String> {
    let body = read_checked(text)?;
    if body.lines().next() != Some("tether-identity 1") {
        return Err("it does not start with `tether-identity 1`".into());
    }
    let id = field(body, "id").ok_or("it has no id line")?;
    if id.len() != 32
        || !id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("its id is not 32 hex digits".into());
    }
    Ok(Identity { id: id.to_string() })
}

/// The identity in `state_dir`, created if there is none.
pub fn load_or_create(state_dir: &Path) -> Loaded {
    let p = path(state_dir);
    match fs::read(&p) {
        Ok(bytes) => match parse_file(&p, &bytes) {
            Ok(i) => Loaded::Existing(i),
            Err(why) => Loaded::Broken(why),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => match write(state_dir, false) {
            Ok(i) => Loaded::Created(i),
            Err(e) => Loaded::NoAccess(format!("cannot create {}: {e}", p.display())),
        },
        Err(e) => Loaded::NoAccess(format!("cannot read {}: {e}", p.display())),
    }
}

fn parse_file(p: &Path, bytes: &[u8]) -> Result<Identity, String> {
    parse(&String::from_utf8_lossy(bytes))
        .map_err(|why| format!("{} is unusable: {why}", p.display()))
}

/// The identity in `state_dir`: `None` if there is no file, `Err` naming
/// the file if it cannot be read or is damaged.
pub fn read(state_dir: &Path) -> Result<Option<Identity>, String> {
    let p = path(state_dir);
    match fs::read(&p) {
        Ok(bytes) => parse_file(&p, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", p.display())),
    }
}

/// Writes a fresh identity: only if none exists, or replacing it (`tether
/// enroll`). Written to a temporary file, fsynced, then renamed.
pub fn write(state_dir: &Path, replace: bool) -> io::Result<Identity> {
    crate::os::files::private_dir(state_dir)?;
    let mut raw = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| io::Error::other("no randomness from the kernel"))?;
    let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let text = checked(&format!("tether-identity 1\nid={id}\n"));
    let tmp = state_dir.join(".identity.tmp");
    write_private(&tmp, text.as_bytes())?;
    crate::os::files::own_like_dir(&tmp, state_dir)?;
    let target = path(state_dir);
    if replace {
        fs::rename(&tmp, &target)?;
    } else {
        // Never overwrite: a link fails if the name exists.
        let linked = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        linked?;
    }
    fs::File::open(state_dir)?.sync_all()?;
    Ok(Identity { id })
}

pub use crate::os::files::write_private;

/// Hands out sequence numbers and keeps the lease on disk.
pub struct Sequence {
    path: PathBuf,
    next: u64,
    leased: u64,
    /// The lowest number that may exist only in memory (a record in the
    /// ring, or a range a gap record there names), saved with each lease as
    /// `at_risk=`: after a crash, the gap starts here.
    at_risk: u64,
    /// The first number of this run, saved as `run=`.
    run: u64,
    /// The lease could not be written: numbers are still handed out (the
    /// agent must not stop), the error is logged once.
    failing: bool,
}

impl Sequence {
    /// Opens the numbering for a run. `floor` is the highest number known to
    /// be used (the spool's newest record). Returns the gaps to report if the
    /// last run did not stop cleanly: exactly what its memory held, from its
    /// mirror ([`crate::uplink::at_risk`]), or, when that is missing or damaged (a
    /// power loss), from its `at_risk` mark (or, without one, after `floor`)
    /// to the end of its lease, an upper bound.
    pub fn open(state_dir: &Path, floor: u64, fresh_identity: bool) -> (Sequence, Vec<Gap>) {
        let path = state_dir.join("sequence");
        let stored = fs::read_to_string(&path).ok().and_then(|t| {
            let body = read_checked(&t).ok()?;
            let next: u64 = field(body, "next")?.parse().ok()?;
            let at_risk: Option<u64> = field(body, "at_risk").and_then(|s| s.parse().ok());
            let run: Option<u64> = field(body, "run").and_then(|s| s.parse().ok());
            Some((next, field(body, "clean") == Some("1"), at_risk, run))
        });
        let (next, gaps) = match stored {
            Some((next, true, ..)) => (next.max(floor + 1), Vec::new()),
            Some((lease, false, at_risk, run)) => {
                match crate::uplink::at_risk::read_last(state_dir) {
                    Some((_, m)) if Some(m.run) == run && m.next <= lease => {
                        (m.next.max(floor + 1), m.lost(floor))
                    }
                    _ => {
                        let first = at_risk.unwrap_or(floor + 1).max(1);
                        if lease > first {
                            log::warn!(
                            "the last run stopped without a trace of what it held in memory (a power loss?): \
                             the unclean_shutdown gap names every number it may have used"
                        );
                        }
                        let gap = (lease > first).then(|| Gap {
                            first,
                            last: lease - 1,
                            count: lease - first,
                            reason: GapReason::UncleanShutdown,
                            dests: crate::uplink::record::ALL_DESTS,
                        });
                        (lease.max(floor + 1), gap.into_iter().collect())
                    }
                }
            }
            None if fresh_identity && floor == 0 => (1, Vec::new()),
            None => {
                let base =
                    crate::os::clock::unix_secs(std::time::SystemTime::now()).max(1) as u64 * 1000;
                log::warn!(
                    "{} is missing or damaged: sequence numbers continue from {base}",
                    path.display()
                );
                (base.max(floor + 1), Vec::new())
            }
        };
        // Until this run's mirror holds the gaps found, a crash must name
        // their numbers again: the lease written now covers them.
        let at_risk = gaps.iter().map(|g| g.first).fold(next, u64::min);
        let mut s = Sequence {
            path,
            next,
            leased: next,
            at_risk,
            run: next,
            failing: false,
        };
        s.lease();
        (s, gaps)
    }

    /// The first number of this run: it ties the memory mirror to this file.
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Numbers from `first` on are now only in memory (a gap record naming
    /// older numbers was queued): saved at once if that lowers the mark.
    pub fn cover_from(&mut self, first: u64) {
        if first < self.at_risk {
            self.at_risk = first;
            self.lease_at(self.leased);
        }
    }

    /// The next [`Sequence::take`] writes a new lease, with this mark: the
    /// caller's lowest number that is only in memory (the next number if
    /// none).
    pub fn lease_due(&self) -> bool {
        self.next >= self.leased
    }

    pub fn set_at_risk(&mut self, mark: u64) {
        self.at_risk = mark;
    }

    pub fn peek(&self) -> u64 {
        self.next
    }

    pub fn take(&mut self) -> u64 {
        if self.next >= self.leased {
            self.lease();
        }
        let n = self.next;
        self.next += 1;
        n
    }

    fn lease(&mut self) {
        self.lease_at(self.next + LEASE);
    }

    /// The lease could not be written the last time it was.
    pub fn failing(&self) -> bool {
        self.failing
    }

    fn lease_at(&mut self, lease: u64) {
        match self.save(lease, false) {
            Ok(()) => {
                self.leased = lease;
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    log::error!(
                        "cannot write {}: {e}; sequence numbers may repeat after a crash",
                        self.path.display()
                    );
                }
                self.failing = true;
                self.leased = lease;
            }
        }
    }

    /// A clean stop: the exact next number.
    pub fn close(&mut self) -> io::Result<()> {
        self.save(self.next, true)
    }

    fn save(&self, next: u64, clean: bool) -> io::Result<()> {
        let text = checked(&format!(
            "tether-sequence 1\nnext={next}\nclean={}\nat_risk={}\nrun={}\n",
            u8::from(clean),
            self.at_risk,
            self.run
        ));
        let tmp = self.path.with_extension("tmp");
        write_private(&tmp, text.as_bytes())?;
        fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tether-id-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn created_once_then_kept_and_damage_is_reported_not_repaired() {
        let d = dir("id");
        let Loaded::Created(a) = load_or_create(&d) else {
            panic!("first start creates")
        };
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path(&d)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let Loaded::Existing(b) = load_or_create(&d) else {
            panic!("second start keeps")
        };
        assert_eq!(a, b);
        let text = fs::read_to_string(path(&d)).unwrap();
        fs::write(path(&d), text.replace(&a.id[..4], "0000")).unwrap();
        let Loaded::Broken(why) = load_or_create(&d) else {
            panic!("damage is not repaired")
        };
        assert!(why.contains("checksum"), "{why}");
        assert!(fs::read_to_string(path(&d)).unwrap().contains("0000"));
        let c = write(&d, true).unwrap();
        assert_ne!(c.id, a.id);
        assert!(matches!(load_or_create(&d), Loaded::Existing(i) if i == c));
        assert!(write(&d, false).is_err(), "never replaced without enroll");
    }

    #[test]
    fn numbers_survive_restarts_and_a_crash_is_reported() {
        let d = dir("seq");
        let (mut s, gap) = Sequence::open(&d, 0, true);
        assert_eq!((s.take(), s.take(), gap), (1, 2, vec![]));
        s.close().unwrap();
        let (mut s, gap) = Sequence::open(&d, 0, false);
        assert_eq!((s.take(), gap), (3, vec![]));
        for _ in 0..LEASE {
            s.take();
        }
        let used = s.peek() - 1;
        drop(s); // a crash: no close
        let (mut s, gap) = Sequence::open(&d, 100, false);
        let g = gap.into_iter().next().expect("a crash leaves a gap");
        assert_eq!(g.reason, GapReason::UncleanShutdown);
        // From the run's at-risk mark (its first number: nobody moved it),
        // even below what the spool holds.
        assert_eq!(g.first, 3);
        assert!(g.last >= used, "{g:?} must cover {used}");
        assert!(s.take() > used);
        // The spool knows of a higher number than the file: it wins.
        s.close().unwrap();
        let (mut s, _) = Sequence::open(&d, 1_000_000, false);
        assert_eq!(s.take(), 1_000_001);
        // A lost file with a kept identity: a time-based floor.
        fs::remove_file(d.join("sequence")).unwrap();
        let (mut s, _) = Sequence::open(&d, 5, false);
        let start = s.take();
        assert!(start > 1_700_000_000_000);
        // A crash: the gap starts at the crashed run's at-risk mark (its
        // first number until the owner says otherwise), not at 1.
        drop(s);
        let (mut s, gap) = Sequence::open(&d, 0, false);
        let g = gap.into_iter().next().expect("a crash leaves a gap");
        assert_eq!((g.first, g.last), (start, start + LEASE - 1));
        // The owner moves the mark at each lease, and lowers it at once.
        let next = s.peek();
        while !s.lease_due() {
            s.take();
        }
        s.set_at_risk(next + 10);
        s.take();
        drop(s);
        let (mut s, gap) = Sequence::open(&d, 0, false);
        assert_eq!(gap[0].first, next + 10);
        s.cover_from(7);
        drop(s);
        let (_, gap) = Sequence::open(&d, 0, false);
        assert_eq!(gap[0].first, 7);
    }
}
