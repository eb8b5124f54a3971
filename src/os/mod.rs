//! The operating system, wrapped for one thread: clocks ([`clock`]), the
//! timerfd alarm and the deadline helper `until` ([`alarm`]), wake-ups
//! ([`wake`]), child processes ([`process`]), /proc readers ([`procfs`],
//! [`cpu`]), systemd's notify socket ([`notify`]), the logger ([`logger`])
//! and bounded file reads ([`files`]). The leaves: imports nothing else of
//! the crate.

pub mod alarm;
pub mod clock;
pub mod cpu;
pub mod files;
pub mod logger;
pub mod notify;
pub mod process;
pub mod procfs;
pub mod wake;
