//! The local HTTP endpoint ([`endpoint`]: `/`, `/health`, `/ready`,
//! `/status`, `/metrics`, `/doctor`, on loopback), the Prometheus exposition
//! ([`metrics`]) and the status page ([`page`]). Reads the agent, changes
//! nothing in it: may import `diagnose`, `agent` and everything below.

pub mod endpoint;
pub mod metrics;
pub mod page;
