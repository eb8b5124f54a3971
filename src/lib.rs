//! tether: a connector health agent. `main.rs` only calls [`cli::main`].
//!
//! The crate is a stack of subsystems, one folder each; a folder imports
//! only the folders below it (`tests/module_graph.rs` fails on any loop,
//! between files or between folders):
//!
//! | folder | owns |
//! |---|---|
//! | [`cli`] | the command line, one file per command; `run` wires the daemon |
//! | [`serve`] | the local HTTP endpoint and `/metrics` |
//! | [`diagnose`] | `tether doctor` and the support bundle |
//! | [`agent`] | the live state, the scheduler, health, history, maintenance, the delivery and on_change loops, the status snapshot |
//! | [`uplink`] | what is kept for and sent to the control plane: records, identity, outbox, spool, the upload |
//! | [`probe`] | one file per check kind, behind one dispatch |
//! | [`config`] | the configuration model, its validation, the TOML reader, durations |
//! | [`net`] | connecting, DNS, HTTP/1, TLS, X.509, URLs and targets |
//! | [`outcome`] | the probe contract: status, reason codes, phases, reports |
//! | [`os`] | clocks and timers, processes, /proc, systemd notify, the logger, files |
//! | [`format`] | text formats every layer writes: JSON, Nagios perfdata, clipped and redacted words |

pub mod agent;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod format;
pub mod net;
pub mod os;
pub mod outcome;
pub mod probe;
pub mod serve;
pub mod uplink;
