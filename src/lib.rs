//! tether: a connector health agent. See README.md for the map from concepts
//! to files; `main.rs` only parses arguments and calls [`cli::main`].

pub mod clock;
pub mod config;
pub mod duration;
pub mod http1;
pub mod json;
pub mod net;
pub mod probe;
pub mod resolve;
pub mod target;
pub mod url;
