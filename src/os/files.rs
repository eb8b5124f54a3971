//! Reading a file the agent was pointed at (its configuration, a CA file,
//! the maintenance flag) without being led astray by what is there instead.

use std::path::Path;

/// A regular file's contents, at most `max` bytes. Opened without blocking
/// (a FIFO would wait for a writer forever), refused unless it is a
/// regular file (`/dev/zero` never ends), and refused when larger.
pub fn read_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > max {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            max >> 20
        )));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            max >> 20
        )));
    }
    Ok(out)
}

/// Creates `dir` and any missing parents with mode 0700: what the agent
/// keeps is its own (an existing directory keeps its mode).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` (mode 0600, replacing it) and fsyncs it: the
/// first half of an atomic replace; the caller renames or links it.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Gives `path` the owner and group of `dir` when they differ (when root
/// writes into the agent's directory, the file must stay the agent's).
pub fn own_like_dir(path: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (d, f) = (std::fs::metadata(dir)?, std::fs::metadata(path)?);
    if (d.uid(), d.gid()) == (f.uid(), f.gid()) {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(d.uid()), Some(d.gid()))
}
