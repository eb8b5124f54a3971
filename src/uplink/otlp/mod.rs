//! OTLP/HTTP metrics, the third destination beside the upstream and
//! remote-write: so far its wire format ([`wire`]); the series it sends,
//! its delivery lane and configuration are not built yet.

pub mod wire;
