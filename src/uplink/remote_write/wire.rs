//! The remote-write 1.0 body: a protobuf `WriteRequest`, snappy-compressed
//! in the block format.
//!
//! ```text
//! message WriteRequest { repeated TimeSeries timeseries = 1; }
//! message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! message Label        { string name = 1; string value = 2; }
//! message Sample       { double value = 1; int64 timestamp = 2; }  // ms
//! ```
//!
//! Four messages of two field types are encoded here by hand (about forty
//! lines, pinned byte for byte by the tests below) rather than with prost:
//! prost would add its derive macros and the `bytes` crate for them, and
//! want owned `String`s for every label of every series, where this writes
//! straight from the borrowed labels. Snappy is the `snap` crate's raw
//! (block) encoder: 7 KiB of the static binary, measured
//! (`docs/fleet.md`, "The wire"). The wire format's pieces are
//! [`crate::format::protobuf`]'s, shared with the OTLP encoder.

use crate::format::protobuf::{bytes_field, field, field_len, varint, varint_len};

/// The NaN Prometheus reads as "this series ended" (a stale marker).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// One series: its labels, sorted by name with `__name__` among them, and
/// its samples (value, Unix ms) in time order. The labels are kept as
/// their protobuf bytes, made once: a series costs one allocation for
/// them, not two per label.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// `Label` fields of a `TimeSeries`, encoded.
    labels: Vec<u8>,
    pub samples: Vec<(f64, i64)>,
}

impl Series {
    /// A series with these labels (sorted by name) and samples.
    pub fn new<'a, I>(labels: I, samples: Vec<(f64, i64)>) -> Series
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        let labels = labels.into_iter();
        let size = labels.clone().map(|(k, v)| label_len(k, v)).sum();
        Series::sized(size, labels, samples)
    }

    /// [`Series::new`] when the labels' encoded size ([`label_len`] of
    /// each) is known: the buffer is made exactly that large, once (a batch
    /// held through an outage keeps every series' labels, nothing spare).
    pub fn sized<'a>(
        size: usize,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        samples: Vec<(f64, i64)>,
    ) -> Series {
        let mut b = Vec::with_capacity(size);
        for (k, v) in labels {
            b.push(0x0a);
            varint(&mut b, (field_len(k.len()) + field_len(v.len())) as u64);
            bytes_field(&mut b, 0x0a, k.as_bytes());
            bytes_field(&mut b, 0x12, v.as_bytes());
        }
        Series { labels: b, samples }
    }

    /// The labels, read back from their bytes (the dead-letter file, tests).
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = &self.labels[..];
        while let Some((label, next)) = field(rest, 0x0a) {
            let pair = field(label, 0x0a).and_then(|(k, r)| Some((k, field(r, 0x12)?.0)));
            if let Some((k, v)) = pair {
                out.push((
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                ));
            }
            rest = next;
        }
        out
    }

    /// The samples from `at` on, as a series of their own with the same
    /// labels.
    pub fn split_off(&mut self, at: usize) -> Series {
        Series {
            labels: self.labels.clone(),
            samples: self.samples.split_off(at),
        }
    }
}

/// The protobuf bytes of a `WriteRequest` holding `series`.
pub fn write_request(series: &[Series]) -> Vec<u8> {
    // A sample: tag + 8 bytes of double, tag + varint timestamp.
    let sample_len = |t: i64| 9 + 1 + varint_len(t as u64);
    let series_len = |s: &Series| {
        s.labels.len()
            + s.samples
                .iter()
                .map(|(_, t)| field_len(sample_len(*t)))
                .sum::<usize>()
    };
    // Sized once: a body of hundreds of KiB is not grown by doubling.
    let mut out = Vec::with_capacity(series.iter().map(|s| field_len(series_len(s))).sum());
    for s in series {
        let samples: Vec<usize> = s.samples.iter().map(|(_, t)| sample_len(*t)).collect();
        let len = series_len(s);
        out.push(0x0a);
        varint(&mut out, len as u64);
        out.extend_from_slice(&s.labels);
        for ((value, t), l) in s.samples.iter().zip(&samples) {
            out.push(0x12);
            varint(&mut out, *l as u64);
            out.push(0x09);
            out.extend_from_slice(&value.to_bits().to_le_bytes());
            out.push(0x10);
            varint(&mut out, *t as u64);
        }
    }
    out
}

/// The request body: [`write_request`] in snappy's block format.
pub fn body(series: &[Series]) -> Vec<u8> {
    let raw = write_request(series);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy takes any input under 4 GiB")
}

/// The encoded size of one label of a series.
pub fn label_len(k: &str, v: &str) -> usize {
    field_len(field_len(k.len()) + field_len(v.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> Series {
        Series::new(labels.iter().copied(), samples.to_vec())
    }

    #[test]
    fn labels_read_back_and_damage_reads_as_nothing() {
        let long = "é".repeat(100);
        let s = series(&[("__name__", "up"), ("a", &long)], &[]);
        // Exactly sized: a held batch keeps nothing spare.
        assert_eq!(s.labels.capacity(), s.labels.len());
        assert_eq!(
            s.labels(),
            vec![("__name__".into(), "up".into()), ("a".into(), long.clone())]
        );
        for cut in 0..s.labels.len() {
            let damaged = Series {
                labels: s.labels[..cut].to_vec(),
                samples: vec![],
            };
            assert!(damaged.labels().len() <= 2);
        }
    }

    #[test]
    fn a_write_request_is_byte_exact() {
        // Worked by hand from the protobuf encoding rules: every length,
        // tag and varint below can be checked against the spec.
        let s = series(
            &[("__name__", "up"), ("a", "b")],
            &[(1.0, 1_700_000_000_000)],
        );
        let got = write_request(&[s]);
        let mut want = vec![0x0a, 42]; // timeseries, 42 bytes
        want.extend([0x0a, 14, 0x0a, 8]); // label, 14 bytes; name, 8 bytes
        want.extend(b"__name__");
        want.extend([0x12, 2]);
        want.extend(b"up");
        want.extend([0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b']);
        want.extend([0x12, 16, 0x09]); // sample, 16 bytes; double
        want.extend(1.0f64.to_le_bytes());
        // 1_700_000_000_000 as a varint.
        want.extend([0x10, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31]);
        assert_eq!(got, want);
    }

    #[test]
    fn lengths_past_one_varint_byte() {
        // Lengths past one varint byte: a 200-byte label value.
        let long = "x".repeat(200);
        let s = series(&[("__name__", &long)], &[(f64::from_bits(STALE_NAN), 5)]);
        let raw = write_request(&[s]);
        // label 1+2+213, sample 1+1+11: 229 = 0xe5 0x01
        assert_eq!(&raw[..3], &[0x0a, 0xe5, 0x01]);
        assert_eq!(raw.len(), 3 + 229);
        assert!(raw.windows(8).any(|w| w == STALE_NAN.to_le_bytes()));
    }

    #[test]
    fn the_body_is_snappy_block_format() {
        let s = series(&[("__name__", "up")], &[(0.0, 0)]);
        let b = body(&[s.clone(), s]);
        let raw = snap::raw::Decoder::new().decompress_vec(&b).unwrap();
        let one = series(&[("__name__", "up")], &[(0.0, 0)]);
        assert_eq!(raw, write_request(&[one.clone(), one]));
        // The block format starts with the uncompressed length, not the
        // framed format's stream identifier (0xff "sNaPpY").
        assert_eq!(b[0] as usize, raw.len());
    }
}
