//! Reading back the top-level fields of one JSON object: what the
//! remote-write path needs from a stored record (`"check":"db"`,
//! `"duration_ms":1.5`). Nested objects and arrays are skipped, not parsed,
//! with a depth counter instead of recursion, so no input can exhaust the
//! stack. Anything that is not a well-formed object gives `None`: a record
//! read from disk is input like any other.

use std::borrow::Cow;

/// A top-level value: strings unescaped (borrowed from the text when they
/// hold no escape), numbers as `f64`.
#[derive(Clone, Debug, PartialEq)]
pub enum Field<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Bool(bool),
    Null,
    /// An object or array, not looked into.
    Nested,
}

/// The fields of the object in `text`, in order; `text` may lack its
/// opening brace (a stored record body starts at its first key).
pub fn fields(text: &str) -> Option<Vec<(Cow<'_, str>, Field<'_>)>> {
    let b = text.as_bytes();
    let mut at = skip_ws(b, 0);
    if b.get(at) == Some(&b'{') {
        at = skip_ws(b, at + 1);
    }
    let mut out = Vec::new();
    if b.get(at) == Some(&b'}') {
        return (skip_ws(b, at + 1) == b.len()).then_some(out);
    }
    loop {
        let (key, next) = string(b, at)?;
        at = skip_ws(b, next);
        if b.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(b, at + 1);
        let (value, next) = value(b, at)?;
        out.push((key, value));
        at = skip_ws(b, next);
        match b.get(at) {
            Some(b',') => at = skip_ws(b, at + 1),
            Some(b'}') => return (skip_ws(b, at + 1) == b.len()).then_some(out),
            _ => return None,
        }
    }
}

/// The string field `key`, if present and a string.
pub fn str_of<'a>(f: &'a [(Cow<'_, str>, Field<'_>)], key: &str) -> Option<&'a str> {
    f.iter().find_map(|(k, v)| match v {
        Field::Str(s) if k == key => Some(s.as_ref()),
        _ => None,
    })
}

/// The number field `key`, if present and a number.
pub fn num_of(f: &[(Cow<'_, str>, Field<'_>)], key: &str) -> Option<f64> {
    f.iter().find_map(|(k, v)| match v {
        Field::Num(n) if k == key => Some(*n),
        _ => None,
    })
}

/// The boolean field `key`, if present and a boolean.
pub fn bool_of(f: &[(Cow<'_, str>, Field<'_>)], key: &str) -> Option<bool> {
    f.iter().find_map(|(k, v)| match v {
        Field::Bool(x) if k == key => Some(*x),
        _ => None,
    })
}

fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while b
        .get(at)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

fn value(b: &[u8], at: usize) -> Option<(Field<'_>, usize)> {
    match *b.get(at)? {
        b'"' => string(b, at).map(|(s, n)| (Field::Str(s), n)),
        b'{' | b'[' => nested(b, at).map(|n| (Field::Nested, n)),
        b't' if b[at..].starts_with(b"true") => Some((Field::Bool(true), at + 4)),
        b'f' if b[at..].starts_with(b"false") => Some((Field::Bool(false), at + 5)),
        b'n' if b[at..].starts_with(b"null") => Some((Field::Null, at + 4)),
        _ => {
            let end = at
                + b[at..]
                    .iter()
                    .take_while(|c| {
                        c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                    })
                    .count();
            let n: f64 = std::str::from_utf8(&b[at..end]).ok()?.parse().ok()?;
            Some((Field::Num(n), end))
        }
    }
}

/// A string starting at `at` (its quote): the text and the index after it.
fn string(b: &[u8], at: usize) -> Option<(Cow<'_, str>, usize)> {
    if b.get(at) != Some(&b'"') {
        return None;
    }
    // Without an escape the text is a slice of the input.
    let plain = b[at + 1..]
        .iter()
        .position(|c| *c == b'"' || *c == b'\\' || *c < 0x20)?;
    if b[at + 1 + plain] == b'"' {
        let s = std::str::from_utf8(&b[at + 1..at + 1 + plain]).ok()?;
        return Some((Cow::Borrowed(s), at + 2 + plain));
    }
    let mut out = Vec::new();
    let mut i = at + 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some((Cow::Owned(String::from_utf8(out).ok()?), i + 1)),
            b'\\' => {
                let c = *b.get(i + 1)?;
                i += 2;
                match c {
                    b'"' | b'\\' | b'/' => out.push(c),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'r' => out.push(b'\r'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'u' => {
                        let hex = std::str::from_utf8(b.get(i..i + 4)?).ok()?;
                        let mut cp = u32::from_str_radix(hex, 16).ok()?;
                        i += 4;
                        if (0xD800..0xDC00).contains(&cp) && b.get(i..i + 2) == Some(b"\\u") {
                            let lo = std::str::from_utf8(b.get(i + 2..i + 6)?).ok()?;
                            let lo = u32::from_str_radix(lo, 16).ok()?;
                            if (0xDC00..0xE000).contains(&lo) {
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                i += 6;
                            }
                        }
                        let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                        out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    _ => return None,
                }
            }
            c if c < 0x20 => return None,
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// Skips an object or array starting at `at`: the index after it.
fn nested(b: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    loop {
        match *b.get(i)? {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' => {
                i = string(b, i)?.1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_body_reads_back() {
        let f = fields(
            "\"time\":\"2026-01-01T00:00:00.000Z\",\"check\":\"a\\\"b\\u00e9\\ud83d\\ude00\",\
             \"n\":-1.5e3,\"ok\":true,\"x\":null,\"checks\":[{\"a\":\"]}\"},[]],\"z\":0}",
        )
        .unwrap();
        assert_eq!(str_of(&f, "check"), Some("a\"bé😀"));
        assert_eq!(num_of(&f, "n"), Some(-1500.0));
        assert_eq!(bool_of(&f, "ok"), Some(true));
        assert_eq!(f[4].1, Field::Null);
        assert_eq!(f[5].1, Field::Nested);
        assert_eq!(num_of(&f, "z"), Some(0.0));
        assert_eq!(fields("{}"), Some(vec![]));
        assert_eq!(fields(" { \"a\" : 1 } ").unwrap().len(), 1);
    }

    #[test]
    fn malformed_input_is_none_not_a_panic() {
        for bad in [
            "",
            "{",
            "\"a\"",
            "\"a\":",
            "\"a\":1",
            "\"a\":1,}",
            "\"a\":\"\\x\"}",
            "\"a\":\"\\u12\"}",
            "\"a\":[}",
            "\"a\":1}trailing",
            "\"a\":tru}",
            "\"a\":-}",
            "\"a\":\"\n\"}",
        ] {
            assert_eq!(fields(bad), None, "{bad:?}");
        }
        let deep = format!("\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(fields(&deep).unwrap()[0].1, Field::Nested);
        let unbalanced = format!("\"a\":{}}}", "[".repeat(100_000));
        assert_eq!(fields(&unbalanced), None);
    }
}
