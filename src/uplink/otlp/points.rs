//! From stored records to OTLP metrics: the points a result or a heartbeat
//! stands for, with OpenTelemetry names and units, grouped by metric for
//! one request. The figures are remote-write's (`docs/fleet.md` maps each
//! metric to its Prometheus series); the agent's own labels travel on the
//! resource, a check's (`check`, `kind`, `role` and its own labels) on each
//! of its points.
//!
//! Records are read back from their JSON bodies, as for remote-write: a
//! record of an older tether, or a damaged one, gives fewer points or none,
//! never a panic. A removed check gives nothing (OTLP has no stale marker:
//! its points stop). A counter's start is the process start its heartbeat
//! names (`process_start_ms`); a heartbeat without one (written by an older
//! tether) gives no counter point rather than a start time that is not
//! true.

use std::rc::Rc;

use crate::format::json_fields::{bool_of, fields, num_of, str_of};
use crate::uplink::otlp::wire::{Kind, Metric, Point};
use crate::uplink::record::{check_kind_role, own_labels, Fields, CHECK_STATES};

/// The vocabularies of the agent's enum-style metrics (owned by the agent,
/// which this layer may not import).
pub struct Context<'a> {
    pub agent_statuses: &'a [&'static str],
    pub severities: &'a [&'static str],
}

/// One metric tether sends: its name, description, unit and kind, and the
/// Prometheus series it carries the same figures as.
pub struct Spec {
    pub name: &'static str,
    pub description: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub prometheus: &'static str,
}

const fn gauge(
    name: &'static str,
    unit: &'static str,
    prometheus: &'static str,
    description: &'static str,
) -> Spec {
    Spec {
        name,
        description,
        unit,
        kind: Kind::Gauge,
        prometheus,
    }
}

/// Every metric, in the order a request lists them.
pub const SPECS: [Spec; 13] = [
    gauge(
        "tether.check.up",
        "1",
        "tether_check_up",
        "1 if the check's last run passed, else 0",
    ),
    gauge(
        "tether.check.status",
        "1",
        "tether_check_status",
        "1 for the check's damped state (the status attribute), 0 for the others",
    ),
    gauge(
        "tether.check.flapping",
        "1",
        "tether_check_flapping",
        "1 while the check flaps",
    ),
    gauge(
        "tether.check.duration",
        "s",
        "tether_check_duration_seconds",
        "How long the check's run took",
    ),
    gauge(
        "tether.check.certificate.not_after",
        "s",
        "tether_check_cert_not_after_timestamp_seconds",
        "When the certificate expires, Unix seconds",
    ),
    gauge(
        "tether.check.file.age",
        "s",
        "tether_check_file_age_seconds",
        "How old the checked file is",
    ),
    gauge(
        "tether.check.cpu.busy",
        "%",
        "tether_check_cpu_busy_percent",
        "The host's CPU busy percentage over the check's window",
    ),
    gauge(
        "tether.agent.status",
        "1",
        "tether_agent_status",
        "1 for the agent's status (the status attribute), 0 for the others",
    ),
    gauge(
        "tether.agent.severity",
        "1",
        "tether_agent_severity",
        "1 for the agent's severity (the severity attribute), 0 for the others",
    ),
    gauge(
        "tether.agent.overloaded",
        "1",
        "tether_agent_overloaded",
        "1 while the host's CPU is over a system check's warn_percent",
    ),
    gauge(
        "tether.upstream.backlog",
        "{record}",
        "tether_upstream_backlog_records",
        "Records kept for the upstream, not yet delivered",
    ),
    gauge(
        "tether.agent.heartbeat.interval",
        "s",
        "tether_agent_heartbeat_interval_seconds",
        "How often the agent sends a heartbeat",
    ),
    Spec {
        name: "tether.upstream.dropped",
        description:
            "Records dropped because the ring or the spool was full, since the process started",
        unit: "{record}",
        kind: Kind::Counter,
        prometheus: "tether_upstream_records_dropped_total",
    },
];

/// Result fields with a metric of their own, where they apply.
const DETAILS: [(&str, &str); 3] = [
    ("cert_not_after", "tether.check.certificate.not_after"),
    ("file_age_seconds", "tether.check.file.age"),
    ("cpu_busy_percent", "tether.check.cpu.busy"),
];

/// Points grouped by metric, in [`SPECS`] order.
pub struct Batch {
    metrics: Vec<Metric>,
    pub points: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch {
            metrics: SPECS
                .iter()
                .map(|s| Metric {
                    name: s.name,
                    description: s.description,
                    unit: s.unit,
                    kind: s.kind,
                    points: Vec::new(),
                })
                .collect(),
            points: 0,
        }
    }
}

impl Batch {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        name: &str,
        attributes: &Rc<[(String, String)]>,
        extra: Option<(&'static str, &'static str)>,
        start_ns: u64,
        time_ns: u64,
        value: f64,
    ) {
        if let Some(m) = self.metrics.iter_mut().find(|m| m.name == name) {
            self.points += 1;
            m.points.push(Point {
                attributes: attributes.clone(),
                extra,
                start_ns,
                time_ns,
                value,
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// The metrics that have points, for a request.
    pub fn into_metrics(self) -> Vec<Metric> {
        self.metrics
            .into_iter()
            .filter(|m| !m.points.is_empty())
            .collect()
    }

    /// Adds the points of one stored record body; how many it gave.
    pub fn add(&mut self, body: &str, time_ms: u64, ctx: &Context) -> usize {
        let before = self.points;
        let Some(f) = fields(body) else {
            return 0;
        };
        let t = time_ms.saturating_mul(1_000_000);
        match str_of(&f, "type") {
            Some("result") => self.result(&f, t),
            Some("heartbeat") => self.heartbeat(&f, t, ctx),
            _ => {}
        }
        self.points - before
    }

    fn result(&mut self, f: &Fields, t: u64) {
        let (Some((check, kind, role)), Some(status)) = (check_kind_role(f), str_of(f, "status"))
        else {
            return;
        };
        let mut base: Vec<(String, String)> = vec![
            ("check".into(), check.into()),
            ("kind".into(), kind.into()),
            ("role".into(), role.into()),
        ];
        // A check's own labels, winning over the built-in of the same name.
        for (k, v) in own_labels(f) {
            base.retain(|(b, _)| b != k);
            base.push((k.into(), v.into()));
        }
        let base: Rc<[(String, String)]> = Rc::from(base);
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        self.push("tether.check.up", &base, None, 0, t, flag(status == "ok"));
        let health = str_of(f, "health").unwrap_or(status);
        for st in CHECK_STATES {
            let a = Some(("status", st));
            self.push("tether.check.status", &base, a, 0, t, flag(health == st));
        }
        if let Some(x) = bool_of(f, "flapping") {
            self.push("tether.check.flapping", &base, None, 0, t, flag(x));
        }
        if let Some(ms) = num_of(f, "duration_ms") {
            self.push("tether.check.duration", &base, None, 0, t, ms / 1e3);
        }
        for (key, name) in DETAILS {
            if let Some(v) = num_of(f, key) {
                self.push(name, &base, None, 0, t, v);
            }
        }
    }

    fn heartbeat(&mut self, f: &Fields, t: u64, ctx: &Context) {
        let (Some(status), Some(severity)) = (str_of(f, "status"), str_of(f, "severity")) else {
            return;
        };
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let none: Rc<[(String, String)]> = Rc::from(Vec::new());
        for st in ctx.agent_statuses {
            let a = Some(("status", *st));
            self.push("tether.agent.status", &none, a, 0, t, flag(status == *st));
        }
        for sv in ctx.severities {
            let a = Some(("severity", *sv));
            self.push(
                "tether.agent.severity",
                &none,
                a,
                0,
                t,
                flag(severity == *sv),
            );
        }
        if let Some(o) = bool_of(f, "overloaded") {
            self.push("tether.agent.overloaded", &none, None, 0, t, flag(o));
        }
        if let Some(v) = num_of(f, "backlog_records") {
            self.push("tether.upstream.backlog", &none, None, 0, t, v);
        }
        if let Some(v) = num_of(f, "heartbeat_interval_seconds") {
            self.push("tether.agent.heartbeat.interval", &none, None, 0, t, v);
        }
        let start = num_of(f, "process_start_ms").filter(|s| *s >= 0.0);
        if let (Some(v), Some(start)) = (num_of(f, "dropped"), start) {
            let start_ns = (start as u64).saturating_mul(1_000_000).min(t);
            self.push("tether.upstream.dropped", &none, None, start_ns, t, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: Context = Context {
        agent_statuses: &["online", "offline"],
        severities: &["healthy", "critical"],
    };

    fn attrs(p: &Point) -> Vec<String> {
        p.all_attributes()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    #[test]
    fn a_result_gives_the_check_metrics_with_its_attributes() {
        let mut b = Batch::default();
        let body = "{\"time\":\"x\",\"type\":\"result\",\"check\":\"db\",\"kind\":\"tls\",\
                    \"role\":\"resource\",\"status\":\"crit\",\"health\":\"warn\",\
                    \"label.site\":\"fra1\",\"label.role\":\"mine\",\
                    \"duration_ms\":1500,\"cert_not_after\":1800000000,\"flapping\":true}";
        assert_eq!(b.add(body, 1_000, &CTX), 1 + 5 + 1 + 1 + 1);
        let m = b.into_metrics();
        let names: Vec<&str> = m.iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "tether.check.up",
                "tether.check.status",
                "tether.check.flapping",
                "tether.check.duration",
                "tether.check.certificate.not_after"
            ]
        );
        let up = &m[0].points[0];
        assert_eq!(up.value, 0.0);
        assert_eq!(up.time_ns, 1_000_000_000);
        // A check's own label wins over the built-in of the same name.
        assert_eq!(
            attrs(up),
            ["check=db", "kind=tls", "site=fra1", "role=mine"]
        );
        let warn: Vec<f64> = m[1].points.iter().map(|p| p.value).collect();
        assert_eq!(warn, [0.0, 1.0, 0.0, 0.0, 0.0], "the damped state, warn");
        assert_eq!(m[3].points[0].value, 1.5);
        assert_eq!(m[3].unit, "s");
    }

    #[test]
    fn a_heartbeat_gives_the_agent_metrics_and_a_counter_only_with_its_start() {
        let mut b = Batch::default();
        let body = "{\"type\":\"heartbeat\",\"status\":\"offline\",\"severity\":\"critical\",\
                    \"overloaded\":false,\"backlog_records\":12,\"dropped\":3,\
                    \"heartbeat_interval_seconds\":30,\"process_start_ms\":500}";
        assert_eq!(b.add(body, 2_000, &CTX), 2 + 2 + 1 + 1 + 1 + 1);
        let m = b.into_metrics();
        let dropped = m
            .iter()
            .find(|m| m.name == "tether.upstream.dropped")
            .unwrap();
        assert_eq!(dropped.kind, Kind::Counter);
        assert_eq!(dropped.points[0].start_ns, 500_000_000);
        assert_eq!(dropped.points[0].time_ns, 2_000_000_000);
        // Written by an older tether: no start, so no counter point.
        let mut old = Batch::default();
        let body = body.replace(",\"process_start_ms\":500", "");
        assert_eq!(old.add(&body, 2_000, &CTX), 2 + 2 + 1 + 1 + 1);
    }

    #[test]
    fn damaged_and_other_records_give_nothing() {
        let mut b = Batch::default();
        for body in [
            "",
            "{",
            "{\"type\":\"result\"}",
            "{\"type\":\"gap\",\"count\":3}",
            "{\"type\":\"transition\",\"to\":\"removed\",\"check\":\"a\",\"kind\":\"tcp\",\"role\":\"resource\"}",
            "{\"type\":\"heartbeat\",\"status\":1}",
        ] {
            assert_eq!(b.add(body, 1, &CTX), 0, "{body}");
        }
        assert!(b.is_empty());
        assert!(b.into_metrics().is_empty());
    }

    #[test]
    fn docs_fleet_maps_every_metric_to_its_series() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fleet.md"),
        )
        .unwrap();
        for s in &SPECS {
            let row = doc
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` | `{}` |", s.name, s.unit)))
                .unwrap_or_else(|| panic!("docs/fleet.md has no row for {}", s.name));
            assert!(row.ends_with(&format!("| `{}` |", s.prometheus)), "{row}");
        }
    }

    #[test]
    fn every_metric_maps_to_one_prometheus_series_once() {
        for (i, s) in SPECS.iter().enumerate() {
            assert!(s.prometheus.starts_with("tether_"), "{}", s.name);
            assert!(
                SPECS[i + 1..]
                    .iter()
                    .all(|o| o.name != s.name && o.prometheus != s.prometheus),
                "{} twice",
                s.name
            );
        }
    }
}
