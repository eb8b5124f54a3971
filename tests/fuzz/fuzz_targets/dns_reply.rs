//! The DNS reply decoder, against the query it answers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::net::resolve::wire::{decode_reply, TYPE_A, TYPE_AAAA};

fuzz_target!(|data: &[u8]| {
    for qtype in [TYPE_A, TYPE_AAAA] {
        let _ = decode_reply(data, 0x1234, "cp.example.com", qtype);
    }
    // The reply's own id and name, so the decoder gets past the header.
    if data.len() >= 2 {
        let id = u16::from_be_bytes([data[0], data[1]]);
        let _ = decode_reply(data, id, "a.b", TYPE_A);
    }
});
