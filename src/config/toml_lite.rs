//! A TOML reader for configuration files, into a tree that keeps the byte
//! span of every key and value, so that `config` can name the line of each
//! mistake. It reads TOML 1.0 plus the two additions of TOML 1.1 that the
//! `toml` crate (which tether used before) reads: inline tables across
//! lines with a trailing comma, and the `\e` and `\xHH` escapes. Dates and
//! times, which no tether key takes, are refused with a clear error.
//!
//! Why not the `toml` crate: it and `toml_parser` were 61 KB of the static
//! binary (measured: 1,857,304 to 1,795,864 B), and the binary has a
//! 1.75 MiB budget (docs/design.md, "Size"). The tests compare this reader with the
//! `toml` crate (a dev-dependency) on every configuration in the repository
//! and on thousands of randomly edited copies of them: both accept with the
//! same tree, or both refuse.
//!
//! Refused, as TOML requires: duplicate keys, a table defined twice, dotted
//! keys or headers that extend an inline table or a static array, control
//! characters in strings, invalid escapes, integers beyond 64 bits, leading
//! zeros, misplaced underscores.

use std::ops::Range;

/// A value with the byte range it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    value: T,
    span: Range<usize>,
}

impl Spanned<Value> {
    fn each_string_mut(&mut self, f: &mut dyn FnMut(&mut String, usize)) {
        match &mut self.value {
            Value::String(s) => f(s, self.span.start),
            Value::Array(items) => items.iter_mut().for_each(|v| v.each_string_mut(f)),
            Value::Table(t) => t.each_string_mut(f),
            _ => {}
        }
    }
}

impl<T> Spanned<T> {
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Array(Vec<Spanned<Value>>),
    Table(Table),
}

impl Value {
    /// The TOML type's name, for messages.
    pub fn type_str(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Integer(_) => "integer",
            Value::Float(_) => "float",
            Value::Boolean(_) => "boolean",
            Value::Array(_) => "array",
            Value::Table(_) => "table",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// How a table came to be, which decides what may extend it later.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum Origin {
    /// The document root, or a table named only as a prefix of a header.
    #[default]
    Implicit,
    /// `[name]` or one entry of `[[name]]`.
    Header,
    /// Made by a dotted key (`a.b = 1` makes `a`).
    Dotted,
    /// `{ ... }`: closed once written.
    Inline,
}

/// A table: its keys in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    entries: Vec<(Spanned<String>, Spanned<Value>)>,
    origin: Origin,
    /// The index of entries that are arrays of tables (`[[name]]`), which
    /// headers may extend, unlike a static array.
    of_tables: Vec<usize>,
}

impl Table {
    pub fn iter(&self) -> impl Iterator<Item = (&Spanned<String>, &Spanned<Value>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn get(&self, key: &str) -> Option<&Spanned<Value>> {
        self.position(key).map(|at| &self.entries[at].1)
    }

    /// Calls `f` with every string value in the tree (not keys) and the
    /// byte offset it was written at, to rewrite it.
    pub fn each_string_mut(&mut self, f: &mut dyn FnMut(&mut String, usize)) {
        for (_, v) in &mut self.entries {
            v.each_string_mut(f);
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k.value == key)
    }
}

/// A syntax error: what, and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub message: String,
    pub at: usize,
}

type Key = Vec<Spanned<String>>;

/// Parses a whole document.
pub fn parse(text: &str) -> Result<Table, Error> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        depth: 0,
    };
    p.document()
}

/// Arrays and inline tables nest at most this deep, and a key has at most
/// [`MAX_KEY_PARTS`] dotted parts: no key of tether's needs more than 3,
/// and the reader (and what walks its tree) recurses, so input may not
/// choose the depth of the stack.
pub const MAX_NESTING: usize = 32;
pub const MAX_KEY_PARTS: usize = 16;

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    /// Arrays and inline tables open around the current position.
    depth: usize,
}

fn err<T>(at: usize, message: impl Into<String>) -> Result<T, Error> {
    Err(Error {
        message: message.into(),
        at,
    })
}

fn is_bare(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.i + n).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn starts(&self, lit: &str) -> bool {
        self.s[self.i..].starts_with(lit.as_bytes())
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), Error> {
        if self.eat(b) {
            Ok(())
        } else {
            err(self.i, format!("expected {what}, found {}", self.found()))
        }
    }

    /// The next character, named for a message.
    fn found(&self) -> String {
        match self.text[self.i..].chars().next() {
            None => "the end of the file".into(),
            Some('\n') | Some('\r') => "the end of the line".into(),
            Some(c) if c.is_control() => format!("control character U+{:04X}", c as u32),
            Some(c) => format!("`{c}`"),
        }
    }

    /// Spaces and tabs.
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// A comment up to (not including) the end of the line.
    fn comment(&mut self) -> Result<(), Error> {
        if !self.eat(b'#') {
            return Ok(());
        }
        while let Some(b) = self.peek() {
            if b == b'\n' || (b == b'\r' && self.peek_at(1) == Some(b'\n')) {
                break;
            }
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                return err(self.i, format!("{} in a comment", self.found()));
            }
            self.i += 1;
        }
        Ok(())
    }

    /// A newline, or the end of the file.
    fn newline(&mut self) -> bool {
        if self.eat(b'\n') {
            return true;
        }
        if self.starts("\r\n") {
            self.i += 2;
            return true;
        }
        self.peek().is_none()
    }

    /// After a key/value or a header: spaces, a comment, then a newline.
    fn end_of_line(&mut self) -> Result<(), Error> {
        self.ws();
        self.comment()?;
        if self.newline() {
            Ok(())
        } else {
            err(
                self.i,
                format!(
                    "expected the end of the line after a value or a header, found {}",
                    self.found()
                ),
            )
        }
    }

    /// Whitespace, newlines and comments (inside arrays).
    fn blank(&mut self) -> Result<(), Error> {
        loop {
            self.ws();
            self.comment()?;
            if self.peek().is_none() || !self.newline() {
                return Ok(());
            }
        }
    }

    fn document(&mut self) -> Result<Table, Error> {
        let mut root = Table::default();
        if self.starts("\u{feff}") {
            self.i += 3;
        }
        // The table key/values go to: a path of keys from the root.
        let mut current: Vec<String> = Vec::new();
        loop {
            self.blank()?;
            let Some(b) = self.peek() else {
                return Ok(root);
            };
            if b == b'[' {
                current = self.header(&mut root)?;
            } else {
                let start = self.i;
                let (key, value) = self.keyval(false)?;
                let table = descend(&mut root, &current, start)?;
                insert_dotted(table, key, value)?;
            }
            self.end_of_line()?;
        }
    }

    /// `[a.b]` or `[[a.b]]`: creates the table, returns its path.
    fn header(&mut self, root: &mut Table) -> Result<Vec<String>, Error> {
        let start = self.i;
        self.i += 1;
        let array = self.eat(b'[');
        self.ws();
        let key = self.key()?;
        self.ws();
        self.expect(b']', "`]` to close the table header")?;
        if array {
            self.expect(b']', "`]]` to close the array-of-tables header")?;
        }
        let span = start..self.i;
        let path: Vec<String> = key.iter().map(|k| k.value.clone()).collect();
        let (last, parents) = key.split_last().expect("a key has a segment");
        let mut t = root;
        for k in parents {
            t = step(t, k, true)?;
        }
        let fresh = Table {
            origin: Origin::Header,
            ..Table::default()
        };
        match t.position(&last.value) {
            None if array => {
                t.of_tables.push(t.entries.len());
                let first = Spanned {
                    value: Value::Table(fresh),
                    span: span.clone(),
                };
                t.entries.push((
                    last.clone(),
                    Spanned {
                        value: Value::Array(vec![first]),
                        span,
                    },
                ));
            }
            None => t.entries.push((
                last.clone(),
                Spanned {
                    value: Value::Table(fresh),
                    span,
                },
            )),
            Some(at) => {
                let of_tables = t.of_tables.contains(&at);
                match (&mut t.entries[at].1.value, array) {
                    (Value::Array(list), true) if of_tables => list.push(Spanned {
                        value: Value::Table(fresh),
                        span,
                    }),
                    (Value::Table(old), false) if old.origin == Origin::Implicit => {
                        old.origin = Origin::Header;
                        t.entries[at].1.span = span;
                    }
                    _ => {
                        return err(
                            last.span.start,
                            format!("`{}` is defined twice", dotted(&path)),
                        )
                    }
                }
            }
        }
        Ok(path)
    }

    /// `key = value`; inside an inline table (`nested`) newlines and
    /// comments may surround the `=` too, as the toml crate reads TOML 1.1.
    fn keyval(&mut self, nested: bool) -> Result<(Key, Spanned<Value>), Error> {
        let key = self.key()?;
        self.space(nested)?;
        self.expect(b'=', "`=` after a key")?;
        self.space(nested)?;
        let value = self.value()?;
        Ok((key, value))
    }

    fn space(&mut self, newlines: bool) -> Result<(), Error> {
        if newlines {
            self.blank()
        } else {
            self.ws();
            Ok(())
        }
    }

    /// A key: bare or quoted segments joined by dots.
    fn key(&mut self) -> Result<Key, Error> {
        let mut key = Vec::new();
        loop {
            let start = self.i;
            let value = match self.peek() {
                Some(b'"') => {
                    if self.starts("\"\"\"") {
                        return err(self.i, "a key cannot be a multi-line string");
                    }
                    self.basic_string()?
                }
                Some(b'\'') => {
                    if self.starts("'''") {
                        return err(self.i, "a key cannot be a multi-line string");
                    }
                    self.literal_string()?
                }
                Some(b) if is_bare(b) => {
                    while self.peek().is_some_and(is_bare) {
                        self.i += 1;
                    }
                    self.text[start..self.i].to_string()
                }
                _ => return err(self.i, format!("expected a key, found {}", self.found())),
            };
            if key.len() == MAX_KEY_PARTS {
                return err(
                    start,
                    format!("a key of more than {MAX_KEY_PARTS} dotted parts"),
                );
            }
            key.push(Spanned {
                value,
                span: start..self.i,
            });
            self.ws();
            if !self.eat(b'.') {
                return Ok(key);
            }
            self.ws();
        }
    }

    fn value(&mut self) -> Result<Spanned<Value>, Error> {
        let start = self.i;
        let value = match self.peek() {
            Some(b'"') if self.starts("\"\"\"") => Value::String(self.multi_line_string(b'"')?),
            Some(b'"') => Value::String(self.basic_string()?),
            Some(b'\'') if self.starts("'''") => Value::String(self.multi_line_string(b'\'')?),
            Some(b'\'') => Value::String(self.literal_string()?),
            Some(b'[' | b'{') if self.depth >= MAX_NESTING => {
                return err(
                    self.i,
                    format!("arrays and inline tables nested more than {MAX_NESTING} deep"),
                )
            }
            Some(b'[') => {
                self.depth += 1;
                let a = self.array();
                self.depth -= 1;
                Value::Array(a?)
            }
            Some(b'{') => {
                self.depth += 1;
                let t = self.inline_table();
                self.depth -= 1;
                Value::Table(t?)
            }
            Some(b't') if self.starts("true") => {
                self.i += 4;
                Value::Boolean(true)
            }
            Some(b'f') if self.starts("false") => {
                self.i += 5;
                Value::Boolean(false)
            }
            Some(b) if b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'i' | b'n') => {
                self.number()?
            }
            Some(b) if b.is_ascii_alphabetic() => {
                let word: String = self.text[self.i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                    .collect();
                return err(
                    self.i,
                    format!("expected a value, found `{word}` (a string needs quotes: \"{word}\")"),
                );
            }
            _ => return err(self.i, format!("expected a value, found {}", self.found())),
        };
        Ok(Spanned {
            value,
            span: start..self.i,
        })
    }

    fn array(&mut self) -> Result<Vec<Spanned<Value>>, Error> {
        self.i += 1;
        let mut list = Vec::new();
        loop {
            self.blank()?;
            if self.eat(b']') {
                return Ok(list);
            }
            list.push(self.value()?);
            self.blank()?;
            if self.eat(b']') {
                return Ok(list);
            }
            self.expect(b',', "`,` or `]` in an array")?;
        }
    }

    /// `{ k = v, ... }`. TOML 1.1, as the toml crate reads it: newlines and
    /// comments between entries and a trailing comma are allowed.
    fn inline_table(&mut self) -> Result<Table, Error> {
        self.i += 1;
        let mut t = Table::default();
        loop {
            self.blank()?;
            if self.eat(b'}') {
                seal(&mut t);
                return Ok(t);
            }
            let (key, value) = self.keyval(true)?;
            insert_dotted(&mut t, key, value)?;
            self.blank()?;
            if self.eat(b'}') {
                seal(&mut t);
                return Ok(t);
            }
            self.expect(b',', "`,` or `}` in an inline table")?;
        }
    }

    /// `"..."` (escapes decoded) or `'...'` (taken as written).
    fn basic_string(&mut self) -> Result<String, Error> {
        self.one_line_string(b'"')
    }

    fn literal_string(&mut self) -> Result<String, Error> {
        self.one_line_string(b'\'')
    }

    fn one_line_string(&mut self, quote: u8) -> Result<String, Error> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None | Some(b'\n') | Some(b'\r') => {
                    let msg = format!(
                        "unterminated string: expected `{}` before the end of the line",
                        quote as char
                    );
                    return err(self.i, msg);
                }
                Some(q) if q == quote => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') if quote == b'"' => out.push(self.escape()?),
                Some(_) => out.push(self.string_char()?),
            }
        }
    }

    /// `"""..."""` or `'''...'''`: a newline right after the opening quotes
    /// is dropped; in the basic form escapes are decoded and a backslash at
    /// the end of a line joins it with the next non-blank.
    fn multi_line_string(&mut self, quote: u8) -> Result<String, Error> {
        let start = self.i;
        let delimiter = [quote; 3];
        self.i += 3;
        self.newline_in_string();
        let mut out = String::new();
        loop {
            if self.s[self.i..].starts_with(&delimiter) {
                // Up to two quotes may end the content: `""""` is `"` + end.
                let mut n = 3;
                while n < 5 && self.peek_at(n) == Some(quote) {
                    n += 1;
                }
                out.extend(std::iter::repeat_n(quote as char, n - 3));
                self.i += n;
                return Ok(out);
            }
            match self.peek() {
                None => {
                    let d = std::str::from_utf8(&delimiter).unwrap_or("");
                    return err(
                        start,
                        format!("unterminated multi-line string: no closing `{d}`"),
                    );
                }
                Some(b'\\') if quote == b'"' => {
                    let at = self.i;
                    self.i += 1;
                    self.ws();
                    if self.newline_in_string() {
                        loop {
                            self.ws();
                            if !self.newline_in_string() {
                                break;
                            }
                        }
                    } else {
                        self.i = at;
                        out.push(self.escape()?);
                    }
                }
                Some(b'\n') | Some(b'\r') => {
                    if !self.newline_in_string() {
                        return err(self.i, "a lone carriage return in a string");
                    }
                    out.push('\n');
                }
                Some(_) => out.push(self.string_char()?),
            }
        }
    }

    fn newline_in_string(&mut self) -> bool {
        self.peek().is_some() && self.newline()
    }

    /// One character of a string; control characters other than tab are
    /// refused.
    fn string_char(&mut self) -> Result<char, Error> {
        let c = self.text[self.i..].chars().next().expect("not at the end");
        if (c < ' ' && c != '\t') || c == '\u{7f}' {
            return err(self.i, format!("{} in a string", self.found()));
        }
        self.i += c.len_utf8();
        Ok(c)
    }

    fn escape(&mut self) -> Result<char, Error> {
        let at = self.i;
        self.i += 1;
        let c = match self.peek() {
            Some(b'b') => '\u{8}',
            Some(b't') => '\t',
            Some(b'n') => '\n',
            Some(b'f') => '\u{c}',
            Some(b'r') => '\r',
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            // TOML 1.1, which the toml crate reads too.
            Some(b'e') => '\u{1b}',
            Some(b'x') => return self.unicode(at, 2),
            Some(b'u') => return self.unicode(at, 4),
            Some(b'U') => return self.unicode(at, 8),
            _ => {
                return err(
                    at,
                    format!(
                        "invalid escape `\\{}` (valid: \\b \\t \\n \\f \\r \\e \\\" \\\\ \\xHH \\uXXXX \\UXXXXXXXX)",
                        self.text[self.i..].chars().next().unwrap_or(' ')
                    ),
                )
            }
        };
        self.i += 1;
        Ok(c)
    }

    fn unicode(&mut self, at: usize, n: usize) -> Result<char, Error> {
        self.i += 1;
        let hex = self.text.get(self.i..self.i + n).unwrap_or("");
        let c = (hex.len() == n && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(hex, 16).ok())
            .flatten()
            .and_then(char::from_u32);
        match c {
            Some(c) => {
                self.i += n;
                Ok(c)
            }
            None => err(
                at,
                format!("invalid unicode escape: {n} hex digits of a scalar value expected"),
            ),
        }
    }

    /// An integer or a float. Dates and times are refused by name.
    fn number(&mut self) -> Result<Value, Error> {
        let start = self.i;
        while self.peek().is_some_and(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'_' | b'.' | b':')
        }) {
            self.i += 1;
        }
        let tok = &self.text[start..self.i];
        let bad = |why: &str| err(start, format!("invalid number `{tok}`: {why}"));
        if tok.len() >= 5
            && tok.as_bytes()[4] == b'-'
            && tok[..4].bytes().all(|b| b.is_ascii_digit())
            || tok.len() >= 3 && tok.as_bytes()[2] == b':'
        {
            return err(
                start,
                format!("`{tok}`: dates and times are not used by tether; write a string"),
            );
        }
        let (sign, body) = match tok.as_bytes()[0] {
            b'+' => (1, &tok[1..]),
            b'-' => (-1, &tok[1..]),
            _ => (1, tok),
        };
        match body {
            "inf" => return Ok(Value::Float(f64::INFINITY * sign as f64)),
            "nan" => return Ok(Value::Float(f64::NAN)),
            _ => {}
        }
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(digits) = body.strip_prefix(prefix) {
                if sign != 1 || tok.starts_with('+') {
                    return bad("a sign is not allowed with a prefix");
                }
                let Some(clean) = underscores(digits, radix, false) else {
                    return bad("misplaced `_` or a digit outside the base");
                };
                return i64::from_str_radix(&clean, radix)
                    .map(Value::Integer)
                    .or_else(|_| bad("out of the 64-bit range"));
            }
        }
        let float = body.contains(['.', 'e', 'E']);
        let Some(clean) = underscores(body, 10, float) else {
            return bad("misplaced `_` or an invalid character");
        };
        let int_part = clean.split(['.', 'e', 'E']).next().unwrap_or("");
        if int_part.is_empty() || (int_part.len() > 1 && int_part.starts_with('0')) {
            return bad("leading zeros are not allowed");
        }
        if float {
            // Digits on both sides of the point, and in the exponent.
            let b = clean.as_bytes();
            for (i, &c) in b.iter().enumerate() {
                let next_digit = b.get(i + 1).is_some_and(u8::is_ascii_digit);
                let prev_digit = i > 0 && b[i - 1].is_ascii_digit();
                let ok = match c {
                    b'.' => prev_digit && next_digit,
                    b'e' | b'E' => {
                        prev_digit && (next_digit || matches!(b.get(i + 1), Some(b'+' | b'-')))
                    }
                    b'+' | b'-' => {
                        matches!(b.get(i.wrapping_sub(1)), Some(b'e' | b'E')) && next_digit
                    }
                    _ => true,
                };
                if !ok {
                    return bad("not a number");
                }
            }
            return match clean.parse::<f64>() {
                Ok(v) => Ok(Value::Float(v * sign as f64)),
                Err(_) => bad("not a number"),
            };
        }
        let signed = if sign < 0 { format!("-{clean}") } else { clean };
        signed
            .parse::<i64>()
            .map(Value::Integer)
            .or_else(|_| bad("out of the 64-bit range"))
    }
}

/// `digits` without underscores, if each underscore sits between two digits
/// of `radix` and every other character is such a digit (or, in a float, one
/// of `.eE+-`, whose places the caller checks).
fn underscores(digits: &str, radix: u32, float: bool) -> Option<String> {
    let b = digits.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(|&c| (c as char).is_digit(radix));
    if b.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(b.len());
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            if i == 0 || !digit(i - 1) || !digit(i + 1) {
                return None;
            }
        } else if digit(i) || (float && matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')) {
            out.push(c as char);
        } else {
            return None;
        }
    }
    Some(out)
}

fn dotted(path: &[String]) -> String {
    path.join(".")
}

/// Marks an inline table and the tables its dotted keys made as closed.
fn seal(t: &mut Table) {
    t.origin = Origin::Inline;
    for (_, v) in t.entries.iter_mut() {
        if let Value::Table(inner) = &mut v.value {
            if inner.origin == Origin::Dotted {
                seal(inner);
            }
        }
    }
}

/// The table at `path` (made by headers: every step exists).
fn descend<'t>(root: &'t mut Table, path: &[String], at: usize) -> Result<&'t mut Table, Error> {
    let mut t = root;
    for k in path {
        let key = Spanned {
            value: k.clone(),
            span: at..at,
        };
        t = step(t, &key, true)?;
    }
    Ok(t)
}

/// One step down a key path. Under a header (`header`), a missing table is
/// made implicitly and an array of tables means its last table; under a
/// dotted key only a table made by dotted keys may be extended.
fn step<'t>(t: &'t mut Table, k: &Spanned<String>, header: bool) -> Result<&'t mut Table, Error> {
    let at = match t.position(&k.value) {
        Some(at) => at,
        None => {
            let origin = if header {
                Origin::Implicit
            } else {
                Origin::Dotted
            };
            t.entries.push((
                k.clone(),
                Spanned {
                    value: Value::Table(Table {
                        origin,
                        ..Table::default()
                    }),
                    span: k.span.clone(),
                },
            ));
            t.entries.len() - 1
        }
    };
    let of_tables = t.of_tables.contains(&at);
    let extend = |msg: &str| err(k.span.start, format!("`{}` {msg}", k.value));
    match &mut t.entries[at].1.value {
        Value::Table(inner) => match (inner.origin, header) {
            (Origin::Inline, _) => extend("is an inline table, which cannot be extended"),
            (Origin::Dotted, _) | (Origin::Implicit | Origin::Header, true) => Ok(inner),
            _ => extend("is a table defined elsewhere; a dotted key cannot extend it"),
        },
        Value::Array(list) if of_tables && header => match list.last_mut() {
            Some(Spanned {
                value: Value::Table(inner),
                ..
            }) => Ok(inner),
            _ => extend("is not a table"),
        },
        _ => extend("already has a value that is not a table"),
    }
}

/// Inserts `key = value` (a dotted key makes the tables on its way).
fn insert_dotted(t: &mut Table, key: Key, value: Spanned<Value>) -> Result<(), Error> {
    let (last, parents) = key.split_last().expect("a key has a segment");
    let mut t = t;
    for k in parents {
        t = step(t, k, false)?;
    }
    if t.position(&last.value).is_some() {
        return err(last.span.start, format!("duplicate key `{}`", last.value));
    }
    t.entries.push((last.clone(), value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'t>(t: &'t Table, path: &str) -> &'t Value {
        let mut v = None;
        let mut t = t;
        for k in path.split('.') {
            let found = t.get(k).unwrap_or_else(|| panic!("no {k} in {path}"));
            if let Value::Table(inner) = found.get_ref() {
                t = inner;
            }
            v = Some(found.get_ref());
        }
        v.unwrap()
    }

    #[test]
    fn values_of_every_kind() {
        let doc = parse(concat!(
            "a = \"x\\ty\\u00e9\\U0001F600\"\n",
            "b = 'C:\\path'\n",
            "c = \"\"\"\nline1\n  \\\n   joined\"\"\"\n",
            "d = '''\nraw \\n'''\n",
            "e = [1, 0x1F, 0o17, 0b101, -3, +4, 1_000]\n",
            "f = [1.5, -0.5e3, 2E-2, inf, -inf]\n",
            "g = true\nh = false\n",
            "i = { x = 1, y.z = \"w\" }\n",
            "\"quoted key\" = 1\n",
            "[t.u]\nv = 1\n[[arr]]\nn = 1\n[[arr]]\nn = 2\n",
        ))
        .unwrap();
        assert_eq!(get(&doc, "a").as_str(), Some("x\tyé😀"));
        assert_eq!(get(&doc, "b").as_str(), Some("C:\\path"));
        assert_eq!(get(&doc, "c").as_str(), Some("line1\n  joined"));
        assert_eq!(get(&doc, "d").as_str(), Some("raw \\n"));
        let ints: Vec<Value> = [1, 31, 15, 5, -3, 4, 1000].map(Value::Integer).into();
        match get(&doc, "e") {
            Value::Array(a) => {
                assert_eq!(a.iter().map(|v| v.value.clone()).collect::<Vec<_>>(), ints)
            }
            v => panic!("{v:?}"),
        }
        match get(&doc, "f") {
            Value::Array(a) => {
                let f: Vec<f64> = a
                    .iter()
                    .map(|v| match v.value {
                        Value::Float(f) => f,
                        _ => panic!(),
                    })
                    .collect();
                assert_eq!(f, [1.5, -500.0, 0.02, f64::INFINITY, f64::NEG_INFINITY]);
            }
            v => panic!("{v:?}"),
        }
        assert_eq!(get(&doc, "g"), &Value::Boolean(true));
        assert_eq!(get(&doc, "i.y.z").as_str(), Some("w"));
        assert_eq!(get(&doc, "t.u.v"), &Value::Integer(1));
        assert_eq!(get(&doc, "quoted key"), &Value::Integer(1));
        match get(&doc, "arr") {
            Value::Array(a) => assert_eq!(a.len(), 2),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn spans_point_at_the_key_and_the_value() {
        let text = "[agent]\nname = \"edge\"\n";
        let doc = parse(text).unwrap();
        let Value::Table(agent) = doc.get("agent").unwrap().get_ref() else {
            panic!()
        };
        let (k, v) = agent.iter().next().unwrap();
        assert_eq!(&text[k.span()], "name");
        assert_eq!(&text[v.span()], "\"edge\"");
        assert_eq!(&text[doc.get("agent").unwrap().span()], "[agent]");
    }

    #[test]
    fn invalid_documents_are_refused_where_they_go_wrong() {
        for (text, at, needle) in [
            ("a = \"x\n", 6, "unterminated string"),
            ("a = 1\na = 2\n", 6, "duplicate key `a`"),
            ("[a]\n[a]\n", 5, "`a` is defined twice"),
            ("a = {x = 1}\n[a]\n", 13, "defined twice"),
            ("a = {x = 1}\na.y = 2\n", 12, "inline table"),
            ("a = [1]\n[[a]]\n", 10, "defined twice"),
            ("[a.b]\n[a]\nb.c = 1\n", 10, "a dotted key cannot extend"),
            ("a = 01\n", 4, "leading zeros"),
            ("a = 1__0\n", 4, "misplaced `_`"),
            ("a = 9223372036854775808\n", 4, "64-bit"),
            ("a = 1979-05-27\n", 4, "dates and times"),
            ("a = \"\\q\"\n", 5, "invalid escape"),
            ("a = 1 b = 2\n", 6, "end of the line"),
            ("a = \"\u{1}\"\n", 5, "control character"),
            ("a = [1 2]\n", 7, "`,` or `]`"),
            (
                &format!("x = {}", "[".repeat(20_000)),
                36,
                "nested more than 32 deep",
            ),
            (
                &format!("x = {}", "{a=".repeat(10_000)),
                100,
                "nested more than 32 deep",
            ),
            (
                &format!("{} = 1", ["a"; 20_000].join(".")),
                32,
                "more than 16 dotted parts",
            ),
            ("= 1\n", 0, "expected a key"),
            ("a = 1.\n", 4, "not a number"),
            ("a = .5\n", 4, "expected a value"),
            ("a = { x = 1,, y = 2 }\n", 12, "expected a key"),
            ("a = 0x-1\n", 4, "invalid number"),
            ("a = 0x\n", 4, "invalid number"),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.message.contains(needle), "{text:?}: {e:?}");
            assert_eq!(e.at, at, "{text:?}: {e:?}");
        }
    }
    /// The tree as text, for comparing with the `toml` crate's.
    fn render(v: &Value) -> String {
        match v {
            Value::String(s) => format!("{s:?}"),
            Value::Integer(i) => format!("{i}i"),
            Value::Float(f) if f.is_nan() => "nan".into(),
            Value::Float(f) => format!("{f:?}f"),
            Value::Boolean(b) => b.to_string(),
            Value::Array(a) => {
                let items: Vec<String> = a.iter().map(|v| render(&v.value)).collect();
                format!("[{}]", items.join(","))
            }
            Value::Table(t) => {
                let mut items: Vec<String> = t
                    .iter()
                    .map(|(k, v)| format!("{:?}={}", k.value, render(&v.value)))
                    .collect();
                items.sort();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    fn render_theirs(v: &toml::de::DeValue) -> String {
        use toml::de::DeValue as D;
        match v {
            D::String(s) => format!("{:?}", s.as_ref()),
            D::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => format!("{n}i"),
                Err(_) => "bigint".into(),
            },
            D::Float(f) => match f.as_str().parse::<f64>() {
                Ok(f) if f.is_nan() => "nan".into(),
                Ok(f) => format!("{f:?}f"),
                Err(_) => "badfloat".into(),
            },
            D::Boolean(b) => b.to_string(),
            D::Datetime(d) => format!("date {d}"),
            D::Array(a) => {
                let items: Vec<String> = a.iter().map(|v| render_theirs(v.get_ref())).collect();
                format!("[{}]", items.join(","))
            }
            D::Table(t) => {
                let mut items: Vec<String> = t
                    .iter()
                    .map(|(k, v)| {
                        format!("{:?}={}", k.get_ref().as_ref(), render_theirs(v.get_ref()))
                    })
                    .collect();
                items.sort();
                format!("{{{}}}", items.join(","))
            }
        }
    }

    /// Ours and theirs: the tree as text, or an error.
    fn both(text: &str) -> (Result<String, Error>, Result<String, ()>) {
        let ours = parse(text).map(|t| render(&Value::Table(t)));
        let theirs = toml::de::DeTable::parse(text)
            .map(|t| render_theirs(&toml::de::DeValue::Table(t.into_inner())))
            .map_err(|_| ());
        (ours, theirs)
    }

    fn corpus() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![
            root.join("packaging/tether.toml"),
            root.join("src/config/default.toml"),
        ];
        for e in std::fs::read_dir(root.join("tests/fixtures/config")).unwrap() {
            files.push(e.unwrap().path());
        }
        let mut docs: Vec<(String, String)> = files
            .iter()
            .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
            .collect();
        // The examples in the README and the documents.
        let mut pages = vec![root.join("README.md")];
        for e in std::fs::read_dir(root.join("docs")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                pages.push(p);
            }
        }
        for page in pages {
            let text = std::fs::read_to_string(&page).unwrap();
            for (i, block) in text.split("```toml\n").skip(1).enumerate() {
                let body = block.split("```").next().unwrap();
                docs.push((
                    format!("{} toml block {i}", page.display()),
                    body.to_string(),
                ));
            }
        }
        docs
    }

    /// Refused for depth or key length, which the toml crate does not bound.
    fn over_our_bounds(e: &Error) -> bool {
        e.message.contains("nested more than") || e.message.contains("dotted parts")
    }

    #[test]
    fn every_configuration_in_the_repository_reads_as_the_toml_crate_reads_it() {
        let docs = corpus();
        assert!(docs.len() > 40, "{}", docs.len());
        for (name, text) in docs {
            let (ours, theirs) = both(&text);
            if ours.as_ref().is_err_and(over_our_bounds) {
                continue;
            }
            assert_eq!(ours.map_err(|_| ()), theirs, "{name}");
        }
    }

    #[test]
    fn tricky_documents_read_as_the_toml_crate_reads_them() {
        for text in [
            "a.b.c = 1\na.d = 2\n[x]\ny.z = 'q'\n",
            "[a.b.c]\n[a]\nx = 1\n",
            "[[a]]\n[a.b]\nx = 1\n[[a]]\n[[a.c]]\ny = 2\n[[a.c]]\n",
            "s = \"\"\"\na\"\"\"\"\"\nt = '''b''''\n",
            "s = \"\"\"\\\n\n   x\\\n   \"\"\"\n",
            "a = [\n  1, # one\n  2,\n]\n",
            "a = [[1, 2], ['x'], [{b = 1}]]\n",
            "n = -0\nm = +0.0\nk = 1e+3\nj = 3.1415_9\nh = 0xdead_BEEF\n",
            "\"a.b\" = 1\n'c' = 2\n\"\" = 3\n",
            "a = \"\\u00E9\\\"\\\\\\e\\x41\"\n",
            "# comment\r\na = 1\r\n",
            "a = {}\nb = { c = { d = 1 } }\n",
            "[ a . \"b c\" ]\nx=1\n",
            "a = 1 # trailing\n\n\n",
            "1234 = 1\n-_ = 2\n",
            "a = inf\nb = -inf\nc = +inf\n",
            "a = {b.c = 1, b.d = 2}\n",
            "a = {\n  b = 1, # one\n  c\n  =\n 2,\n}\n",
            "[a]\nb.c = 1\n[a.b.d]\n",
        ] {
            let (ours, theirs) = both(text);
            assert_eq!(ours.map_err(|_| ()), theirs, "{text:?}");
        }
    }

    #[test]
    fn mutated_configurations_are_never_accepted_when_the_toml_crate_refuses_them() {
        // Random edits of the repository's files: a character deleted,
        // doubled or replaced by one that matters to TOML, a line
        // duplicated. Where both accept, the trees must agree; we may refuse
        // what the toml crate (TOML 1.1) accepts only for 1.1's additions.
        let seed = std::env::var("TETHER_TOML_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(7);
        let mut rng = fastrand::Rng::with_seed(seed);
        let docs = corpus();
        let marks = b"\"'[]{}=.,#\\\n \t_-+0x1e:";
        let mut agree = 0;
        for _ in 0..4_000 {
            let (name, text) = &docs[rng.usize(..docs.len())];
            let mut b = text.as_bytes().to_vec();
            for _ in 0..rng.usize(1..=3) {
                if b.is_empty() {
                    break;
                }
                let at = rng.usize(..b.len());
                match rng.u8(..4) {
                    0 => {
                        b.remove(at);
                    }
                    1 => b.insert(at, b[at]),
                    2 => b[at] = marks[rng.usize(..marks.len())],
                    _ => {
                        let start = b[..at]
                            .iter()
                            .rposition(|&c| c == b'\n')
                            .map_or(0, |i| i + 1);
                        let end = b[at..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map_or(b.len(), |i| at + i + 1);
                        let line = b[start..end].to_vec();
                        b.splice(start..start, line);
                    }
                }
            }
            let Ok(text) = String::from_utf8(b) else {
                continue;
            };
            match both(&text) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "seed {seed}, from {name}:\n{text}");
                    agree += 1;
                }
                (Ok(_), Err(())) => {
                    panic!("accepted what toml refuses (seed {seed}, from {name}):\n{text}")
                }
                (Err(_), Err(())) => agree += 1,
                // The toml crate lets a number it cannot read through (`0x`
                // with no digits reads as an integer with no digits); its
                // value is then unusable, and refusing it is right.
                (Err(_), Ok(b)) if b.contains("bigint") || b.contains("badfloat") => agree += 1,
                (Err(e), Ok(_)) if over_our_bounds(&e) => agree += 1,
                (Err(e), Ok(_)) => {
                    panic!("refused what toml accepts (seed {seed}, from {name}): {e:?}\n{text}")
                }
            }
        }
        assert!(agree > 3_500, "{agree} of 4000 were valid UTF-8");
    }
}
