//! Diagnosis on demand: `tether doctor` (the connector runbook, step by
//! step, with findings and fixes) and `tether bundle` (a redacted support
//! bundle). Read-only over the agent: may import `agent`, `uplink`, `probe`,
//! `config`, `net`, `outcome`, `os`, `format`.

pub mod bundle;
pub mod doctor;
