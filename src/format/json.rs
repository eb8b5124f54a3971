//! A minimal JSON writer for `/status`, `tether check --json` and the
//! records. What tether reads back (its own stored records) is read by
//! `json_fields`; no JSON crate is linked.
//! Non-finite floats are written as `null` (nanoserde writes bare `NaN`).

use std::fmt::Write;

/// Builds one JSON document into a `String`. Callers open and close objects
/// and arrays; the writer inserts commas.
#[derive(Default)]
pub struct Json {
    out: String,
    /// One entry per open container: has it had an element yet?
    first: Vec<bool>,
}

impl Json {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn comma(&mut self) {
        if let Some(first) = self.first.last_mut() {
            if !*first {
                self.out.push(',');
            }
            *first = false;
        }
    }

    fn key(&mut self, k: &str) {
        self.comma();
        escape_into(&mut self.out, k);
        self.out.push(':');
        // The value that follows must not add another comma.
        if let Some(first) = self.first.last_mut() {
            *first = true;
        }
    }

    pub fn begin_object(&mut self, k: Option<&str>) -> &mut Self {
        match k {
            Some(k) => self.key(k),
            None => self.comma(),
        }
        self.out.push('{');
        self.first.push(true);
        self
    }

    pub fn begin_array(&mut self, k: Option<&str>) -> &mut Self {
        match k {
            Some(k) => self.key(k),
            None => self.comma(),
        }
        self.out.push('[');
        self.first.push(true);
        self
    }

    pub fn end_object(&mut self) -> &mut Self {
        self.first.pop();
        self.out.push('}');
        self.after_value();
        self
    }

    pub fn end_array(&mut self) -> &mut Self {
        self.first.pop();
        self.out.push(']');
        self.after_value();
        self
    }

    fn after_value(&mut self) {
        if let Some(first) = self.first.last_mut() {
            *first = false;
        }
    }

    fn raw(&mut self, k: Option<&str>, v: &str) -> &mut Self {
        match k {
            Some(k) => self.key(k),
            None => self.comma(),
        }
        self.out.push_str(v);
        self.after_value();
        self
    }

    pub fn str(&mut self, k: Option<&str>, v: &str) -> &mut Self {
        match k {
            Some(k) => self.key(k),
            None => self.comma(),
        }
        escape_into(&mut self.out, v);
        self.after_value();
        self
    }

    pub fn opt_str(&mut self, k: Option<&str>, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }

    pub fn bool(&mut self, k: Option<&str>, v: bool) -> &mut Self {
        self.raw(k, if v { "true" } else { "false" })
    }

    pub fn uint(&mut self, k: Option<&str>, v: u64) -> &mut Self {
        self.raw(k, &v.to_string())
    }

    pub fn int(&mut self, k: Option<&str>, v: i64) -> &mut Self {
        self.raw(k, &v.to_string())
    }

    pub fn float(&mut self, k: Option<&str>, v: f64) -> &mut Self {
        if v.is_finite() {
            self.raw(k, &format!("{v}"))
        } else {
            self.raw(k, "null")
        }
    }

    pub fn opt_float(&mut self, k: Option<&str>, v: Option<f64>) -> &mut Self {
        self.float(k, v.unwrap_or(f64::NAN))
    }

    /// `{"name":"value",…}`: labels, in the order given.
    pub fn string_map(&mut self, k: Option<&str>, pairs: &[(String, String)]) -> &mut Self {
        self.begin_object(k);
        for (name, v) in pairs {
            self.str(Some(name), v);
        }
        self.end_object()
    }

    /// `["…",…]`.
    pub fn strings(&mut self, k: Option<&str>, items: &[String]) -> &mut Self {
        self.begin_array(k);
        for v in items {
            self.str(None, v);
        }
        self.end_array()
    }
}

/// Writes `s` as a quoted JSON string.
pub fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_documents_with_commas_and_escapes() {
        let mut j = Json::new();
        j.begin_object(None)
            .str(Some("a"), "x\"y\n\u{1}")
            .uint(Some("n"), 3)
            .float(Some("nan"), f64::NAN)
            .begin_array(Some("list"))
            .uint(None, 1)
            .begin_object(None)
            .bool(Some("b"), true)
            .end_object()
            .opt_str(None, None)
            .end_array()
            .float(Some("f"), 0.25)
            .end_object();
        assert_eq!(
            j.finish(),
            r#"{"a":"x\"y\n\u0001","n":3,"nan":null,"list":[1,{"b":true},null],"f":0.25}"#
        );
    }
}
