//! gzip (RFC 1952) around miniz_oxide's deflate: the 10-byte header, the
//! compressed data, the CRC-32 and the length. Only compression: tether
//! never reads gzip.

/// CRC-32 (IEEE 802.3, reflected 0xEDB88320), the checksum gzip carries;
/// the table is built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, b| {
        CRC_TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// `data` gzip-compressed at level 1 (the fastest: an OTLP body is a few
/// KiB of repeated names and attributes, which the fastest level already
/// shrinks several times).
pub fn compress(data: &[u8]) -> Vec<u8> {
    // No name, no time, OS unknown (255), as the gzip of a stream.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 1));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_value_of_the_crc() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn gunzip_reads_it_back() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("tether.check.up {}\n", i % 97).into_bytes())
            .collect();
        let z = compress(&data);
        assert!(z.len() * 5 < data.len(), "{} of {}", z.len(), data.len());
        let dir = std::env::temp_dir().join(format!("tether-gzip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("body.gz");
        std::fs::write(&path, &z).unwrap();
        let out = std::process::Command::new("gzip")
            .args(["-dc", "--"])
            .arg(&path)
            .output()
            .expect("gzip runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, data);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
