//! Text from the repository on its way to a terminal or a CI log: control characters (escape
//! sequences, carriage returns, ...) and bidirectional overrides are shown escaped, so that a
//! file name or header cannot rewrite what the reader sees.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character except newline and tab, and every Unicode
/// bidirectional control, written as `\uXXXX` (also a valid escape inside a JSON string).
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_keeps_lines() {
        assert_eq!(escape("a\nb\tc"), "a\nb\tc");
        assert_eq!(escape("x\u{1b}[31mred\r"), "x\\u001b[31mred\\u000d");
        assert_eq!(escape("\u{202e}txt"), "\\u202etxt");
    }
}
