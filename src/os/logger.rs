//! The `log` backend. It never panics and never aborts: a write error (closed
//! pipe, full disk) drops the line. simple_logger was measured aborting the
//! process when its stderr pipe closed (eprintln! panics, panic = "abort").
//! Under systemd (`JOURNAL_STREAM` set) lines carry `<N>` syslog priority
//! prefixes and no timestamp, since journald adds its own.
//!
//! The last [`RING_LINES`] lines are also kept in memory, with their
//! timestamps, for `GET /logs?n=200` and `tether bundle`: appliances often
//! have no journalctl to ask.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    journal: AtomicBool,
    /// `[agent] log_format = "json"`: one JSON object per line.
    json: AtomicBool,
}

static LOGGER: Logger = Logger {
    journal: AtomicBool::new(false),
    json: AtomicBool::new(false),
};

/// `log_format = "json"` (`true`) or `"text"`, from now on.
pub fn set_json(json: bool) {
    LOGGER.json.store(json, Ordering::Relaxed);
}

/// Lines kept in memory.
pub const RING_LINES: usize = 500;
/// A longer line is cut here in the ring (not on stderr).
pub const RING_LINE_MAX: usize = 1024;

/// One thread logs; the lock only satisfies `Log: Sync`.
static RING: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

fn keep(line: String) {
    let mut ring = RING.lock().unwrap_or_else(|e| e.into_inner());
    if ring.len() == RING_LINES {
        ring.pop_front();
    }
    ring.push_back(line);
}

/// The newest `n` lines kept (at most [`RING_LINES`]), oldest first.
pub fn recent(n: usize) -> String {
    let ring = RING.lock().unwrap_or_else(|e| e.into_inner());
    let skip = ring.len().saturating_sub(n);
    ring.iter().skip(skip).map(String::as_str).collect()
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        let journal = self.journal.load(Ordering::Relaxed);
        let line = if self.json.load(Ordering::Relaxed) {
            json_line(journal, r, &msg)
        } else {
            format_line(journal, r.level(), &msg)
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        let mut kept = if journal {
            format_line(false, r.level(), &msg)
        } else {
            line
        };
        if kept.len() > RING_LINE_MAX {
            let mut cut = RING_LINE_MAX - 4;
            while !kept.is_char_boundary(cut) {
                cut -= 1;
            }
            kept.truncate(cut);
            kept.push_str("...\n");
        }
        keep(kept);
    }

    fn flush(&self) {}
}

/// `{"ts":"…","level":"warn","msg":"…","check":"db",…}`: the record's
/// key-value fields after the message; under systemd with the `<N>`
/// priority first, as journald reads it.
fn json_line(journal: bool, r: &Record, msg: &str) -> String {
    struct Fields(String);
    impl<'k> log::kv::VisitSource<'k> for Fields {
        fn visit_pair(
            &mut self,
            key: log::kv::Key<'k>,
            value: log::kv::Value<'k>,
        ) -> Result<(), log::kv::Error> {
            self.0.push(',');
            quote(&mut self.0, key.as_str());
            self.0.push(':');
            quote(&mut self.0, &value.to_string());
            Ok(())
        }
    }
    let mut out = String::with_capacity(msg.len() + 96);
    if journal {
        out.push_str(&format!("<{}>", priority(r.level())));
    }
    out.push_str("{\"ts\":");
    quote(
        &mut out,
        &crate::os::clock::rfc3339(std::time::SystemTime::now()),
    );
    out.push_str(",\"level\":");
    quote(&mut out, &r.level().as_str().to_ascii_lowercase());
    out.push_str(",\"msg\":");
    quote(&mut out, msg);
    let mut fields = Fields(out);
    let _ = r.key_values().visit(&mut fields);
    let mut out = fields.0;
    out.push_str("}\n");
    out
}

/// `s` as a JSON string: quotes, backslashes and control characters
/// escaped (a message is one line whatever it holds).
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

pub fn format_line(journal: bool, level: Level, msg: &str) -> String {
    // One record is one line: embedded newlines would split it in the journal.
    let msg = msg.replace('\n', " ");
    if journal {
        format!("<{}>{msg}\n", priority(level))
    } else {
        format!(
            "{} {:<5} {msg}\n",
            crate::os::clock::rfc3339(std::time::SystemTime::now()),
            level
        )
    }
}

/// Installs the logger (once per process) and sets the level.
pub fn init(level: LevelFilter) {
    LOGGER.journal.store(
        std::env::var_os("JOURNAL_STREAM").is_some(),
        Ordering::Relaxed,
    );
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines_have_priorities_and_no_timestamp() {
        assert_eq!(format_line(true, Level::Warn, "a\nb"), "<4>a b\n");
        assert_eq!(format_line(true, Level::Error, "x"), "<3>x\n");
        assert!(format_line(false, Level::Info, "x").ends_with("Z INFO  x\n"));
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_cut_to_size() {
        init(LevelFilter::Info);
        for i in 0..RING_LINES + 5 {
            log::info!("ring line {i}");
        }
        log::info!("{}", "é".repeat(RING_LINE_MAX));
        // Other tests of this binary may log meanwhile: look for ours.
        let text = recent(usize::MAX);
        assert_eq!(text.lines().count(), RING_LINES);
        let ours: Vec<&str> = text.lines().filter(|l| l.contains("ring line")).collect();
        assert!(ours.len() < RING_LINES, "the oldest were dropped");
        let last = format!("ring line {}", RING_LINES + 4);
        assert!(ours.last().unwrap().ends_with(&last), "{ours:?}");
        let long = text.lines().find(|l| l.contains('é')).unwrap();
        assert!(
            long.ends_with("...") && long.len() < RING_LINE_MAX,
            "{long}"
        );
        assert_eq!(recent(2).lines().count(), 2);
    }
}
