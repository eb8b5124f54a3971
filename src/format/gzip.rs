//! gzip (RFC 1952) with a deflate (RFC 1951) compressor of our own: greedy
//! LZ77 over the input (the window is the input itself, no copy) with one
//! hash probe per position, coded with deflate's fixed Huffman codes in one
//! block. Only compression: tether never reads gzip.
//!
//! Why by hand: miniz_oxide's compressor allocates about 230 KiB of state
//! per call (its 32 KiB dictionary, hash chains and code buffer), which
//! alone took the agent's peak RSS with OTLP past 3 MiB, and cost 3.6 µs
//! per check result at its fastest level. This one holds a 32 KiB table,
//! and OTLP bodies (the same attribute strings over and over) lose most of
//! their bytes to LZ77 alone: dynamic Huffman codes would gain little on
//! them (docs/fleet.md has the measured sizes and costs).

/// The byte-at-a-time table of a reflected CRC-32 with polynomial `poly`,
/// built at compile time: gzip's CRC-32 here, the spool's CRC-32C in
/// `uplink/crc32c.rs`.
pub const fn reflected_crc_table(poly: u32) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { poly ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

/// CRC-32 (IEEE 802.3, reflected 0xEDB88320), the checksum gzip carries.
const CRC_TABLE: [u32; 256] = reflected_crc_table(0xEDB8_8320);

pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, b| {
        CRC_TABLE[((c ^ u32::from(*b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// `data` gzip-compressed.
pub fn compress(data: &[u8]) -> Vec<u8> {
    // No name, no time, OS unknown (255).
    let mut out = Vec::with_capacity(data.len() / 4 + 32);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    deflate(data, &mut out);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Deflate's fixed literal/length codes, bit-reversed for an LSB-first
/// writer: (code, length) per symbol 0..=287.
const FIXED: [(u16, u8); 288] = {
    let mut t = [(0u16, 0u8); 288];
    let mut s = 0;
    while s < 288 {
        let (code, len) = match s {
            0..=143 => (0x30 + s as u16, 8),
            144..=255 => (0x190 + (s as u16 - 144), 9),
            256..=279 => (s as u16 - 256, 7),
            _ => (0xc0 + (s as u16 - 280), 8),
        };
        t[s] = (reverse(code, len), len);
        s += 1;
    }
    t
};

const fn reverse(code: u16, len: u8) -> u16 {
    let mut r = 0;
    let mut i = 0;
    while i < len {
        r |= ((code >> i) & 1) << (len - 1 - i);
        i += 1;
    }
    r
}

/// Bits out, least significant first, as deflate packs them.
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits<'_> {
    fn put(&mut self, bits: u32, n: u32) {
        self.acc |= u64::from(bits) << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn symbol(&mut self, s: usize) {
        let (code, len) = FIXED[s];
        self.put(u32::from(code), u32::from(len));
    }

    /// A match of `len` (3..=258) bytes `dist` (1..=32768) back.
    fn matched(&mut self, len: usize, dist: usize) {
        let x = len - 3;
        if len == 258 {
            self.symbol(285);
        } else if x < 8 {
            self.symbol(257 + x);
        } else {
            let b = usize::BITS - 1 - x.leading_zeros();
            let extra = b - 2;
            self.symbol(257 + 4 * (b as usize - 1) + ((x >> extra) & 3));
            self.put((x & ((1 << extra) - 1)) as u32, extra);
        }
        let x = dist - 1;
        if x < 4 {
            self.put(u32::from(reverse(x as u16, 5)), 5);
        } else {
            let b = usize::BITS - 1 - x.leading_zeros();
            let extra = b - 1;
            let code = 2 * b as usize + ((x >> extra) & 1);
            self.put(u32::from(reverse(code as u16, 5)), 5);
            self.put((x & ((1 << extra) - 1)) as u32, extra);
        }
    }

    fn finish(mut self) {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.acc = 0;
        self.n = 0;
    }
}

const WINDOW: usize = 32 * 1024;
const MAX_MATCH: usize = 258;
const HASH_BITS: u32 = 13;

fn read4(d: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]])
}

/// One final fixed-Huffman block holding `data`.
fn deflate(data: &[u8], out: &mut Vec<u8>) {
    let mut w = Bits { out, acc: 0, n: 0 };
    w.put(0b011, 3); // BFINAL, BTYPE = 01 (fixed codes)
                     // Position + 1 of the last 4 bytes hashing here (0: none).
    let mut table = vec![0u32; 1 << HASH_BITS];
    let mut i = 0;
    while i + 4 <= data.len() {
        let here = read4(data, i);
        let h = (here.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize;
        let cand = table[h] as usize;
        table[h] = i as u32 + 1;
        if cand > 0 && i - (cand - 1) <= WINDOW && read4(data, cand - 1) == here {
            let from = cand - 1;
            let most = MAX_MATCH.min(data.len() - i);
            let mut len = 4;
            while len < most && data[from + len] == data[i + len] {
                len += 1;
            }
            w.matched(len, i - from);
            i += len;
        } else {
            w.symbol(usize::from(data[i]));
            i += 1;
        }
    }
    for b in &data[i..] {
        w.symbol(usize::from(*b));
    }
    w.symbol(256);
    w.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_value_of_the_crc() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("tether-gzip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("body-{}.gz", fastrand::u64(..)));
        std::fs::write(&path, z).unwrap();
        let out = std::process::Command::new("gzip")
            .args(["-dc", "--"])
            .arg(&path)
            .output()
            .expect("gzip runs");
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    #[test]
    fn gunzip_reads_back_every_shape_of_input() {
        let repetitive: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("tether.check.up {}\n", i % 97).into_bytes())
            .collect();
        let z = compress(&repetitive);
        assert!(
            z.len() * 5 < repetitive.len(),
            "{} of {}",
            z.len(),
            repetitive.len()
        );
        assert_eq!(gunzip(&z), repetitive);
        let mut rng = fastrand::Rng::with_seed(7);
        let random: Vec<u8> = (0..100_000).map(|_| rng.u8(..)).collect();
        // A run longer than one match, matches at the window's far end,
        // every byte value, and the short tails.
        let mut far = random[..40_000].to_vec();
        far.extend_from_slice(&random[..40_000]);
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            b"abc".to_vec(),
            b"abcd".to_vec(),
            b"abcdabcdabcd".to_vec(),
            vec![0u8; 100_000],
            (0..=255u8).cycle().take(70_000).collect(),
            random,
            far,
        ];
        for c in cases {
            assert_eq!(gunzip(&compress(&c)), c, "{} bytes", c.len());
        }
    }

    #[test]
    fn lengths_and_distances_take_their_codes() {
        // Every match length, at distances across every distance code.
        let mut rng = fastrand::Rng::with_seed(11);
        let mut data = Vec::new();
        for len in 3..=300usize {
            let dist = [1, 2, 3, 4, 5, 8, 100, 1000, 5000, 20_000, 32_768][len % 11];
            for _ in 0..dist.max(len) {
                data.push(rng.u8(..));
            }
            for _ in 0..len {
                let b = data[data.len() - dist];
                data.push(b);
            }
        }
        assert_eq!(gunzip(&compress(&data)), data);
    }
}
