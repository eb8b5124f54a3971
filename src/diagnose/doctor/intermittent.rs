//! Step 4, intermittent: checks that flap or time out now and then, their
//! recent durations against their timeout, and a rounded timeout to try.

use super::*;

/// Median, 95th percentile and maximum of durations in microseconds.
pub fn stats(mut us: Vec<u64>) -> Option<(Duration, Duration, Duration)> {
    if us.is_empty() {
        return None;
    }
    us.sort_unstable();
    let at = |q: f64| Duration::from_micros(us[((us.len() - 1) as f64 * q).round() as usize]);
    Some((at(0.5), at(0.95), at(1.0)))
}

pub(super) fn is_timeout(s: &Sample) -> bool {
    matches!(
        s.reason,
        Some(Reason::Timeout | Reason::ConnectTimeout | Reason::TlsTimeout | Reason::DnsTimeout)
    )
}

/// A round suggestion at least `d`: 1, 2 or 5 times a power of ten ms.
pub fn round_up(d: Duration) -> Duration {
    let ms = d.as_millis().max(1) as u64;
    let mut p = 1;
    loop {
        for m in [1, 2, 5] {
            if m * p >= ms {
                return Duration::from_millis(m * p);
            }
        }
        p *= 10;
    }
}

/// Alternating results followed by this many successes are the past: told,
/// not alarmed.
const RECENT_CLEAN: usize = 10;

pub(super) fn intermittent_step(snap: &Snapshot, live: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    for c in &snap.checks {
        let h = &c.health;
        let samples = &h.recent;
        let failed = samples.iter().filter(|s| s.status != Status::Ok).count();
        let timeouts = samples.iter().filter(|s| is_timeout(s)).count();
        let is_ok = |s: &Sample| s.status == Status::Ok;
        // Intermittent means alternating: ok, failing, ok, failing. One run
        // of failures between successes is an outage, not flapping.
        let changes = samples
            .iter()
            .zip(samples.iter().skip(1))
            .filter(|(a, b)| is_ok(a) != is_ok(b))
            .count();
        let clean_tail = samples.iter().rev().take_while(|s| is_ok(s)).count();
        if failed == 0 {
            continue;
        }
        if !h.flapping && changes < 3 {
            // An outage: ongoing ones are the Degraded and Offline steps';
            // one that is over is told as the past, and alarms nothing.
            if clean_tail > 0 {
                let why = samples
                    .iter()
                    .rev()
                    .find_map(|s| s.reason)
                    .map_or(String::new(), |r| format!(" ({})", r.code()));
                out.push(Finding::new(
                    Step::Intermittent,
                    Level::Ok,
                    "past_outage",
                    format!(
                        "{} was failing{why} for {failed} runs in a row, and has succeeded for the last {clean_tail}: an outage that is over, not intermittent",
                        c.spec.name
                    ),
                ));
            }
            continue;
        }
        if !h.flapping && clean_tail >= RECENT_CLEAN {
            out.push(Finding::new(
                Step::Intermittent,
                Level::Ok,
                "past_intermittent",
                format!(
                    "{} failed now and then earlier ({failed} of the last {} runs), but none of the last {clean_tail}",
                    c.spec.name,
                    samples.len()
                ),
            ));
            continue;
        }
        let micros = |s: &Sample| s.micros();
        let all = stats(samples.iter().map(micros).collect());
        let ok = stats(
            samples
                .iter()
                .filter(|s| s.status == Status::Ok)
                .map(micros)
                .collect(),
        );
        let fmt = |d: Duration| crate::config::duration::format_ms(d);
        let timeout = c.spec.timeout;
        let mut evidence = format!(
            "{failed} of the last {} runs failed ({timeouts} timed out){}",
            samples.len(),
            if h.flapping {
                format!("; flapping, {:.0}% state changes", h.flap_percent)
            } else {
                String::new()
            }
        );
        if let Some((med, p95, max)) = all {
            evidence.push_str(&format!(
                "\ndurations: median {}, p95 {}, max {}; timeout {}",
                fmt(med),
                fmt(p95),
                fmt(max),
                fmt(timeout)
            ));
        }
        let (code, fix) = match ok {
            Some((_, ok_p95, ok_max)) if timeouts > 0 && ok_max * 2 >= timeout => {
                let suggest = round_up((ok_max * 2).max(ok_p95 * 3)).max(timeout + Duration::from_millis(1));
                (
                    "timeout_too_short",
                    format!(
                        "runs that succeed take up to {} of the {} timeout: the timeout is the cause; set timeout = \"{}\" for this check (or find why the target is slow)",
                        fmt(ok_max),
                        fmt(timeout),
                        crate::config::duration::format(round_up(suggest))
                    ),
                )
            }
            _ if timeouts > 0 => (
                "intermittent_timeouts",
                "successful runs are fast, yet some time out: packets are lost now and then, or the target stalls; look at the path (mtr) and the target's load".to_string(),
            ),
            _ => (
                "intermittent_failures",
                crate::agent::health::FLAP_HINT.to_string(),
            ),
        };
        out.push(
            Finding::new(
                Step::Intermittent,
                Level::Warning,
                code,
                format!(
                    "{} ({} {}) fails now and then",
                    c.spec.name,
                    c.spec.probe.kind(),
                    c.spec.probe.target()
                ),
            )
            .evidence(evidence)
            .fix(fix),
        );
    }
    if out.is_empty() {
        out.push(Finding::ok(
            Step::Intermittent,
            if live {
                "no check flaps or fails now and then in its recent results"
            } else {
                "no history to judge: run the doctor while the agent runs"
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_round() {
        assert_eq!(round_up(Duration::from_millis(730)), Duration::from_secs(1));
        assert_eq!(round_up(Duration::from_millis(1)), Duration::from_millis(1));
        assert_eq!(
            round_up(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            round_up(Duration::from_millis(2001)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn stats_are_order_statistics() {
        let d: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        let (med, p95, max) = stats(d).unwrap();
        assert_eq!(
            (med.as_millis(), p95.as_millis(), max.as_millis()),
            (51, 95, 100)
        );
    }
}
