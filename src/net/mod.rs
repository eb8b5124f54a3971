//! The network, as probes and the upload use it: the stub resolver
//! ([`resolve`]), connecting with per-address deadlines ([`connect`]),
//! HTTP/1 ([`http1`]), TLS with verification and its sentences ([`tls`]),
//! just enough X.509 ([`x509`]), URLs ([`url`]) and `host:port` targets
//! ([`target`]). Each fills the probe contract ([`crate::outcome`]) but knows
//! nothing of checks or configuration. May import `outcome`, `os`, `format`.

pub mod connect;
pub mod http1;
pub mod resolve;
pub mod target;
pub mod tls;
pub mod url;
pub mod x509;
