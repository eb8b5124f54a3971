//! Wall-clock helpers: Unix seconds and RFC 3339 formatting (UTC), written by
//! hand because the whole need is one civil-from-days conversion.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch as a float, for Prometheus timestamps.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Seconds since the Unix epoch, negative before it.
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `2026-11-21T19:53:30Z` (whole seconds, UTC).
pub fn rfc3339(t: SystemTime) -> String {
    rfc3339_unix(unix_secs(t).max(0))
}

/// The first and last second of years 0000 to 9999, what RFC 3339 can say.
const RFC3339_RANGE: (i64, i64) = (-62_167_219_200, 253_402_300_799);

/// [`rfc3339`] of Unix seconds (any sign), held to years 0000 to 9999.
pub fn rfc3339_unix(secs: i64) -> String {
    let secs = secs.clamp(RFC3339_RANGE.0, RFC3339_RANGE.1);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// `2026-11-21T19:53:30.123Z`: the timestamp of upstream records.
pub fn rfc3339_millis(ms: u64) -> String {
    let secs = rfc3339_unix((ms / 1000) as i64);
    format!("{}.{:03}Z", &secs[..secs.len() - 1], ms % 1000)
}

/// Reads back [`rfc3339_millis`]'s exact layout; `None` for anything else.
pub fn parse_rfc3339_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec);
    u64::try_from(secs).ok().map(|s| s * 1000 + u64::from(ms))
}

/// Howard Hinnant's `days_from_civil`: (year, month 1-12, day 1-31) to days
/// since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_290_810);
        assert_eq!(rfc3339(t), "2026-11-21T19:53:30Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_unix(-86_400), "1969-12-31T00:00:00Z");
        assert_eq!(
            rfc3339_millis(1_795_290_810_007),
            "2026-11-21T19:53:30.007Z"
        );
        assert_eq!(
            parse_rfc3339_millis("2026-11-21T19:53:30.007Z"),
            Some(1_795_290_810_007)
        );
        assert_eq!(parse_rfc3339_millis("2026-11-21T19:53:30Z"), None);
        assert_eq!(parse_rfc3339_millis("2026-13-21T19:53:30.007Z"), None);
        assert_eq!(unix_millis(UNIX_EPOCH + Duration::from_micros(1_500)), 1);
    }

    #[test]
    fn far_times_saturate_instead_of_wrapping() {
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 2);
        assert_eq!(unix_secs(far), i64::MAX);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_unix(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339_millis(u64::MAX), "9999-12-31T23:59:59.615Z");
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for z in [-800_000i64, -1, 0, 1, 11_016, 20_778, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
