//! systemd's notify protocol (`Type=notify`, sd_notify(3)), spoken directly:
//! one `AF_UNIX` datagram per message to `$NOTIFY_SOCKET`, a path or an
//! abstract name (`@name`; the sd-notify crate gets these wrong). Every
//! send is `MSG_DONTWAIT`: a full or vanished socket costs one failed
//! syscall, never a blocked loop. Without `$NOTIFY_SOCKET` every method is
//! a no-op.
//!
//! What is sent, and when:
//! - `READY=1` once `/ready` would answer 200 (every check has run once).
//! - `STATUS=online · 12 checks · backlog 0` whenever that line changes.
//! - `WATCHDOG=1` from the scheduler loop itself at half `$WATCHDOG_USEC`,
//!   if `$WATCHDOG_PID` is unset or names this process: a stuck loop stops
//!   the pings and systemd restarts the agent.
//! - `RELOADING=1` + `MONOTONIC_USEC=` on SIGHUP, then `READY=1`.
//! - `STOPPING=1` on SIGTERM / SIGINT.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

pub struct Notifier {
    /// `None` when not started by systemd (or its socket is unusable).
    sock: Option<(OwnedFd, SocketAddrUnix)>,
    /// Half of `$WATCHDOG_USEC`, when the watchdog is for this process.
    pub watchdog: Option<Duration>,
    /// `READY=1` has been sent since the start or the last reload.
    ready: Cell<bool>,
    /// The last `STATUS=` line sent.
    status: RefCell<String>,
    /// A failed send is logged once, not once per message.
    failed: Cell<bool>,
}

impl Notifier {
    /// From the process environment.
    pub fn from_env() -> Notifier {
        let var = |k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
        Notifier::new(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    /// A notifier that sends nothing (`tether check`, tests).
    pub fn none() -> Notifier {
        Notifier::new(None, None, None, 0)
    }

    pub fn new(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        pid: u32,
    ) -> Notifier {
        let sock = socket
            .filter(|s| !s.is_empty())
            .and_then(|s| match open(s) {
                Ok(sock) => Some(sock),
                Err(e) => {
                    log::warn!(
                        "NOTIFY_SOCKET={s} is not usable, systemd will not hear from tether: {e}"
                    );
                    None
                }
            });
        Notifier {
            watchdog: sock
                .as_ref()
                .and_then(|_| watchdog_period(watchdog_usec, watchdog_pid, pid)),
            sock,
            ready: Cell::new(false),
            status: RefCell::new(String::new()),
            failed: Cell::new(false),
        }
    }

    pub fn enabled(&self) -> bool {
        self.sock.is_some()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// `READY=1`, once until the next [`Notifier::reloading`].
    pub fn ready(&self) {
        if self.enabled() && !self.ready.replace(true) {
            self.send("READY=1");
        }
    }

    pub fn watchdog_ping(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STATUS=line`, if it differs from the last one sent.
    pub fn status(&self, line: &str) {
        if self.enabled() && *self.status.borrow() != line {
            self.send(&format!("STATUS={line}"));
            line.clone_into(&mut self.status.borrow_mut());
        }
    }

    /// Before a reload; `READY=1` follows once it is applied (or refused).
    pub fn reloading(&self) {
        if !self.enabled() {
            return;
        }
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
        self.ready.set(false);
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, msg: &str) {
        let Some((fd, addr)) = &self.sock else {
            return;
        };
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        if let Err(e) = rustix::net::sendto(fd, msg.as_bytes(), flags, addr) {
            if !self.failed.replace(true) {
                log::warn!("cannot notify systemd ({e}); later failures are not logged");
            }
        }
    }
}

/// `NOTIFY_SOCKET`: an absolute path, or `@name` for an abstract socket.
fn open(s: &str) -> std::io::Result<(OwnedFd, SocketAddrUnix)> {
    let addr = if let Some(name) = s.strip_prefix('@') {
        SocketAddrUnix::new_abstract_name(name.as_bytes())?
    } else if s.starts_with('/') {
        SocketAddrUnix::new(s)?
    } else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "only a path or an @abstract name is supported",
        ));
    };
    let flags = SocketFlags::CLOEXEC | SocketFlags::NONBLOCK;
    let fd = rustix::net::socket_with(AddressFamily::UNIX, SocketType::DGRAM, flags, None)?;
    Ok((fd, addr))
}

/// Half the watchdog timeout, if the watchdog is on and meant for `pid`.
fn watchdog_period(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(p) = for_pid {
        if p.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_half_the_timeout_and_only_for_this_process() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_period(Some("30000000"), None, 7), half);
        assert_eq!(watchdog_period(Some("30000000"), Some("7"), 7), half);
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
    }

    #[test]
    fn a_relative_path_or_vsock_is_refused_not_guessed() {
        assert!(open("relative/sock").is_err());
        assert!(open("vsock:2:1234").is_err());
        assert!(!Notifier::new(Some("vsock:2:1234"), Some("1000"), None, 1).enabled());
        // With no socket there is no watchdog either.
        assert_eq!(Notifier::new(None, Some("1000"), None, 1).watchdog, None);
    }
}
