//! Text from the network, made fit for a message or a log line: bounded in
//! length, one line, no control characters; and label values escaped for
//! the Prometheus text format.

/// A Prometheus label value as the text exposition format writes it:
/// backslash, double quote and line feed escaped (`/metrics`, the
/// remote-write dead letters).
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// FNV-1a 64 of `bytes`: a short hash that is the same on every run and
/// every machine (the series index's key prefix, the configuration hash).
pub fn fnv1a64<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `1 check`, `2 checks`: a count and its noun, plural by an `s`.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// At most `width` characters of `s`, ending in `…` when cut: a table
/// cell or line made to fit a terminal.
pub fn fit(s: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if s.chars().count() <= width {
        return s.into();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out.into()
}

/// At most `max` bytes of `s` (cut at a character boundary, with `…` when
/// cut), control characters shown as `?`.
pub fn clip(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = s[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < s.len() {
        out.push('…');
    }
    out
}

/// A word that names a secret: a password, secret, token, auth or key.
pub fn secret_word(a: &str) -> bool {
    let a = a.to_ascii_lowercase();
    ["pass", "secret", "token", "auth", "key"]
        .iter()
        .any(|s| a.contains(s))
}

pub const REDACTED: &str = "[redacted]";

/// A command line as shown in `/status`, `/metrics` and messages: the
/// argument after a secret-looking flag (`--token X`), the value of
/// `--password=X`, and a secret-looking bare word are `[redacted]`.
pub fn redact_argv(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut after_secret = false;
    for (i, a) in args.iter().enumerate() {
        let secret = secret_word(a);
        let flag = a.starts_with('-');
        out.push(if i > 0 && (after_secret || (secret && !flag)) {
            REDACTED.to_string()
        } else if let (true, Some((name, _))) = (secret, a.split_once('=')) {
            format!("{name}={REDACTED}")
        } else {
            a.clone()
        });
        after_secret = secret && flag && !a.contains('=');
    }
    out
}

/// A URL with the values of secret-looking query parameters
/// (`?api_key=…`, `&token=…`) `[redacted]`.
pub fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if secret_word(k) => format!("{k}={REDACTED}"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_say_one_thing_and_many_things() {
        assert_eq!(count(1u64, "check"), "1 check");
        assert_eq!(count(0u64, "check"), "0 checks");
        assert_eq!(count(2u64, "certificate"), "2 certificates");
    }

    #[test]
    fn fit_cuts_characters_not_bytes() {
        assert_eq!(fit("abc", 3), "abc");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("ééééé", 3), "éé…");
    }

    #[test]
    fn clips_at_a_character_and_hides_controls() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a\r\nb", 10), "a??b");
        assert_eq!(clip("ééé", 3), "é…");
        assert_eq!(clip(&"x".repeat(15_000), 200).len(), 200 + '…'.len_utf8());
    }

    #[test]
    fn secrets_in_command_lines_and_queries_are_redacted() {
        let argv: Vec<String> = [
            "/usr/bin/check_x",
            "--token",
            "T1",
            "--password=P1",
            "-H",
            "host",
            "apikey123",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            redact_argv(&argv).join(" "),
            "/usr/bin/check_x --token [redacted] --password=[redacted] -H host [redacted]"
        );
        assert_eq!(
            redact_query("http://h/x?a=1&api_key=K&Token=T"),
            "http://h/x?a=1&api_key=[redacted]&Token=[redacted]"
        );
    }
}
