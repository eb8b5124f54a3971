//! Maintenance mode: `tether disable` creates `<state_dir>/disabled`,
//! `tether enable` removes it. The agent looks for the file every scheduler
//! turn. The switch lives in the state directory, which only the agent's user
//! and root can write, never behind an unauthenticated HTTP call.
//!
//! The flag records when, why, who (the uid and its user name, and the
//! user `sudo` came from) and, with `--for`, until when:
//!
//! ```text
//! since=2026-12-01T10:00:00Z
//! reason=patching
//! by=uid 1000 (alice)
//! until=2026-12-01T12:00:00Z
//! until_unix=1796212800
//! ```
//!
//! A flag past its `until` counts as absent; the agent removes it and logs
//! that maintenance ended by itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn flag_path(state_dir: &Path) -> PathBuf {
    state_dir.join("disabled")
}

/// What the flag file says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flag {
    pub since: String,
    pub reason: String,
    pub by: String,
    /// When it ends by itself (`--for`).
    pub until: Option<SystemTime>,
}

impl Flag {
    /// One line: why, who, since and until when.
    pub fn describe(&self) -> String {
        let mut s = format!("\"{}\"", self.reason);
        if !self.by.is_empty() {
            s.push_str(&format!(" by {}", self.by));
        }
        if !self.since.is_empty() {
            s.push_str(&format!(" since {}", self.since));
        }
        match self.until {
            Some(t) => s.push_str(&format!(
                ", ends by itself at {}",
                crate::os::clock::rfc3339(t)
            )),
            None => s.push_str(", until `tether enable`"),
        }
        s
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        self.until.is_some_and(|t| now >= t)
    }
}

/// The flag, if there is one (expired or not).
pub fn read(state_dir: &Path) -> Option<Flag> {
    let text = crate::os::files::read_file(&flag_path(state_dir), 64 * 1024).ok()?;
    let text = String::from_utf8_lossy(&text);
    let mut f = Flag::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "since" => f.since = v.to_string(),
            "reason" => f.reason = v.to_string(),
            "by" => f.by = v.to_string(),
            "until_unix" => {
                f.until = v
                    .parse::<u64>()
                    .ok()
                    .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
            }
            _ => {}
        }
    }
    Some(f)
}

/// In maintenance now: a flag that has not expired.
pub fn is_disabled(state_dir: &Path) -> bool {
    read(state_dir).is_some_and(|f| !f.expired(SystemTime::now()))
}

/// Who runs this command: `uid N (name)`, and the user sudo came from.
pub fn who() -> String {
    let uid = rustix::process::getuid().as_raw();
    let name = std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
    });
    let mut s = format!("uid {uid}");
    if let Some(n) = name {
        s.push_str(&format!(" ({n})"));
    }
    if let Ok(u) = std::env::var("SUDO_USER") {
        s.push_str(&format!(
            " via sudo from {}",
            crate::format::text::clip(&u, 64)
        ));
    }
    s
}

/// Writes the flag atomically (temp file + rename) with who/why/when inside;
/// `for_` makes it end by itself.
pub fn disable(state_dir: &Path, reason: &str, for_: Option<Duration>) -> std::io::Result<Flag> {
    crate::os::files::private_dir(state_dir)?;
    let now = SystemTime::now();
    let flag = Flag {
        since: crate::os::clock::rfc3339(now),
        reason: crate::format::text::clip(reason, 500),
        by: who(),
        until: for_.and_then(|d| now.checked_add(d)),
    };
    let mut text = format!(
        "since={}\nreason={}\nby={}\n",
        flag.since, flag.reason, flag.by
    );
    if let Some(t) = flag.until {
        text += &format!(
            "until={}\nuntil_unix={}\n",
            crate::os::clock::rfc3339(t),
            crate::os::clock::unix_secs(t)
        );
    }
    // 0600, and the agent's own when root writes it: the agent must read it.
    let tmp = state_dir.join(".disabled.tmp");
    crate::os::files::write_private(&tmp, text.as_bytes())?;
    crate::os::files::own_like_dir(&tmp, state_dir)?;
    std::fs::rename(&tmp, flag_path(state_dir))?;
    Ok(flag)
}

pub fn enable(state_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(flag_path(state_dir)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_records_why_who_and_until_and_expires() {
        let d = std::env::temp_dir().join(format!("tether-maint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let f = disable(&d, "patching\nkernel", Some(Duration::from_secs(3600))).unwrap();
        let back = read(&d).unwrap();
        assert_eq!(back.reason, "patching?kernel");
        assert!(back.by.starts_with("uid "), "{}", back.by);
        assert_eq!(
            back.until.map(crate::os::clock::unix_secs),
            f.until.map(crate::os::clock::unix_secs)
        );
        assert!(is_disabled(&d));
        assert!(back.describe().contains("ends by itself at"));
        assert!(back.expired(SystemTime::now() + Duration::from_secs(3601)));
        disable(&d, "x", Some(Duration::ZERO)).unwrap();
        assert!(!is_disabled(&d), "expired at once");
        enable(&d).unwrap();
        assert!(read(&d).is_none());
    }
}
