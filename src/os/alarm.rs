//! The scheduler's own alarm clock: one timerfd(2), registered with the
//! reactor once and re-armed in place.
//!
//! async-io's `Timer` tells the reactor about every new deadline by waking
//! it (an eventfd write and one more turn of its loop, on the other thread);
//! the scheduler sets a new deadline every time it wakes, so that was two
//! wake-ups of async-io's thread per scheduler turn. Re-arming a timerfd is
//! one timerfd_settime(2) on our thread and wakes nobody: the kernel makes
//! the descriptor readable at the deadline. If the timerfd cannot be made
//! (a seccomp filter, a descriptor limit), the alarm falls back to `Timer`.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::FutureExt;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};

pub struct Alarm {
    fd: Option<Async<OwnedFd>>,
}

impl Alarm {
    pub fn new() -> Alarm {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(io::Error::from)
        .and_then(Async::new);
        if let Err(e) = &fd {
            log::debug!("timerfd unavailable ({e}); the scheduler uses async-io timers");
        }
        Alarm { fd: fd.ok() }
    }

    /// Completes at `when` (at once if it has passed). Dropping the future
    /// early is fine: the next call re-arms the timer and resets its count.
    pub async fn sleep_until(&self, when: Instant) {
        let left = when.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let Some(fd) = &self.fd else {
            Timer::at(when).await;
            return;
        };
        let spec = Itimerspec {
            it_interval: timespec(Duration::ZERO),
            it_value: timespec(left),
        };
        if let Err(e) = timerfd_settime(fd.get_ref(), TimerfdTimerFlags::empty(), &spec) {
            log::debug!("timerfd_settime: {e}; using an async-io timer");
            Timer::at(when).await;
            return;
        }
        let mut count = [0u8; 8];
        let fired = fd
            .read_with(|fd| rustix::io::read(fd, &mut count).map_err(io::Error::from))
            .await;
        if fired.is_err() {
            Timer::at(when).await;
        }
    }
}

impl Default for Alarm {
    fn default() -> Self {
        Alarm::new()
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// Races `fut` against the instant `at`: `None` if the instant comes first,
/// and `fut` is dropped there (closing its sockets).
pub async fn until<T>(at: Instant, fut: impl std::future::Future<Output = T>) -> Option<T> {
    async { Some(fut.await) }
        .or(async {
            Timer::at(at).await;
            None
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_at_the_deadline_and_can_be_rearmed() {
        async_io::block_on(async {
            let alarm = Alarm::new();
            assert!(alarm.fd.is_some());
            for ms in [30u64, 10, 20] {
                let start = Instant::now();
                let when = start + Duration::from_millis(ms);
                alarm.sleep_until(when).await;
                assert!(Instant::now() >= when, "woke before the deadline");
            }
        });
    }

    #[test]
    fn an_abandoned_wait_does_not_fire_the_next_one_early() {
        use futures_lite::FutureExt;
        async_io::block_on(async {
            let alarm = Alarm::new();
            // Arm for 10 ms, give up after 1 ms, and let the stale deadline pass.
            let gave_up = async {
                alarm
                    .sleep_until(Instant::now() + Duration::from_millis(10))
                    .await;
                false
            }
            .or(async {
                Timer::after(Duration::from_millis(1)).await;
                true
            })
            .await;
            assert!(gave_up);
            Timer::after(Duration::from_millis(20)).await;
            let when = Instant::now() + Duration::from_millis(30);
            alarm.sleep_until(when).await;
            assert!(Instant::now() >= when, "a stale expiry woke the new wait");
        });
    }

    #[test]
    fn a_past_deadline_returns_at_once() {
        async_io::block_on(async {
            let alarm = Alarm::new();
            alarm.sleep_until(Instant::now()).await;
        });
    }
}
