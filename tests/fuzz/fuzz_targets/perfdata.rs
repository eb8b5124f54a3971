//! Nagios plugin output and its performance data, and rendering it back.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (_, perf) = tether::format::perfdata::parse(&text);
    for d in &perf {
        let _ = tether::format::perfdata::render(&d.label, d);
    }
});
