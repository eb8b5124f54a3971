//! OTLP/HTTP metrics, the third destination beside the upstream and
//! remote-write: so far its wire format ([`wire`]), the points records
//! stand for ([`points`]) and the resource that sends them ([`resource`]);
//! its delivery lane and configuration are not built yet.

pub mod points;
pub mod resource;
pub mod wire;
