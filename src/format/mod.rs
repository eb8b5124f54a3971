//! Text formats every layer writes, with no knowledge of the agent: a JSON
//! writer and reader ([`json`]), Nagios performance data ([`perfdata`]),
//! clipped, redacted words for operators ([`text`]). Imports nothing else
//! of the crate.

pub mod json;
pub mod perfdata;
pub mod text;
