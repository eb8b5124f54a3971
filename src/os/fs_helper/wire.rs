//! What the agent and its filesystem helper say to each other over their
//! socket pair. Every message is a frame: a 4-byte little-endian length,
//! then that many bytes, the first of which is a tag.
//!
//! The agent sends one job at a time:
//!
//! | tag | job        | then                                                   |
//! |-----|------------|--------------------------------------------------------|
//! | 1   | `stat`     | the path                                               |
//! | 2   | `read`     | the limit (u32), the path                              |
//! | 3   | `statvfs`  | the path                                               |
//! | 4   | `writable` | leftovers (u16 count, each u16 length + bytes), the probe file's name (u16 length + bytes), the directory |
//! | 5   | `sync`     | the directory too (u8 0/1), names (u16 count, each u16 length + bytes), the directory |
//!
//! A path is the rest of the frame, its bytes as the OS holds them. The
//! helper answers with a step frame (tag 16, one byte: the call it is about
//! to make, so a call that never returns is named) before each call but
//! the job's first ([`Job::first_call`], which the agent knows already),
//! then exactly one answer:
//!
//! | tag | answer     | then                                                  |
//! |-----|------------|-------------------------------------------------------|
//! | 17  | meta       | kind (0 file, 1 directory, 2 other), size u64, mtime seconds i64, nanoseconds u32 |
//! | 18  | bytes      | the content                                           |
//! | 19  | vfs        | blocks, fragment size, blocks available to users (u64 each) |
//! | 20  | done       | nothing (the writable sequence succeeded)             |
//! | 21  | failed     | the call (one byte), errno (i32)                      |
//! | 22  | too large  | the size read so far (u64): more than the limit       |
//!
//! Integers are little-endian. Both ends are the same binary (the agent
//! runs `/proc/self/exe`, which stays its own image across an upgrade), so
//! the format has no version.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Largest frame either side accepts: a `read` answer at its limit plus
/// its header, or a request with long paths.
pub const MAX_FRAME: usize = READ_LIMIT + 64;

/// The most a `read` job returns: a certificate file is a few kilobytes,
/// a system CA bundle a few hundred.
pub const READ_LIMIT: usize = 1 << 20;

/// One job for the helper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Job {
    /// stat(2), following symbolic links.
    Stat(PathBuf),
    /// Open and read at most `limit` bytes.
    Read { path: PathBuf, limit: u32 },
    /// statvfs(2).
    Statvfs(PathBuf),
    /// Remove `leftovers` (names in `dir` an earlier, killed run left), then
    /// create `dir/name` exclusively, write, fsync, close and remove it.
    Writable {
        dir: PathBuf,
        name: String,
        leftovers: Vec<String>,
    },
    /// fdatasync each of `names` in `dir` (one that is gone is passed
    /// over: its records were acknowledged or dropped meanwhile), then
    /// fsync `dir` itself if `dir_entry` (a file was created in it).
    Sync {
        dir: PathBuf,
        names: Vec<String>,
        dir_entry: bool,
    },
}

/// The system call a step is about to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Stat = 1,
    Open = 2,
    Read = 3,
    Statvfs = 4,
    Create = 5,
    Write = 6,
    Fsync = 7,
    Unlink = 8,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::Stat => "stat",
            Call::Open => "open",
            Call::Read => "read",
            Call::Statvfs => "statvfs",
            Call::Create => "create",
            Call::Write => "write",
            Call::Fsync => "fsync",
            Call::Unlink => "unlink",
        }
    }

    fn from_u8(b: u8) -> Option<Call> {
        Some(match b {
            1 => Call::Stat,
            2 => Call::Open,
            3 => Call::Read,
            4 => Call::Statvfs,
            5 => Call::Create,
            6 => Call::Write,
            7 => Call::Fsync,
            8 => Call::Unlink,
            _ => return None,
        })
    }
}

/// What a path is, from stat(2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File = 0,
    Dir = 1,
    Other = 2,
}

/// A frame from the helper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// About to make this call.
    Step(Call),
    Meta {
        kind: Kind,
        size: u64,
        mtime_secs: i64,
        mtime_nanos: u32,
    },
    Bytes(Vec<u8>),
    Vfs {
        blocks: u64,
        frsize: u64,
        bavail: u64,
    },
    Done,
    Failed {
        call: Call,
        errno: i32,
    },
    TooLarge(u64),
}

impl Job {
    /// The path the job is about (the directory for `writable`).
    pub fn path(&self) -> &Path {
        match self {
            Job::Stat(p) | Job::Statvfs(p) | Job::Read { path: p, .. } => p,
            Job::Writable { dir, .. } | Job::Sync { dir, .. } => dir,
        }
    }

    /// The call the helper makes first, announced by no step frame.
    pub fn first_call(&self) -> Call {
        match self {
            Job::Stat(_) => Call::Stat,
            Job::Read { .. } => Call::Open,
            Job::Statvfs(_) => Call::Statvfs,
            Job::Writable { leftovers, .. } if !leftovers.is_empty() => Call::Unlink,
            Job::Writable { .. } => Call::Stat,
            Job::Sync { .. } => Call::Open,
        }
    }

    /// The frame's payload (without the length).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            Job::Stat(p) => {
                b.push(1);
                b.extend_from_slice(p.as_os_str().as_bytes());
            }
            Job::Read { path, limit } => {
                b.push(2);
                b.extend_from_slice(&limit.to_le_bytes());
                b.extend_from_slice(path.as_os_str().as_bytes());
            }
            Job::Statvfs(p) => {
                b.push(3);
                b.extend_from_slice(p.as_os_str().as_bytes());
            }
            Job::Writable {
                dir,
                name,
                leftovers,
            } => {
                b.push(4);
                b.extend_from_slice(&(leftovers.len() as u16).to_le_bytes());
                for s in leftovers.iter().chain(std::iter::once(name)) {
                    put_str(&mut b, s);
                }
                b.extend_from_slice(dir.as_os_str().as_bytes());
            }
            Job::Sync {
                dir,
                names,
                dir_entry,
            } => {
                b.extend_from_slice(&[5, u8::from(*dir_entry)]);
                b.extend_from_slice(&(names.len() as u16).to_le_bytes());
                for s in names {
                    put_str(&mut b, s);
                }
                b.extend_from_slice(dir.as_os_str().as_bytes());
            }
        }
        b
    }

    pub fn decode(b: &[u8]) -> Option<Job> {
        let (&tag, rest) = b.split_first()?;
        let path = |r: &[u8]| PathBuf::from(OsStr::from_bytes(r));
        Some(match tag {
            1 => Job::Stat(path(rest)),
            2 => {
                let limit = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
                Job::Read {
                    path: path(&rest[4..]),
                    limit,
                }
            }
            3 => Job::Statvfs(path(rest)),
            4 => {
                let mut r = Reader(rest);
                // The leftovers' count, then they and the probe file's name.
                let n = r.u16()?;
                let mut names = r.strings(usize::from(n) + 1)?;
                let name = names.pop()?;
                Job::Writable {
                    dir: path(r.0),
                    name,
                    leftovers: names,
                }
            }
            5 => {
                let mut r = Reader(rest);
                let dir_entry = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                let n = r.u16()?;
                let names = r.strings(usize::from(n))?;
                Job::Sync {
                    dir: path(r.0),
                    names,
                    dir_entry,
                }
            }
            _ => return None,
        })
    }
}

impl Answer {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            Answer::Step(c) => b.extend_from_slice(&[16, *c as u8]),
            Answer::Meta {
                kind,
                size,
                mtime_secs,
                mtime_nanos,
            } => {
                b.extend_from_slice(&[17, *kind as u8]);
                b.extend_from_slice(&size.to_le_bytes());
                b.extend_from_slice(&mtime_secs.to_le_bytes());
                b.extend_from_slice(&mtime_nanos.to_le_bytes());
            }
            Answer::Bytes(d) => {
                b.push(18);
                b.extend_from_slice(d);
            }
            Answer::Vfs {
                blocks,
                frsize,
                bavail,
            } => {
                b.push(19);
                for v in [blocks, frsize, bavail] {
                    b.extend_from_slice(&v.to_le_bytes());
                }
            }
            Answer::Done => b.push(20),
            Answer::Failed { call, errno } => {
                b.extend_from_slice(&[21, *call as u8]);
                b.extend_from_slice(&errno.to_le_bytes());
            }
            Answer::TooLarge(n) => {
                b.push(22);
                b.extend_from_slice(&n.to_le_bytes());
            }
        }
        b
    }

    pub fn decode(b: &[u8]) -> Option<Answer> {
        let (&tag, rest) = b.split_first()?;
        let mut r = Reader(rest);
        let a = match tag {
            16 => Answer::Step(Call::from_u8(r.u8()?)?),
            17 => Answer::Meta {
                kind: match r.u8()? {
                    0 => Kind::File,
                    1 => Kind::Dir,
                    2 => Kind::Other,
                    _ => return None,
                },
                size: r.u64()?,
                mtime_secs: r.u64()? as i64,
                mtime_nanos: r.u32()?,
            },
            18 => return Some(Answer::Bytes(rest.to_vec())),
            19 => Answer::Vfs {
                blocks: r.u64()?,
                frsize: r.u64()?,
                bavail: r.u64()?,
            },
            20 => Answer::Done,
            21 => Answer::Failed {
                call: Call::from_u8(r.u8()?)?,
                errno: r.u32()? as i32,
            },
            22 => Answer::TooLarge(r.u64()?),
            _ => return None,
        };
        r.0.is_empty().then_some(a)
    }
}

/// `payload` as a frame: its length, then itself.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    /// A name: u16 length, then UTF-8 bytes.
    fn string(&mut self) -> Option<String> {
        let len = usize::from(self.u16()?);
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    /// `n` names (space reserved for a few: `n` is input).
    fn strings(&mut self, n: usize) -> Option<Vec<String>> {
        let mut v = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            v.push(self.string()?);
        }
        Some(v)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// A name as [`Reader::string`] reads it.
fn put_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u16).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_encode_to_the_documented_bytes_and_back() {
        let j = Job::Read {
            path: "/a".into(),
            limit: 258,
        };
        assert_eq!(j.encode(), [2, 2, 1, 0, 0, b'/', b'a']);
        let w = Job::Writable {
            dir: "/d".into(),
            name: "n".into(),
            leftovers: vec!["x".into()],
        };
        assert_eq!(
            w.encode(),
            [4, 1, 0, 1, 0, b'x', 1, 0, b'n', b'/', b'd'],
            "count, leftovers, name, directory"
        );
        let s = Job::Sync {
            dir: "/s".into(),
            names: vec!["a".into(), "bc".into()],
            dir_entry: true,
        };
        assert_eq!(
            s.encode(),
            [5, 1, 2, 0, 1, 0, b'a', 2, 0, b'b', b'c', b'/', b's'],
            "directory too, count, names, directory"
        );
        for j in [
            j,
            w,
            s,
            Job::Stat("/mnt/backup/last".into()),
            Job::Statvfs("/".into()),
        ] {
            assert_eq!(Job::decode(&j.encode()), Some(j));
        }
        assert_eq!(frame(&[1, b'/']), [2, 0, 0, 0, 1, b'/']);
    }

    #[test]
    fn answers_round_trip_and_garbage_is_refused() {
        let all = [
            Answer::Step(Call::Fsync),
            Answer::Meta {
                kind: Kind::Dir,
                size: 12,
                mtime_secs: -5,
                mtime_nanos: 7,
            },
            Answer::Bytes(b"pem".to_vec()),
            Answer::Vfs {
                blocks: 1,
                frsize: 4096,
                bavail: u64::MAX,
            },
            Answer::Done,
            Answer::Failed {
                call: Call::Open,
                errno: 13,
            },
            Answer::TooLarge(1 << 21),
        ];
        for a in all {
            let b = a.encode();
            assert_eq!(Answer::decode(&b), Some(a.clone()));
            // Every shorter prefix and one extra byte are refused (bytes
            // takes the rest by design).
            if !matches!(a, Answer::Bytes(_)) {
                for n in 0..b.len() {
                    assert_eq!(Answer::decode(&b[..n]), None, "{a:?} cut at {n}");
                }
                let mut long = b.clone();
                long.push(0);
                assert_eq!(Answer::decode(&long), None);
            }
        }
        assert_eq!(Answer::decode(&[16, 99]), None);
        assert_eq!(Answer::decode(&[99]), None);
        assert_eq!(Job::decode(&[4, 9, 0]), None);
        assert_eq!(Job::decode(&[5, 2, 0, 0]), None, "a flag is 0 or 1");
        assert_eq!(Job::decode(&[5, 0, 1, 0]), None, "a name is missing");
        assert_eq!(Job::decode(&[2, 1]), None);
        assert_eq!(Job::decode(&[]), None);
    }
}
