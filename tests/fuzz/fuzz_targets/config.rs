//! The TOML reader and the configuration walker: any text is refused with
//! an error or accepted, never a panic or a stack overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tether::config::toml_lite::parse(text);
        let _ = tether::config::parse(text, "fuzz.toml");
    }
});
