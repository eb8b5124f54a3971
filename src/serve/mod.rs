//! The local HTTP endpoint ([`endpoint`]: `/health`, `/ready`, `/status`,
//! `/metrics`, `/doctor`, on loopback) and the Prometheus exposition
//! ([`metrics`]). Reads the agent, changes nothing in it: may import
//! `diagnose`, `agent` and everything below.

pub mod endpoint;
pub mod metrics;
