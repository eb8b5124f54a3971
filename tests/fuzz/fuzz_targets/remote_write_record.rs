//! A stored record read back as remote-write samples: the JSON field reader,
//! the series builder, the protobuf and snappy body, and the labels read
//! back from their bytes (the spool is input: any bytes may be there).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::uplink::remote_write::series::{Batch, Context};
use tether::uplink::remote_write::wire;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let labels = vec![("group".to_string(), "g".to_string())];
    let ctx = Context {
        agent: "a",
        agent_id: "00",
        labels: &labels,
        agent_statuses: &["online", "offline"],
        severities: &["healthy"],
    };
    let mut b = Batch::default();
    b.add(&text, 1, &ctx);
    b.add(&text, 2, &ctx);
    let body = wire::body(b.series());
    assert!(!body.is_empty());
    for s in b.series() {
        assert!(s.labels().iter().any(|(k, _)| k == "__name__"));
    }
});
