//! DNS messages (RFC 1035 §4) for A and AAAA lookups: encoding one query and
//! decoding a reply defensively. Every read is bounds-checked, compression
//! pointers are followed at most 64 times, and any malformed reply is an
//! error value, never a panic: the reply comes from the network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;

/// A query for `name` (no trailing dot needed) with recursion desired.
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(18 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00]); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        m.push(label.len().min(63) as u8);
        m.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m
}

/// The parts of a reply a lookup needs.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub truncated: bool,
    pub rcode: u8,
    /// Addresses of the asked type from the answer section, in order. CNAME
    /// chains are answered in the same section by recursive servers.
    pub addrs: Vec<IpAddr>,
}

/// Why a datagram is not a usable reply to our query.
#[derive(Debug, PartialEq, Eq)]
pub enum WireError {
    /// Not a reply to this query (other id or question): ignore it, keep waiting.
    NotOurs,
    /// A reply to this query that cannot be decoded.
    Malformed(&'static str),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, WireError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(WireError::Malformed("truncated message"))?;
        self.pos += 1;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(WireError::Malformed("truncated record"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// Reads a possibly compressed name, lower-cased and dot-joined.
    fn name(&mut self) -> Result<String, WireError> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut jumped = false;
        // Labels are bounded by the 255-byte name; pointers by this count
        // (each jump reads no label, so a loop would never end otherwise).
        let mut jumps = 0;
        loop {
            let len = *self
                .buf
                .get(pos)
                .ok_or(WireError::Malformed("truncated name"))?;
            match len {
                0 => {
                    if !jumped {
                        self.pos = pos + 1;
                    }
                    return Ok(out);
                }
                l if l & 0xC0 == 0xC0 => {
                    let lo = *self
                        .buf
                        .get(pos + 1)
                        .ok_or(WireError::Malformed("truncated pointer"))?;
                    if !jumped {
                        self.pos = pos + 2;
                    }
                    jumped = true;
                    jumps += 1;
                    if jumps > 127 {
                        return Err(WireError::Malformed("compression loop"));
                    }
                    pos = usize::from(l & 0x3F) << 8 | usize::from(lo);
                }
                l if l & 0xC0 == 0 => {
                    let label = self
                        .buf
                        .get(pos + 1..pos + 1 + usize::from(l))
                        .ok_or(WireError::Malformed("truncated label"))?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.extend(label.iter().map(|b| b.to_ascii_lowercase() as char));
                    if out.len() > 255 {
                        return Err(WireError::Malformed("name too long"));
                    }
                    pos += 1 + usize::from(l);
                }
                _ => return Err(WireError::Malformed("unknown label type")),
            }
        }
    }
}

/// Decodes `buf` as the reply to query (`id`, `name`, `qtype`).
pub fn decode_reply(buf: &[u8], id: u16, name: &str, qtype: u16) -> Result<Reply, WireError> {
    let mut r = Reader { buf, pos: 0 };
    if buf.len() < 12 || r.u16()? != id {
        return Err(WireError::NotOurs);
    }
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return Err(WireError::NotOurs); // a query, not a response
    }
    let truncated = flags & 0x0200 != 0;
    let rcode = (flags & 0x000F) as u8;
    let qd = r.u16()?;
    let an = r.u16()?;
    r.u16()?;
    r.u16()?;
    if qd != 1 {
        return Err(WireError::NotOurs);
    }
    let qname = r.name()?;
    let (qt, qc) = (r.u16()?, r.u16()?);
    if !qname.eq_ignore_ascii_case(name.trim_end_matches('.')) || qt != qtype || qc != CLASS_IN {
        return Err(WireError::NotOurs);
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        if truncated && r.pos >= buf.len() {
            break; // a truncated reply may end mid-section
        }
        r.name()?;
        let (rtype, rclass) = (r.u16()?, r.u16()?);
        r.bytes(4)?; // TTL
        let len = usize::from(r.u16()?);
        let data = r.bytes(len)?;
        if rclass != CLASS_IN || rtype != qtype {
            continue;
        }
        match (rtype, data.len()) {
            (TYPE_A, 4) => addrs.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                addrs.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            _ => return Err(WireError::Malformed("address record of the wrong length")),
        }
    }
    Ok(Reply {
        truncated,
        rcode,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_known_query() {
        let q = encode_query(0xBEEF, "a.io.", TYPE_AAAA);
        assert_eq!(
            q,
            b"\xBE\xEF\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x02io\x00\x00\x1C\x00\x01"
                .to_vec()
        );
    }

    fn reply_with(q: &[u8], rcode: u8, answers: &[&[u8]]) -> Vec<u8> {
        let mut m = q.to_vec();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = answers.len() as u8;
        for a in answers {
            m.extend_from_slice(&[0xC0, 12]); // pointer to the question name
            m.extend_from_slice(a);
        }
        m
    }

    #[test]
    fn decodes_answers_and_skips_cnames() {
        let q = encode_query(7, "db.example", TYPE_A);
        let cname: &[u8] = b"\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x02\xC0\x0C";
        let a: &[u8] = b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x05";
        let r = decode_reply(&reply_with(&q, 0, &[cname, a]), 7, "DB.example.", TYPE_A).unwrap();
        assert_eq!(r.addrs, vec![IpAddr::from([127, 0, 0, 5])]);
        assert_eq!(r.rcode, RCODE_NOERROR);
        assert_eq!(
            decode_reply(&reply_with(&q, 0, &[a]), 8, "db.example", TYPE_A),
            Err(WireError::NotOurs)
        );
        assert_eq!(
            decode_reply(&reply_with(&q, 0, &[a]), 7, "other", TYPE_A),
            Err(WireError::NotOurs)
        );
        assert_eq!(
            decode_reply(&q, 7, "db.example", TYPE_A),
            Err(WireError::NotOurs)
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        let q = encode_query(7, "x.y", TYPE_A);
        let good = reply_with(
            &q,
            0,
            &[b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x05"],
        );
        // Every truncation and every single-byte corruption of a valid reply.
        for cut in 0..good.len() {
            let _ = decode_reply(&good[..cut], 7, "x.y", TYPE_A);
        }
        for i in 0..good.len() {
            for v in [0x00, 0x3F, 0xC0, 0xFF] {
                let mut m = good.clone();
                m[i] = v;
                let _ = decode_reply(&m, 7, "x.y", TYPE_A);
            }
        }
        // A legal name of 120 labels is no loop.
        let long = ["a"; 120].join(".");
        let q120 = encode_query(9, &long, TYPE_A);
        let r = reply_with(&q120, 0, &[]);
        assert!(
            !matches!(
                decode_reply(&r, 9, &long, TYPE_A),
                Err(WireError::Malformed(_))
            ),
            "{:?}",
            decode_reply(&r, 9, &long, TYPE_A)
        );
        // A pointer to itself.
        let mut lp = q.clone();
        lp[2] = 0x81;
        lp.truncate(12);
        lp.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(
            decode_reply(&lp, 7, "x.y", TYPE_A),
            Err(WireError::Malformed("compression loop"))
        );
    }
}
