//! The records tether sends upstream, one JSON object per NDJSON line (the
//! protocol is documented field by field in `docs/protocol.md`).
//!
//! A record is kept as its *body*: the JSON object from `"time"` on, without
//! the agent id and the sequence number. Those two are written in front at
//! upload time (`{"agent_id":"…","seq":N,` + body), so the spool stores the
//! sequence number once (in its frame) and a record queued while the identity
//! was unreadable is sent under the identity `tether enroll` made.
//!
//! Every body starts with `"time":"YYYY-MM-DDTHH:MM:SS.mmmZ"` at a fixed
//! place, so the spool can read a record's age back without a JSON parser.

use std::fmt;

use crate::config::Check;
use crate::format::json::Json;
use crate::os::clock::rfc3339_millis;
use crate::outcome::{Outcome, Status};

#[derive(Clone, Debug, PartialEq)]
pub struct Rec {
    pub seq: u64,
    /// Unix milliseconds of `time`, for the backlog's age.
    pub time_ms: u64,
    /// The JSON object from `"time"` on, closing brace included. Shared:
    /// a batch taken from the ring holds the same bytes, not a copy.
    pub body: std::rc::Rc<str>,
    /// For a gap record, what it reports: if the record is itself dropped,
    /// its range is folded into the next gap so nothing vanishes unreported.
    pub gap: Option<Gap>,
}

/// Why records could not be delivered; the `reason` of a gap record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GapReason {
    /// The spool reached `max_bytes`: its oldest segment was dropped.
    SpoolFull,
    /// The memory ring reached `ring_records` while the disk could not take
    /// records (or before the first spill).
    RingFull,
    /// A spool record failed its checksum (or could not be framed).
    SpoolCorrupt,
    /// The upstream refused a batch for good (a 4xx): it went to the
    /// dead-letter file.
    Rejected,
    /// The agent did not stop cleanly: sequence numbers it may have given to
    /// records that were still only in memory.
    UncleanShutdown,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::SpoolFull => "spool_full",
            GapReason::RingFull => "ring_full",
            GapReason::SpoolCorrupt => "spool_corrupt",
            GapReason::Rejected => "rejected",
            GapReason::UncleanShutdown => "unclean_shutdown",
        }
    }

    pub fn parse(s: &str) -> Option<GapReason> {
        [
            GapReason::SpoolFull,
            GapReason::RingFull,
            GapReason::SpoolCorrupt,
            GapReason::Rejected,
            GapReason::UncleanShutdown,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Records the receiver will never get: sequence numbers `first..=last`,
/// `count` of them records (fewer than the range when some numbers in it
/// were delivered or never used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub first: u64,
    pub last: u64,
    pub count: u64,
    pub reason: GapReason,
    /// The destinations that miss these records: bits of
    /// `spool::Dest::bit` (upstream 1, remote_write 2, otlp 4).
    pub dests: u8,
}

/// Every destination: a loss before the spool (ring full, a crash, damage
/// on disk) misses them all.
pub const ALL_DESTS: u8 = 0b111;

/// The names of the destinations in a gap's `dests`, for its record.
const DEST_NAMES: [(u8, &str); 3] = [(1, "upstream"), (2, "remote_write"), (4, "otlp")];

impl Gap {
    /// One gap covering both; the reason of the larger loss wins.
    pub fn merge(self, other: Gap) -> Gap {
        Gap {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
            count: self.count + other.count,
            reason: if other.count > self.count {
                other.reason
            } else {
                self.reason
            },
            dests: self.dests | other.dests,
        }
    }

    /// This gap, widened by the record `r` that is being dropped (and by the
    /// range `r` reported, if it was a gap record itself).
    pub fn absorb(gap: Option<Gap>, r: &Rec, reason: GapReason) -> Gap {
        let own = Gap {
            first: r.seq,
            last: r.seq,
            count: 1,
            reason,
            dests: ALL_DESTS,
        };
        let own = match r.gap {
            Some(g) => own.merge(g),
            None => own,
        };
        match gap {
            Some(g) => g.merge(own),
            None => own,
        }
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} records in seq {}-{} ({})",
            self.count,
            self.first,
            self.last,
            self.reason.as_str()
        )
    }
}

/// The offset of the time value inside a body: `"time":"` is 8 bytes.
pub const TIME_AT: usize = 8;
/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub const TIME_LEN: usize = 24;

/// A record body under construction: `"time"` and `"type"` are written first.
pub struct Body {
    json: Json,
    time_ms: u64,
}

impl Body {
    pub fn new(time_ms: u64, kind: &str) -> Body {
        let mut json = Json::new();
        json.begin_object(None)
            .str(Some("time"), &rfc3339_millis(time_ms))
            .str(Some("type"), kind);
        Body { json, time_ms }
    }

    pub fn json(&mut self) -> &mut Json {
        &mut self.json
    }

    pub fn finish(mut self, seq: u64, gap: Option<Gap>) -> Rec {
        self.json.end_object();
        let text = self.json.finish();
        Rec {
            seq,
            time_ms: self.time_ms,
            // Without the opening brace: the upload writes it with the id.
            body: text[1..].into(),
            gap,
        }
    }
}

/// `type = "result"`: one run of one check, with `health`, the check's
/// damped status after it (`None`: still pending), and whether it flaps.
pub fn result(
    spec: &Check,
    o: &Outcome,
    (health, flapping): (Option<Status>, bool),
    time_ms: u64,
) -> Body {
    let mut b = Body::new(time_ms, "result");
    b.json()
        .str(Some("check"), &spec.name)
        .str(Some("kind"), spec.probe.kind())
        .str(Some("role"), spec.role.as_str())
        .str(Some("status"), o.status.as_str())
        .str(Some("health"), health.map_or("pending", Status::as_str))
        .bool(Some("flapping"), flapping)
        .opt_str(Some("reason"), o.reason.map(|r| r.code()))
        .str(Some("message"), &o.message)
        .float(
            Some("duration_ms"),
            (o.duration.as_secs_f64() * 1e6).round() / 1e3,
        )
        .opt_str(Some("peer"), o.peer.map(|p| p.to_string()).as_deref());
    label_fields(&mut b, spec);
    // The figures remote-write sends as series of their own.
    let d = &o.detail;
    if let Some(c) = &d.cert {
        b.json().int(Some("cert_not_after"), c.info.not_after);
    }
    if let Some(f) = &d.file {
        b.json().float(Some("file_age_seconds"), f.age_seconds);
    }
    if let Some(s) = &d.system {
        b.json()
            .float(Some("cpu_busy_percent"), s.cpu_percent)
            .bool(Some("overloaded"), s.overloaded);
    }
    b
}

/// `type = "transition"`, `scope = "check"`, `to = "removed"`: a reload
/// removed the check (or changed its kind or role).
/// With the check's own labels, as a result has them.
pub fn removed(c: &Check, time_ms: u64) -> Body {
    let mut b = Body::new(time_ms, "transition");
    b.json()
        .str(Some("scope"), "check")
        .str(Some("check"), &c.name)
        .str(Some("kind"), c.probe.kind())
        .str(Some("role"), c.role.as_str())
        .str(Some("to"), "removed");
    label_fields(&mut b, c);
    b
}

/// The check's own labels as `"label.NAME":"value"` fields, kept with the
/// record: its series are those it was made under, whenever it is sent.
fn label_fields(b: &mut Body, c: &Check) {
    for (k, v) in &c.labels {
        b.json().str(Some(&format!("{LABEL_FIELD}{k}")), v);
    }
}

/// The prefix of a removed check's label fields.
pub const LABEL_FIELD: &str = "label.";

/// The states a result's `health` (its check's damped state) takes, in the
/// order every destination lists them.
pub const CHECK_STATES: [&str; 5] = ["ok", "warn", "crit", "unknown", "pending"];

/// A stored record's top-level fields, as `json_fields` reads them.
pub type Fields<'a> = [(
    std::borrow::Cow<'a, str>,
    crate::format::json_fields::Field<'a>,
)];

/// A stored result's or removal's check, kind and role, when it has all
/// three (the destinations' series and points start from them).
pub fn check_kind_role<'a>(f: &'a Fields) -> Option<(&'a str, &'a str, &'a str)> {
    use crate::format::json_fields::str_of;
    Some((str_of(f, "check")?, str_of(f, "kind")?, str_of(f, "role")?))
}

/// A stored record's check labels (its `label.NAME` fields).
pub fn own_labels<'a>(f: &'a Fields) -> Vec<(&'a str, &'a str)> {
    f.iter()
        .filter_map(|(k, v)| match v {
            crate::format::json_fields::Field::Str(v) => {
                Some((k.strip_prefix(LABEL_FIELD)?, v.as_ref()))
            }
            _ => None,
        })
        .collect()
}

/// `type = "transition"`, `scope = "check"`: a check's damped status changed.
pub fn check_transition(name: &str, from: &str, o: &Outcome, to: &str, time_ms: u64) -> Body {
    let mut b = Body::new(time_ms, "transition");
    b.json()
        .str(Some("scope"), "check")
        .str(Some("check"), name)
        .str(Some("from"), from)
        .str(Some("to"), to)
        .opt_str(Some("reason"), o.reason.map(|r| r.code()))
        .str(Some("message"), &o.message);
    b
}

/// `type = "transition"`, `scope = "agent"`: the agent's status changed.
pub fn agent_transition(from: &str, to: &str, severity: &str, why: &str, time_ms: u64) -> Body {
    let mut b = Body::new(time_ms, "transition");
    b.json()
        .str(Some("scope"), "agent")
        .str(Some("from"), from)
        .str(Some("to"), to)
        .str(Some("severity"), severity)
        .str(Some("message"), why);
    b
}

/// `type = "config"`: what the agent runs after a document from the control
/// plane (OpAMP's remote config status): its `revision`, `status`
/// (`applied` or `rejected`), the error lines when rejected, the checks
/// left out because a local one has the name, and the hash of the
/// effective configuration.
pub fn config(
    revision: &str,
    applied: bool,
    lines: (&[String], &[String]),
    hash: &str,
    time_ms: u64,
) -> Body {
    let mut b = Body::new(time_ms, "config");
    let j = b.json();
    j.str(Some("revision"), revision)
        .str(Some("status"), if applied { "applied" } else { "rejected" })
        .str(Some("hash"), hash)
        .strings(Some("errors"), lines.0)
        .strings(Some("clashes"), lines.1);
    b
}

/// `type = "gap"`.
pub fn gap(g: &Gap, time_ms: u64) -> Body {
    let mut b = Body::new(time_ms, "gap");
    b.json()
        .uint(Some("first_seq"), g.first)
        .uint(Some("last_seq"), g.last)
        .uint(Some("count"), g.count)
        .str(Some("reason"), g.reason.as_str())
        .begin_array(Some("destinations"));
    for (bit, name) in DEST_NAMES {
        if g.dests & bit != 0 {
            b.json().str(None, name);
        }
    }
    b.json().end_array();
    b
}

/// The wire line: `{"agent_id":"…","seq":N,` + `labels` (see
/// [`labels_field`]) + body + `\n`.
pub fn write_line(out: &mut Vec<u8>, agent_id: &str, seq: u64, labels: &str, body: &str) {
    out.extend_from_slice(b"{\"agent_id\":\"");
    out.extend_from_slice(agent_id.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.push(b',');
    out.extend_from_slice(labels.as_bytes());
    out.extend_from_slice(body.as_bytes());
    out.push(b'\n');
}

/// `"labels":{"group":"eu-west","site":"fra1"},` for the agent's labels,
/// added to each line at upload (so the labels are the agent's when it
/// sends; stored records carry none); empty without labels.
pub fn labels_field(labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut j = Json::new();
    j.string_map(None, labels);
    format!("\"labels\":{},", j.finish())
}

/// Reads back what the spool needs from a stored body: its time, and for a
/// gap record the range it reports. `None` if the body is not one of ours.
pub fn read_back(body: &str) -> Option<(u64, Option<Gap>)> {
    if !body.starts_with("\"time\":\"") || !body.ends_with('}') {
        return None;
    }
    let time_ms = crate::os::clock::parse_rfc3339_millis(body.get(TIME_AT..TIME_AT + TIME_LEN)?)?;
    let rest = &body[TIME_AT + TIME_LEN..];
    let gap = if rest.starts_with("\",\"type\":\"gap\"") {
        let field = |k: &str| -> Option<&str> {
            let at = rest.find(&format!("\"{k}\":"))? + k.len() + 3;
            let v = &rest[at..];
            let end = v.find([',', '}'])?;
            Some(&v[..end])
        };
        Some(Gap {
            first: field("first_seq")?.parse().ok()?,
            last: field("last_seq")?.parse().ok()?,
            count: field("count")?.parse().ok()?,
            reason: GapReason::parse(field("reason")?.trim_matches('"'))?,
            dests: match rest.find("\"destinations\":[") {
                Some(at) => {
                    let list = &rest[at..];
                    let list = &list[..list.find(']')?];
                    DEST_NAMES
                        .iter()
                        .filter(|(_, n)| list.contains(&format!("\"{n}\"")))
                        .fold(0, |m, (b, _)| m | b)
                }
                None => ALL_DESTS,
            },
        })
    } else {
        None
    };
    Some((time_ms, gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_body_reads_back() {
        let g = Gap {
            first: 10,
            last: 20,
            count: 7,
            reason: GapReason::SpoolFull,
            dests: ALL_DESTS,
        };
        let r = gap(&g, 1_795_290_810_123).finish(99, Some(g));
        assert_eq!(
            &*r.body,
            "\"time\":\"2026-11-21T19:53:30.123Z\",\"type\":\"gap\",\"first_seq\":10,\
             \"last_seq\":20,\"count\":7,\"reason\":\"spool_full\",\
             \"destinations\":[\"upstream\",\"remote_write\",\"otlp\"]}"
        );
        assert_eq!(read_back(&r.body), Some((1_795_290_810_123, Some(g))));
        let mut line = Vec::new();
        write_line(&mut line, "00ff", 99, "", &r.body);
        assert!(line.starts_with(b"{\"agent_id\":\"00ff\",\"seq\":99,\"time\":"));
        assert!(line.ends_with(b"}\n"));
    }

    #[test]
    fn absorbing_a_dropped_gap_keeps_its_range() {
        let old = Gap {
            first: 1,
            last: 5,
            count: 5,
            reason: GapReason::SpoolFull,
            dests: ALL_DESTS,
        };
        let dropped = gap(&old, 0).finish(6, Some(old));
        let g = Gap::absorb(None, &dropped, GapReason::RingFull);
        assert_eq!((g.first, g.last, g.count), (1, 6, 6));
        let plain = Body::new(0, "heartbeat").finish(7, None);
        let g = Gap::absorb(Some(g), &plain, GapReason::RingFull);
        assert_eq!((g.first, g.last, g.count), (1, 7, 7));
    }
}
