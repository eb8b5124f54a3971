//! The phases a probe passes through and their clock ([`Trace`]): where the
//! time went, and which timeout reason a deadline gets in each phase.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::Reason;

/// The phases a probe passes through, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Resolve = 0,
    Connect = 1,
    Tls = 2,
    FirstByte = 3,
    Transfer = 4,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Resolve,
        Phase::Connect,
        Phase::Tls,
        Phase::FirstByte,
        Phase::Transfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::FirstByte => "first_byte",
            Phase::Transfer => "transfer",
        }
    }

    /// The reason a deadline gets when it fires during this phase, so a
    /// black-holed nameserver reads `dns_timeout`, not `connect_timeout`.
    pub fn timeout_reason(phase: Option<Phase>) -> Reason {
        match phase {
            Some(Phase::Resolve) => Reason::DnsTimeout,
            Some(Phase::Connect) => Reason::ConnectTimeout,
            Some(Phase::Tls) => Reason::TlsTimeout,
            _ => Reason::Timeout,
        }
    }
}

/// Every phase, always present (zero when not reached), like blackbox's
/// `probe_http_duration_seconds{phase=...}`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Phases(pub [Duration; 5]);

impl Phases {
    pub fn get(&self, p: Phase) -> Duration {
        self.0[p as usize]
    }
}

/// The phase clock a probe advances and the scheduler reads, also after it
/// dropped the probe at its deadline. Cells only: one thread, no locks.
pub struct Trace {
    start: Instant,
    /// Start instant of each phase entered, in order; accumulates when a
    /// phase is entered twice (redirects, address fallback).
    entered: Cell<Option<(Phase, Instant)>>,
    phases: Cell<Phases>,
    /// The address being tried or used: "which family was used" is data.
    peer: Cell<Option<SocketAddr>>,
    /// The blocking call a helper is making for the probe (`stat /mnt/x`),
    /// so a deadline that passes during it can name it.
    waiting: Cell<Option<String>>,
}

impl Trace {
    pub fn new(start: Instant) -> Self {
        Trace {
            start,
            entered: Cell::new(None),
            phases: Cell::new(Phases::default()),
            peer: Cell::new(None),
            waiting: Cell::new(None),
        }
    }

    /// Closes the current phase and opens `p`.
    pub fn enter(&self, p: Phase) {
        let now = Instant::now();
        self.close(now);
        self.entered.set(Some((p, now)));
    }

    fn close(&self, now: Instant) {
        if let Some((cur, since)) = self.entered.take() {
            let mut phases = self.phases.get();
            phases.0[cur as usize] += now.saturating_duration_since(since);
            self.phases.set(phases);
        }
    }

    pub fn set_peer(&self, addr: SocketAddr) {
        self.peer.set(Some(addr));
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer.get()
    }

    /// Says which blocking call the probe waits on (`None` once it returned).
    pub fn wait_on(&self, call: Option<String>) {
        self.waiting.set(call);
    }

    pub fn waiting_on(&self) -> Option<String> {
        let w = self.waiting.take();
        self.waiting.set(w.clone());
        w
    }

    pub fn current(&self) -> Option<Phase> {
        self.entered.get().map(|(p, _)| p)
    }

    /// Ends the trace at `now`: total duration and the closed phases.
    pub fn finish(&self, now: Instant) -> (Duration, Phases, Option<SocketAddr>) {
        self.close(now);
        (
            now.saturating_duration_since(self.start),
            self.phases.get(),
            self.peer.get(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_accumulates_phases_and_maps_timeouts() {
        let start = Instant::now();
        let t = Trace::new(start);
        assert_eq!(Phase::timeout_reason(t.current()), Reason::Timeout);
        t.enter(Phase::Resolve);
        assert_eq!(Phase::timeout_reason(t.current()), Reason::DnsTimeout);
        t.enter(Phase::Connect);
        assert_eq!(Phase::timeout_reason(t.current()), Reason::ConnectTimeout);
        let end = Instant::now() + Duration::from_millis(5);
        let (total, phases, _) = t.finish(end);
        assert!(total >= Duration::from_millis(5));
        assert!(phases.get(Phase::Connect) >= Duration::from_millis(5));
        assert_eq!(phases.get(Phase::Tls), Duration::ZERO);
    }
}
