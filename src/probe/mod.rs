//! Probes: one file per kind, each an `async fn` with the same shape, dispatched
//! by the one `match` in [`run`]. A probe reports *what it found*; the scheduler
//! owns the deadline, the total duration and the phase clock ([`Trace`]).
//! A probe fills the contract of [`crate::outcome`]; it may import
//! `config` (its spec), `net`, `outcome`, `os` and `format`.

pub mod cert_file;
pub mod dns;
pub mod exec;
pub mod file;
pub mod http;
pub mod system;
pub mod tcp;
pub mod tls;
pub mod writable;

use crate::net::connect::Context;
use crate::outcome::{Report, Trace};

use crate::config::ProbeSpec;

/// Runs one probe of any kind; the single dispatch point.
pub async fn run(spec: &ProbeSpec, ctx: &Context<'_>, trace: &Trace) -> Report {
    // Each kind's state machine goes on the heap at its own size: inline, every
    // task would carry the largest kind, copied again by each combinator
    // around it (20 KiB a task, measured), and the heap would grow and shrink
    // by that every wake-up.
    match spec {
        ProbeSpec::Tcp(s) => Box::pin(tcp::probe(s, ctx, trace)).await,
        ProbeSpec::Http(s) => Box::pin(http::probe(s, ctx, trace)).await,
        ProbeSpec::Dns(s) => Box::pin(dns::probe(s, ctx, trace)).await,
        ProbeSpec::Tls(s) => Box::pin(tls::probe(s, ctx, trace)).await,
        ProbeSpec::CertFile(s) => cert_file::probe(s),
        ProbeSpec::Exec(s) => Box::pin(exec::probe(s)).await,
        ProbeSpec::File(s) => file::probe(s),
        ProbeSpec::Writable(s) => writable::probe(s),
        ProbeSpec::System(s) => system::probe(s),
    }
}
