//! The status page (`GET /` on the local endpoint): the console's view on
//! the host. One HTML document rendered on the server from a snapshot with
//! its history: the agent's status as a large coloured indicator with a
//! word, one row per check (a dot and a word, since when, the age of the
//! last success, the last failure's reason and message, a flapping badge, a
//! sparkline of the recent durations with failures marked), a history
//! strip per check and the agent's own transitions. No script at all: the
//! answer's `Refresh` header reloads it, so it reads the same with
//! JavaScript off and in a terminal browser. Nothing external is loaded,
//! and the `Content-Security-Policy` allows only its own stylesheet (by
//! hash). `/doctor?format=html` renders the doctor's findings the same way.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::agent::history::Transition;
use crate::agent::snapshot::{ago, CheckView, Slicer, Snapshot};
use crate::diagnose::doctor::{Diagnosis, Level};
use crate::os::clock::{rfc3339, rfc3339_millis, unix_millis};
use crate::outcome::Status;

/// Seconds between reloads (the `Refresh` header).
pub const REFRESH_SECONDS: u32 = 5;

/// The page's only style, allowed by its hash in the policy.
const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:80em;padding:.5em}\
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.1em}pre{white-space:pre-wrap}\
header{border-left:.6em solid;padding:.2em .8em}\
.sev-healthy{border-color:#1a7f37;background:#dafbe1}.sev-unhealthy{border-color:#bf8700;background:#fff8c5}\
.sev-critical{border-color:#cf222e;background:#ffebe9}\
.big,.dot{display:inline-block;width:1em;height:1em;border-radius:50%;margin-right:.3em;background:#8c959f}\
.sev-healthy .big,.st-ok .dot{background:#1a7f37}.sev-unhealthy .big,.st-warn .dot{background:#bf8700}\
.sev-critical .big,.st-crit .dot{background:#cf222e}.st-unknown .dot{background:#8250df}\
.b-ok{fill:#1a7f37}.b-warn{fill:#bf8700}.b-crit{fill:#cf222e}.b-unknown{fill:#8250df}.b-pending{fill:#8c959f}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.2em .4em;border-top:1px solid #ccc;vertical-align:top}\
td:first-child{white-space:nowrap}.word{font-weight:600}.badge{background:#bf8700;color:#fff;padding:0 .3em}\
.muted{color:#666}svg{display:block}.spark polyline{fill:none;stroke:#0969da}.spark circle{fill:#cf222e}\
.strip{width:100%;height:.6em}.hist td{border:0;padding-top:0}\
@media (max-width:45em){thead{display:none}tr,td{display:block;border:0;overflow-wrap:anywhere}}";

/// The policy: nothing but this page's stylesheet; no script, no frame,
/// no form, no external load of any kind.
pub fn csp() -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, STYLE.as_bytes());
    format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        crate::format::base64::encode(hash.as_ref())
    )
}

/// `&`, `<`, `>`, `"` and `'` as entities: text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The word for a check's state, and its class (`st-ok` …).
fn word(s: Option<Status>) -> (&'static str, &'static str) {
    match s {
        None => ("PENDING", "pending"),
        Some(Status::Ok) => ("OK", "ok"),
        Some(Status::Warn) => ("WARNING", "warn"),
        Some(Status::Crit) => ("CRITICAL", "crit"),
        Some(Status::Unknown) => ("UNKNOWN", "unknown"),
    }
}

/// A history entry's state (`crit`, `online (healthy)` …) as a class.
fn class_of(state: &str) -> &'static str {
    let sev = |s: &str| state.contains(s);
    match state.split([' ', '(']).next().unwrap_or("") {
        "ok" => "ok",
        "warn" => "warn",
        "crit" => "crit",
        "unknown" => "unknown",
        _ if sev("critical") => "crit",
        _ if sev("unhealthy") => "warn",
        _ if sev("healthy") => "ok",
        _ => "pending",
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        esc(title)
    )
}

/// The status page for `snap` (which carries its history), yielding to the
/// executor after each `slice` of work as the other renderings do.
pub async fn render(snap: &Snapshot, slice: Duration) -> String {
    let mut slicer = Slicer::new(slice);
    let mut b = String::new();
    let now = unix_millis(snap.now);
    let start = snap
        .history
        .iter()
        .flatten()
        .next()
        .map_or(now, |t| t.at_ms);
    // The transitions by check, grouped once (not one pass over the whole
    // history per check), the agent's apart. A map of `String` to `usize`
    // as the remote-write batch has: its code is already in the binary (a
    // map of its own measured 8 KiB more).
    let mut own = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<&Transition>> = Vec::new();
    for t in snap.history.iter().flatten() {
        let Some(check) = &t.check else {
            own.push(t);
            continue;
        };
        match index.get(check) {
            Some(&i) => groups[i].push(t),
            None => {
                index.insert(check.clone(), groups.len());
                groups.push(vec![t]);
            }
        }
    }
    header(&mut b, snap, &own, start, now);
    b.push_str(
        "<table><thead><tr><th>State</th><th>Check</th><th>Kind</th><th>Role</th><th>Target</th>\
         <th>For</th><th>Last OK</th><th>Last failure</th><th>Recent runs</th></tr></thead><tbody>\n",
    );
    for c in &snap.checks {
        slicer.step().await;
        row(&mut b, snap, c);
        let mine = index.get(&c.spec.name).map_or(&[][..], |&i| &groups[i]);
        let _ = writeln!(
            b,
            "<tr class=\"hist\"><td colspan=\"9\">{}</td></tr>",
            strip(mine, word(c.health.status).1, start, now)
        );
    }
    b.push_str("</tbody></table>\n");
    agent_history(&mut b, &own);
    b.push_str(
        "<p><a href=\"/doctor?format=html\">Run doctor</a> (one run at a time) · \
         <a href=\"/status?format=table\">table</a> · <a href=\"/status\">JSON</a> · \
         <a href=\"/metrics\">metrics</a> · <a href=\"/logs\">logs</a></p>\n",
    );
    let _ = writeln!(
        b,
        "<p class=\"muted\">At {}; this page reloads every {REFRESH_SECONDS} s.</p>",
        rfc3339(snap.now)
    );
    page(
        &format!(
            "{} {} — tether",
            snap.agent,
            snap.status.as_str().to_ascii_uppercase()
        ),
        &b,
    )
}

/// The agent: indicator, status, severity, since, and its facts.
/// `own`: the agent's transitions, oldest first.
fn header(b: &mut String, s: &Snapshot, own: &[&Transition], start: u64, now: u64) {
    let sev = s.severity.as_str();
    let _ = write!(
        b,
        "<header class=\"agent sev-{sev}\" id=\"agent\"><h1><span class=\"big\"></span> {} \
         <span class=\"word\" id=\"agent-status\">{}</span> <span class=\"muted\">({sev})</span></h1>\
         <p>since {} ({} ago) · tether {}",
        esc(&s.agent),
        s.status.as_str().replace('_', " ").to_ascii_uppercase(),
        rfc3339(s.since),
        ago(s.now.duration_since(s.since).unwrap_or_default().as_secs()),
        env!("CARGO_PKG_VERSION"),
    );
    if !s.ready {
        b.push_str(" · <b>not ready</b>: some checks have not run yet");
    }
    if s.overloaded() {
        b.push_str(" · <span class=\"badge\" id=\"overloaded\">overloaded</span>");
    }
    if let Some(m) = &s.maintenance {
        let _ = write!(b, " · maintenance: {}", esc(&m.reason));
    }
    b.push_str("</p>");
    let destinations = [
        s.upstream.as_ref().map(|u| {
            (
                "upstream",
                &u.url,
                u.state,
                u.backlog_records,
                u.spool_records,
            )
        }),
        s.remote_write.as_ref().map(|r| {
            (
                "remote write",
                &r.url,
                r.state,
                r.backlog_records,
                r.spool_records,
            )
        }),
        s.otlp
            .as_ref()
            .map(|r| ("OTLP", &r.url, r.state, r.backlog_records, r.spool_records)),
    ];
    for (what, url, state, backlog, on_disk) in destinations.into_iter().flatten() {
        let _ = write!(
            b,
            "<p>{what} {}: <b>{}</b> · backlog {backlog} ({on_disk} on disk)</p>",
            esc(url),
            state.as_str()
        );
    }
    if s.upstream.is_none() && s.remote_write.is_none() && s.otlp.is_none() {
        b.push_str("<p>no upstream: results stay on this host</p>");
    }
    if !s.labels.is_empty() {
        let l: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
            .collect();
        let _ = write!(b, "<p>labels: {}</p>", l.join(", "));
    }
    b.push_str(&strip(own, class_of(s.severity.as_str()), start, now));
    b.push_str("</header>\n");
}

/// One check's row.
fn row(b: &mut String, s: &Snapshot, c: &CheckView) {
    let h = &c.health;
    let (w, class) = word(h.status);
    let age = |t: SystemTime| ago(s.now.duration_since(t).unwrap_or_default().as_secs());
    let _ = write!(
        b,
        "<tr class=\"check st-{class}\" data-check=\"{name}\"><td><span class=\"dot\"></span>\
         <span class=\"word\">{w}</span>",
        name = esc(&c.spec.name)
    );
    if h.flapping {
        let _ = write!(
            b,
            " <span class=\"badge flapping\">flapping {:.0}%</span>",
            h.flap_percent
        );
    }
    let last_ok = match h.last_success {
        Some(t) => format!("{} ago", age(t)),
        None if h.runs == 0 => "-".into(),
        None => "never".into(),
    };
    let failure = match h.last.as_ref().filter(|o| o.status != Status::Ok) {
        Some(o) => format!(
            "<code>{}</code> {}",
            o.reason.map_or("-", |r| r.code()),
            esc(&o.message)
        ),
        None => "-".into(),
    };
    let _ = writeln!(
        b,
        "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{last_ok}</td>\
         <td>{failure}</td><td>{}</td></tr>",
        esc(&c.spec.name),
        c.spec.probe.kind(),
        c.spec.role.as_str(),
        esc(&c.spec.probe.target()),
        age(h.since),
        sparkline(c)
    );
}

/// The recent durations as a line, failed runs as red dots, inline SVG
/// (in tenths of a pixel, so the coordinates are whole numbers).
fn sparkline(c: &CheckView) -> String {
    let r = &c.health.recent;
    if r.is_empty() {
        return "<span class=\"muted\">no runs yet</span>".into();
    }
    let max = r.iter().map(|x| x.micros()).max().unwrap_or(1).max(1);
    let step = 1200 / (r.len() as u64 - 1).max(1);
    let mut points = String::new();
    let mut dots = String::new();
    let mut failed = 0;
    for (i, x) in r.iter().enumerate() {
        let (px, py) = (i as u64 * step, 220 - x.micros() * 200 / max);
        let _ = write!(points, "{px},{py} ");
        if x.status != Status::Ok {
            failed += 1;
            let _ = write!(dots, "<circle cx=\"{px}\" cy=\"{py}\" r=\"20\"/>");
        }
    }
    format!(
        "<svg class=\"spark\" viewBox=\"-20 0 1240 240\" width=\"124\" height=\"24\" role=\"img\">\
         <title>{} recent runs, {failed} failed, slowest {} ms</title>\
         <polyline points=\"{points}\" stroke-width=\"10\"/>{dots}</svg>",
        r.len(),
        max.div_ceil(1000)
    )
}

/// One check's states over the retained history, as coloured spans of
/// time, each with its transition as a tooltip.
fn strip(mine: &[&Transition], current: &str, start: u64, now: u64) -> String {
    let span = now.saturating_sub(start).max(1);
    let mut out = format!(
        "<svg class=\"strip\" viewBox=\"0 0 10000 10\" preserveAspectRatio=\"none\" role=\"img\">\
         <title>{} state changes in the history</title>",
        mine.len()
    );
    let mut from = start;
    let mut state = mine.first().map_or(current, |t| class_of(&t.from));
    let mut title = String::from("before the first change recorded");
    for t in mine.iter().map(Some).chain([None]) {
        // Never before `from`: a clock stepped back after the last change
        // gives an empty span, not an underflow.
        let until = t.map_or(now, |t| t.at_ms).max(from);
        let _ = write!(
            out,
            "<rect class=\"b-{state}\" x=\"{}\" width=\"{}\" height=\"10\"><title>{}</title></rect>",
            (from - start) * 10000 / span,
            ((until - from) * 10000 / span).max(10),
            esc(&title)
        );
        if let Some(t) = t {
            from = until;
            state = class_of(&t.to);
            title = format!(
                "{}: {} → {} {}",
                rfc3339_millis(t.at_ms),
                t.from,
                t.to,
                t.why
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// The agent's own transitions (`own`, oldest first), newest first.
fn agent_history(b: &mut String, own: &[&Transition]) {
    b.push_str("<h2>Agent history</h2>\n");
    if own.is_empty() {
        b.push_str("<p class=\"muted\">no transitions recorded</p>\n");
        return;
    }
    b.push_str("<ul id=\"agent-history\">\n");
    for t in own.iter().rev().take(50) {
        let _ = writeln!(
            b,
            "<li class=\"st-{}\"><span class=\"dot\"></span>{} {} → <b>{}</b> {}</li>",
            class_of(&t.to),
            rfc3339_millis(t.at_ms),
            esc(&t.from),
            esc(&t.to),
            esc(&t.why)
        );
    }
    b.push_str("</ul>\n");
}

/// The doctor's report (its text: findings worst first, then the whole
/// runbook) under an indicator of its verdict.
pub fn doctor(d: &Diagnosis) -> String {
    let (sev, word) = match d.verdict() {
        Level::Ok => ("healthy", "OK"),
        Level::Warning => ("unhealthy", "WARNING"),
        Level::Critical => ("critical", "CRITICAL"),
    };
    page(
        &format!("doctor {} — tether", d.agent),
        &format!(
            "<header class=\"sev-{sev}\"><h1><span class=\"big\"></span> doctor: \
             <span class=\"word\" id=\"verdict\">{word}</span></h1>\
             <p><a href=\"/\">back to the status page</a></p></header>\n<pre>{}</pre>\n",
            esc(&d.to_text())
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(at_ms: u64, from: &str, to: &str) -> Transition {
        Transition {
            at_ms,
            check: Some("db".into()),
            from: from.into(),
            to: to.into(),
            why: "<why>".into(),
        }
    }

    #[test]
    fn a_strip_spans_the_history_and_survives_a_clock_stepped_back() {
        let a = change(1_000, "pending", "ok");
        let b = change(2_000, "ok", "crit");
        let s = strip(&[&a, &b], "crit", 1_000, 3_000);
        // pending (none), ok for half the window, crit for the other half.
        assert!(
            s.contains("<rect class=\"b-pending\" x=\"0\" width=\"10\" height=\"10\">"),
            "{s}"
        );
        assert!(
            s.contains("<rect class=\"b-ok\" x=\"0\" width=\"5000\" height=\"10\">"),
            "{s}"
        );
        assert!(
            s.contains("<rect class=\"b-crit\" x=\"5000\" width=\"5000\" height=\"10\">"),
            "{s}"
        );
        assert!(s.contains("ok → crit &lt;why&gt;"), "escaped: {s}");
        // Now before the last change, and changes out of order: no
        // underflow, no panic.
        let s = strip(&[&b, &a], "crit", 1_000, 500);
        assert!(s.ends_with("</svg>"));
    }
}
