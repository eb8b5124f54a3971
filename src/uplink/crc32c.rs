//! CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor
//! 0xFFFFFFFF): the checksum of every spool record and of the identity file.
//!
//! On x86-64 with SSE 4.2 the CPU's `crc32` instruction does eight bytes a
//! step (a full 64 MiB spool is checked in a few milliseconds); elsewhere a
//! 1 KiB table does a byte a step. Both are tested against the standard
//! check value. crc32fast was measured at +26.6 KB and computes the other
//! polynomial (CRC-32/IEEE); this is about 60 lines.

const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = crate::format::gzip::reflected_crc_table(POLY);

/// The CRC-32C of `parts` concatenated.
pub fn checksum(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for p in parts {
        crc = update(crc, p);
    }
    !crc
}

fn update(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the feature was detected at run time just above.
            return unsafe { update_sse42(crc, data) };
        }
    }
    update_table(crc, data)
}

fn update_table(mut crc: u32, data: &[u8]) -> u32 {
    for b in data {
        crc = TABLE[((crc ^ u32::from(*b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn update_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = u64::from(crc);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        c = _mm_crc32_u64(c, u64::from_le_bytes(b));
    }
    let mut c = c as u32;
    for b in words.remainder() {
        c = _mm_crc32_u8(c, *b);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        // The catalogue's check value for CRC-32/ISCSI (CRC-32C).
        assert_eq!(checksum(&[b"123456789"]), 0xE306_9283);
        assert_eq!(!update_table(!0, b"123456789"), 0xE306_9283);
        assert_eq!(checksum(&[b"1234", b"56789"]), 0xE306_9283);
        assert_eq!(checksum(&[]), 0);
    }

    #[test]
    fn both_paths_agree_on_every_length_and_alignment() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                let d = &data[start..end];
                assert_eq!(checksum(&[d]), !update_table(!0, d), "{start}..{end}");
            }
        }
    }
}
