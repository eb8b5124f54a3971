//! What a probe reports and the scheduler records, below everything that
//! fills it in: the status, the reason codes (an interface), the phases and
//! their clock ([`Trace`]), a probe's [`Report`] and a run's [`Outcome`].
//! The network code (connect, HTTP/1, TLS, the resolver) and the probes
//! import this; it imports only a leaf (`perfdata`).

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// A check result's status, ordered from best to worst for display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warn,
    Crit,
    Unknown,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Ok, Status::Warn, Status::Crit, Status::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Crit => "crit",
            Status::Unknown => "unknown",
        }
    }

    /// The Nagios plugin exit code for this status.
    pub fn nagios_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Crit => 2,
            Status::Unknown => 3,
        }
    }

    /// Rank for "worst of": crit > unknown > warn > ok. Unknown means tether
    /// could not tell, which an operator must look at before a mere warning.
    pub fn badness(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warn => 1,
            Status::Unknown => 2,
            Status::Crit => 3,
        }
    }

    /// Crit and unknown count as *failing* for the agent's overall status;
    /// a warning does not take a connector offline.
    pub fn is_failing(self) -> bool {
        matches!(self, Status::Crit | Status::Unknown)
    }
}

macro_rules! reasons {
    ($($variant:ident => $code:literal, $doc:literal;)*) => {
        /// Why a probe did not come back ok: a stable snake_case code carried in
        /// every result, exported in `/status` and counted in `/metrics`.
        /// Codes are an interface: never rename one, only add.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason { $(#[doc = $doc] $variant,)* }

        impl Reason {
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];
            pub fn code(self) -> &'static str {
                match self { $(Reason::$variant => $code,)* }
            }
        }
    };
}

reasons! {
    ConnectRefused => "connect_refused", "The target answered the SYN with a RST: nothing listens there.";
    ConnectTimeout => "connect_timeout", "No answer to the SYN before the deadline: a filtered port or a full backlog.";
    HostUnreachable => "host_unreachable", "The kernel or a router reported the host unreachable.";
    NetworkUnreachable => "network_unreachable", "No route to the target's network.";
    ConnectError => "connect_error", "Any other error while connecting.";
    ConnectionReset => "connection_reset", "The peer reset the connection (RST) mid-exchange.";
    DnsNxdomain => "dns_nxdomain", "The name does not exist (NXDOMAIN) in any search domain.";
    DnsNoData => "dns_no_data", "The name exists but has no address of the wanted family.";
    DnsTimeout => "dns_timeout", "No nameserver answered within its timeout and attempts.";
    DnsServfail => "dns_servfail", "The nameservers answered SERVFAIL.";
    DnsRefused => "dns_refused", "The nameservers refused the query.";
    DnsError => "dns_error", "A malformed reply or no usable nameserver.";
    DnsMismatch => "dns_mismatch", "The answer lacks an expected address.";
    HttpStatus => "http_status", "The HTTP status is not one of the expected ones.";
    CredentialsRejected => "credentials_rejected", "HTTP 401 or 403: the credentials the connector presents were refused.";
    BodyMismatch => "body_mismatch", "The response body lacks `body_contains`.";
    HttpProtocol => "http_protocol", "The server's reply is not valid HTTP/1.x.";
    TooManyRedirects => "too_many_redirects", "More redirects than allowed, or a redirect to an unsupported URL.";
    TlsHandshake => "tls_handshake", "The TLS handshake failed for a reason other than the certificate (protocol, alert, not TLS).";
    TlsTimeout => "tls_timeout", "The deadline passed during the TLS handshake.";
    TlsUntrusted => "tls_untrusted", "The certificate chain does not lead to a trusted root (unknown issuer, bad signature, wrong usage).";
    TlsExpired => "tls_expired", "A certificate is past its notAfter date (or fewer than `crit_days` days remain).";
    TlsNotYetValid => "tls_not_yet_valid", "A certificate's notBefore date is in the future (check the clock).";
    TlsHostnameMismatch => "tls_hostname_mismatch", "The certificate is not valid for the name (or address) that was asked for.";
    CertExpiring => "cert_expiring", "Fewer than `warn_days` days remain before the certificate expires.";
    FileMissing => "file_missing", "The path does not exist.";
    FileError => "file_error", "The path cannot be read, or its content is not what the check expects.";
    ExecStatus => "exec_status", "The command exited non-zero: 1 is warn, 2 crit, others unknown (a Nagios plugin's verdict).";
    ExecSignal => "exec_signal", "The command was killed by a signal (other than tether's at the deadline).";
    ExecError => "exec_error", "The command could not be started (not found, not executable).";
    FileStale => "file_stale", "The file was last modified longer ago than `warn_age` / `crit_age`.";
    FileTooSmall => "file_too_small", "The file is smaller than `min_size`.";
    NotWritable => "not_writable", "The directory does not let the agent create, write, fsync and remove a file.";
    CpuOverloaded => "cpu_overloaded", "The CPU busy percent over the window is at or above `warn_percent`: the host is overloaded.";
    MemoryLow => "memory_low", "Available memory is below `memory_warn_percent` / `memory_crit_percent` of the total.";
    DiskLow => "disk_low", "Free space on `disk_path` is below `disk_warn_percent` / `disk_crit_percent`.";
    ExpectMismatch => "expect_mismatch", "The TCP banner does not start with `expect`.";
    Timeout => "timeout", "The deadline passed after connecting, waiting for or reading the reply.";
    InFlightLimit => "in_flight_limit", "The probe could not start before its deadline: too many probes in flight.";
    IoError => "io_error", "Another I/O error during the exchange.";
    ConnectionClosed => "connection_closed", "The peer closed the connection cleanly (FIN) before its reply was complete.";
    RedirectRefused => "redirect_refused", "A redirect the check will not follow: from https to http, or to a Location that is not a usable URL.";
    HttpHeadTooLarge => "http_head_too_large", "The response head is larger than 64 KiB or has more than 500 header fields.";
}

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
}

impl Trace {
    pub fn new(start: Instant) -> Self {
        Trace {
            start,
            entered: Cell::new(None),
            phases: Cell::new(Phases::default()),
            peer: Cell::new(None),
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

/// What a probe found. The scheduler adds timing to make an [`Outcome`].
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub status: Status,
    pub reason: Option<Reason>,
    pub message: String,
    pub detail: Detail,
}

impl Report {
    pub fn new(status: Status, reason: Option<Reason>, message: impl Into<String>) -> Self {
        Report {
            status,
            reason,
            message: message.into(),
            detail: Detail::default(),
        }
    }

    pub fn ok(message: impl Into<String>) -> Self {
        Report::new(Status::Ok, None, message)
    }

    pub fn crit(reason: Reason, message: impl Into<String>) -> Self {
        Report::new(Status::Crit, Some(reason), message)
    }

    pub fn with_cert(mut self, cert: Option<CertDetail>) -> Self {
        self.detail.cert = cert.map(Box::new);
        self
    }
}

/// What a probe learned besides its verdict, for `/status` and `/metrics`.
/// Boxed parts: most results (TCP, HTTP) carry none, and every result is
/// moved through several futures, so it stays 48 bytes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Detail {
    /// The certificate a `tls` or `https` check was shown, or a
    /// `cert_file` check read.
    pub cert: Option<Box<CertDetail>>,
    /// Performance data an `exec` check's plugin printed.
    pub perf: Vec<crate::format::perfdata::PerfDatum>,
    /// A `file` check's findings.
    pub file: Option<Box<FileDetail>>,
    /// A `system` check's readings.
    pub system: Option<Box<SystemDetail>>,
    /// The HTTP status of an `http` check's last response (after
    /// redirects), when one came.
    pub http_status: Option<u16>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FileDetail {
    pub age_seconds: f64,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SystemDetail {
    pub cpu_percent: f64,
    /// `None`: the average since boot (first run).
    pub cpu_window_seconds: Option<f64>,
    /// The CPU part is at or above `warn_percent`.
    pub overloaded: bool,
    pub memory_available_bytes: u64,
    pub memory_total_bytes: u64,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
}

/// What a certificate says about itself, read by the X.509 code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// `CN=..., O=...`, attributes in the order the certificate lists them.
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CertDetail {
    pub info: CertInfo,
    /// Chain, dates and name verified: `Some(true/false)` for a handshake,
    /// `None` for a file (only its dates are judged).
    pub verified: Option<bool>,
    /// The check has `insecure_skip_verify = true`.
    pub verify_skipped: bool,
}

/// One finished run of a check: the probe's report plus the scheduler's figures.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    pub reason: Option<Reason>,
    pub message: String,
    pub duration: Duration,
    pub phases: Phases,
    pub peer: Option<SocketAddr>,
    pub at: SystemTime,
    pub detail: Detail,
    /// How long after its slot the probe started (or gave up waiting for
    /// an in-flight permit).
    pub late: Duration,
}

/// The report for a path that cannot be used: `file_missing` when it does
/// not exist, else `file_error` naming what failed.
pub fn path_error(path: &std::path::Path, e: &std::io::Error) -> Report {
    if e.kind() == std::io::ErrorKind::NotFound {
        Report::crit(
            Reason::FileMissing,
            format!("{} does not exist", path.display()),
        )
    } else {
        Report::crit(Reason::FileError, format!("{}: {e}", path.display()))
    }
}

/// Maps a connect error to its reason code.
pub fn connect_reason(e: &std::io::Error) -> Reason {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => Reason::ConnectRefused,
        K::TimedOut => Reason::ConnectTimeout,
        K::HostUnreachable => Reason::HostUnreachable,
        K::NetworkUnreachable => Reason::NetworkUnreachable,
        _ => Reason::ConnectError,
    }
}

/// Maps an error during an established exchange to its reason code.
pub fn io_reason(e: &std::io::Error) -> Reason {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Reason::ConnectionReset,
        K::UnexpectedEof => Reason::ConnectionClosed,
        K::TimedOut => Reason::Timeout,
        _ => Reason::IoError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let c = r.code();
            assert!(
                c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
            assert!(seen.insert(c), "duplicate {c}");
        }
    }

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
