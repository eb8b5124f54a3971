//! OTLP/HTTP metrics, the third destination beside the upstream and
//! remote-write: so far its wire format ([`wire`]) and the points records
//! stand for ([`points`]); its delivery lane and configuration are not
//! built yet.

pub mod points;
pub mod wire;
