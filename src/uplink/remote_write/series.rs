//! From stored records to series: the samples a result, a heartbeat or a
//! removed check stands for, named and labelled as `/metrics` names them
//! (`docs/fleet.md` has the table), grouped into series for one request.
//!
//! Records are read back from their JSON bodies (the spool keeps nothing
//! else), so a record written by an older tether, or damaged past its
//! checksum, gives fewer samples or none, never a panic.

use std::collections::BTreeMap;

use crate::format::json_fields::{bool_of, fields, num_of, str_of};
use crate::uplink::record::{check_kind_role, own_labels, Fields, CHECK_STATES};
use crate::uplink::remote_write::wire::{self, Series, STALE_NAN};

/// What every series of this agent carries, and the vocabularies of the
/// agent's enum-style series (owned by the agent, which this layer may not
/// import).
pub struct Context<'a> {
    pub agent: &'a str,
    pub agent_id: &'a str,
    /// `[agent] labels` and `[remote_write] labels`.
    pub labels: &'a [(String, String)],
    pub agent_statuses: &'a [&'a str],
    pub severities: &'a [&'a str],
}

/// Samples grouped by series, in the order series were first seen.
#[derive(Default)]
pub struct Batch {
    series: Vec<Series>,
    /// The series of one label set (one check, or the agent), found once
    /// per record: a hash-prefixed key of the base labels to its place in
    /// `groups`. A `BTreeMap`: the config reader already links one, a hash
    /// map would add its code.
    index: BTreeMap<String, usize>,
    groups: Vec<Group>,
    /// The key being looked up (reused: no allocation per record).
    key: String,
    pub samples: usize,
}

/// The series of one base label set: name and extra label to the place
/// in `Batch::series`, in the order a record pushes them (so the next
/// record of the same check finds each at the position it expects).
#[derive(Default)]
struct Group {
    members: Vec<Member>,
}

/// One series of a group: its name, its extra label, its place in
/// `Batch::series`.
struct Member {
    name: String,
    extra: Option<(String, String)>,
    at: usize,
}

impl Member {
    fn is(&self, name: &str, extra: Option<(&str, &str)>) -> bool {
        self.name == name && self.extra.as_ref().map(|(k, v)| (k.as_str(), v.as_str())) == extra
    }
}

/// The labels all series of one record share, sorted, and the group
/// they index: made once per record, not once per sample.
struct Base<'a> {
    labels: Vec<(&'a str, &'a str)>,
    /// Their encoded size ([`wire::label_len`]).
    size: usize,
    group: usize,
    /// How many samples this record has pushed into the group (where the
    /// next is expected among its members).
    next: usize,
}

impl Batch {
    /// `mine`: the check's own labels, from its record (they win over the
    /// agent's of the same name).
    fn base<'a>(
        &mut self,
        own: &[(&'a str, &'a str)],
        ctx: &'a Context,
        mine: &[(&'a str, &'a str)],
    ) -> Base<'a> {
        let mut labels: Vec<(&str, &str)> = Vec::with_capacity(own.len() + ctx.labels.len() + 1);
        labels.push(("agent", ctx.agent));
        labels.extend_from_slice(own);
        // A check's own labels, winning over the agent's of the same name.
        labels.extend_from_slice(mine);
        for (k, v) in ctx.labels {
            if !mine.iter().any(|(m, _)| m == k) {
                labels.push((k.as_str(), v.as_str()));
            }
        }
        // An empty value is no label at all in Prometheus's model (an
        // `agent_id` or `os_release` not yet known): left out, not sent.
        labels.retain(|(_, v)| !v.is_empty());
        labels.sort_unstable();
        // A hash of the labels first: keys then differ in their first
        // bytes, and the map's comparisons stop there (label sets share
        // long prefixes: measured 13% of the encoding in memcmp without).
        let hash = crate::format::text::fnv1a64(
            labels
                .iter()
                .flat_map(|(k, v)| [k.as_bytes(), b"\0", v.as_bytes(), b"\0"])
                .flatten(),
        );
        self.key.clear();
        for i in 0..16 {
            self.key.push(char::from(
                b"0123456789abcdef"[(hash >> (60 - 4 * i)) as usize & 15],
            ));
        }
        for (k, v) in &labels {
            for p in [k, "\0", v, "\0"] {
                self.key.push_str(p);
            }
        }
        let group = match self.index.get(self.key.as_str()) {
            Some(g) => *g,
            None => {
                self.index.insert(self.key.clone(), self.groups.len());
                self.groups.push(Group::default());
                self.groups.len() - 1
            }
        };
        Base {
            size: labels.iter().map(|(k, v)| wire::label_len(k, v)).sum(),
            labels,
            group,
            next: 0,
        }
    }

    fn push(
        &mut self,
        name: &str,
        base: &mut Base,
        extra: Option<(&str, &str)>,
        value: f64,
        t: i64,
    ) {
        self.samples += 1;
        let members = &mut self.groups[base.group].members;
        let at = match members.get(base.next) {
            Some(m) if m.is(name, extra) => Some(base.next),
            _ => members.iter().position(|m| m.is(name, extra)),
        };
        base.next += 1;
        if let Some(at) = at {
            self.series[members[at].at].samples.push((value, t));
            return;
        }
        // The base labels with `__name__` and the extra one merged in, in
        // order, without a list of their own.
        let mut own = [Some(("__name__", name)), extra];
        if own[1].is_some_and(|(k, _)| k < "__name__") {
            own.swap(0, 1);
        }
        let mut own = own.into_iter().flatten().peekable();
        let mut rest = base.labels.iter().copied().peekable();
        let size = base.size
            + wire::label_len("__name__", name)
            + extra.map_or(0, |(k, v)| wire::label_len(k, v));
        let merged = std::iter::from_fn(|| match (own.peek(), rest.peek()) {
            (Some(a), Some(b)) if a.0 < b.0 => own.next(),
            (_, Some(_)) => rest.next(),
            _ => own.next(),
        });
        members.push(Member {
            name: name.to_string(),
            extra: extra.map(|(k, v)| (k.to_string(), v.to_string())),
            at: self.series.len(),
        });
        self.series
            .push(Series::sized(size, merged, vec![(value, t)]));
    }

    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// The series, for a request: the index stays behind.
    pub fn into_series(self) -> Vec<Series> {
        self.series
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// Adds the samples of one stored record body; how many it gave.
    pub fn add(&mut self, body: &str, time_ms: u64, ctx: &Context) -> usize {
        let before = self.samples;
        let Some(f) = fields(body) else {
            return 0;
        };
        let t = time_ms as i64;
        match str_of(&f, "type") {
            Some("result") => self.result(&f, t, ctx),
            Some("heartbeat") => self.heartbeat(&f, t, ctx),
            Some("transition") if str_of(&f, "to") == Some("removed") => self.removed(&f, t, ctx),
            _ => {}
        }
        self.samples - before
    }

    fn result(&mut self, f: &Fields, t: i64, ctx: &Context) {
        let (Some((check, kind, role)), Some(status)) = (check_kind_role(f), str_of(f, "status"))
        else {
            return;
        };
        let mine = own_labels(f);
        let mut base = self.base(
            &[("check", check), ("kind", kind), ("role", role)],
            ctx,
            &mine,
        );
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        self.push("tether_check_up", &mut base, None, flag(status == "ok"), t);
        let health = str_of(f, "health").unwrap_or(status);
        for st in CHECK_STATES {
            let v = flag(health == st);
            self.push("tether_check_status", &mut base, Some(("status", st)), v, t);
        }
        if let Some(x) = bool_of(f, "flapping") {
            self.push("tether_check_flapping", &mut base, None, flag(x), t);
        }
        if let Some(ms) = num_of(f, "duration_ms") {
            self.push(
                "tether_check_duration_seconds",
                &mut base,
                None,
                ms / 1e3,
                t,
            );
        }
        for (key, name) in DETAILS {
            if let Some(v) = num_of(f, key) {
                self.push(name, &mut base, None, v, t);
            }
        }
    }

    fn heartbeat(&mut self, f: &Fields, t: i64, ctx: &Context) {
        let (Some(status), Some(severity)) = (str_of(f, "status"), str_of(f, "severity")) else {
            return;
        };
        let mut base = self.base(&[], ctx, &[]);
        let mut info = self.base(
            &[
                ("agent_id", ctx.agent_id),
                ("version", str_of(f, "version").unwrap_or("")),
                ("os_release", str_of(f, "os_release").unwrap_or("")),
            ],
            ctx,
            &[],
        );
        self.push("tether_agent_info", &mut info, None, 1.0, t);
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        for st in ctx.agent_statuses {
            let v = flag(status == *st);
            self.push("tether_agent_status", &mut base, Some(("status", st)), v, t);
        }
        for sv in ctx.severities {
            let v = flag(severity == *sv);
            self.push(
                "tether_agent_severity",
                &mut base,
                Some(("severity", sv)),
                v,
                t,
            );
        }
        if let Some(o) = bool_of(f, "overloaded") {
            self.push("tether_agent_overloaded", &mut base, None, flag(o), t);
        }
        for (key, name) in COUNTS {
            if let Some(v) = num_of(f, key) {
                self.push(name, &mut base, None, v, t);
            }
        }
    }

    /// A check a reload removed: a stale marker on each of its series.
    fn removed(&mut self, f: &Fields, t: i64, ctx: &Context) {
        let Some((check, kind, role)) = check_kind_role(f) else {
            return;
        };
        let mine = own_labels(f);
        let mut base = self.base(
            &[("check", check), ("kind", kind), ("role", role)],
            ctx,
            &mine,
        );
        let stale = f64::from_bits(STALE_NAN);
        self.push("tether_check_up", &mut base, None, stale, t);
        for st in CHECK_STATES {
            self.push(
                "tether_check_status",
                &mut base,
                Some(("status", st)),
                stale,
                t,
            );
        }
        self.push("tether_check_duration_seconds", &mut base, None, stale, t);
        self.push("tether_check_flapping", &mut base, None, stale, t);
        for (_, name) in DETAILS {
            self.push(name, &mut base, None, stale, t);
        }
    }
}

/// Result fields that become a series of their own, where they apply.
const DETAILS: [(&str, &str); 3] = [
    (
        "cert_not_after",
        "tether_check_cert_not_after_timestamp_seconds",
    ),
    ("file_age_seconds", "tether_check_file_age_seconds"),
    ("cpu_busy_percent", "tether_check_cpu_busy_percent"),
];

/// Heartbeat counts, named as in `/metrics`.
const COUNTS: [(&str, &str); 3] = [
    ("backlog_records", "tether_upstream_backlog_records"),
    ("dropped", "tether_upstream_records_dropped_total"),
    (
        "heartbeat_interval_seconds",
        "tether_agent_heartbeat_interval_seconds",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(labels: &'a [(String, String)]) -> Context<'a> {
        Context {
            agent: "edge-1",
            agent_id: "00ff",
            labels,
            agent_statuses: &["ok", "offline"],
            severities: &["healthy", "critical"],
        }
    }

    fn names(b: &Batch) -> Vec<String> {
        b.series()
            .iter()
            .map(|s| {
                s.labels()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn a_result_gives_the_check_series_sorted_and_labelled() {
        let labels = vec![
            ("Zone".to_string(), "z".to_string()),
            ("group".into(), "eu".into()),
        ];
        let mut b = Batch::default();
        let body = "\"time\":\"x\",\"type\":\"result\",\"check\":\"db\",\"kind\":\"tcp\",\
                    \"role\":\"resource\",\"status\":\"crit\",\"health\":\"warn\",\
                    \"message\":\"m\",\"duration_ms\":1.5,\"cert_not_after\":1800000000}";
        assert_eq!(b.add(body, 1000, &ctx(&labels)), 1 + 5 + 1 + 1);
        let n = names(&b);
        assert_eq!(
            n[0],
            "Zone=z,__name__=tether_check_up,agent=edge-1,check=db,group=eu,kind=tcp,role=resource"
        );
        assert_eq!(b.series()[0].samples, vec![(0.0, 1000)]);
        let warn = b
            .series()
            .iter()
            .find(|s| s.labels().contains(&("status".into(), "warn".into())))
            .unwrap();
        assert_eq!(warn.samples, vec![(1.0, 1000)]);
        let d = b
            .series()
            .iter()
            .find(|s| s.labels()[1].1 == "tether_check_duration_seconds")
            .unwrap();
        assert_eq!(d.samples, vec![(0.0015, 1000)]);
        // The same series again: one series, two samples in order.
        b.add(body, 2000, &ctx(&labels));
        assert_eq!(b.series().len(), 8);
        assert_eq!(b.series()[0].samples, vec![(0.0, 1000), (0.0, 2000)]);
    }

    #[test]
    fn a_heartbeat_and_a_removal() {
        let mut b = Batch::default();
        let hb =
            "\"time\":\"x\",\"type\":\"heartbeat\",\"agent\":\"edge-1\",\"version\":\"0.1.0\",\
                  \"os_release\":\"Debian 12\",\"status\":\"offline\",\"severity\":\"critical\",\
                  \"overloaded\":false,\"backlog_records\":3,\"dropped\":0,\"checks\":[]}";
        assert_eq!(b.add(hb, 5, &ctx(&[])), 1 + 2 + 2 + 1 + 2);
        assert!(names(&b)[0].contains("agent_id=00ff"));
        let gone = "\"time\":\"x\",\"type\":\"transition\",\"scope\":\"check\",\"check\":\"db\",\
                    \"kind\":\"tcp\",\"role\":\"resource\",\"from\":\"ok\",\"to\":\"removed\"}";
        let mut b = Batch::default();
        assert_eq!(b.add(gone, 9, &ctx(&[])), 1 + 5 + 1 + 1 + 3);
        assert!(b
            .series()
            .iter()
            .all(|s| s.samples[0].0.to_bits() == STALE_NAN));
        // An agent id or OS release not yet known is no label, not "".
        let hb = hb.replace("Debian 12", "");
        let mut b = Batch::default();
        let none = Context {
            agent_id: "",
            ..ctx(&[])
        };
        b.add(&hb, 5, &none);
        let info = &names(&b)[0];
        assert!(info.contains("__name__=tether_agent_info"), "{info}");
        assert!(
            !info.contains("agent_id") && !info.contains("os_release"),
            "{info}"
        );
        // Damaged or foreign bodies give nothing.
        for bad in [
            "",
            "\"type\":\"result\"}",
            "garbage",
            "\"type\":\"gap\",\"count\":1}",
        ] {
            assert_eq!(Batch::default().add(bad, 1, &ctx(&[])), 0, "{bad}");
        }
    }
}
