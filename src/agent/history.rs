//! The health history: the last [`MAX`] status transitions, of the agent and
//! of each check (from, to, when, why), in memory and in
//! `<state_dir>/history`, so they survive restarts. `tether status
//! --history`, `/status?history=1`, `tether doctor` and `tether bundle` read
//! it.
//!
//! The file is one line per transition, fields separated by tabs:
//!
//! ```text
//! 2026-11-21T10:00:00.000Z<TAB>agent<TAB>online<TAB>degraded<TAB>failing: db
//! 2026-11-21T10:00:00.000Z<TAB>check:db<TAB>ok<TAB>crit<TAB>connect_refused: ...
//! ```
//!
//! Tabs and line breaks inside a field are written as spaces. Lines are
//! appended as transitions happen, without fsync: this is diagnostics, and a
//! crash loses at most the lines the kernel had not written yet. When the
//! file reaches twice [`MAX`] lines it is rewritten with the newest [`MAX`]
//! (a temporary file renamed over it). Unreadable lines are skipped and
//! counted, never fatal; the file is read from its last [`READ_LIMIT`] bytes.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::format::json::Json;
use crate::os::clock::{parse_rfc3339_millis, rfc3339_millis};

/// Transitions kept.
pub const MAX: usize = 1000;
/// At most this much of the file's end is read at start.
pub const READ_LIMIT: u64 = 1 << 20;
pub const FILE_NAME: &str = "history";

/// One change of status.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub at_ms: u64,
    /// `None` for the agent's own status, else the check's name.
    pub check: Option<String>,
    pub from: String,
    pub to: String,
    pub why: String,
}

impl Transition {
    fn scope(&self) -> String {
        match &self.check {
            None => "agent".into(),
            Some(c) => format!("check:{c}"),
        }
    }

    fn to_line(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
        format!(
            "{}\t{}\t{}\t{}\t{}\n",
            rfc3339_millis(self.at_ms),
            clean(&self.scope()),
            clean(&self.from),
            clean(&self.to),
            clean(&self.why)
        )
    }

    fn parse(line: &str) -> Option<Transition> {
        let mut f = line.splitn(5, '\t');
        let at_ms = parse_rfc3339_millis(f.next()?)?;
        let check = match f.next()? {
            "agent" => None,
            s => Some(s.strip_prefix("check:")?.to_string()),
        };
        let (from, to) = (f.next()?.to_string(), f.next()?.to_string());
        let why = f.next()?.to_string();
        (!from.is_empty() && !to.is_empty()).then_some(Transition {
            at_ms,
            check,
            from,
            to,
            why,
        })
    }
}

pub struct History {
    entries: VecDeque<Transition>,
    /// The file, when this history is kept on disk (the agent; not `check`).
    path: Option<PathBuf>,
    file: Option<File>,
    /// Lines in the file, to know when to rewrite it.
    lines: usize,
    /// A write failed: logged once, retried at the next transition.
    failed: bool,
}

impl History {
    /// A history in memory only (`tether check`, tests).
    pub fn memory() -> History {
        History {
            entries: VecDeque::new(),
            path: None,
            file: None,
            lines: 0,
            failed: false,
        }
    }

    /// The file could not be written at the last transition.
    pub fn failing(&self) -> bool {
        self.failed
    }

    /// Reads `<state_dir>/history` (a missing file is an empty history) and
    /// keeps appending to it.
    pub fn open(state_dir: &Path) -> History {
        let path = state_dir.join(FILE_NAME);
        let (entries, lines) = read(&path);
        History {
            entries,
            path: Some(path),
            file: None,
            lines,
            failed: false,
        }
    }

    /// The transitions on disk, kept in memory only: what a command run
    /// beside a stopped agent reads (`tether doctor`, `tether bundle`).
    pub fn read_only(state_dir: &Path) -> History {
        let mut h = History::memory();
        h.entries = read(&state_dir.join(FILE_NAME)).0;
        h
    }

    pub fn entries(&self) -> &VecDeque<Transition> {
        &self.entries
    }

    pub fn push(&mut self, t: Transition) {
        if self.path.is_some() {
            self.append(&t);
        }
        if self.entries.len() == MAX {
            self.entries.pop_front();
        }
        self.entries.push_back(t);
    }

    fn append(&mut self, t: &Transition) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let r = (|| -> std::io::Result<()> {
            if self.lines + 1 >= 2 * MAX {
                self.file = None;
                self.rewrite(&path, t)?;
                return Ok(());
            }
            if self.file.is_none() {
                if let Some(dir) = path.parent() {
                    crate::os::files::private_dir(dir)?;
                }
                self.file = Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(&path)?,
                );
            }
            if let Some(f) = self.file.as_mut() {
                f.write_all(t.to_line().as_bytes())?;
            }
            self.lines += 1;
            Ok(())
        })();
        match r {
            Ok(()) if self.failed => {
                self.failed = false;
                log::info!("history: {} is written again", path.display());
            }
            Ok(()) => {}
            Err(e) => {
                self.file = None;
                if !self.failed {
                    self.failed = true;
                    log::warn!(
                        "history: cannot write {}: {e}; transitions are kept in memory only",
                        path.display()
                    );
                }
            }
        }
    }

    /// Writes the newest entries plus `t` to a new file and renames it over
    /// the old one.
    fn rewrite(&mut self, path: &Path, t: &Transition) -> std::io::Result<()> {
        let keep = self.entries.len().min(MAX - 1);
        let mut text = String::new();
        for e in self.entries.iter().skip(self.entries.len() - keep) {
            text.push_str(&e.to_line());
        }
        text.push_str(&t.to_line());
        let tmp = path.with_extension("tmp");
        crate::os::files::write_private(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, path)?;
        self.lines = keep + 1;
        Ok(())
    }
}

/// The newest [`MAX`] transitions of a file and its line count.
fn read(path: &Path) -> (VecDeque<Transition>, usize) {
    let mut entries = VecDeque::new();
    let Ok(mut f) = File::open(path) else {
        return (entries, 0);
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let mut buf = Vec::new();
    let from = len.saturating_sub(READ_LIMIT);
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        log::warn!("history: cannot read {}", path.display());
        return (entries, 0);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.lines();
    if from > 0 {
        lines.next(); // cut in the middle
    }
    let (mut n, mut bad) = (0, 0);
    for line in lines {
        n += 1;
        match Transition::parse(line) {
            Some(t) => {
                if entries.len() == MAX {
                    entries.pop_front();
                }
                entries.push_back(t);
            }
            None => bad += 1,
        }
    }
    if bad > 0 {
        log::warn!(
            "history: {bad} unreadable lines in {} skipped",
            path.display()
        );
    }
    (entries, n)
}

/// `"history":[{"time","check","from","to","why"},...]`, oldest first.
pub fn write_json(j: &mut Json, entries: &VecDeque<Transition>) {
    j.begin_array(Some("history"));
    for t in entries {
        j.begin_object(None)
            .str(Some("time"), &rfc3339_millis(t.at_ms))
            .opt_str(Some("check"), t.check.as_deref())
            .str(Some("from"), &t.from)
            .str(Some("to"), &t.to)
            .str(Some("why"), &t.why)
            .end_object();
    }
    j.end_array();
}

/// One line per transition, oldest first, for terminals and bundles.
pub fn to_table(entries: &VecDeque<Transition>) -> String {
    if entries.is_empty() {
        return "no status transitions recorded\n".into();
    }
    let mut out = String::new();
    for t in entries {
        let who = t
            .check
            .as_deref()
            .map_or("agent".into(), |c| format!("check {c}"));
        out.push_str(&format!(
            "{}  {who}: {} -> {}{}\n",
            rfc3339_millis(t.at_ms),
            t.from,
            t.to,
            if t.why.is_empty() {
                String::new()
            } else {
                format!(" ({})", t.why)
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(i: u64, check: Option<&str>) -> Transition {
        Transition {
            at_ms: 1_700_000_000_000 + i,
            check: check.map(String::from),
            from: "ok".into(),
            to: "crit".into(),
            why: format!("n{i}\twith a tab\nand a line"),
        }
    }

    #[test]
    fn lines_round_trip_and_bad_lines_are_skipped() {
        let a = t(1, Some("db"));
        let line = a.to_line();
        assert_eq!(line.matches('\t').count(), 4, "{line}");
        let back = Transition::parse(line.trim_end()).unwrap();
        assert_eq!(back.why, "n1 with a tab and a line");
        assert_eq!(back.check.as_deref(), Some("db"));
        assert_eq!(back.at_ms, a.at_ms);
        for bad in [
            "",
            "x\tagent\ta\tb\tc",
            "2026-11-21T10:00:00.000Z\tnope\ta\tb\tc",
        ] {
            assert_eq!(Transition::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_file_keeps_the_newest_and_is_rewritten_at_twice_the_limit() {
        let dir = std::env::temp_dir().join(format!("tether-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut h = History::open(&dir);
        for i in 0..(2 * MAX as u64 + 10) {
            h.push(t(i, (i % 2 == 0).then_some("c")));
        }
        assert_eq!(h.entries().len(), MAX);
        let text = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        let lines = text.lines().count();
        assert!((MAX..2 * MAX).contains(&lines), "{lines} lines");
        drop(h);
        let again = History::open(&dir);
        assert_eq!(again.entries().len(), MAX);
        assert_eq!(
            again.entries().back().unwrap().at_ms,
            1_700_000_000_000 + 2 * MAX as u64 + 9
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
