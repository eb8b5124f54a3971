//! `file`: a path exists, its age (time since its last modification) is
//! within `warn_age` / `crit_age` (a backup snapshot marker: warn after 24h,
//! crit after 48h), and it is at least `min_size` bytes. The stat(2) runs
//! in a filesystem helper ([`crate::os::fs_helper`]): on a hung network
//! mount the check ends in `fs_timeout` at its deadline and the agent goes on.

use std::time::SystemTime;

use crate::config::duration;
use crate::config::FileSpec;
use crate::os::clock::rfc3339;
use crate::os::fs_helper::{Answer, Job};
use crate::outcome::{path_error, FileDetail, Reason, Report, Status, Trace};

pub async fn probe(s: &FileSpec, trace: &Trace) -> Report {
    match super::fs(&Job::Stat(s.path.clone()), trace).await {
        Ok(Answer::Meta {
            size,
            mtime_secs,
            mtime_nanos,
            ..
        }) => judge(
            s,
            size,
            super::mtime(mtime_secs, mtime_nanos),
            SystemTime::now(),
        ),
        Ok(Answer::Failed { errno, .. }) => {
            path_error(&s.path, &std::io::Error::from_raw_os_error(errno))
        }
        Ok(_) => super::out_of_format(),
        Err(r) => r,
    }
}

/// The verdict on a file of `size` bytes last modified at `mtime`.
pub fn judge(s: &FileSpec, size: u64, mtime: SystemTime, now: SystemTime) -> Report {
    let path = s.path.display();
    let age = now.duration_since(mtime).unwrap_or_default();
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
