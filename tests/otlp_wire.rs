//! The OTLP encoder against the official definitions: requests of every
//! shape tether makes (many points, counters and gauges, Unicode, empty and
//! long attribute values, NaN and infinities, the extremes of time) are
//! posted to `otlp_receiver.py`, which parses each with the generated
//! `ExportMetricsServiceRequest` class; every point must come back as it
//! was sent, and a damaged body must be refused. Needs the receiver's
//! Python environment, which `bash .ci/run` makes in `target/otel-venv`.

mod common;

use common::otlp::Receiver;
use serde_json::Value;
use tether::uplink::otlp::wire::{export_request, Kind, Metric, Origin, Point};

fn point(attrs: &[(&str, &str)], start_ns: u64, time_ns: u64, value: f64) -> Point {
    Point {
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into(),
        extra: None,
        start_ns,
        time_ns,
        value,
    }
}

#[test]
fn every_shape_of_request_parses_with_the_official_classes_and_reads_back() {
    let r = Receiver::start();
    let long = "x".repeat(300);
    let many: Vec<Point> = (0..2000u64)
        .map(|i| {
            point(
                &[("check", &format!("c{i}")), ("kind", "tcp")],
                0,
                1_700_000_000_000_000_000 + i,
                i as f64 / 7.0,
            )
        })
        .collect();
    let metrics = vec![
        Metric {
            name: "tether.check.duration",
            description: "How long the run took",
            unit: "s",
            kind: Kind::Gauge,
            points: many,
        },
        Metric {
            name: "tether.check.up",
            description: "",
            unit: "1",
            kind: Kind::Gauge,
            points: vec![
                point(&[("check", "café ☕"), ("empty", "")], 0, 1, f64::NAN),
                point(&[("check", &long)], 0, u64::MAX, f64::INFINITY),
                point(&[], 0, 0, f64::NEG_INFINITY),
            ],
        },
        Metric {
            name: "tether.check.failures",
            description: "Failed runs",
            unit: "{run}",
            kind: Kind::Counter,
            points: vec![point(
                &[("check", "db")],
                1_600_000_000_000_000_000,
                1_700_000_000_000_000_000,
                12.0,
            )],
        },
    ];
    let resource = vec![
        ("service.name".to_string(), "tether".to_string()),
        ("host.name".to_string(), "edge-ü".to_string()),
    ];
    let origin = Origin {
        resource: &resource,
        scope_name: "tether",
        scope_version: env!("CARGO_PKG_VERSION"),
    };
    let body = export_request(&origin, &metrics);
    let (status, answer) = r.request("POST", "/v1/metrics", "application/x-protobuf", &body);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(r.malformed(), 0);
    assert_eq!(tether::uplink::otlp::wire::partial_success(&answer), None);

    let got = r.received();
    let sent: Vec<(&Metric, &Point)> = metrics
        .iter()
        .flat_map(|m| m.points.iter().map(move |p| (m, p)))
        .collect();
    assert_eq!(got.len(), sent.len());
    for (g, (m, p)) in got.iter().zip(&sent) {
        assert_eq!(g["resource"]["service.name"], "tether");
        assert_eq!(g["resource"]["host.name"], "edge-ü");
        assert_eq!(g["scope"][0], "tether");
        assert_eq!(g["metric"], m.name);
        assert_eq!(g["description"], m.description);
        assert_eq!(g["unit"], m.unit);
        match m.kind {
            Kind::Gauge => assert_eq!(g["kind"], "gauge"),
            Kind::Counter => {
                assert_eq!(g["kind"], "sum");
                assert_eq!(g["temporality"], 2, "cumulative");
                assert_eq!(g["monotonic"], true);
                assert_eq!(g["start"].as_u64(), Some(p.start_ns));
            }
        }
        assert_eq!(g["time"].as_u64(), Some(p.time_ns), "{g}");
        let value: f64 = match g["value"].as_str().unwrap() {
            "nan" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap(),
        };
        assert!(
            value == p.value || (value.is_nan() && p.value.is_nan()),
            "{g}"
        );
        let attrs = g["attributes"].as_object().unwrap();
        assert_eq!(attrs.len(), p.all_attributes().count(), "{g}");
        for (k, v) in p.all_attributes() {
            assert_eq!(attrs[k], v, "{g}");
        }
    }

    // A damaged body is refused, and counted: the receiver catches a bad
    // byte (here a length that runs past the end).
    let mut damaged = body.clone();
    damaged.truncate(body.len() / 2);
    let (status, _) = r.request("POST", "/v1/metrics", "application/x-protobuf", &damaged);
    assert_eq!(status, 400);
    assert_eq!(r.malformed(), 1);
}

#[test]
fn a_partial_success_from_the_official_classes_reads_back() {
    let r = Receiver::start();
    let (status, _) = r.request(
        "POST",
        "/fault",
        "application/json",
        br#"{"status": 200, "count": 1, "rejected": 3, "message": "3 points too old"}"#,
    );
    assert_eq!(status, 200);
    let origin = Origin {
        resource: &[],
        scope_name: "tether",
        scope_version: "0",
    };
    let metrics = [Metric {
        name: "tether.check.up",
        description: "",
        unit: "1",
        kind: Kind::Gauge,
        points: vec![point(&[], 0, 1, 1.0)],
    }];
    let (status, answer) = r.request(
        "POST",
        "/v1/metrics",
        "application/x-protobuf",
        &export_request(&origin, &metrics),
    );
    assert_eq!(status, 200);
    assert_eq!(
        tether::uplink::otlp::wire::partial_success(&answer),
        Some((3, "3 points too old".to_string()))
    );
}

/// Records as the agent stores them become points the official classes
/// read with the right names, units, kinds, attributes and times.
#[test]
fn records_become_points_the_official_classes_read() {
    use tether::uplink::otlp::points::{Batch, Context};
    let r = Receiver::start();
    let ctx = Context {
        agent_statuses: &["online", "degraded", "offline"],
        severities: &["healthy", "unhealthy", "critical"],
    };
    let mut b = Batch::default();
    let result = "{\"time\":\"2026-12-05T00:00:01.000Z\",\"type\":\"result\",\"check\":\"db\",\
                  \"kind\":\"tcp\",\"role\":\"resource\",\"status\":\"ok\",\"label.site\":\"fra1\",\
                  \"duration_ms\":2.5,\"flapping\":false}";
    let heartbeat = "{\"time\":\"2026-12-05T00:00:02.000Z\",\"type\":\"heartbeat\",\
                     \"status\":\"degraded\",\"severity\":\"unhealthy\",\"overloaded\":true,\
                     \"backlog_records\":4,\"dropped\":2,\"heartbeat_interval_seconds\":10,\
                     \"process_start_ms\":1796428800000}";
    assert_eq!(b.add(result, 1_796_428_801_000, &ctx), 8);
    assert_eq!(b.add(heartbeat, 1_796_428_802_000, &ctx), 10);
    let origin = Origin {
        resource: &[("service.name".to_string(), "tether".to_string())],
        scope_name: "tether",
        scope_version: env!("CARGO_PKG_VERSION"),
    };
    let body = export_request(&origin, &b.into_metrics());
    let (status, _) = r.request("POST", "/v1/metrics", "application/x-protobuf", &body);
    assert_eq!(status, 200);
    let got = r.received();
    assert_eq!(got.len(), 18);
    let find = |name: &str| {
        got.iter()
            .find(|p| p["metric"] == name)
            .unwrap_or_else(|| panic!("no {name}: {got:?}"))
    };
    let up = find("tether.check.up");
    assert_eq!(up["kind"], "gauge");
    assert_eq!(up["value"], "1.0");
    assert_eq!(up["time"].as_u64(), Some(1_796_428_801_000_000_000));
    assert_eq!(up["attributes"]["site"], "fra1");
    assert_eq!(up["attributes"]["check"], "db");
    let duration = find("tether.check.duration");
    assert_eq!(duration["unit"], "s");
    assert_eq!(duration["value"], "0.0025");
    let dropped = find("tether.upstream.dropped");
    assert_eq!(dropped["kind"], "sum");
    assert_eq!(dropped["monotonic"], true);
    assert_eq!(dropped["start"].as_u64(), Some(1_796_428_800_000_000_000));
    assert_eq!(dropped["value"], "2.0");
    let degraded: Vec<&Value> = got
        .iter()
        .filter(|p| p["metric"] == "tether.agent.status")
        .collect();
    assert_eq!(degraded.len(), 3);
    for p in degraded {
        let on = p["attributes"]["status"] == "degraded";
        assert_eq!(p["value"], if on { "1.0" } else { "0.0" });
    }
    assert_eq!(r.malformed(), 0);
}
