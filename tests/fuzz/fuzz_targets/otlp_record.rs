//! A stored record read back as OTLP points (the spool is input: any bytes
//! may be there), encoded as an `ExportMetricsServiceRequest` and gzipped;
//! any bytes read as the receiver's answer (a partial success, an error's
//! status); and any bytes gzipped by our own deflate, inflated back by
//! miniz_oxide.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::uplink::otlp::points::{Batch, Context};
use tether::uplink::otlp::wire::{partial_success, status_message};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ctx = Context {
        agent_statuses: &["online", "offline"],
        severities: &["healthy"],
    };
    let mut b = Batch::default();
    let n = b.add(&text, 1, &ctx) + b.add(&text, u64::MAX / 1_000_000, &ctx);
    assert_eq!(n, b.points);
    assert!(n <= 2 * tether::agent::otlp::POINTS_PER_RECORD, "{n} points");
    let resource = vec![("service.name".to_string(), text.to_string())];
    let body = tether::agent::otlp::request_body(&resource, &b.into_metrics());
    assert!(!body.is_empty());
    assert!(tether::format::gzip::compress(&body).len() > 18);
    let _ = partial_success(data);
    let _ = status_message(data);
    let z = tether::format::gzip::compress(data);
    let back = miniz_oxide::inflate::decompress_to_vec(&z[10..z.len() - 8]).expect("inflates");
    assert_eq!(back, data);
    assert_eq!(z[z.len() - 8..z.len() - 4], tether::format::gzip::crc32(data).to_le_bytes());
});
