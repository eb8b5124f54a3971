//! Text from the network, made fit for a message or a log line: bounded in
//! length, one line, no control characters.

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

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clips_at_a_character_and_hides_controls() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("a\r\nb", 10), "a??b");
        assert_eq!(clip("ééé", 3), "é…");
        assert_eq!(clip(&"x".repeat(15_000), 200).len(), 200 + '…'.len_utf8());
    }
}
