//! Text formats every layer writes, with no knowledge of the agent: base64
//! ([`base64`]), gzip ([`gzip`]), a JSON
//! writer ([`json`]) and a reader of one object's top-level fields
//! ([`json_fields`]), Nagios performance data ([`perfdata`]), protocol
//! buffers' wire format ([`protobuf`]),
//! clipped, redacted words for operators ([`text`]). Imports nothing else
//! of the crate.

pub mod base64;
pub mod gzip;
pub mod json;
pub mod json_fields;
pub mod perfdata;
pub mod protobuf;
pub mod text;
