//! Just enough X.509 (DER) to tell an operator about a certificate: its
//! validity dates, subject, issuer and DNS names. Verifying it is rustls's
//! job; this reads what rustls verified or refused, so that an expired or
//! untrusted certificate still shows *when* it expires and *who* issued it.
//! Every read is bounds-checked: a certificate is network input.

use std::fmt::Write;

use rustls_pki_types::CertificateDer;

use crate::os::clock::days_from_civil;
use crate::outcome::CertInfo;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads a DER certificate.
pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
    let mut top = Der(der);
    let mut cert = Der(top.expect(SEQUENCE, "certificate")?);
    let mut tbs = Der(cert.expect(SEQUENCE, "tbsCertificate")?);
    if tbs.peek() == Some(0xa0) {
        tbs.next()?; // version
    }
    tbs.expect(INTEGER, "serialNumber")?;
    tbs.expect(SEQUENCE, "signature")?;
    let issuer = name(tbs.expect(SEQUENCE, "issuer")?)?;
    let mut validity = Der(tbs.expect(SEQUENCE, "validity")?);
    let not_before = time(validity.next()?)?;
    let not_after = time(validity.next()?)?;
    let subject = name(tbs.expect(SEQUENCE, "subject")?)?;
    tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut names = Vec::new();
    while !tbs.0.is_empty() {
        let (tag, body) = tbs.next()?;
        if tag == 0xa3 {
            names = alt_names(body)?;
        }
    }
    Ok(CertInfo {
        not_before,
        not_after,
        subject,
        issuer,
        names,
    })
}

/// A cursor over DER elements.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// The next element: its tag and its contents.
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let short = || "truncated DER".to_string();
        let (&tag, rest) = self.0.split_first().ok_or_else(short)?;
        if tag & 0x1f == 0x1f {
            return Err("DER tag numbers above 30 are not used in certificates".into());
        }
        let (&first, rest) = rest.split_first().ok_or_else(short)?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err("bad DER length".into());
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(short());
        }
        let (body, after) = rest.split_at(len);
        self.0 = after;
        Ok((tag, body))
    }

    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        match self.next()? {
            (t, body) if t == tag => Ok(body),
            (t, _) => Err(format!(
                "{what}: expected DER tag {tag:#04x}, found {t:#04x}"
            )),
        }
    }
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`, to Unix seconds.
fn time((tag, body): (u8, &[u8])) -> Result<i64, String> {
    let bad = || format!("bad certificate time {:?}", String::from_utf8_lossy(body));
    let digits = match (tag, body.len()) {
        (UTC_TIME, 13) | (GENERALIZED_TIME, 15) => &body[..body.len() - 1],
        _ => return Err(bad()),
    };
    if body.last() != Some(&b'Z') || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let num = |s: &[u8]| s.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0'));
    let (year, rest) = if tag == UTC_TIME {
        let yy = num(&digits[..2]);
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
    } else {
        (num(&digits[..4]), &digits[4..])
    };
    let (mo, d, h, mi, s) = (
        num(&rest[0..2]),
        num(&rest[2..4]),
        num(&rest[4..6]),
        num(&rest[6..8]),
        num(&rest[8..10]),
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, mo as u32, d as u32);
    Ok(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// A Name as `CN=..., O=...`.
fn name(body: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    let mut rdns = Der(body);
    while !rdns.0.is_empty() {
        let mut set = Der(rdns.expect(SET, "name")?);
        while !set.0.is_empty() {
            let mut atv = Der(set.expect(SEQUENCE, "name attribute")?);
            let oid = atv.expect(OID, "name attribute type")?;
            let (tag, value) = atv.next()?;
            if !out.is_empty() {
                out.push_str(", ");
            }
            match attribute(oid) {
                Some(short) => out.push_str(short),
                None => out.push_str(&dotted(oid)),
            }
            out.push('=');
            out.push_str(&text(tag, value));
        }
    }
    Ok(out)
}

fn attribute(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 0x03] => "CN",
        [0x55, 0x04, 0x06] => "C",
        [0x55, 0x04, 0x07] => "L",
        [0x55, 0x04, 0x08] => "ST",
        [0x55, 0x04, 0x0a] => "O",
        [0x55, 0x04, 0x0b] => "OU",
        [0x55, 0x04, 0x05] => "serialNumber",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

/// An OID in dotted form (`2.5.4.97`).
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut acc: u64 = 0;
    for b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if out.is_empty() {
                let first = (acc / 40).min(2);
                let _ = write!(out, "{first}.{}", acc - first * 40);
            } else {
                let _ = write!(out, ".{acc}");
            }
            acc = 0;
        }
    }
    out
}

/// A directory string, printable: BMPString is UTF-16, the others are read
/// as UTF-8; control characters become `.`.
fn text(tag: u8, value: &[u8]) -> String {
    let s = if tag == 0x1e {
        let units: Vec<u16> = value
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(value).into_owned()
    };
    s.chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect()
}

/// DNS names and IP addresses from the extensions, if a subjectAltName is there.
fn alt_names(explicit: &[u8]) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut exts = Der(Der(explicit).expect(SEQUENCE, "extensions")?);
    while !exts.0.is_empty() {
        let mut ext = Der(exts.expect(SEQUENCE, "extension")?);
        let oid = ext.expect(OID, "extension id")?;
        if ext.peek() == Some(BOOLEAN) {
            ext.next()?;
        }
        let value = ext.expect(OCTET_STRING, "extension value")?;
        if oid != SAN_OID {
            continue;
        }
        let mut general = Der(Der(value).expect(SEQUENCE, "subjectAltName")?);
        while !general.0.is_empty() {
            match general.next()? {
                (0x82, dns) => names.push(text(0x16, dns)),
                (0x87, ip) if ip.len() == 4 => {
                    let a: [u8; 4] = [ip[0], ip[1], ip[2], ip[3]];
                    names.push(std::net::Ipv4Addr::from(a).to_string());
                }
                (0x87, ip) if ip.len() == 16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(ip);
                    names.push(std::net::Ipv6Addr::from(a).to_string());
                }
                _ => {}
            }
        }
    }
    Ok(names)
}

/// Whole days in `secs`, truncated toward zero: the one rounding rule of
/// every "days left" and "days ago" (2 days and 13 s ago is 2 days ago,
/// `days_left` -2; 9.9 days left is 9).
pub fn whole_days(secs: i64) -> i64 {
    secs / 86_400
}

/// The largest PEM file read ([`read_pem_file`]).
pub const MAX_PEM_FILE: u64 = 16 << 20;

/// The certificates of a PEM file (a `ca_file`), or why not as a sentence.
pub fn read_pem_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = crate::os::files::read_file(path, MAX_PEM_FILE).map_err(|e| e.to_string())?;
    load_pem_certs(&pem)
}

/// Loads PEM certificates (a `ca_file`): at least one, all readable.
pub fn load_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let mut certs = Vec::new();
    for c in CertificateDer::pem_slice_iter(pem) {
        certs.push(c.map_err(|e| format!("not a PEM certificate file: {}", pem_error(&e)))?);
    }
    if certs.is_empty() {
        return Err("contains no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// A PEM error as a sentence (its Debug form prints byte arrays).
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a BEGIN line has no matching END line".into(),
        E::IllegalSectionStart { line } => format!(
            "a malformed BEGIN line: {}",
            crate::format::text::clip(&String::from_utf8_lossy(line), 80)
        ),
        E::Base64Decode(_) => "the text between BEGIN and END is not valid base64".into(),
        E::Io(e) => format!("cannot read it: {e}"),
        _ => "it cannot be read as PEM".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{date_time_ymd, CertificateParams, DnType, KeyPair};

    fn cert() -> Vec<u8> {
        let mut p =
            CertificateParams::new(vec!["svc.test".to_string(), "127.0.0.1".to_string()]).unwrap();
        p.not_before = date_time_ymd(2024, 2, 29);
        p.not_after = date_time_ymd(2051, 1, 2);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(DnType::OrganizationName, "Acme");
        p.distinguished_name.push(DnType::CommonName, "svc.test");
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_dates_names_and_alt_names() {
        let info = parse(&cert()).unwrap();
        assert_eq!(
            crate::os::clock::rfc3339_unix(info.not_before),
            "2024-02-29T00:00:00Z"
        );
        // 2051 needs GeneralizedTime: both encodings are read.
        assert_eq!(
            crate::os::clock::rfc3339_unix(info.not_after),
            "2051-01-02T00:00:00Z"
        );
        assert_eq!(info.subject, "O=Acme, CN=svc.test");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.names, vec!["svc.test", "127.0.0.1"]);
    }

    #[test]
    fn never_panics_on_truncated_or_corrupted_input() {
        let der = cert();
        for n in 0..der.len() {
            let _ = parse(&der[..n]);
        }
        for i in 0..der.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = der.clone();
                bad[i] ^= flip;
                let _ = parse(&bad);
            }
        }
        assert!(parse(&der[..der.len() - 1]).is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn reads_both_time_forms_and_rejects_nonsense() {
        assert_eq!(time((UTC_TIME, b"491231235959Z")).unwrap(), 2_524_607_999);
        assert_eq!(time((UTC_TIME, b"500101000000Z")).unwrap(), -631_152_000);
        assert_eq!(
            time((GENERALIZED_TIME, b"20000229000000Z")).unwrap(),
            951_782_400
        );
        assert!(time((UTC_TIME, b"991332000000Z")).is_err());
        assert!(time((UTC_TIME, b"99123100000+Z")).is_err());
        assert!(time((GENERALIZED_TIME, b"20000229000000")).is_err());
    }

    #[test]
    fn unknown_attributes_are_dotted() {
        assert_eq!(dotted(&[0x55, 0x04, 0x61]), "2.5.4.97");
        assert_eq!(dotted(&[0x2a, 0x86, 0x48]), "1.2.840");
    }
}
