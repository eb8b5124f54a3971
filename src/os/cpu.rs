//! CPU busy percent over a window, from the aggregate `cpu` line of
//! /proc/stat. Each `system` check run adds a sample; the average over a
//! window is the change in busy time over the change in total time since the
//! newest sample at least that old. Until the agent has run that long, the
//! span is shorter (and said so); on the very first run it is the average
//! since boot, the counters' own origin, so a fresh agent never reports a
//! made-up number.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// The aggregate `cpu` line: user nice system idle iowait irq softirq steal
/// (guest time is already inside user). Idle is idle + iowait.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if f.len() < 4 {
        return None;
    }
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    let idle = get(3).saturating_add(get(4));
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .fold(0u64, |a, i| a.saturating_add(get(*i)));
    Some(CpuTimes {
        busy,
        total: busy.saturating_add(idle),
    })
}

/// An average and what it covers: `None` means since boot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Average {
    pub percent: f64,
    pub span: Option<Duration>,
}

/// Most samples kept for one source, whatever the windows.
const MAX_SAMPLES: usize = 4096;

#[derive(Default)]
pub struct History {
    samples: VecDeque<(Instant, CpuTimes)>,
}

impl History {
    /// Records `now`'s counters and returns the average over `window`.
    pub fn record(&mut self, now: Instant, cur: CpuTimes, window: Duration) -> Average {
        let cutoff = now.checked_sub(window);
        // The newest sample at least `window` old, else the oldest one.
        let base = cutoff
            .and_then(|c| self.samples.iter().rev().find(|(t, _)| *t <= c))
            .or(self.samples.front())
            .copied();
        let avg = match base {
            Some((t, then)) if cur.total > then.total && now > t => Average {
                percent: pct(cur.busy.saturating_sub(then.busy), cur.total - then.total),
                span: Some(now - t),
            },
            _ => Average {
                percent: pct(cur.busy, cur.total),
                span: None,
            },
        };
        // Keep what a window this long still needs: drop samples once a
        // newer one is itself older than the window.
        if let Some(c) = cutoff {
            while self.samples.len() >= 2 && self.samples[1].0 <= c {
                self.samples.pop_front();
            }
        }
        if self.samples.len() >= MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((now, cur));
        avg
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 100.0 / whole as f64).clamp(0.0, 100.0)
    }
}

thread_local! {
    static HISTORIES: RefCell<Vec<(PathBuf, History)>> = const { RefCell::new(Vec::new()) };
}

/// Records a sample for the /proc at `proc_root` and averages over `window`.
pub fn sample(proc_root: &Path, now: Instant, cur: CpuTimes, window: Duration) -> Average {
    HISTORIES.with(|h| {
        let mut h = h.borrow_mut();
        let i = match h.iter().position(|(p, _)| p == proc_root) {
            Some(i) => i,
            None => {
                h.push((proc_root.to_path_buf(), History::default()));
                h.len() - 1
            }
        };
        h[i].1.record(now, cur, window)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_aggregate_line() {
        let t = parse_stat("cpu  100 5 50 800 40 2 3 0 7 0\ncpu0 1 2 3 4\nintr 5\n").unwrap();
        assert_eq!(
            t,
            CpuTimes {
                busy: 160,
                total: 1000
            }
        );
        assert_eq!(parse_stat("intr 1\n"), None);
        assert_eq!(parse_stat("cpu  x y\n"), None);
    }

    #[test]
    fn averages_over_the_window_or_what_there_is() {
        let mut h = History::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let w = Duration::from_secs(300);
        let c = |busy, total| CpuTimes { busy, total };
        // First sample: since boot.
        let a = h.record(at(0), c(100, 1000), w);
        assert_eq!((a.percent, a.span), (10.0, None));
        // 60 s later, 90 of 100 ticks busy: over the 60 s there is.
        let a = h.record(at(60), c(190, 1100), w);
        assert_eq!((a.percent, a.span), (90.0, Some(Duration::from_secs(60))));
        for s in (120..=600).step_by(60) {
            h.record(
                at(s),
                c(190 + (s - 60) / 60 * 50, 1100 + (s - 60) / 60 * 100),
                w,
            );
        }
        // Each minute 50 of 100 busy; the window now spans exactly 300 s.
        let a = h.record(at(660), c(190 + 600 / 60 * 50, 1100 + 600 / 60 * 100), w);
        assert_eq!((a.percent, a.span), (50.0, Some(w)));
        assert!(
            h.samples.len() <= 7,
            "old samples are dropped: {}",
            h.samples.len()
        );
    }
}
