//! Syncing what [`Spool::append`] wrote, and undoing it when the sync
//! fails: the spool's bookkeeping goes back to the last sync that
//! returned, and the files are cut back to match before the next write.

use super::*;
use crate::os::fs_helper::{serve, Answer, Job};

impl Spool {
    /// Written since the last sync (never under `sync = "none"`).
    pub fn unsynced(&self) -> bool {
        self.unsynced.is_some()
    }

    /// The sync for what was written since the last one: every segment
    /// from the one that was newest then, and the directory if a segment
    /// was made. Nothing may be appended until its outcome is told
    /// ([`Spool::synced`] or [`Spool::sync_failed`]).
    pub fn sync_job(&self) -> Option<Job> {
        let u = self.unsynced.as_ref()?;
        let from = u.mark.as_ref().map_or(0, |m| m.first_seq);
        Some(Job::Sync {
            dir: self.dir.clone(),
            names: self
                .segments
                .iter()
                .filter(|s| s.first_seq >= from)
                .map(|s| segment_name(s.first_seq))
                .collect(),
            dir_entry: u.dir_entry,
        })
    }

    /// The job from [`Spool::sync_job`] returned, after `took`: what was
    /// written is on disk.
    pub fn synced(&mut self, took: Duration) {
        self.unsynced = None;
        self.fsyncs.record(took);
    }

    /// Runs [`Spool::sync_job`] on this thread (tests, one-shot commands,
    /// shutdown): how long it took, or which call failed; `None` if
    /// nothing was written since the last sync. The outcome is the
    /// caller's to tell.
    pub fn sync_here(&self) -> Option<Result<Duration, String>> {
        let job = self.sync_job()?;
        let start = Instant::now();
        Some(match serve::answer_here(&job) {
            Answer::Done => Ok(start.elapsed()),
            a => Err(sync_error(&a)),
        })
    }

    /// The sync failed or did not return: the records written since the
    /// last sync are no longer in the spool (the caller still holds them
    /// and writes them again later). Segments made since are forgotten and
    /// the newest one then goes back to its length then; the files follow
    /// at [`Spool::repair_now`] (at the latest before the next write).
    pub fn sync_failed(&mut self) {
        let Some(u) = self.unsynced.take() else {
            return;
        };
        self.tail = None;
        let from = u.mark.as_ref().map(|m| m.first_seq);
        let mut repair = self.repair.take().unwrap_or_default();
        while let Some(back) = self.segments.back() {
            if from.is_some_and(|f| back.first_seq <= f) {
                break;
            }
            let s = self.segments.pop_back().expect("checked");
            self.total_bytes -= s.bytes;
            repair.remove.push(s.first_seq);
        }
        if let (Some(m), Some(back)) = (u.mark, self.segments.back_mut()) {
            if back.first_seq == m.first_seq && back.bytes > m.bytes {
                self.total_bytes -= back.bytes - m.bytes;
                repair.cut = Some((m.first_seq, m.bytes));
                *back = m;
            }
        }
        // No cursor is past the mark: reading stops there.
        self.last_written = u.last_written;
        self.repair = Some(repair);
    }

    /// Before a write is made under [`Spool::unsynced`] bookkeeping: the
    /// state to return to is taken at the first change after a sync.
    /// `new_file`: a segment file was made.
    pub(super) fn changing(&mut self, new_file: bool) {
        if self.sync == SyncPolicy::Never {
            return;
        }
        let u = self.unsynced.get_or_insert_with(|| Unsynced {
            mark: self.segments.back().cloned(),
            last_written: self.last_written,
            dir_entry: false,
        });
        u.dir_entry |= new_file;
    }

    /// Undoes on disk what a failed sync left past the bookkeeping: files
    /// of forgotten segments removed, the newest cut back. The sync that
    /// follows the next write makes the new length durable with the data.
    pub fn repair_now(&mut self) -> io::Result<()> {
        let Some(r) = self.repair.as_mut() else {
            return Ok(());
        };
        while let Some(seq) = r.remove.last().copied() {
            match fs::remove_file(self.dir.join(segment_name(seq))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => r.remove.pop(),
            };
        }
        if let Some((seq, len)) = r.cut {
            // A segment dropped or acknowledged since needs nothing.
            if self.segments.iter().any(|s| s.first_seq == seq) {
                OpenOptions::new()
                    .write(true)
                    .open(self.dir.join(segment_name(seq)))?
                    .set_len(len)?;
            }
        }
        self.repair = None;
        Ok(())
    }
}

/// What a failed sync answer says, for an operator.
pub fn sync_error(a: &Answer) -> String {
    match a {
        Answer::Failed { call, errno } => format!(
            "{} failed: {}",
            call.name(),
            io::Error::from_raw_os_error(*errno)
        ),
        _ => "the filesystem helper answered out of format".into(),
    }
}
