//! The operating system, wrapped for one thread: clocks ([`clock`]), the
//! timerfd alarm and the deadline helper `until` ([`alarm`]), wake-ups
//! ([`wake`]), child processes ([`process`]), /proc readers ([`procfs`],
//! [`cpu`]), systemd's notify socket ([`notify`]), the logger ([`logger`]),
//! bounded file reads and private writes ([`files`]), the directory lock
//! ([`dirlock`]) and the helper processes that make the checks' filesystem
//! calls ([`fs_helper`]). The leaves: imports nothing else of the crate.

pub mod alarm;
pub mod clock;
pub mod cpu;
pub mod dirlock;
pub mod files;
pub mod fs_helper;
pub mod logger;
#[cfg(all(target_env = "musl", panic = "abort", not(target_arch = "arm")))]
mod no_unwind;
pub mod notify;
pub mod process;
pub mod procfs;
pub mod wake;
