//! Protocol buffers' wire format, the few pieces tether's two encoders
//! (remote-write's `WriteRequest`, OTLP's `ExportMetricsServiceRequest`)
//! need: varints, length-delimited fields with one-byte tags (field
//! numbers below 16), and reading one such field back. Written by hand:
//! the messages are few and flat, and a generated encoder would bring a
//! runtime and owned copies of every string (`docs/fleet.md`, "The wire").

/// Appends `v` as a varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The size of `v` as a varint.
pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A length-delimited field's size with its tag and length prefix.
pub fn field_len(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

/// Appends a length-delimited field: `tag`, the length, the bytes.
pub fn bytes_field(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A length-delimited field with `tag` at the start of `b`: its bytes and
/// what follows. `None` for another tag or a length past the end.
pub fn field(b: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *b.first()? != tag {
        return None;
    }
    let (mut len, mut shift, mut i) = (0usize, 0u32, 1);
    loop {
        let c = *b.get(i)?;
        len |= usize::from(c & 0x7f).checked_shl(shift)?;
        i += 1;
        if c < 0x80 {
            break;
        }
        shift += 7;
    }
    let end = i.checked_add(len)?;
    Some((b.get(i..end)?, &b[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_of_every_length_and_a_field_past_the_end() {
        let mut b = Vec::new();
        varint(&mut b, (-1i64) as u64);
        assert_eq!(b.len(), 10);
        assert_eq!(varint_len((-1i64) as u64), 10);
        assert_eq!(*b.last().unwrap(), 1);
        for v in [0u64, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
        assert_eq!(
            field(
                &[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                0x0a
            ),
            None
        );
        let mut f = Vec::new();
        bytes_field(&mut f, 0x12, b"abc");
        assert_eq!(f.len(), field_len(3));
        assert_eq!(field(&f, 0x12), Some((&b"abc"[..], &[][..])));
        assert_eq!(field(&f, 0x0a), None);
        assert_eq!(field(&f[..4], 0x12), None);
    }
}
