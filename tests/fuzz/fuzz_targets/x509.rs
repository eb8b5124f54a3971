//! The X.509 reader (dates, names, subjectAltName).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tether::net::x509::parse(data);
});
