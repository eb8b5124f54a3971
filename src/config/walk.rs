//! The validation walker: typed reads of the parsed tree, each mistake
//! collected as `file:line: key: what is wrong`, so that all errors of a
//! file come out together, in file order. The sections are read in
//! `sections.rs`, the checks in `checks.rs`.

use super::*;

pub(super) type Value = Spanned<DeValue>;

/// Walks the parsed tree, converting values and collecting errors.
pub(super) struct Walker<'s> {
    pub(super) source: &'s str,
    pub(super) text: &'s str,
    /// Where each line starts: a line number is a binary search, so
    /// validation stays linear in the number of checks.
    pub(super) line_starts: Vec<usize>,
    /// (byte offset, message) so errors come out in file order.
    pub(super) errors: Vec<(usize, String)>,
}

/// Where a value sits, for messages: `[agent]` or `check "api"`.
pub(super) struct Scope<'a> {
    pub(super) table: &'a DeTable,
    pub(super) what: String,
}

impl<'a> Scope<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.table.get(key)
    }
}

/// Walks a parsed document into a [`Config`], or every error in file order.
/// `pre`: errors found before the walk (variables), as (byte offset, message).
pub(super) fn walk(
    doc: &DeTable,
    text: &str,
    source: &str,
    pre: Vec<(usize, String)>,
) -> Result<Config, ConfigError> {
    Walker::run(text, source, pre, |w| w.document(doc)).map_err(ConfigError)
}

/// What a drop-in adds: checks with where each was written, and labels
/// with where (`file:line`).
pub(super) struct Dropin {
    pub(super) checks: Vec<Check>,
    pub(super) at: Vec<String>,
    pub(super) labels: Vec<(String, String, String)>,
}

/// Walks a drop-in's parsed document: its checks, with `agent`'s defaults,
/// and where each was written; or every error in file order.
pub(super) fn walk_dropin(
    doc: &DeTable,
    text: &str,
    source: &str,
    pre: Vec<(usize, String)>,
    agent: &Agent,
) -> Result<Dropin, Vec<String>> {
    Walker::run(text, source, pre, |w| w.dropin(doc, agent))
}

/// Walks a remote document: its checks, with `local`'s defaults as the
/// document's `[agent]` `interval` and `timeout` override them.
pub(super) fn walk_remote(
    doc: &DeTable,
    text: &str,
    source: &str,
    local: &Agent,
) -> Result<(Vec<Check>, Vec<String>), Vec<String>> {
    Walker::run(text, source, Vec::new(), |w| w.remote(doc, local))
}

impl<'s> Walker<'s> {
    /// A walker over `text`, starting with the errors in `pre`; `walk`'s
    /// value, or every error in file order.
    fn run<T>(
        text: &'s str,
        source: &'s str,
        pre: Vec<(usize, String)>,
        walk: impl FnOnce(&mut Walker<'s>) -> T,
    ) -> Result<T, Vec<String>> {
        let mut w = Walker {
            source,
            text,
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            errors: Vec::new(),
        };
        for (at, msg) in pre {
            w.error(at..at, msg);
        }
        let value = walk(&mut w);
        if w.errors.is_empty() {
            Ok(value)
        } else {
            w.errors.sort_by_key(|(at, _)| *at);
            Err(w.errors.into_iter().map(|(_, m)| m).collect())
        }
    }
}

impl Walker<'_> {
    pub(super) fn line(&self, span: &Range<usize>) -> usize {
        self.line_starts.partition_point(|s| *s <= span.start)
    }

    pub(super) fn error(&mut self, span: Range<usize>, msg: String) {
        let line = self.line(&span);
        self.errors
            .push((span.start, format!("{}:{line}: {msg}", self.source)));
    }

    pub(super) fn unknown_keys(&mut self, scope: &Scope, known: &[&[&str]]) {
        for (k, _) in scope.table.iter() {
            if !known.iter().any(|set| set.contains(&k.get_ref().as_str())) {
                let expected: Vec<&str> = known.iter().flat_map(|s| s.iter().copied()).collect();
                self.error(
                    k.span(),
                    format!(
                        "unknown key `{}` in {} (expected one of: {})",
                        k.get_ref(),
                        scope.what,
                        expected.join(", ")
                    ),
                );
            }
        }
    }

    /// The value as written in the file, shortened, for messages.
    pub(super) fn snippet(&self, span: &Range<usize>) -> String {
        let raw = self.text.get(span.clone()).unwrap_or("").trim();
        let cut: String = raw.chars().take(40).collect();
        if cut.len() < raw.len() {
            format!("{cut}...")
        } else {
            cut
        }
    }

    pub(super) fn wrong_type(&mut self, scope: &Scope, key: &str, v: &Value, expected: &str) {
        let found = v.get_ref().type_str();
        let snippet = self.snippet(&v.span());
        let msg = format!(
            "{}: `{key}` must be {expected}, found {found} {snippet}",
            scope.what
        );
        self.error(v.span(), msg);
    }

    pub(super) fn string<'a>(
        &mut self,
        scope: &Scope<'a>,
        key: &str,
    ) -> Option<(&'a str, Range<usize>)> {
        let v = scope.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.as_str(), v.span())),
            _ => {
                self.wrong_type(scope, key, v, "a string");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, scope: &Scope, key: &str) -> Option<bool> {
        let v = scope.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(scope, key, v, "true or false");
                None
            }
        }
    }

    pub(super) fn integer(&mut self, scope: &Scope, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = scope.get(key)?;
        let DeValue::Integer(i) = v.get_ref() else {
            self.wrong_type(scope, key, v, "an integer");
            return None;
        };
        match *i {
            n if (min..=max).contains(&n) => Some(n),
            n => {
                let msg = format!(
                    "{}: `{key}` must be between {min} and {max}, found {n}",
                    scope.what
                );
                self.error(v.span(), msg);
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        scope: &Scope,
        key: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let v = scope.get(key)?;
        let DeValue::String(s) = v.get_ref() else {
            self.wrong_type(scope, key, v, "a duration string like \"30s\"");
            return None;
        };
        match duration::parse(s) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(d) => {
                let msg = format!(
                    "{}: `{key}` must be between {} and {}, found {}",
                    scope.what,
                    duration::format(min),
                    duration::format(max),
                    duration::format(d)
                );
                self.error(v.span(), msg);
                None
            }
            Err(e) => {
                self.error(v.span(), format!("{}: `{key}`: {e}", scope.what));
                None
            }
        }
    }

    /// A string restricted to `choices`.
    pub(super) fn choice(&mut self, scope: &Scope, key: &str, choices: &[&str]) -> Option<String> {
        let (s, span) = self.string(scope, key)?;
        if choices.contains(&s) {
            Some(s.to_string())
        } else {
            let msg = format!(
                "{}: `{key}` must be one of {}, found \"{s}\"",
                scope.what,
                choices.join(", ")
            );
            self.error(span, msg);
            None
        }
    }

    /// A string parsed by `f`; its error is reported at the value.
    pub(super) fn parsed<T>(
        &mut self,
        scope: &Scope,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let (s, span) = self.string(scope, key)?;
        match f(s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(span, format!("{}: `{key}`: {e}", scope.what));
                None
            }
        }
    }

    pub(super) fn array<'a>(&mut self, scope: &Scope<'a>, key: &str) -> Option<&'a [Value]> {
        let v = scope.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(scope, key, v, "an array");
                None
            }
        }
    }

    /// Each entry of an array through `parse`; every entry it refuses is an
    /// error at that entry (`` `key` entry X is_not ``). `None` if any was.
    pub(super) fn entries<T>(
        &mut self,
        s: &Scope,
        key: &str,
        list: &[Value],
        is_not: &str,
        parse: impl Fn(&DeValue) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        for v in list {
            match parse(v.get_ref()) {
                Some(t) => out.push(t),
                None => {
                    let msg = format!(
                        "{}: `{key}` entry {} {is_not}",
                        s.what,
                        self.snippet(&v.span())
                    );
                    self.error(v.span(), msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A table of `name = "value"` strings (`headers`, `env`), in file order.
    /// A pair that `valid` refuses, or a value that is not a string, is an
    /// error at its key: `` {item} `name` {must} ``.
    pub(super) fn string_table(
        &mut self,
        s: &Scope,
        key: &str,
        example: &str,
        (item, must): (&str, &str),
        valid: impl Fn(&str, &str) -> bool,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(v) = s.get(key) else {
            return out;
        };
        let DeValue::Table(t) = v.get_ref() else {
            self.wrong_type(s, key, v, example);
            return out;
        };
        for (k, tv) in t.iter() {
            let name = k.get_ref();
            match tv.get_ref().as_str() {
                Some(val) if valid(name, val) => out.push((name.to_string(), val.to_string())),
                _ => self.error(k.span(), format!("{}: {item} `{name}` {must}", s.what)),
            }
        }
        out
    }

    pub(super) fn required<T>(
        &mut self,
        s: &Scope,
        span: &Range<usize>,
        key: &str,
        v: Option<T>,
    ) -> Option<T> {
        if s.get(key).is_none() {
            self.error(
                span.clone(),
                format!("{}: missing required key `{key}`", s.what),
            );
        }
        v
    }
}

/// An HTTP header a config may set: a token name, a value without line
/// breaks.
pub(super) fn header_ok(name: &str, val: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && !val.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

pub(super) fn absolute_path(p: &str) -> Result<PathBuf, String> {
    if p.starts_with('/') {
        Ok(PathBuf::from(p))
    } else {
        Err(format!("`{p}` must be an absolute path"))
    }
}

/// "64MiB", "512KiB", "1GiB", "1000" (bytes).
pub fn parse_size(t: &str) -> Option<u64> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

pub fn format_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}
