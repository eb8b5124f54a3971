//! `file`: a path exists, its age (time since its last modification) is
//! within `warn_age` / `crit_age` (a backup snapshot marker: warn after 24h,
//! crit after 48h), and it is at least `min_size` bytes. One stat(2) on the
//! agent's thread: for a path on a network filesystem that may hang, use an
//! `exec` check (`check_file_age`), which runs in a child killed at its
//! deadline.

use std::time::SystemTime;

use crate::config::duration;
use crate::config::FileSpec;
use crate::os::clock::rfc3339;
use crate::outcome::{path_error, FileDetail, Reason, Report, Status};

pub fn probe(s: &FileSpec) -> Report {
    let path = s.path.display();
    let meta = match std::fs::metadata(&s.path) {
        Ok(m) => m,
        Err(e) => return path_error(&s.path, &e),
    };
    let now = SystemTime::now();
    let mtime = meta.modified().unwrap_or(now);
    let age = now.duration_since(mtime).unwrap_or_default();
    let size = meta.len();
    let facts = format!(
        "{path}: modified {} ({} ago), {size} bytes",
        rfc3339(mtime),
        duration::format_coarse(age)
    );
    let too_old = |limit: Option<std::time::Duration>| limit.filter(|l| age > *l);
    let mut r = if let Some(limit) = too_old(s.crit_age) {
        Report::crit(
            Reason::FileStale,
            format!("older than {}: {facts}", duration::format(limit)),
        )
    } else if let Some(min) = s.min_size.filter(|m| size < *m) {
        Report::crit(
            Reason::FileTooSmall,
            format!("smaller than {min} bytes: {facts}"),
        )
    } else if let Some(limit) = too_old(s.warn_age) {
        Report::new(
            Status::Warn,
            Some(Reason::FileStale),
            format!("older than {}: {facts}", duration::format(limit)),
        )
    } else {
        Report::ok(facts)
    };
    r.detail.file = Some(Box::new(FileDetail {
        age_seconds: age.as_secs_f64(),
        size,
    }));
    r
}
