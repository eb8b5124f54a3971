//! tether: a connector health agent. See README.md for the map from concepts
//! to files; `main.rs` only parses arguments and calls [`cli::main`].

pub mod agent;
pub mod alarm;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cpu;
pub mod crc32c;
pub mod delivery;
pub mod duration;
pub mod endpoint;
pub mod health;
pub mod http1;
pub mod identity;
pub mod json;
pub mod limit;
pub mod logger;
pub mod maintenance;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod perfdata;
pub mod probe;
pub mod process;
pub mod procfs;
pub mod record;
pub mod report;
pub mod resolve;
pub mod scheduler;
pub mod spool;
pub mod state;
pub mod target;
pub mod tls;
pub mod upstream;
pub mod url;
pub mod x509;
