//! One upload to the control plane: `POST <url>/v1/reports` with an NDJSON
//! body (sent by [`crate::uplink::post`], raced against `[upstream] timeout`
//! as a whole), and the answer sorted into what the delivery loop must do
//! about it ([`Answer`]).
//!
//! The response head may be at most 64 KiB and the body is read up to 64 KiB;
//! more fails the attempt (head) or is ignored (body). The token goes in the
//! `Authorization` header and nowhere else: no message built here contains it.

use std::time::{Duration, SystemTime};

use crate::config::Upstream;
use crate::net::http1::Response;
use crate::net::resolve::Resolver;
use crate::uplink::post::Destination;
/// `Retry-After` is obeyed up to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What an upload came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// 2xx: every record in the batch is acknowledged.
    Acked,
    /// 429 or 503: wait this long (`Retry-After`), or back off if it said
    /// nothing usable.
    Busy(Option<Duration>),
    /// Any other 5xx, a timeout, a reset, a refused or black-holed
    /// connection, a TLS failure, bytes that are not HTTP: back off.
    Failed(String),
    /// 401 or 403.
    CredentialsRejected(u16),
    /// 409: this version is no longer accepted; the minimum, if said.
    VersionUnsupported(Option<String>),
    /// 404: nothing at the URL takes reports (a wrong `url`).
    NotFound(String),
    /// 413: the batch is too large.
    TooLarge(String),
    /// Any other 4xx: the receiver will never take this batch.
    Rejected(u16, String),
}

/// One batch on the wire.
pub struct Upload<'a> {
    pub agent_id: &'a str,
    pub first_seq: u64,
    pub last_seq: u64,
    pub body: &'a [u8],
}

/// `<url path>/v1/<what>` on the control plane.
pub fn path(up: &Upstream, what: &str) -> String {
    format!("{}/v1/{what}", up.url.path.trim_end_matches('/'))
}

/// Where a request to the control plane goes (`path` from [`path`]).
pub fn destination<'a>(up: &'a Upstream, path: &'a str) -> Destination<'a> {
    Destination {
        url: &up.url,
        path,
        ca_file: up.ca_file.as_ref(),
        timeout: up.timeout,
    }
}

/// Posts one batch; never takes longer than `up.timeout`.
pub async fn post(up: &Upstream, resolver: &Resolver, u: &Upload<'_>) -> Answer {
    let path = path(up, "reports");
    let to = destination(up, &path);
    let headers = [
        (
            "Content-Type".to_string(),
            "application/x-ndjson".to_string(),
        ),
        (
            "Authorization".to_string(),
            format!("Bearer {}", up.token.expose()),
        ),
        ("Tether-Agent".to_string(), u.agent_id.to_string()),
        (
            "Tether-Batch".to_string(),
            format!("{}-{}", u.first_seq, u.last_seq),
        ),
    ];
    match crate::uplink::post::post(&to, resolver, &headers, u.body).await {
        Ok(resp) => classify(&resp, SystemTime::now()),
        Err(e) => Answer::Failed(e.why),
    }
}

/// Sorts a response into an [`Answer`].
pub fn classify(resp: &Response, now: SystemTime) -> Answer {
    let s = resp.status;
    let said = || {
        let line = resp.body_line();
        format!(
            "HTTP {s} {}{}",
            resp.reason,
            if line.is_empty() {
                String::new()
            } else {
                format!(": {line}")
            }
        )
    };
    match s {
        200..=299 => Answer::Acked,
        429 | 503 => Answer::Busy(
            resp.header("retry-after")
                .and_then(|v| retry_after(v, now))
                .map(|d| d.min(MAX_RETRY_AFTER)),
        ),
        401 | 403 => Answer::CredentialsRejected(s),
        409 => Answer::VersionUnsupported(
            resp.header("tether-min-version")
                .map(str::trim)
                .filter(|v| is_version(v))
                .map(str::to_string)
                .or_else(|| min_version_in_json(&resp.body)),
        ),
        404 => Answer::NotFound(said()),
        413 => Answer::TooLarge(said()),
        400..=499 => Answer::Rejected(s, said()),
        _ => Answer::Failed(said()),
    }
}

/// The wait before a retry: the backoff, made longer by `Retry-After` where
/// the receiver asked for more, never shorter (`Retry-After: 0`, or a date
/// in the past, must not mean "at once": that would resend as fast as the
/// receiver can answer).
pub fn retry_wait(after: Option<Duration>, backoff: Duration) -> Duration {
    after.map_or(backoff, |a| a.max(backoff))
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// IMF-fixdate, the one form RFC 9110 lets a server send:
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(v: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| x == month)? as u32 + 1;
    let d: u32 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    // Four digits, as IMF-fixdate says: nothing can overflow below.
    let y: i64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, mi, s] = hms.as_slice() else {
        return None;
    };
    if *h > 23 || *mi > 59 || *s > 60 {
        return None;
    }
    let days = crate::os::clock::days_from_civil(y, m, d);
    let secs = u64::try_from(days.checked_mul(86_400)?).ok()? + h * 3600 + mi * 60 + s;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn is_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `{"min_version": "x.y.z"}` anywhere in the body, without a JSON parser:
/// the key, a colon, a quoted version.
fn min_version_in_json(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let after = &text[text.find("\"min_version\"")? + 13..];
    let after = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let v = &after[..after.find('"')?];
    is_version(v).then(|| v.to_string())
}

/// Compares dotted versions numerically: is `ours` older than `min`?
pub fn older_than(ours: &str, min: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(ours) < parse(min)
}

/// The longest backoff. With an attempt in flight bounded by `[upstream]
/// timeout` (10 s by default), a restored upstream hears from the agent
/// within 25 s.
pub const BACKOFF_CAP: Duration = Duration::from_secs(15);

/// Exponential backoff with full jitter: a random wait in
/// [0, min(15 s, 1 s · 2^failures)], at least 100 ms.
pub fn backoff(failures: u32) -> Duration {
    let cap = BACKOFF_CAP.min(Duration::from_secs(1) * 2u32.saturating_pow(failures.min(16)));
    let ms = fastrand::u64(0..=cap.as_millis() as u64);
    Duration::from_millis(ms.max(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            reason: "X".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn every_status_class_has_its_answer() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(classify(&resp(204, &[], ""), now), Answer::Acked);
        assert_eq!(
            classify(&resp(503, &[("Retry-After", "7")], ""), now),
            Answer::Busy(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            classify(
                &resp(429, &[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")], ""),
                now
            ),
            Answer::Busy(Some(Duration::from_secs(10)))
        );
        assert_eq!(
            classify(&resp(429, &[("Retry-After", "99999")], ""), now),
            Answer::Busy(Some(MAX_RETRY_AFTER))
        );
        assert_eq!(
            classify(&resp(503, &[("Retry-After", "soon")], ""), now),
            Answer::Busy(None)
        );
        assert_eq!(
            classify(&resp(401, &[], ""), now),
            Answer::CredentialsRejected(401)
        );
        assert_eq!(
            classify(&resp(409, &[("Tether-Min-Version", "2.3.4")], ""), now),
            Answer::VersionUnsupported(Some("2.3.4".into()))
        );
        assert_eq!(
            classify(
                &resp(409, &[], r#"{"error":"old", "min_version" : "10.0.1"}"#),
                now
            ),
            Answer::VersionUnsupported(Some("10.0.1".into()))
        );
        assert_eq!(
            classify(&resp(409, &[], "nope"), now),
            Answer::VersionUnsupported(None)
        );
        assert!(
            matches!(classify(&resp(413, &[], ""), now), Answer::TooLarge(m) if m.starts_with("HTTP 413"))
        );
        assert!(
            matches!(classify(&resp(404, &[], "no route"), now), Answer::NotFound(m) if m.contains("no route"))
        );
        assert!(
            matches!(classify(&resp(400, &[], "bad line 3"), now), Answer::Rejected(400, m) if m.contains("bad line 3"))
        );
        assert!(matches!(
            classify(&resp(502, &[], ""), now),
            Answer::Failed(_)
        ));
    }

    #[test]
    fn http_dates_and_versions() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t, SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        // Far-future dates from the network are refused, never overflow.
        assert_eq!(
            parse_http_date("Sun, 04 Dec 292277026596 23:59:59 GMT"),
            None
        );
        let now = SystemTime::now();
        assert_eq!(
            retry_after("Sun, 04 Dec 292277026596 23:59:59 GMT", now),
            None
        );
        assert_eq!(
            retry_after("18446744073709551615", now).map(|d| d.min(MAX_RETRY_AFTER)),
            Some(MAX_RETRY_AFTER)
        );
        assert!(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
        assert!(older_than("0.1.0", "0.2.0"));
        assert!(older_than("0.9.0", "0.10.0"));
        assert!(!older_than("1.0.0", "1.0.0"));
    }

    #[test]
    fn retry_after_lengthens_the_backoff_and_never_shortens_it() {
        let b = Duration::from_millis(1500);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let past = retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now);
        assert_eq!(past, Some(Duration::ZERO));
        assert_eq!(retry_wait(past, b), b);
        assert_eq!(retry_wait(Some(Duration::ZERO), b), b);
        assert_eq!(retry_wait(None, b), b);
        let long = Some(Duration::from_secs(20));
        assert_eq!(retry_wait(long, b), Duration::from_secs(20));
    }

    #[test]
    fn backoff_stays_within_its_bounds() {
        for n in 0..40 {
            let d = backoff(n);
            assert!(d >= Duration::from_millis(100));
            assert!(d <= BACKOFF_CAP);
            if n == 0 {
                assert!(d <= Duration::from_secs(1));
            }
        }
    }
}
