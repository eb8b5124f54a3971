//! The `log` backend. It never panics and never aborts: a write error (closed
//! pipe, full disk) drops the line. simple_logger was measured aborting the
//! process when its stderr pipe closed (eprintln! panics, panic = "abort").
//! Under systemd (`JOURNAL_STREAM` set) lines carry `<N>` syslog priority
//! prefixes and no timestamp, since journald adds its own.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    journal: AtomicBool,
}

static LOGGER: Logger = Logger {
    journal: AtomicBool::new(false),
};

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format_line(
            self.journal.load(Ordering::Relaxed),
            r.level(),
            &r.args().to_string(),
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

pub fn format_line(journal: bool, level: Level, msg: &str) -> String {
    // One record is one line: embedded newlines would split it in the journal.
    let msg = msg.replace('\n', " ");
    if journal {
        let prio = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        };
        format!("<{prio}>{msg}\n")
    } else {
        format!(
            "{} {:<5} {msg}\n",
            crate::clock::rfc3339(std::time::SystemTime::now()),
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
}
