//! Variables in string values: `${NAME}` is replaced from the environment,
//! `${HOSTNAME}` by the host's name, `$${` writes a literal `${`. Expanded
//! in the parsed tree before it is validated, so every check of a value
//! sees what the agent will use, and a message still names the line the
//! value was written on. An undefined variable is an error naming it: an
//! empty string in its place would make a target, a path or a label that
//! nobody wrote.

use super::toml_lite::Table;

/// Expands every string value of `doc` (keys are left alone). Returns
/// (byte offset of the value, what is wrong) for each value that could not
/// be expanded; such a value is left as written.
pub(super) fn expand_all(
    doc: &mut Table,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<(usize, String)> {
    let mut errors = Vec::new();
    doc.each_string_mut(&mut |s, at| match expand(s, lookup) {
        Ok(Some(new)) => *s = new,
        Ok(None) => {}
        Err(e) => errors.push((at, e)),
    });
    errors
}

/// The environment, and the host's name for `HOSTNAME`.
pub(super) fn from_environment(name: &str) -> Option<String> {
    if name == "HOSTNAME" {
        return Some(crate::config::host_name());
    }
    std::env::var(name).ok()
}

/// `s` with its variables replaced; `None` when it has none (the common
/// case: nothing is copied).
pub(super) fn expand(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    if !s.contains('$') {
        return Ok(None);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or("`${` without its closing `}` (write `$${` for a literal `${`)")?;
            let name = &after[..end];
            let valid = name.bytes().enumerate().all(|(i, b)| {
                b == b'_'
                    || b.is_ascii_uppercase()
                    || b.is_ascii_lowercase()
                    || (i > 0 && b.is_ascii_digit())
            });
            if name.is_empty() || !valid {
                return Err(format!(
                    "`${{{}}}` is not a variable name (letters, digits and _, not starting with a digit)",
                    crate::format::text::clip(name, 40)
                ));
            }
            let value = lookup(name).ok_or_else(|| {
                format!("undefined variable ${{{name}}} (set it in the agent's environment, or write $${{ for a literal ${{)")
            })?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SITE" => Some("fra1".into()),
            "HOSTNAME" => Some("edge-7".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_and_a_literal_is_kept() {
        let x = |s: &str| expand(s, &env);
        assert_eq!(x("plain"), Ok(None));
        assert_eq!(
            x("${SITE}-db.${HOSTNAME}").unwrap().unwrap(),
            "fra1-db.edge-7"
        );
        assert_eq!(x("$${SITE} costs $5").unwrap().unwrap(), "${SITE} costs $5");
        // Read left to right: a lone `$`, then `$${`.
        assert_eq!(x("$$${SITE}").unwrap().unwrap(), "$${SITE}");
    }

    #[test]
    fn an_undefined_or_malformed_variable_is_an_error_naming_it() {
        let x = |s: &str| expand(s, &env).unwrap_err();
        assert!(x("a${NOPE}b").contains("undefined variable ${NOPE}"));
        assert!(x("${SITE").contains("without its closing"));
        assert!(x("${1X}").contains("`${1X}` is not a variable name"));
        assert!(x("${}").contains("is not a variable name"));
    }
}
