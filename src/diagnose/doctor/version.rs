//! Step 5, version: this version against the minimum the control plane
//! announced.

use super::*;

/// Numeric comparison of dotted versions (`0.10.1` > `0.9`); pre-release
/// suffixes after `-` are ignored.
pub fn version_below(have: &str, min: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split('-')
            .next()
            .unwrap_or("")
            .split('.')
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    let (mut a, mut b) = (parts(have), parts(min));
    let n = a.len().max(b.len());
    a.resize(n, 0);
    b.resize(n, 0);
    a < b
}

pub(super) fn version_step(u: Option<&UpstreamView>, announced: Option<&str>) -> Finding {
    let have = env!("CARGO_PKG_VERSION");
    let min = u.and_then(|u| u.min_version.as_deref()).or(announced);
    let refused = u.is_some_and(|u| u.state == LinkState::VersionUnsupported);
    match min {
        Some(m) if refused || version_below(have, m) => Finding::new(
            Step::Version,
            Level::Critical,
            "version_unsupported",
            format!("tether {have} is below the minimum {m} the control plane announced"),
        )
        .fix(format!("upgrade tether to {m} or later")),
        None if refused => Finding::new(
            Step::Version,
            Level::Critical,
            "version_unsupported",
            format!("the control plane refuses tether {have} (HTTP 409) without naming a minimum"),
        )
        .fix("upgrade tether to the version the control plane's documentation names"),
        Some(m) => Finding::ok(
            Step::Version,
            format!("tether {have}; the control plane's minimum is {m}"),
        ),
        None => Finding::ok(
            Step::Version,
            format!("tether {have}; the control plane has not announced a minimum"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_below("0.1.0", "0.2"));
        assert!(version_below("0.9.9", "0.10.0"));
        assert!(!version_below("1.0.0", "1.0"));
        assert!(!version_below("2.0.0-rc1", "1.9"));
    }
}
