//! HTTP dates and Retry-After from the network, and the clock conversions
//! they feed.
#![no_main]
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = SystemTime::now();
    if let Some(t) = tether::uplink::upstream::parse_http_date(&text) {
        let _ = tether::os::clock::rfc3339(t);
        let _ = tether::os::clock::unix_secs(t);
    }
    if let Some(d) = tether::uplink::upstream::retry_after(&text, now) {
        let _ = now.checked_add(d.min(tether::uplink::upstream::MAX_RETRY_AFTER));
    }
    let _ = tether::os::clock::parse_rfc3339_millis(&text);
    if data.len() >= 8 {
        let n = u64::from_le_bytes(data[..8].try_into().unwrap());
        let _ = tether::os::clock::rfc3339_millis(n);
        let _ = tether::os::clock::rfc3339_unix(n as i64);
        if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(n)) {
            let _ = tether::os::clock::rfc3339(t);
        }
    }
});
