//! Spool recovery: the input is split into segment files (and an `acked`
//! file), the spool is opened, and everything is read and acknowledged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tether::config::SyncPolicy;
use tether::uplink::spool::Spool;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("tether-fuzz-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Pieces separated by 0xFF: the first is `acked`, the next (at most 8)
    // are segments named 1, 1001, 2001, ...
    let mut pieces = data.split(|b| *b == 0xFF);
    if let Some(acked) = pieces.next() {
        std::fs::write(dir.join("acked"), acked).unwrap();
    }
    for (i, p) in pieces.take(8).enumerate() {
        let first = 1 + (i as u64) * 1000;
        std::fs::write(dir.join(format!("{first:020}.seg")), p).unwrap();
    }
    if let Ok((mut s, _)) = Spool::open(&dir, 1 << 20, SyncPolicy::Never) {
        for _ in 0..64 {
            let Ok(b) = s.read(50, 1 << 16) else { break };
            if b.recs.is_empty() && b.gaps.is_empty() {
                break;
            }
            s.ack(b.end);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
