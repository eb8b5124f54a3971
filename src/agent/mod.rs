//! The running agent on its one thread: the live state ([`state`]) that the
//! scheduler, the delivery loops (upstream and remote-write), the control
//! plane's checks ([`remote_config`]), the on_change runner and the endpoint
//! share; the health model and its history; maintenance; the status
//! snapshot everything shows.
//!
//! The state is data with the operations that keep it consistent; the loops
//! that act on it (scheduler, delivery, on_change) and the views of it
//! (snapshot) import it, never the other way round. May import `uplink`,
//! `probe`, `config`, `net`, `outcome`, `os`, `format`.

pub mod delivery;
pub mod health;
pub mod history;
pub mod lateness;
pub mod limit;
pub mod maintenance;
pub mod on_change;
pub mod otlp;
pub mod receiver;
pub mod remote_config;
pub mod remote_write;
pub mod scheduler;
pub mod snapshot;
pub mod spool_sync;
pub mod state;
