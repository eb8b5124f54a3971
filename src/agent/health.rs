//! The health model: per-check damping (`fall` consecutive failures before a
//! check turns warn/crit, `rise` consecutive successes before it turns ok
//! again), flap detection the way Nagios measures it, and the agent's overall
//! status and severity derived from all checks.
//!
//! The first result of a check sets its state directly: there is no earlier
//! evidence to damp against, and an agent that starts against a dead control
//! plane must not report it healthy for `fall` cycles.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::config::Role;
use crate::outcome::{Outcome, Reason, Status};

/// Results kept for flap detection (Nagios: 21 states, 20 transitions).
pub const FLAP_WINDOW: usize = 21;
/// A check starts flapping above this weighted percent of state changes...
pub const FLAP_START: f64 = 50.0;
/// ...and stops below this one.
pub const FLAP_STOP: f64 = 25.0;
/// Results kept for `tether doctor`'s intermittent step: their durations
/// and reasons.
pub const RECENT: usize = 60;

/// One result, small (4 bytes): [`RECENT`] of them for each check.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The run's duration in µs as 11 bits of mantissa and 5 of shift
    /// (within 0.1%, up to ~50 days): [`Sample::micros`].
    duration: u16,
    pub status: Status,
    pub reason: Option<Reason>,
}

impl Sample {
    pub fn new(d: Duration, status: Status, reason: Option<Reason>) -> Sample {
        let mut m = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut shift = 0u16;
        while m >= 1 << 11 && shift < 31 {
            m >>= 1;
            shift += 1;
        }
        Sample {
            duration: (shift << 11) | m.min((1 << 11) - 1) as u16,
            status,
            reason,
        }
    }

    /// The duration in µs (rounded down to 11 significant bits).
    pub fn micros(&self) -> u64 {
        u64::from(self.duration & 0x7ff) << (self.duration >> 11)
    }
}

pub const FLAP_HINT: &str =
    "intermittent failures usually mean a probe timeout too short for the host, or a loaded host";

#[derive(Clone, Debug)]
pub struct CheckHealth {
    /// The damped state; `None` until the first result (shown as `pending`).
    pub status: Option<Status>,
    /// When `status` last changed (or when the check was created).
    pub since: SystemTime,
    pub consecutive_ok: u32,
    pub consecutive_fail: u32,
    pub last_success: Option<SystemTime>,
    pub last: Option<Outcome>,
    /// Raw statuses of the last [`FLAP_WINDOW`] results, oldest first.
    history: VecDeque<Status>,
    pub flap_percent: f64,
    pub flapping: bool,
    pub runs: u64,
    /// Non-ok results by reason code, for `tether_check_failures_total`.
    pub failures: BTreeMap<Reason, u64>,
    /// The last [`RECENT`] results, oldest first.
    pub recent: VecDeque<Sample>,
}

impl CheckHealth {
    /// Its last result is a `system` check's with the CPU at or above
    /// `warn_percent`.
    pub fn overloaded(&self) -> bool {
        self.last
            .as_ref()
            .and_then(|o| o.detail.system.as_ref())
            .is_some_and(|s| s.overloaded)
    }

    pub fn new(now: SystemTime) -> Self {
        CheckHealth {
            status: None,
            since: now,
            consecutive_ok: 0,
            consecutive_fail: 0,
            last_success: None,
            last: None,
            history: VecDeque::with_capacity(FLAP_WINDOW),
            flap_percent: 0.0,
            flapping: false,
            runs: 0,
            failures: BTreeMap::new(),
            recent: VecDeque::with_capacity(RECENT),
        }
    }

    /// Folds one result into the state.
    pub fn record(&mut self, o: Outcome, fall: u32, rise: u32) {
        self.runs += 1;
        if o.status == Status::Ok {
            self.consecutive_ok += 1;
            self.consecutive_fail = 0;
            self.last_success = Some(o.at);
        } else {
            self.consecutive_fail += 1;
            self.consecutive_ok = 0;
            if let Some(r) = o.reason {
                *self.failures.entry(r).or_insert(0) += 1;
            }
        }
        let next = match self.status {
            None => o.status,
            Some(Status::Ok) if o.status != Status::Ok && self.consecutive_fail >= fall => o.status,
            Some(Status::Ok) => Status::Ok,
            Some(_) if o.status == Status::Ok => {
                if self.consecutive_ok >= rise {
                    Status::Ok
                } else {
                    self.status.unwrap_or(Status::Unknown)
                }
            }
            // Already failing: follow the latest failing severity.
            Some(_) => o.status,
        };
        if self.status != Some(next) {
            self.status = Some(next);
            self.since = o.at;
        }
        if self.history.len() == FLAP_WINDOW {
            self.history.pop_front();
        }
        self.history.push_back(o.status);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent
            .push_back(Sample::new(o.duration, o.status, o.reason));
        self.flap_percent = flap_percent(&self.history);
        if !self.flapping && self.flap_percent > FLAP_START {
            self.flapping = true;
        } else if self.flapping && self.flap_percent < FLAP_STOP {
            self.flapping = false;
        }
        self.last = Some(o);
    }

    /// Seconds since the last ok result, if there was one.
    pub fn last_success_age(&self, now: SystemTime) -> Option<f64> {
        self.last_success
            .map(|t| now.duration_since(t).unwrap_or_default().as_secs_f64())
    }
}

/// Nagios' weighted percent state change: each of the (up to) 20 transitions
/// that changed state counts with a weight from 0.75 (oldest) to 1.25
/// (newest); the sum is divided by 20. A short history is aligned so its
/// newest transition carries the newest weight.
pub fn flap_percent(history: &VecDeque<Status>) -> f64 {
    let transitions = FLAP_WINDOW - 1;
    let offset = FLAP_WINDOW - history.len();
    let mut sum = 0.0;
    for i in 1..history.len() {
        if history[i] != history[i - 1] {
            let x = (i + offset) as f64; // 1..=20
            sum += 0.75 + (1.25 - 0.75) / (transitions as f64 - 1.0) * (x - 1.0);
        }
    }
    sum * 100.0 / transitions as f64
}

/// The agent's overall status: exactly one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentStatus {
    Online,
    Degraded,
    Offline,
    NeedsRecovery,
    /// The control plane no longer accepts this version (HTTP 409).
    VersionUnsupported,
    Disabled,
}

impl AgentStatus {
    pub const ALL: [AgentStatus; 6] = [
        AgentStatus::Online,
        AgentStatus::Degraded,
        AgentStatus::Offline,
        AgentStatus::NeedsRecovery,
        AgentStatus::VersionUnsupported,
        AgentStatus::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Online => "online",
            AgentStatus::Degraded => "degraded",
            AgentStatus::Offline => "offline",
            AgentStatus::NeedsRecovery => "needs_recovery",
            AgentStatus::VersionUnsupported => "version_unsupported",
            AgentStatus::Disabled => "disabled",
        }
    }
}

/// The colour beside the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Green.
    Healthy,
    /// Yellow: only warnings (or a flapping check).
    Unhealthy,
    /// Red.
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Healthy, Severity::Unhealthy, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Healthy => "healthy",
            Severity::Unhealthy => "unhealthy",
            Severity::Critical => "critical",
        }
    }
}

/// Derives the overall status from every check's damped state:
/// - `disabled` while in maintenance (probes run, nothing is alarmed: healthy);
/// - `offline` when a `control_plane` check is failing (crit or unknown);
/// - `degraded` when only `resource` checks are failing;
/// - `online` otherwise, warnings included (they show in the severity).
///
/// Pending checks (no result yet) count for nothing.
pub fn overall<'a>(
    checks: impl IntoIterator<Item = (Role, &'a CheckHealth)>,
    disabled: bool,
) -> (AgentStatus, Severity) {
    let (mut cp_failing, mut res_failing, mut warned) = (false, false, false);
    for (role, h) in checks {
        match h.status {
            Some(s) if s.is_failing() => match role {
                Role::ControlPlane => cp_failing = true,
                Role::Resource => res_failing = true,
            },
            Some(Status::Warn) => warned = true,
            _ => {}
        }
        warned |= h.flapping;
    }
    if disabled {
        return (AgentStatus::Disabled, Severity::Healthy);
    }
    let status = if cp_failing {
        AgentStatus::Offline
    } else if res_failing {
        AgentStatus::Degraded
    } else {
        AgentStatus::Online
    };
    let severity = if cp_failing || res_failing {
        Severity::Critical
    } else if warned {
        Severity::Unhealthy
    } else {
        Severity::Healthy
    };
    (status, severity)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::outcome::Phases;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_sample_is_four_bytes_and_keeps_its_duration_within_a_tenth_percent() {
        assert_eq!(std::mem::size_of::<Sample>(), 4);
        for us in [
            0u64,
            1,
            2047,
            2048,
            4_999,
            123_456,
            5_000_000,
            3_600_000_000,
        ] {
            let s = Sample::new(
                Duration::from_micros(us),
                Status::Warn,
                Some(Reason::Timeout),
            );
            let back = s.micros();
            assert!(
                back <= us && us - back <= us / 1000,
                "{us} came back {back}"
            );
            assert_eq!((s.status, s.reason), (Status::Warn, Some(Reason::Timeout)));
        }
        assert!(Sample::new(Duration::MAX, Status::Ok, None).micros() > 1 << 40);
    }

    fn outcome(status: Status, t: u64) -> Outcome {
        Outcome {
            status,
            reason: (status != Status::Ok).then_some(Reason::ConnectRefused),
            message: String::new(),
            duration: Duration::ZERO,
            phases: Phases::default(),
            peer: None,
            at: UNIX_EPOCH + Duration::from_secs(t),
            detail: Default::default(),
            late: Duration::ZERO,
        }
    }

    fn feed(h: &mut CheckHealth, seq: &[Status], fall: u32, rise: u32) -> Vec<Option<Status>> {
        seq.iter()
            .enumerate()
            .map(|(i, s)| {
                h.record(outcome(*s, i as u64), fall, rise);
                h.status
            })
            .collect()
    }

    use Status::{Crit as C, Ok as O, Warn as W};

    #[test]
    fn fall_needs_consecutive_failures_and_rise_consecutive_successes() {
        let mut h = CheckHealth::new(UNIX_EPOCH);
        let got = feed(&mut h, &[O, C, C, O, C, C, C, O, C, O, O], 3, 2);
        let want = [O, O, O, O, O, O, C, C, C, C, O].map(Some);
        assert_eq!(got, want);
        assert_eq!(h.since, UNIX_EPOCH + Duration::from_secs(10));
        assert_eq!(h.failures[&Reason::ConnectRefused], 6);
        assert_eq!(h.last_success, Some(UNIX_EPOCH + Duration::from_secs(10)));
    }

    #[test]
    fn first_result_sets_state_and_failing_follows_latest_severity() {
        let mut h = CheckHealth::new(UNIX_EPOCH);
        assert_eq!(feed(&mut h, &[C, W, C], 3, 2), [C, W, C].map(Some));
    }

    #[test]
    fn flapping_starts_above_50_and_stops_below_25_percent() {
        let mut h = CheckHealth::new(UNIX_EPOCH);
        // Steady ok: 0%.
        feed(&mut h, &[O; 21], 3, 2);
        assert_eq!(h.flap_percent, 0.0);
        // Alternate until the weighted change passes 50%.
        let mut turned_on = None;
        for i in 0..21 {
            h.record(outcome(if i % 2 == 0 { C } else { O }, 100 + i), 3, 2);
            if h.flapping && turned_on.is_none() {
                turned_on = Some(i);
                assert!(h.flap_percent > FLAP_START);
            }
        }
        assert!(turned_on.is_some(), "alternating results must flap");
        assert!((h.flap_percent - 100.0).abs() < 1e-9, "{}", h.flap_percent);
        // Steady again: stays flapping between 25% and 50% (hysteresis), then stops.
        let mut turned_off = None;
        for i in 0..21 {
            h.record(outcome(O, 200 + i), 3, 2);
            if !h.flapping && turned_off.is_none() {
                turned_off = Some(i);
                assert!(h.flap_percent < FLAP_STOP);
            }
            if turned_off.is_none() {
                assert!(h.flapping);
            }
        }
        assert!(
            turned_off.unwrap() > 5,
            "hysteresis keeps it flapping a while"
        );
        assert!(!h.flapping);
    }

    #[test]
    fn weights_run_from_075_to_125() {
        // One change at the newest transition: 1.25 / 20 = 6.25%.
        let mut hist: VecDeque<Status> = std::iter::repeat_n(O, 20).collect();
        hist.push_back(C);
        assert!((flap_percent(&hist) - 6.25).abs() < 1e-9);
        // One change at the oldest: 0.75 / 20 = 3.75%.
        let mut hist: VecDeque<Status> = std::iter::repeat_n(O, 20).collect();
        hist.push_front(C);
        assert!((flap_percent(&hist) - 3.75).abs() < 1e-9);
    }

    fn with(status: Option<Status>, flapping: bool) -> CheckHealth {
        let mut h = CheckHealth::new(UNIX_EPOCH);
        h.status = status;
        h.flapping = flapping;
        h
    }

    #[test]
    fn overall_status_and_severity() {
        use AgentStatus::*;
        use Role::{ControlPlane as CP, Resource as R};
        let ok = with(Some(O), false);
        let warn = with(Some(W), false);
        let crit = with(Some(C), false);
        let unknown = with(Some(Status::Unknown), false);
        let pending = with(None, false);
        let flap = with(Some(O), true);
        assert_eq!(
            overall([(CP, &ok), (R, &ok), (R, &pending)], false),
            (Online, Severity::Healthy)
        );
        assert_eq!(
            overall([(CP, &ok), (R, &warn)], false),
            (Online, Severity::Unhealthy)
        );
        assert_eq!(
            overall([(CP, &ok), (R, &flap)], false),
            (Online, Severity::Unhealthy)
        );
        assert_eq!(
            overall([(CP, &ok), (R, &crit)], false),
            (Degraded, Severity::Critical)
        );
        assert_eq!(
            overall([(CP, &unknown), (R, &ok)], false),
            (Offline, Severity::Critical)
        );
        assert_eq!(
            overall([(CP, &crit), (R, &crit)], false),
            (Offline, Severity::Critical)
        );
        assert_eq!(overall([(CP, &warn)], false), (Online, Severity::Unhealthy));
        assert_eq!(overall([(CP, &crit)], true), (Disabled, Severity::Healthy));
    }
}
