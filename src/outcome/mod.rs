//! What a probe reports and the scheduler records, below everything that
//! fills it in: the status, the reason codes (an interface), the phases and
//! their clock ([`Trace`]), a probe's [`Report`] and a run's [`Outcome`].
//! The network code (connect, HTTP/1, TLS, the resolver) and the probes
//! import this; it imports only a leaf (`format::perfdata`). The reason
//! codes are in `reason.rs`, the phases and their clock in `phase.rs`; this
//! file names them all, so the contract reads as one vocabulary,
//! `crate::outcome::…`.

mod phase;
mod reason;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

pub use phase::{Phase, Phases, Trace};
pub use reason::{connect_reason, io_reason, Reason};

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
