//! The OTLP/HTTP metrics body: a protobuf `ExportMetricsServiceRequest`
//! (`opentelemetry/proto/collector/metrics/v1`), and the answer's
//! `ExportMetricsPartialSuccess`. Only what tether sends is encoded:
//!
//! ```text
//! ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
//! ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
//! Resource        { repeated KeyValue attributes = 1; }
//! ScopeMetrics    { InstrumentationScope scope = 1; repeated Metric metrics = 2; }
//! InstrumentationScope { string name = 1; string version = 2; }
//! Metric          { string name = 1; string description = 2; string unit = 3;
//!                   oneof data { Gauge gauge = 5; Sum sum = 7; } }
//! Gauge           { repeated NumberDataPoint data_points = 1; }
//! Sum             { repeated NumberDataPoint data_points = 1;
//!                   AggregationTemporality aggregation_temporality = 2;  // 2: cumulative
//!                   bool is_monotonic = 3; }
//! NumberDataPoint { fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
//!                   double as_double = 4; repeated KeyValue attributes = 7; }
//! KeyValue        { string key = 1; AnyValue value = 2; }
//! AnyValue        { oneof value { string string_value = 1; } }
//! ExportMetricsServiceResponse { ExportMetricsPartialSuccess partial_success = 1; }
//! ExportMetricsPartialSuccess  { int64 rejected_data_points = 1; string error_message = 2; }
//! ```
//!
//! Fields go out in field-number order, as protobuf's own encoders write
//! them, so the tests can pin the bytes against the official definitions.
//! Each nested message is written in place after a one-byte length, which
//! is widened (the message moved right) only when it is 128 bytes or more:
//! attributes and points, the many small messages, are written once, and
//! only the few large ones (a metric, the scope's list) are moved.

use std::rc::Rc;

use crate::format::protobuf::{bytes_field, field, varint, varint_len};

/// What kind of metric, in OTLP's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// A value at its time (`up`, a duration, a status).
    Gauge,
    /// A cumulative, monotonic count since its points' start time.
    Counter,
}

/// One data point: its attributes, its value and when it was measured
/// (Unix ns); a counter's also since when it counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Shared by the points of one record (a check's).
    pub attributes: Rc<[(String, String)]>,
    /// One more, after those: a state's (`status` = `crit`).
    pub extra: Option<(&'static str, &'static str)>,
    pub start_ns: u64,
    pub time_ns: u64,
    pub value: f64,
}

/// One metric with its points.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub description: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub points: Vec<Point>,
}

impl Point {
    /// Every attribute, in order: the shared ones, then `extra`.
    pub fn all_attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(self.extra)
    }
}

/// Who sends: the resource's attributes and the instrumentation scope.
pub struct Origin<'a> {
    pub resource: &'a [(String, String)],
    pub scope_name: &'a str,
    pub scope_version: &'a str,
}

/// A nested message as field `tag`: `encode` writes its fields in place,
/// after a length byte that is widened if it must be.
fn nested(out: &mut Vec<u8>, tag: u8, encode: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.push(0);
    encode(out);
    let len = (out.len() - at - 1) as u64;
    if len < 0x80 {
        out[at] = len as u8;
        return;
    }
    let mut prefix = Vec::with_capacity(varint_len(len));
    varint(&mut prefix, len);
    out.splice(at..at + 1, prefix);
}

/// `KeyValue { key, AnyValue { string_value } }` as field `tag`.
fn attribute(out: &mut Vec<u8>, tag: u8, key: &str, value: &str) {
    nested(out, tag, |kv| {
        bytes_field(kv, 0x0a, key.as_bytes());
        nested(kv, 0x12, |any| bytes_field(any, 0x0a, value.as_bytes()));
    });
}

fn point(out: &mut Vec<u8>, p: &Point, kind: Kind) {
    nested(out, 0x0a, |dp| {
        if kind == Kind::Counter {
            dp.push(0x11);
            dp.extend_from_slice(&p.start_ns.to_le_bytes());
        }
        dp.push(0x19);
        dp.extend_from_slice(&p.time_ns.to_le_bytes());
        dp.push(0x21);
        dp.extend_from_slice(&p.value.to_bits().to_le_bytes());
        for (k, v) in p.all_attributes() {
            attribute(dp, 0x3a, k, v);
        }
    });
}

fn metric(out: &mut Vec<u8>, m: &Metric) {
    nested(out, 0x12, |mb| {
        bytes_field(mb, 0x0a, m.name.as_bytes());
        bytes_field(mb, 0x12, m.description.as_bytes());
        bytes_field(mb, 0x1a, m.unit.as_bytes());
        let tag = match m.kind {
            Kind::Gauge => 0x2a,
            Kind::Counter => 0x3a,
        };
        nested(mb, tag, |data| {
            for p in &m.points {
                point(data, p, m.kind);
            }
            if m.kind == Kind::Counter {
                // Cumulative (2), monotonic.
                data.extend_from_slice(&[0x10, 2, 0x18, 1]);
            }
        });
    });
}

/// The protobuf bytes of an `ExportMetricsServiceRequest`: one resource,
/// one scope, `metrics` in order.
pub fn export_request(origin: &Origin, metrics: &[Metric]) -> Vec<u8> {
    let mut out = Vec::new();
    nested(&mut out, 0x0a, |rm| {
        nested(rm, 0x0a, |res| {
            for (k, v) in origin.resource {
                attribute(res, 0x0a, k, v);
            }
        });
        nested(rm, 0x12, |sm| {
            nested(sm, 0x0a, |scope| {
                bytes_field(scope, 0x0a, origin.scope_name.as_bytes());
                bytes_field(scope, 0x12, origin.scope_version.as_bytes());
            });
            for m in metrics {
                metric(sm, m);
            }
        });
    });
    out
}

/// What an `ExportMetricsServiceResponse` says was rejected: the count of
/// points and the receiver's message. `None` for an empty answer (all
/// accepted) or one that is not a response; a field it does not know is
/// skipped, a damaged one ends the reading.
pub fn partial_success(body: &[u8]) -> Option<(i64, String)> {
    let (ps, _) = field(body, 0x0a)?;
    let mut rejected = 0i64;
    let mut message = String::new();
    let mut rest = ps;
    while let Some(&tag) = rest.first() {
        match tag {
            0x08 => {
                let (v, next) = read_varint(&rest[1..])?;
                rejected = v as i64;
                rest = next;
            }
            0x12 => {
                let (m, next) = field(rest, 0x12)?;
                message = String::from_utf8_lossy(m).into_owned();
                rest = next;
            }
            _ => break,
        }
    }
    (rejected != 0 || !message.is_empty()).then_some((rejected, message))
}

/// The message of a `google.rpc.Status`, the body OTLP/HTTP receivers
/// answer an error with (`code` = 1, `message` = 2); `None` for a body
/// that is not one (a proxy's text page).
pub fn status_message(body: &[u8]) -> Option<String> {
    let mut rest = body;
    if rest.first() == Some(&0x08) {
        rest = read_varint(&rest[1..])?.1;
    }
    let (m, _) = field(rest, 0x12)?;
    let m = std::str::from_utf8(m).ok()?;
    (!m.is_empty() && !m.chars().any(|c| c.is_control() && c != '\n')).then(|| m.to_string())
}

fn read_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, c) in b.iter().enumerate().take(10) {
        v |= u64::from(c & 0x7f) << (7 * i);
        if c & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// An `ExportMetricsServiceResponse` with a partial success, for tests.
#[cfg(test)]
fn answer(rejected: u64, message: &str) -> Vec<u8> {
    let mut ps = vec![0x08];
    crate::format::protobuf::varint(&mut ps, rejected);
    bytes_field(&mut ps, 0x12, message.as_bytes());
    let mut out = Vec::new();
    bytes_field(&mut out, 0x0a, &ps);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_read_as_a_status_or_not_at_all() {
        // code 3 (INVALID_ARGUMENT), message "bad metric".
        let mut b = vec![0x08, 0x03];
        bytes_field(&mut b, 0x12, b"bad metric");
        assert_eq!(status_message(&b).as_deref(), Some("bad metric"));
        assert_eq!(status_message(&b[2..]).as_deref(), Some("bad metric"));
        assert_eq!(status_message(b"<html>bad gateway</html>"), None);
        assert_eq!(status_message(&[0x08]), None);
        assert_eq!(status_message(&[0x08, 0xff, 0xff]), None);
        assert_eq!(status_message(&[]), None);
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The request below, made with the official `opentelemetry-proto`
    /// Python classes (protobuf 7.36) and `SerializeToString()`:
    ///
    /// ```text
    /// r = ExportMetricsServiceRequest()
    /// rm = r.resource_metrics.add()
    /// rm.resource.attributes.add(key="service.name").value.string_value = "tether"
    /// sm = rm.scope_metrics.add(); sm.scope.name = "tether"; sm.scope.version = "0.1.0"
    /// g = sm.metrics.add(name="tether.check.up", description="1 if the check passed", unit="1")
    /// p = g.gauge.data_points.add(time_unix_nano=1700000000000000000, as_double=1.0)
    /// p.attributes.add(key="check").value.string_value = "db"
    /// s = sm.metrics.add(name="tether.check.failures", description="failed runs", unit="{run}")
    /// s.sum.aggregation_temporality = 2; s.sum.is_monotonic = True
    /// q = s.sum.data_points.add(start_time_unix_nano=1690000000000000000,
    ///                           time_unix_nano=1700000000000000000, as_double=3.0)
    /// q.attributes.add(key="check").value.string_value = "db"
    /// ```
    const OFFICIAL: &str =
        "0ae1010a1a0a180a0c736572766963652e6e616d6512080a0674657468657212c2010a0f\
0a067465746865721205302e312e3012500a0f7465746865722e636865636b2e75701215\
312069662074686520636865636b207061737365641a01312a230a211900002a36fe9c97\
1721000000000000f03f3a0d0a05636865636b12040a026462125d0a157465746865722e\
636865636b2e6661696c75726573120b6661696c65642072756e731a057b72756e7d3a30\
0a2a11000069c60b1674171900002a36fe9c97172100000000000008403a0d0a05636865\
636b12040a02646210021801";

    #[test]
    fn the_request_is_byte_for_byte_what_the_official_classes_encode() {
        let check: Rc<[(String, String)]> = Rc::from(vec![("check".to_string(), "db".to_string())]);
        let metrics = [
            Metric {
                name: "tether.check.up",
                description: "1 if the check passed",
                unit: "1",
                kind: Kind::Gauge,
                points: vec![Point {
                    attributes: check.clone(),
                    extra: None,
                    start_ns: 0,
                    time_ns: 1_700_000_000_000_000_000,
                    value: 1.0,
                }],
            },
            Metric {
                name: "tether.check.failures",
                description: "failed runs",
                unit: "{run}",
                kind: Kind::Counter,
                points: vec![Point {
                    attributes: check,
                    extra: None,
                    start_ns: 1_690_000_000_000_000_000,
                    time_ns: 1_700_000_000_000_000_000,
                    value: 3.0,
                }],
            },
        ];
        let origin = Origin {
            resource: &[("service.name".into(), "tether".into())],
            scope_name: "tether",
            scope_version: "0.1.0",
        };
        let got = hex(&export_request(&origin, &metrics));
        assert_eq!(got, OFFICIAL);
    }

    #[test]
    fn a_partial_success_reads_back_and_damage_reads_as_nothing() {
        assert_eq!(partial_success(&[]), None);
        assert_eq!(partial_success(&[0x0a, 0]), None);
        let a = answer(7, "7 points too old");
        assert_eq!(partial_success(&a), Some((7, "7 points too old".into())));
        for cut in 0..a.len() {
            // Cut short: never a panic, never a count that was not sent.
            if let Some((n, _)) = partial_success(&a[..cut]) {
                assert!(n == 7 || n == 0, "{n}");
            }
        }
    }
}
